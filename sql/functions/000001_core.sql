-- The functions and views of sql/000001_core.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- Advisory lock keys, derived from their names here and nowhere else. Every lock hcsync takes has two
-- keys: hc.lock_class(name), then the connection, mapping or claimer it is about. The names:
--   writer         a writer's claimer, held by its lock session for the writer's life (then the claimer)
--   claim          one connection's claims, one transaction at a time (then the connection)
--   inbound_lead   a connection's inbound leader, held by its lock session (then the connection)
--   notify_writes  one mapping's write-failure notifications, one transaction at a time (then the mapping)
-- (pg_locks shows the class as classid and the second key as objid, with objsubid 2.) The migrator's
-- own lock, taken before this schema exists, is sidecar/db/contractor.ts's.
create or replace function hc.lock_class(p_name text) returns integer
language sql immutable strict parallel safe
as $$ select pg_catalog.hashtext('hcsync.' operator(pg_catalog.||) p_name) operator(pg_catalog.&) 2147483647 $$;

-- HC's loop-prevention flag, shared by every HC schema in the database and called by customer triggers:
-- 'base64' (the server default) in application sessions, 'hex' in sessions of the sync itself.
create or replace function public.get_xmlbinary() returns varchar
language plpgsql stable
as $$
declare
  xmlbin varchar;
begin
  xmlbin := current_setting('xmlbinary');
  return xmlbin;
end;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Internal helpers used by the API files that follow.

-- Resolves the connection argument of the public API: a name or schema name, or NULL when exactly one
-- connection exists.
create or replace function hc._connection(connection_name text default null)
returns hc.connections
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections;
  n integer;
  names text;
