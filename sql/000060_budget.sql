-- 000060_budget: the API budget governor. A self-hosted sync spends the org's own daily API allowance
-- (Heroku Connect's calls were exempt from it), so background reads give way before the org runs dry:
--
--   - the org's use is what Salesforce last reported in Sforce-Limit-Info (api-usage=N/M), which the
--     sidecar's ledger (hc.api_calls) keeps from every response; Salesforce counts a rolling 24 hours,
--     so a figure older than that counts for nothing;
--   - from slow_percent (70) of the allowance, background reads (polls, drift sweeps with their
--     Salesforce row counts, reconciliations) run slow_factor (4) times less often; from pause_percent
--     (90) they wait. Writes go on unless pause_writes is set; operator requests (reload, poll_now),
--     loads and the catch-up re-reads after change-event trouble are not background work and go on;
--   - a mapping whose own calls of the last 24 hours reach its sf_max_daily_api_calls has its
--     background reads wait, whatever the org's figure.
--
-- The sidecar asks hc.api_budget_gate before each piece of background work and before each write round,
-- and does what it answers; it decides nothing itself. The answer is also written where operators look:
-- the mapping's and the connection's state message (prefixed "API budget:", cleared on recovery),
-- hc.api_budget_waits, the sync log and hc.api_budget_metrics(). Recovery needs no one: the next figure
-- Salesforce reports below the threshold (a write's, or the sidecar's GET /limits while reads wait, see
-- hc.api_budget_probe_due) lets the work go again at its next turn.

-- A mapping's own calls (sf_max_daily_api_calls) are counted from the ledger by mapping.
create index if not exists api_calls_mapping_at on hc.api_calls (mapping_id, at) where mapping_id is not null;

-- The governor's settings, per connection (defaults when no row).
create table if not exists hc.api_budget_settings (
  connection_id  integer primary key references hc.connections on delete cascade,
  slow_percent   integer not null default 70 check (slow_percent between 1 and 100),
  pause_percent  integer not null default 90 check (pause_percent between 1 and 100),
  slow_factor    integer not null default 4 check (slow_factor between 2 and 100),
  pause_writes   boolean not null default false,
  updated_at     timestamptz not null default now(),
  check (slow_percent <= pause_percent)
);

-- What waits now, and why: one row per connection, mapping (null for the writer) and work. Written by
-- hc.api_budget_gate when it holds work back (or stretches its interval), deleted when it lets it go.
create table if not exists hc.api_budget_waits (
  connection_id  integer not null references hc.connections on delete cascade,
  mapping_id     integer references hc._mappings on delete cascade,
  work           text not null check (work in ('poll', 'drift', 'reconcile', 'write')),
  status         text not null check (status in ('slowed', 'paused', 'capped')),
  cause          text not null check (cause in ('org_allowance', 'mapping_cap')),
  detail         text,
  since          timestamptz not null default now(),
  asked_at       timestamptz not null default now()
);

create unique index if not exists api_budget_waits_key on hc.api_budget_waits (connection_id, coalesce(mapping_id, 0), work);

--! functions
-- (sql/functions/000060_budget.sql is applied here: its functions and views, after the tables above and
-- before what follows. It is applied again whenever it changes.)
