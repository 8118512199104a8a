-- 000040_dashboard: what the dashboard and its HTTP API read beyond the operator's views (000004):
-- who acted (the token's principal) in the audit trail, a nudge when the sync log grows, one mapping's
-- detail, and the activity and API-usage series the Overview draws. Each endpoint of the API is one call
-- of a view or function here or in 000004, so the API adds no logic of its own.

-- ---------------------------------------------------------------------------------------------------
-- The principal. The HTTP API sets hcsync.principal (set_config(..., true): this transaction only) to
-- the name of the token that made the request, then calls the operator API as usual; every audit row
-- written in that transaction names it. actor stays the database role (session_user), as before.
alter table hc.audit_log add column if not exists principal text default nullif(current_setting('hcsync.principal', true), '');

drop trigger if exists hcsync_activity_notify on hc.sync_log;

drop trigger if exists hcsync_activity_notify on hc._mappings;

--! functions
-- (sql/functions/000040_dashboard.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)

create trigger hcsync_activity_notify after insert on hc.sync_log
  for each row execute function hc._activity_notify();

create trigger hcsync_activity_notify after insert or update on hc._mappings
  for each row execute function hc._activity_notify();
