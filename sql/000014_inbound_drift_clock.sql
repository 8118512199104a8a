-- 000014_inbound_drift_clock: the drift sweep's clock lives in the database.
--
-- The sweep ran HC_DRIFT_SECONDS after each start of the sidecar, so a sidecar restarted more often than
-- that (deploys, a crash loop) never swept at all. Now the time of the last sweep is stored, and a
-- starting sidecar sweeps when the interval since then has passed, whatever happened in between.
alter table hc.sync_positions add column if not exists drift_checked_at timestamptz;

-- A finished sweep (count compared, ids reconciled when due).
create or replace function hc.inbound_drift_checked(p_mapping_id integer)
returns void
language sql
as $$
  update hc.sync_positions set drift_checked_at = now(), updated_at = now() where mapping_id = p_mapping_id;
$$;

-- When the next sweep of a mapping is due: an interval after the last sweep, or after the load (which
-- read everything) when there was none yet.
create or replace function hc.inbound_drift_due(p_mapping_id integer, p_interval interval)
returns timestamptz
language sql stable
as $$
  select coalesce(p.drift_checked_at, p.reconciled_at, now()) + p_interval
  from hc.sync_positions p where p.mapping_id = p_mapping_id;
$$;