begin
  if connection_name is not null then
    select * into c from hc.connections where name = connection_name or schema_name = connection_name
      order by (name = connection_name) desc limit 1;
    if not found then
      select string_agg(format('%s (schema %s)', name, schema_name), ', ' order by name) into names from hc.connections;
      raise exception 'hcsync: no connection named "%"', connection_name
        using errcode = 'undefined_object',
              hint = coalesce('Existing connections: ' || names, 'Create one with: select hc.create_connection(''my-app'', ''salesforce'');');
    end if;
    return c;
  end if;
  select count(*), string_agg(name, ', ' order by name) into n, names from hc.connections;
  if n = 0 then
    raise exception 'hcsync: no connection exists in this database'
      using errcode = 'undefined_object',
            hint = 'Create one with: select hc.create_connection(''my-app'', ''salesforce'');';
  elsif n > 1 then
    raise exception 'hcsync: % connections exist (%), so the connection must be named', n, names
      using errcode = 'ambiguous_parameter',
            hint = 'Pass the connection name or schema as the last argument, e.g. connection_name => ''' || split_part(names, ', ', 1) || '''.';
  end if;
  select * into c from hc.connections;
  return c;
end;
$$;

-- Resolves a mapping by object name (case-insensitive, like Salesforce) within a connection.
create or replace function hc._mapping(object_name text, connection_name text default null)
returns hc._mappings
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  m hc._mappings;
  names text;
begin
  if object_name is null then
    raise exception 'hcsync: the object name is required' using errcode = 'null_value_not_allowed',
      hint = 'Pass the Salesforce object API name, e.g. ''Contact''.';
  end if;
  select * into m from hc._mappings where connection_id = c.id and lower(_mappings.object_name) = lower(_mapping.object_name);
  if not found then
    select string_agg(x.object_name, ', ' order by x.object_name) into names from hc._mappings x where x.connection_id = c.id;
    raise exception 'hcsync: connection "%" has no mapping for object "%"', c.name, object_name
      using errcode = 'undefined_object',
            hint = coalesce('Mapped objects: ' || names || '.', 'It has no mappings yet: create one with hc.create_mapping(object_name, config).');
  end if;
  return m;
end;
$$;

-- Records an admin change and nudges the sidecar. The NOTIFY carries only the schema name: the
-- sidecar re-reads hc.* (notifications are lost while it is down; the tables are not).
create or replace function hc._control(c hc.connections, action text, mapping_id integer default null, detail jsonb default null)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into hc.audit_log (connection_id, mapping_id, action, detail) values (c.id, mapping_id, action, detail);
  perform pg_notify('hc_control', c.schema_name);
end;
$$;

-- The connections a name or schema names (all when null), or the one with this schema or id: what the sidecar and the CLI read of hc.connections.
create or replace function hc._connections(p_connection text default null, p_schema text default null, p_id integer default null)
returns setof hc.connections
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select * from hc.connections c
   where (p_connection is null or c.name = p_connection or c.schema_name = p_connection)
     and (p_schema is null or c.schema_name = p_schema)
     and (p_id is null or c.id = p_id);
$$;

-- The connection's sync log with each entry's object, newest first, as the CLI and the dashboard filter it (null: any), at most p_limit entries (null: all).
create or replace function hc._sync_log(p_connection_id integer, p_limit integer default null, p_object text default null, p_mapping_id integer default null,
                                        p_min_level text default null, p_levels text[] default null, p_direction text default null, p_event text default null,
                                        p_before bigint default null, p_after bigint default null)
returns table (id bigint, at timestamptz, direction text, level text, event text, message text, detail jsonb, object_name text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select l.id, l.at, l.direction, l.level, l.event, l.message, l.detail, m.object_name
    from hc.sync_log l left join hc._mappings m on m.id = l.mapping_id
   where l.connection_id = p_connection_id
     and (p_object is null or lower(m.object_name) = lower(p_object))
     and (p_mapping_id is null or l.mapping_id = p_mapping_id)
     and (p_min_level is null or array_position(array['debug','info','warn','error'], l.level) >= array_position(array['debug','info','warn','error'], p_min_level))
     and (p_levels is null or l.level = any (p_levels))
     and (p_direction is null or l.direction = p_direction)
     and (p_event is null or l.event = p_event)
     and (p_before is null or l.id < p_before)
     and (p_after is null or l.id > p_after)
   order by l.id desc limit p_limit;
$$;

-- The id of the sync log's latest entry (0 when it is empty): where the CLI's follow of the log starts.
create or replace function hc._sync_log_last_id()
returns bigint
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(max(id), 0) from hc.sync_log;
$$;

-- ---------------------------------------------------------------------------------------------------
-- hstore text that no other role can redirect.
--
-- The capture triggers run as the owner (SECURITY DEFINER), called by application roles. Whatever they
-- resolve by name through a schema another role may write (functions, operators) can be replaced by
-- an exact-type overload that then runs as the owner: calling hstore(old.*) from public, qualified or
-- not, hands the owner's rights to any role with CREATE on public. So the triggers resolve no hstore
-- function or operator by name at run time:
--   - old::hstore goes through a cast from the table's row type to hstore, made when the mapping is
--     applied with the extension's hstore(record). Casts are found by their two types, never by name.
--   - "- excluded" and "new - old" go through hc._hstore_text, SQL functions with a standard body
--     (BEGIN ATOMIC): PostgreSQL binds their operators once, by identity, when they are created.
-- Both are checked against the extension's members when made. The text they write is hstore's own.

-- (Made with the extension's schema, public in Heroku Connect databases, heroku_ext in newer Heroku ones.)
do $$
declare
  hs text := (select quote_ident(n.nspname) from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'hstore');
begin
  execute format($ddl$
    create or replace function hc._hstore_text(h %1$s.hstore, excluded text[]) returns text
    language sql immutable
    begin atomic
      select (h operator(%1$s.-) excluded)::text;
    end$ddl$, hs);
  execute format($ddl$
    create or replace function hc._hstore_text(h %1$s.hstore, excluded text[], minus text) returns text
    language sql immutable
    begin atomic
      select ((h operator(%1$s.-) minus::%1$s.hstore) operator(%1$s.-) excluded)::text;
    end$ddl$, hs);
  -- The sync's own functions (claim, complete, merge) read and write hstore text through these, with
  -- search_path = pg_catalog, pg_temp: each(h), h -> key, hstore(keys, values), a || b.
  execute format($ddl$
    create or replace function hc._hstore_each(h text) returns table (key text, value text)
    language sql immutable
    begin atomic
      select e.key, e.value from %1$s.each(h::%1$s.hstore) e;
    end$ddl$, hs);
  execute format($ddl$
    create or replace function hc._hstore_get(h text, k text) returns text
    language sql immutable
    begin atomic
      select h::%1$s.hstore operator(%1$s.->) k;
    end$ddl$, hs);
  execute format($ddl$
    create or replace function hc._hstore_of(keys text[], vals text[]) returns text
    language sql immutable
    begin atomic
      select %1$s.hstore(keys, vals)::text;
    end$ddl$, hs);
  execute format($ddl$
    create or replace function hc._hstore_concat(a text, b text) returns text
    language sql immutable
    begin atomic
      select (a::%1$s.hstore operator(%1$s.||) b::%1$s.hstore)::text;
    end$ddl$, hs);
end;
$$;

-- Raises unless every function and operator the given functions (or the casts to hstore) were bound
-- to is the hstore extension's own.
create or replace function hc._check_hstore_bindings(fns oid[], casts oid[] default '{}')
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  ext oid := (select e.oid from pg_extension e where e.extname = 'hstore');
  stray text;
begin
  select string_agg(distinct case when x.cls = 'pg_proc'::regclass then x.obj::regprocedure::text else x.obj::regoperator::text end, ', ')
    into stray
    from (select d.refclassid as cls, d.refobjid as obj from pg_depend d
           where d.classid = 'pg_proc'::regclass and d.objid = any (fns)
             and d.refclassid in ('pg_proc'::regclass, 'pg_operator'::regclass)
          union all
          select 'pg_proc'::regclass, c.castfunc from pg_cast c where c.oid = any (casts)) x
   where not exists (select 1 from pg_depend e where e.classid = x.cls and e.objid = x.obj
                      and e.refclassid = 'pg_extension'::regclass and e.refobjid = ext and e.deptype = 'e');
  if stray is not null then
    raise exception 'hcsync: capture would call %, which is not the hstore extension''s: another role has overloaded it', stray
      using errcode = 'insufficient_privilege',
            hint = 'Drop that function or operator and revoke CREATE on its schema (REVOKE CREATE ON SCHEMA public FROM PUBLIC), then apply the mapping (or migrate) again.';
  end if;
end;
$$;

select hc._check_hstore_bindings(array(select p.oid from pg_proc p where p.pronamespace = 'hc'::regnamespace
                                          and p.proname in ('_hstore_text', '_hstore_each', '_hstore_get', '_hstore_of', '_hstore_concat')));

-- The cast from a mapped table's row type to hstore (made when the mapping is applied).
create or replace function hc._install_row_hstore(rel regclass)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  rowtype oid := (select c.reltype from pg_class c where c.oid = rel);
  hs text := hc._hstore_type();
  cast_oid oid;
begin
  select c.oid into cast_oid from pg_cast c where c.castsource = rowtype and c.casttarget = hs::regtype;
  if cast_oid is null then
    execute format('create cast (%s as %s) with function %s(record)', rowtype::regtype, hs, hs);
    select c.oid into cast_oid from pg_cast c where c.castsource = rowtype and c.casttarget = hs::regtype;
  end if;
  perform hc._check_hstore_bindings('{}', array[cast_oid]);
end;
$fn$;

-- Drops it (before the table goes: the cast depends on its row type).
create or replace function hc._drop_row_hstore(rel regclass)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
begin
  execute format('drop cast if exists (%s as %s)', (select c.reltype from pg_class c where c.oid = rel)::regtype, hc._hstore_type());
end;
$fn$;

-- HC's re-queue functions take an hstore argument: they read it as text, with pg_catalog alone.
-- (key, value) of an hstore literal as hstore_out writes it.
create or replace function hc._hstore_pairs(h text)
returns table (key text, value text)
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select regexp_replace(m[1], E'\\\\(.)', E'\\1', 'g'),
         case when m[2] = 'NULL' then null else regexp_replace(m[3], E'\\\\(.)', E'\\1', 'g') end
    from regexp_matches(coalesce(h, ''), E'"((?:[^"\\\\]|\\\\.)*)"=>(NULL|"((?:[^"\\\\]|\\\\.)*)")', 'g') as m
$$;

-- An hstore literal's pairs, as hstore_out writes them, without the excluded keys, or only the included
-- ones when included is not empty.
create or replace function hc._hstore_subset(h text, excluded text[], included text[] default null)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(string_agg(
           '"' || replace(replace(p.key, E'\\', E'\\\\'), '"', E'\\"') || '"=>'
             || coalesce('"' || replace(replace(p.value, E'\\', E'\\\\'), '"', E'\\"') || '"', 'NULL'),
           ', ' order by octet_length(p.key), p.key collate pg_catalog."C"), '')
    from hc._hstore_pairs(h) p
   where not (p.key = any (excluded))
     and (coalesce(cardinality(included), 0) = 0 or p.key = any (included))
$$;

-- HC's get_xmlbinary() as the mapped tables' trigger WHEN clauses name it (schema-qualified). It is
-- checked first because those clauses run in every session that writes the table, the sync's included:
-- it must be the only function of that name in its schema (an overload could take the call) and belong
-- to hc's owner or a superuser (its owner could replace the body).
create or replace function hc._xmlbinary_function() returns text
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  n integer;
  fn text;
  trusted boolean;
begin
  select count(*), min(format('%I.%I', s.nspname, p.proname)),
         bool_and(p.proowner = (select nspowner from pg_namespace where nspname = 'hc')
                  or (select rolsuper from pg_roles where oid = p.proowner))
    into n, fn, trusted
    from pg_proc p join pg_namespace s on s.oid = p.pronamespace
   where p.proname = 'get_xmlbinary' and s.nspname = 'public';
  if n <> 1 or not trusted then
    raise exception 'hcsync: public.get_xmlbinary() is % (% function(s) of that name in public)',
        case when n = 1 then 'owned by a role other than the owner of schema hc' else 'overloaded' end, n
      using errcode = 'insufficient_privilege',
            hint = 'Drop every other get_xmlbinary in public and make the owner of schema hc own public.get_xmlbinary(); then run hcsync migrate.';
  end if;
  return fn;
end;
$$;

-- TRUNCATE bypasses row triggers, so Heroku Connect silently never sends those deletes to Salesforce
-- and the table no longer matches the org. hcsync refuses it instead; the sync's own reloads (and an
-- operator who means it) set hcsync.allow_truncate = on in their session first.
create or replace function hc.truncate_guard() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('hcsync.allow_truncate', true), '') in ('on', 'true', '1', 'yes') then
    return null;
  end if;
  raise exception 'hcsync: TRUNCATE of synced table %.% is refused: it would not delete anything in Salesforce and the next poll would not restore the rows',
      tg_table_schema, tg_table_name
    using errcode = 'insufficient_privilege',
          hint = format('To remove rows in Salesforce too, use DELETE. To make the table match Salesforce again (rows Salesforce no longer has are removed), use select hc.reload(%L). To truncate anyway: SET hcsync.allow_truncate = on; TRUNCATE ...',
                        tg_table_name);
end;
$$;

create or replace function hc.uninstall_script() returns text
language sql stable
as $$
  select concat_ws(E'\n',
    '-- hcsync uninstall: drops every synced table and all sync state of this database',
    (select string_agg(format('DROP SCHEMA IF EXISTS %I CASCADE;', schema_name), E'\n' order by id) from hc.connections),
    'DROP SCHEMA IF EXISTS hc CASCADE;',
    '-- public.get_xmlbinary() is shared with any Heroku Connect schema; drop it when none is left:',
    'DROP FUNCTION IF EXISTS public.get_xmlbinary();',
    '-- cluster-wide, once no database uses it:',
    'DROP ROLE IF EXISTS hcsync_admin;',
    'DROP ROLE IF EXISTS hcsync_viewer;');
$$;
