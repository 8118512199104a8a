-- The functions and views of sql/000005_roles.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- Gives an application role DML on every mapped table of a connection (and on tables mapped later).
create or replace function hc.grant_app_access(role_name text, connection_name text default null)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  m record;
begin
  if not exists (select 1 from pg_roles where rolname = role_name) then
    raise exception 'hcsync: role "%" does not exist', role_name
      using errcode = 'undefined_object', hint = format('Create it first, e.g. CREATE ROLE %I LOGIN PASSWORD ''…'';', role_name);
  end if;
  if role_name in ('hcsync_admin', 'hcsync_viewer') or exists (select 1 from pg_roles where rolname = role_name and rolsuper) then
    raise exception 'hcsync: "%" is not an application role', role_name
      using errcode = 'invalid_parameter_value', hint = 'Grant application access to the role your application logs in as.';
  end if;
  insert into hc._app_roles (connection_id, role_name) values (c.id, role_name) on conflict do nothing;
  execute format('grant usage on schema %I to %I', c.schema_name, role_name);
  execute format('grant select on %1$I._trigger_log, %1$I._trigger_log_archive to %2$I', c.schema_name, role_name);
  for m in select table_name from hc._mappings where connection_id = c.id loop
    if to_regclass(format('%I.%I', c.schema_name, m.table_name)) is not null then
      execute format('grant select, insert, update, delete on %I.%I to %I', c.schema_name, m.table_name, role_name);
      if hc._id_sequence(format('%I.%I', c.schema_name, m.table_name)::regclass) is not null then
        execute format('grant usage, select on sequence %s to %I', hc._id_sequence(format('%I.%I', c.schema_name, m.table_name)::regclass), role_name);
      end if;
    end if;
  end loop;
  perform hc._control(c, 'grant_app_access', null, jsonb_build_object('role', role_name));
end;
$$;

-- Takes it back.
create or replace function hc.revoke_app_access(role_name text, connection_name text default null)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  m record;
begin
  delete from hc._app_roles where connection_id = c.id and _app_roles.role_name = revoke_app_access.role_name;
  if exists (select 1 from pg_roles where rolname = role_name) then
    for m in select table_name from hc._mappings where connection_id = c.id loop
      if to_regclass(format('%I.%I', c.schema_name, m.table_name)) is not null then
        execute format('revoke all on %I.%I from %I', c.schema_name, m.table_name, role_name);
        if hc._id_sequence(format('%I.%I', c.schema_name, m.table_name)::regclass) is not null then
          execute format('revoke all on sequence %s from %I', hc._id_sequence(format('%I.%I', c.schema_name, m.table_name)::regclass), role_name);
        end if;
      end if;
    end loop;
    execute format('revoke all on %1$I._trigger_log, %1$I._trigger_log_archive from %2$I', c.schema_name, role_name);
    execute format('revoke usage on schema %I from %I', c.schema_name, role_name);
  end if;
  perform hc._control(c, 'revoke_app_access', null, jsonb_build_object('role', role_name));
end;
$$;
