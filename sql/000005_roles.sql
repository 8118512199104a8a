-- 000005_roles: who may do what. Four kinds of role, each with no more than its work needs:
--
--   the sync process: the owner, the role that runs `hcsync migrate` and `hcsync run`. It owns every
--     object hcsync creates and alone may call the functions the sync reports through
--     (hc.set_mapping_state, hc.set_connection_state, hc.bind_org, hc.take_request, hc.apply_mapping_ddl,
--     hc.inbound_*, hc.outbound_*) and HC's re-queue functions. It should not be a superuser.
--   hcsync_admin, the operator: calls the control API (hc.pause(), hc.create_mapping(), hc.retry(), …),
--     reads hc.*, the trigger logs and the mapped tables. It cannot write hc.* tables directly: every
--     change goes through a function that validates it and writes the audit trail.
--   hcsync_viewer: reads what the operator reads (hc.status, hc.mappings, hc.write_errors, the logs,
--     hc.diagnose(), hc.metrics(), hc.export_config()) and changes nothing.
--   application roles (hc.grant_app_access): SELECT/INSERT/UPDATE/DELETE on a connection's mapped
--     tables, SELECT on its trigger logs (to see failed writes). No function in hc, no writes to
--     _trigger_log, nothing in other connections' schemas. Their changes are still captured: the
--     logger trigger functions are SECURITY DEFINER and resolve nothing another role can replace.
--
-- Any session may SET xmlbinary = hex and then write mapped tables without being captured (and mark
-- rows SYNCED): that is Heroku Connect's own contract (the sync's sessions do it), not a privilege.
-- The functions each role may call are granted in 000099_privileges.sql, after every file that makes one.
--
-- Grant the roles to people/services:  GRANT hcsync_admin TO alice;  GRANT hcsync_viewer TO grafana;

revoke all on schema hc from public;
revoke all on all tables in schema hc from public;
revoke all on all sequences in schema hc from public;
-- Functions are executable by PUBLIC by default; 000099_privileges.sql takes that back for every one.
revoke execute on all functions in schema hc from public;

grant usage on schema hc to hcsync_admin, hcsync_viewer;
grant select on all tables in schema hc to hcsync_admin, hcsync_viewer;
-- Later migrations (inbound, outbound, ops) add tables: both roles read those too, without each file
-- repeating the grants.
alter default privileges in schema hc grant select on tables to hcsync_admin, hcsync_viewer;

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

revoke execute on function hc.grant_app_access(text, text), hc.revoke_app_access(text, text) from public;
grant execute on function hc.grant_app_access(text, text), hc.revoke_app_access(text, text) to hcsync_admin;
