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

-- Functions made in hc are not PUBLIC's to run: 000005 and 000099 grant each role its list. This also
-- covers a function a later sql/functions/ file adds, applied after those grants ran.
alter default privileges in schema hc revoke execute on functions from public;

-- HC stores old/new row images as hstore *text*; the capture triggers build them with hstore(record).
-- HC keeps the extension in public (Heroku moved it to heroku_ext in 2022; an existing one is reused).
create extension if not exists hstore with schema public;

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

--! functions
-- (sql/functions/000001_core.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
