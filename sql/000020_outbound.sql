-- 000020_outbound: Postgres → Salesforce. The writer's rules live here; the sidecar claims work, makes
-- the Salesforce calls these functions describe, and reports what Salesforce answered.
--
--   hc.outbound_claim(connection_id, claimer, max_entries)  NEW → PENDING, returns one JSON "op" per call item
--   hc.outbound_attempt(connection_id, claimer, ops)         records inserts about to be sent (exactly-once)
--   hc.outbound_complete(connection_id, claimer, results)    SUCCESS / FAILED / MERGED, sfid write-back, archive
--   hc.outbound_release(connection_id, claimer)              PENDING → NEW (graceful stop)
--   hc.outbound_archive(connection_id, retention_days)       archive processed entries, purge old archive
--
-- Claimers. Every writer holds a session-level advisory lock (hc.lock_class('writer'), then
-- its claimer number from hc._outbound_claimer_seq) on a connection of its own for as long as it
-- lives. A PENDING entry whose claimer no longer holds its lock belongs to a dead writer (kill -9 closes
-- the socket and Postgres drops the lock at once), so the next claim puts it back to NEW: nothing stays
-- PENDING forever, and no lease has to expire first.
--
-- The sync's sessions run as the owner, so these functions resolve nothing through a schema another
-- role may write: search_path = pg_catalog, pg_temp, and hstore only through hc._hstore_* (bound to the
-- extension when migrated, see 000001). The trigger log's values stay hstore text throughout.

create sequence hc._outbound_claimer_seq as integer cycle;

-- Which writer holds which PENDING entry, grouped into the op (the call item) it belongs to.
create table hc._outbound_claims (
  connection_id  integer not null references hc.connections on delete cascade,
  log_id         integer not null,
  op_id          integer not null,   -- the op's lead entry (the newest of a merged group)
  claimer        integer not null,
  claimed_at     timestamptz not null default now(),
  -- What the claim decided the op does in Salesforce (insert, update, delete): the outcome is recorded as
  -- that, so the writer reports only {op_id, outcome, sfid, error}.
  action         text,
  primary key (connection_id, log_id)
);

create index _outbound_claims_claimer on hc._outbound_claims (connection_id, claimer);

-- Records a writer that died had claimed moments before: a call it made may still be running in
-- Salesforce (which goes on with a request whose client has gone) and land after anything sent now, an
-- older update over a newer one, or a create twice. Their entries wait until `until` (the claim's time
-- + 4 s, or the last send of a create of the record + 4 s when later: most calls take less, and a
-- standby still takes over within 10 s; a call slower than that can still land late, which no client
-- can rule out); then they are claimed as usual, a create after the lost-create lookup.
create table hc._outbound_holds (
  connection_id  integer not null references hc.connections on delete cascade,
  table_name     text not null,
  record_id      integer not null,
  until          timestamptz not null,
  primary key (connection_id, table_name, record_id)
);

-- Creates that may have reached Salesforce without their outcome reaching us. Written (committed)
-- before the call, deleted when the outcome is recorded. A record's row here means: "a create of this
-- row with exactly these field values may exist in Salesforce, made by us after started_at". The next
-- claim hands the attempts to the writer, which looks the record up (CreatedById = the integration user,
-- CreatedDate >= started_at - skew, same field values) and adopts its Id instead of creating again.
create table hc._outbound_attempts (
  connection_id  integer not null references hc.connections on delete cascade,
  table_name     text not null,
  record_id      integer not null,
  log_id         integer not null,
  object_name    text not null,
  started_at     timestamptz not null default clock_timestamp(),
  sent           jsonb not null,
  -- An upsert's external id field (its value is in sent): such a create is found again by that value.
  upsert_field   text,
  -- The values of earlier sends of this create, when they differ from sent (the row changed between
  -- sends): any of them may be the one that landed. started_at stays the first send's.
  earlier        jsonb not null default '[]',
  -- The last send, and who made it: a send by a claimer that is gone may still be running in Salesforce.
  sent_at        timestamptz not null default clock_timestamp(),
  claimer        integer,
  -- The record the lost-create lookup found to be this create (hc.outbound_found): later rounds take it
  -- as it is. Looked up again, a record our own later writes (sent to it as that create's updates) had
  -- changed no longer held the values the create sent, and the create was made a second time.
  found_sfid     text,
  primary key (connection_id, table_name, record_id, log_id)
);

--! functions
-- (sql/functions/000020_outbound.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
