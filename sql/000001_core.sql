-- 000001_core: the hc control schema (connections, mappings, positions, logs, the API-call ledger),
-- the state vocabularies Heroku Connect uses, and the shared objects HC keeps in public.
--
-- Everything hcsync owns lives in schema hc, plus one schema per connection (default salesforce) that
-- holds Heroku Connect's own objects, plus public.get_xmlbinary() and the hstore extension.
--
-- Uninstall (removes every synced table and all sync state; the data in Salesforce is untouched):
--     DROP SCHEMA hc, salesforce CASCADE;            -- one schema per connection: see hc.connections
--     DROP FUNCTION IF EXISTS public.get_xmlbinary();  -- only when no Heroku Connect schema is left
--     -- roles are cluster-wide; drop them once no database uses them:
--     DROP ROLE IF EXISTS hcsync_admin;
--     DROP ROLE IF EXISTS hcsync_viewer;
-- hc.uninstall_script() prints exactly these statements for the connections of this database.

-- (The migrator's bootstrap already made it; this keeps the file self-contained.)
create schema if not exists hc;

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

-- HC stores old/new row images as hstore *text*; the capture triggers build them with hstore(record).
-- HC keeps the extension in public (Heroku moved it to heroku_ext in 2022; an existing one is reused).
create extension if not exists hstore with schema public;

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

-- The operator role (hcsync_admin) may call the control API (hc.pause(), hc.create_mapping(), …) and
-- read; the viewer role (hcsync_viewer) may only read. 000005_roles.sql and 000099_privileges.sql say
-- what each may do. Roles are cluster-wide, so creation tolerates another database (or a concurrent
-- migrator) having made them.
do $$
declare
  r text;
begin
  foreach r in array array['hcsync_admin', 'hcsync_viewer'] loop
    begin
      if not exists (select 1 from pg_roles where rolname = r) then
        execute format('create role %I nologin', r);
      end if;
    exception when duplicate_object or unique_violation then
      null;  -- created concurrently by a migrator of another database
    end;
  end loop;
end;
$$;

-- ---------------------------------------------------------------------------------------------------
-- State vocabularies (reference §3.4, §3.5). Lookup tables rather than CHECKs so dashboards get labels
-- and categories from the same place the constraint comes from.

create table hc.connection_states (
  state     text primary key,
  label     text not null,
  category  text not null check (category in ('ok', 'error', 'provisioning'))
);
insert into hc.connection_states (state, label, category) values
  ('IDLE', 'OK', 'ok'),
  ('POLLING_DB_CHANGES', 'Polling DB', 'ok'),
  ('PAUSED', 'Paused', 'ok'),
  ('RECOVERY', 'Re-enabling', 'ok'),
  ('IMPORT_CONFIGURATION', 'Importing config', 'ok'),
  ('BUSY', 'Busy', 'ok'),
  ('SYSTEM_ERROR', 'Unexpected error', 'error'),
  ('DB_UNAVAILABLE', 'Database unavailable', 'error'),
  ('TOO_MANY_ROWS', 'Overlimit', 'error'),
  ('UNAUTHORIZED', 'Salesforce authorization expired', 'error'),
  ('HEROKU_UNAUTH', 'Not authorized', 'error'),
  ('INACTIVE_ORG', 'Inactive org', 'error'),
  ('DESTROY_CONNECTION', 'Deleting', 'error'),
  ('SYSTEM_ON_ICE', 'Disabled (inactive)', 'error'),
  ('NEW', 'Creating', 'provisioning'),
  ('WAITING_FOR_DB', 'Waiting for database', 'provisioning'),
  ('CONNECTION_SETUP', 'Provisioning', 'provisioning'),
  ('BAD_PROVISION', 'Provisioning failed', 'provisioning'),
  ('NEED_AUTHENTICATION', 'Needs Salesforce authentication', 'provisioning');

-- A mapping's lifecycle, in one place: the state's label and category, its phase (what the sidecar does
-- in it: 'describe' = describe the object and build the table, then load; 'load' = read every record;
-- 'reload' = read every record again into the live table; 'live' = change events or polls; 'stopped' =
-- nothing until an operator acts), whether hc.abort has something to stop, whether local changes wait
-- (the writer holds a table's changes while it is being (re)loaded, see hc.outbound_claim), and the
-- states hc.set_mapping_state may move it to next. The sidecar reads phase from here (it keeps no list
-- of its own); hc._request reads abortable; hc.outbound_claim reads holds_writes.
create table hc.mapping_states (
  state         text primary key,
  label         text not null,
  category      text not null check (category in ('ok', 'temporary', 'error')),
  phase         text not null check (phase in ('describe', 'load', 'reload', 'live', 'stopped')),
  abortable     boolean not null default false,
  holds_writes  boolean not null default false,
  next          text[] not null default '{}'
);
insert into hc.mapping_states (state, label, category, phase, abortable, holds_writes) values
  ('DATA_SYNCED', 'OK', 'ok', 'live', false, false),
  ('RESYNC', 'Loading new columns', 'ok', 'load', true, false),
  ('RELOAD_TABLE', 'Reloading', 'ok', 'reload', true, true),
  ('POLLING_SF_CHANGES', 'Polling SF', 'ok', 'load', true, true),
  ('POLLING_SF_BULK', 'Polling SF [bulk]', 'ok', 'load', true, true),
  ('POLLING_SF_FOR_DELETES', 'Polling SF [deletes]', 'ok', 'live', true, false),
  -- Heroku Connect's bulk-job states: in the vocabulary (imported status, dashboards), never entered here.
  ('WAIT_BULK_LOAD', 'Waiting for bulk job', 'ok', 'stopped', true, false),
  ('LOADING_BULK_JOB', 'Loading bulk job', 'ok', 'stopped', true, false),
  ('RESOLVE_EXTERNAL_IDS', 'Resolving external ids', 'ok', 'stopped', true, false),
  ('WAIT_BULK_UPDATE', 'Waiting for bulk update', 'ok', 'stopped', true, false),
  ('APPLYING_BULK_UPDATE', 'Applying bulk update', 'ok', 'stopped', true, false),
  ('POLL_EXTERNAL_IDS', 'Polling external ids', 'ok', 'stopped', true, false),
  ('ABORTED', 'Aborted', 'ok', 'stopped', false, false),
  ('INITIAL', 'Creating', 'temporary', 'describe', true, false),
  ('SCHEMA_CHANGED', 'Altering DB schema', 'temporary', 'describe', true, false),
  ('RECOVERY', 'Recovering', 'temporary', 'live', false, false),
  ('BULK_LOAD_ERROR', 'Bulk load error', 'error', 'stopped', false, false),
  ('SYSTEM_ERROR', 'Unexpected error', 'error', 'stopped', false, false),
  ('DB_UNAVAILABLE', 'Database unavailable', 'error', 'stopped', false, false),
  ('BAD_CONFIG', 'Bad configuration', 'error', 'stopped', false, false),
  ('SYNC_REMOVED', 'Orphaned (object removed in Salesforce)', 'error', 'stopped', false, false),
  ('INACTIVE_ORG', 'Inactive org', 'error', 'stopped', false, false),
  ('UNAUTHORIZED', 'Salesforce authorization expired', 'error', 'stopped', false, false);
-- The allowed transitions (any state may also stay where it is, e.g. to change its message):
--   INITIAL is only ever the first state;
--   SCHEMA_CHANGED, RESYNC (hc.update_mapping), and the error states (BAD_CONFIG after a describe,
--     SYNC_REMOVED from the orphan check, ...) can follow any state;
--   RELOAD_TABLE (a reload taken, hc.take_request) any state but BAD_CONFIG and SYNC_REMOVED, which
--     only a config change or removal ends (hc._request refuses their reload);
--   POLLING_SF_CHANGES / POLLING_SF_BULK (the load's reading) follow a describe, load or reload state;
--   DATA_SYNCED follows any state but an error state (those leave through hc.recover, a config change
--     or a reload): a load, a live state, ABORTED (a poll restarts it), and INITIAL too, as tools and
--     tests mark a mapping whose table is already filled as loaded;
--   ABORTED follows an abortable state or a live one (its poll or recovery re-read is stopped);
--   RECOVERY follows an error state (hc.recover).
update hc.mapping_states f set next = array(
  select t.state from hc.mapping_states t
   where t.state = f.state
      or t.state in ('SCHEMA_CHANGED', 'RESYNC') or t.category = 'error'
      or (t.state = 'RELOAD_TABLE' and f.state not in ('BAD_CONFIG', 'SYNC_REMOVED'))
      or (t.state in ('POLLING_SF_CHANGES', 'POLLING_SF_BULK') and f.phase in ('describe', 'load', 'reload'))
      or (t.state = 'DATA_SYNCED' and f.category <> 'error')
      or (t.state = 'ABORTED' and (f.abortable or f.phase = 'live'))
      or (t.state = 'RECOVERY' and f.category = 'error')
   order by t.state);

-- ---------------------------------------------------------------------------------------------------
-- Control tables. Tables an operator never needs to touch start with "_"; operators read the views.

-- One row per Salesforce org bound to one Postgres schema (HC's "connection"/add-on).
create table hc.connections (
  id               serial primary key,
  name             text not null unique,
  schema_name      text not null unique,
  state            text not null default 'NEW' references hc.connection_states,
  state_message    text,
  organization_id  text,
  api_version      text,
  -- HC's "Write Algorithm" (features.poll_db_no_merge in exports). Ordered is what HC exports since
  -- 2019 show and what the reference recommends as the default.
  write_algorithm  text not null default 'ordered' check (write_algorithm in ('merged', 'ordered')),
  features         jsonb not null default '{}' check (jsonb_typeof(features) = 'object'),
  -- hcsync made the schema (it did not exist before the connection): hc.delete_connection may drop it
  -- once nothing else is left in it.
  created_schema   boolean not null default false,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);

-- One row per mapped Salesforce object. config is HC's export format, stored as given (export returns it).
create table hc._mappings (
  id             serial primary key,
  connection_id  integer not null references hc.connections on delete cascade,
  object_name    text not null,
  table_name     text not null,
  config         jsonb not null,
  state          text not null default 'INITIAL' references hc.mapping_states,
  state_message  text,
  revision       integer not null default 1,
  -- An operator request waiting for the sidecar; the sidecar clears it when it starts the work.
  requested      text check (requested in ('reload', 'poll', 'abort')),
  requested_at   timestamptz,
  progress       jsonb,
  -- The last describe the DDL was built from: lets a config change (import) alter the table at once.
  describe       jsonb,
  applied_at     timestamptz,
  last_poll_at   timestamptz,
  last_write_at  timestamptz,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  check ((requested is null) = (requested_at is null))
);
-- Salesforce API names are case-insensitive: Contact and contact are one object.
create unique index _mappings_connection_object on hc._mappings (connection_id, lower(object_name));
create unique index _mappings_connection_table on hc._mappings (connection_id, table_name);

-- One row per mapped column, from the describe (hc.apply_mapping_ddl). Both sync directions read it.
create table hc._mapping_fields (
  mapping_id         integer not null references hc._mappings on delete cascade,
  field_name         text not null,  -- Salesforce API name as configured (Id, LastName, Account__External_Id__c)
  column_name        text not null,  -- Postgres column (sfid, lastname, account__external_id__c)
  sf_type            text not null,  -- describe type, or 'relationship_external_id' (see target_*)
  pg_type            text not null,  -- format_type() spelling, e.g. 'character varying(80)'
  length             integer,
  nillable           boolean,
  createable         boolean,
  updateable         boolean,
  calculated         boolean,
  external_id        boolean,
  "unique"           boolean,
  reference_to       text[],
  relationship_name  text,
  -- For sf_type = 'relationship_external_id': the parent's external-id field the column holds; the
  -- writer sends it as {relationship_name: {target_field: value}}. reference_to[1] is the parent object.
  target_field       text,
  primary key (mapping_id, field_name),
  unique (mapping_id, column_name)
);

-- Where each mapping's inbound sync stands: polling windows and the CDC/streaming replay position.
create table hc.sync_positions (
  mapping_id        integer primary key references hc._mappings on delete cascade,
  poll_watermark    timestamptz,
  delete_watermark  timestamptz,
  replay_channel    text,
  replay_id         text,
  -- When the table was last compared id by id with Salesforce (a load counts: it is a full read).
  reconciled_at     timestamptz,
  -- When the drift sweep last ran: a restarted sidecar sweeps when the interval since then has passed.
  drift_checked_at  timestamptz,
  updated_at        timestamptz not null default now()
);

-- Admin changes (HC's "Audit Trail"): who did what, when, to which connection/mapping.
create table hc.audit_log (
  id             bigserial primary key,
  at             timestamptz not null default now(),
  actor          text not null default session_user,
  connection_id  integer references hc.connections on delete set null,
  mapping_id     integer references hc._mappings on delete set null,
  action         text not null,
  detail         jsonb
);
create index audit_log_connection_at on hc.audit_log (connection_id, at);

-- Sync events, inbound and outbound, per run or per row (state changes, loads, failures).
create table hc.sync_log (
  id             bigserial primary key,
  at             timestamptz not null default now(),
  connection_id  integer references hc.connections on delete cascade,
  mapping_id     integer references hc._mappings on delete set null,
  direction      text check (direction in ('inbound', 'outbound')),
  level          text not null default 'info' check (level in ('debug', 'info', 'warn', 'error')),
  event          text not null,
  message        text,
  detail         jsonb
);
create index sync_log_connection_at on hc.sync_log (connection_id, at);
create index sync_log_mapping_at on hc.sync_log (mapping_id, at);

-- The API-call ledger: one row per Salesforce HTTP call, written by the sidecar's client wrapper.
-- A self-hosted sync spends the org's own daily API allowance (HC's calls were exempt), so every
-- call is accounted for; api_used/api_limit carry the Sforce-Limit-Info header when present.
create table hc.api_calls (
  id             bigserial primary key,
  at             timestamptz not null default now(),
  connection_id  integer references hc.connections on delete cascade,
  mapping_id     integer references hc._mappings on delete set null,
  kind           text not null,   -- soap | rest | bulk | bulk2 | streaming | auth | …
  method         text,
  path           text,
  status         integer,
  records        integer,
  duration_ms    integer,
  api_used       integer,
  api_limit      integer,
  error          text
);
create index api_calls_connection_at on hc.api_calls (connection_id, at);

-- Change events delivered to the sidecar, per hour, transport (pubsub, cometd) and channel: what it
-- spends of the org's event delivery allowance, which Salesforce counts per event and subscriber (a
-- shared /data/ChangeEvents stream is counted once, per-object channels once each). Written with the
-- API-call ledger, read by hc.status (last 24 hours) and hc.metrics().
create table hc.event_deliveries (
  connection_id  integer not null references hc.connections on delete cascade,
  hour           timestamptz not null,
  transport      text not null check (transport in ('pubsub', 'cometd')),
  channel        text not null,
  delivered      bigint not null default 0,
  primary key (connection_id, hour, transport, channel)
);

-- Roles whose application writes go to a connection's mapped tables (hc.grant_app_access); new
-- mappings grant them DML on the new table.
create table hc._app_roles (
  connection_id  integer not null references hc.connections on delete cascade,
  role_name      text not null,
  granted_at     timestamptz not null default now(),
  primary key (connection_id, role_name)
);

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
