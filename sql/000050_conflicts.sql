-- 000050_conflicts: two writers, one record. What happens when a field changed on both sides since the
-- last value both sides agreed on, and when one side deletes a record the other side edits.
--
-- A conflict is judged per field: the agreed value is the one the row held before its first local
-- change still waiting (the `old` of that _trigger_log entry); Salesforce changed the field when the
-- incoming value differs from it, Postgres changed it when a NEW/PENDING entry (or one sent since the
-- incoming values were read) names it. Different fields of one record are not a conflict: both go.
-- Our own writes coming back (CDC echo, origin 'cdc-echo') are never a conflict.
--
-- Each mapping chooses its policy (config key "conflict_policy"; Heroku Connect ignores the key):
--   manual   (default) the conflicting fields are parked: each side keeps its value, neither is
--            overwritten, the record's other fields keep syncing, until hc.resolve_conflict decides;
--   sf_wins  Salesforce's value is applied and the local change of that field is not sent;
--   pg_wins  the local value is kept and sent (again, if it had gone out before Salesforce's change);
--   latest   the later change wins: the Postgres change's capture time against Salesforce's commit
--            time (the change event header's commitTimestamp, else SystemModstamp); a tie goes to
--            Salesforce.
-- "field_ownership" ({"Phone": "pg", "Rating": "sf"}) decides a field's conflicts for its owner,
-- whatever the policy. Deletes against edits follow the policy too (manual parks them: the delete is
-- not sent, the row is not removed, nothing is revived). Every conflict, whoever won, is a row of
-- hc.conflicts with both values and both times; parked ones stay open until resolved.

create table hc.conflicts (
  id             bigserial primary key,
  connection_id  integer not null references hc.connections on delete cascade,
  mapping_id     integer not null references hc._mappings on delete cascade,
  object_name    text not null,
  table_name     text not null,
  record_id      integer,                 -- the row's id (of the deleted row, for a local delete)
  sfid           text,
  -- update: a field changed on both sides; pg_delete: deleted locally, changed in Salesforce;
  -- sf_delete: deleted in Salesforce, changed locally.
  kind           text not null check (kind in ('update', 'pg_delete', 'sf_delete')),
  fields         text[] not null default '{}',   -- Salesforce field names, in the order of columns
  columns        text[] not null default '{}',
  pg_values      jsonb,                   -- {column: text value}
  sf_values      jsonb,
  base_values    jsonb,                   -- the last value both sides agreed on
  pg_at          timestamptz,             -- when Postgres changed it (capture time)
  sf_at          timestamptz,             -- when Salesforce changed it (commit time / SystemModstamp)
  policy         text not null,
  winner         text check (winner in ('pg', 'sf', 'values')),
  origin         text,                    -- what brought Salesforce's side: cdc, poll, load, reread, delete
  -- A write of ours was in flight when the conflict was found: Salesforce may hold our value now
  -- whatever the decision, so a decision for Salesforce's value writes it back to Salesforce too.
  sf_overwritten boolean not null default false,
  detected_at    timestamptz not null default now(),
  resolved_at    timestamptz,
  resolved_by    text,                    -- 'policy', 'ownership', or the role (and dashboard principal)
  resolution     text                     -- 'policy', 'ownership', 'operator'
);

create unique index conflicts_open on hc.conflicts (mapping_id, sfid, kind) where resolved_at is null;

create index conflicts_detected on hc.conflicts (mapping_id, detected_at);

-- (a record's conflicts, resolved ones too: an inbound batch asks whether it has seen a change already)
create index conflicts_record on hc.conflicts (mapping_id, sfid);

--! functions
-- (sql/functions/000050_conflicts.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)

-- Open dashboards hear of conflicts as they happen: a conflict recorded or resolved sends the same
-- hcsync_activity nudge as a sync-log line (000040), since the inbound apply that finds one may log
-- nothing and change no mapping row.
create trigger hcsync_activity_notify after insert or update on hc.conflicts
  for each row execute function hc._activity_notify();
