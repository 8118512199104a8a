-- 000045_notifications: telling a human. Heroku Connect's most-requested fix: a write Salesforce refuses
-- sits in _trigger_log until someone looks. hcsync records a notification, and sends NOTIFY on channel
-- hc_notifications, when
--   writes_failed     a mapping's writes newly fail: a write is refused (hc.sync_log write_failed) and
--                     no other write of that mapping is FAILED from the last 24 hours (the window
--                     hc.write_errors and Heroku Connect show). A mapping that keeps failing does not
--                     notify again for each row; once its failures are retried or discarded, the next
--                     one notifies;
--   connection_error  the connection enters an error state (hc.connection_states category error) from
--                     a state that is not one;
--   mapping_error     a mapping enters an error state the same way.
-- The NOTIFY payload is the notification as JSON: {"id", "connection", "schema", "kind", "object",
-- "message", "count", "at"} (message cut to 1,000 characters; the row has it whole). The sidecar sends
-- each notification to the webhook HC_NOTIFY_WEBHOOK_URL when one is set, retrying with backoff, and
-- records every attempt in hc.notification_deliveries; the dashboard shows the active ones as a banner.

create table if not exists hc.notifications (
  id             bigserial primary key,
  at             timestamptz not null default now(),
  connection_id  integer not null references hc.connections on delete cascade,
  mapping_id     integer references hc._mappings on delete set null,
  kind           text not null check (kind in ('writes_failed', 'connection_error', 'mapping_error')),
  object_name    text,
  message        text,
  detail         jsonb,
  -- Webhook delivery: due at next_attempt_at until delivered or given up (the sidecar's claim moves
  -- next_attempt_at forward while it sends, so two sidecars never send one notification at once).
  attempts       integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  delivered_at   timestamptz,
  gave_up_at     timestamptz
);

create index if not exists notifications_connection_at on hc.notifications (connection_id, at);

create index if not exists notifications_due on hc.notifications (connection_id, next_attempt_at)
  where delivered_at is null and gave_up_at is null;

-- One row per webhook attempt: when, where to (the URL's origin only: a webhook's path often is its
-- secret), what came back.
create table if not exists hc.notification_deliveries (
  id               bigserial primary key,
  notification_id  bigint not null references hc.notifications on delete cascade,
  attempt          integer not null,
  at               timestamptz not null default now(),
  target           text not null,
  status           integer,
  error            text,
  duration_ms      integer,
  ok               boolean not null
);

create index if not exists notification_deliveries_notification on hc.notification_deliveries (notification_id, attempt);

drop trigger if exists hcsync_notify_write_failures on hc.sync_log;

drop trigger if exists hcsync_notify_state_error on hc.connections;

drop trigger if exists hcsync_notify_state_error on hc._mappings;

--! functions
-- (sql/functions/000045_notifications.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)

create trigger hcsync_notify_write_failures after insert on hc.sync_log
  referencing new table as new_rows
  for each statement execute function hc._notify_write_failures();

create trigger hcsync_notify_state_error after update of state on hc.connections
  for each row when (old.state is distinct from new.state) execute function hc._notify_state_error();

create trigger hcsync_notify_state_error after update of state on hc._mappings
  for each row when (old.state is distinct from new.state) execute function hc._notify_state_error();
