-- 000010_inbound: Salesforce → Postgres. The rules for applying what Salesforce says to a mapped table.
--
-- The sidecar fetches (REST query pages, Bulk 2.0 CSV pages, CDC events) and hands rows to these
-- functions; everything that decides *what happens to a row* is here:
--   * values arrive as text (Bulk CSV, or JSON scalars) keyed by Salesforce field name and are cast
--     per hc._mapping_fields.pg_type; datetimes are UTC and stored as timestamp without time zone;
--   * rows are matched by sfid first, then by the mapping's upsert_field (a row our writer inserted and
--     is about to stamp with its sfid is adopted, not duplicated);
--   * a column with a local change still pending (a NEW/PENDING _trigger_log entry of that row naming
--     that column) keeps its local value: it is newer and will be sent; the skip is logged as a conflict;
--   * a change event (or a re-read) says when Salesforce had the values it carries (hcsync_at); a column
--     that a write of ours may have changed since then (sent, answered later than hcsync_at − 5 s) and
--     whose incoming value differs from the row's keeps its local value, and the record is queued to be
--     read again (hc.inbound_rereads): the event may be the echo of an earlier write of ours, older than
--     what the application last wrote, or Salesforce may have rewritten our value (a flow) — only the
--     record as it is now can tell, and it is read outside any transaction;
--   * a row whose last local change Salesforce refused (_hc_lastop FAILED) keeps FAILED and its error
--     when a change event touches it: the refused value is still there and differs from Salesforce's;
--   * a row whose local DELETE is pending is not brought back;
--   * a row that does not fit (too long, bad type) fails alone into hc.sync_log with its record id and
--     the fix; the rest of its batch is applied.
-- The caller runs in a sync session (xmlbinary = hex): nothing here is captured or sent back.

-- Records to be read again from Salesforce as they are now, and from when on. A change event that cannot
-- be applied safely (its values may be older than a write of ours, or the application holds the row
-- locked) is replaced by a re-read of its record: queued here in the transaction that moves the replay id
-- past it, so a crash between the two loses nothing, and read outside any transaction.
create table hc.inbound_rereads (
  mapping_id    integer not null references hc._mappings on delete cascade,
  sfid          text not null,
  not_before    timestamptz not null default now(),
  -- Read only once no local change of the record waits (NEW or PENDING) as well: the value kept while one
  -- was on its way may be what Salesforce rewrote of it (a flow), and only a read after it can tell.
  after_writes  boolean not null default false,
  primary key (mapping_id, sfid)
);

-- Change events of creates of ours that arrived before the writer wrote the new sfid back to the
-- application's row (hc.outbound_echo_pending). Nothing can receive them yet, and a row of their own would
-- be a duplicate; but they carry what Salesforce did on save (a flow's values, SystemModstamp), so they
-- wait here, in the transaction that moves the replay id past them, and are applied by the first batch
-- after the write-back, before its own events (hc.inbound_apply). check_at re-arms the reader's timer
-- (hc.inbound_rereads_next) so they are applied even when no further event comes. A create the application
-- deleted before its write-back leaves its entry unclaimed: it goes after an hour.
create table hc.inbound_deferred_echoes (
  id          bigserial primary key,
  mapping_id  integer not null references hc._mappings on delete cascade,
  sfid        text not null,
  origin      text not null,
  fields      text[],                 -- null: the record was deleted
  row         jsonb,
  deferred_at timestamptz not null default now(),
  check_at    timestamptz not null default now() + interval '1 second'
);

create index inbound_deferred_echoes_sfid on hc.inbound_deferred_echoes (mapping_id, sfid);

-- What hc.inbound_merge builds its statements from: the mapping's table and queue, the batch as a
-- relation (src), and the typed expressions of the columns this batch carries.
create type hc._merge_plan as (
  schema_name text, tbl text, tlog text, src text, sel text[], cols text[], id_expr text, upsert_col text, upsert_expr text,
  has_isdeleted boolean, isdeleted_expr text, smod_expr text, at_expr text, full_row boolean
);

-- A reload reads every record again into the live table (hc.inbound_merge, matched by sfid): the rows
-- and their ids stay, and the application keeps reading them while the load runs; an abort leaves the
-- table as it was, plus whatever the load had refreshed. Rows Salesforce no longer has are found once
-- the load has completed: the sfids the reload read are noted here, and the rest go then.
create table hc._reload_seen (
  mapping_id  integer not null references hc._mappings on delete cascade,
  sfid        text not null,
  primary key (mapping_id, sfid)
);

-- Inbound leadership: one inbound reader per connection, however many sidecars run.
--
-- The outbound writer is safe with several sidecars (SKIP LOCKED claims), but two inbound readers of one
-- connection would both load, both subscribe to the same change events and both move the same replay
-- ids and watermarks: double the API calls, and positions written by whichever commits last. So the
-- inbound side has a leader: the sidecar whose dedicated session holds the session-level advisory lock
-- (hc.lock_class('inbound_lead'), the connection id). The others stand by and try again every few seconds; when
-- the leader dies (even kill -9) Postgres ends its session and releases the lock, and a standby takes
-- over from the positions the leader committed.
--
-- Leadership is also a fencing token: every take-over bumps the connection's epoch, and a change-event
-- batch commits only while its epoch is current (hc.inbound_fence, in the batch's transaction). A leader
-- that lost its lock session without noticing yet (a network cut) can then not move a replay id behind
-- the new leader's back: its batch fails and is rolled back. The take-over's UPDATE waits for batches
-- still holding the row FOR SHARE, so the new leader reads every position the old one committed.
create table hc.inbound_leases (
  connection_id integer primary key references hc.connections on delete cascade,
  epoch         bigint not null default 0,
  since         timestamptz not null default now()
);

--! functions
-- (sql/functions/000010_inbound.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
