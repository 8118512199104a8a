-- 000011_inbound_reconcile: the periodic Id reconciliation under the hourly drift count.
--
-- The hourly drift sweep compares SELECT COUNT() with the table's row count: one API call, but blind to
-- a missed create and a missed delete that cancel out. So, once a day (HC_RECONCILE_SECONDS) or whenever
-- the counts differ, the sidecar lists every live record's Id and SystemModstamp (REST pages up to
-- 10,000 rows, a Bulk 2.0 query above: a few API calls per mapping), COPYs the list into a temp table,
-- and this function compares it with the table. The comparison and the removals are here; the sidecar
-- only re-reads by Id what this function asks for.

-- When a mapping's table was last compared id by id with Salesforce (a load counts: it is a full read).
alter table hc.sync_positions add column if not exists reconciled_at timestamptz;

-- Compares the table of a mapping with a listing of Salesforce's live records (p_listing: a table with
-- columns sfid text, smod timestamp (UTC), one row per record; taken from p_listed_at on). In one
-- statement per kind:
--   * gone:   in the table, not in the listing, and last changed before the listing started
--             (p_listed_at − 5 min, for clock skew), or not a well-formed record id at all (Salesforce
--             could never have it, and would refuse a query naming it): removed here;
--   * check:  in the table, not in the listing, but changed since (or never stamped): it may have been
--             created after the listing was taken → re-read by Id (queryAll); not returned or
--             IsDeleted = true means gone;
--   * missing: in the listing, not in the table → re-read by Id;
--   * stale:  in both, older (or unstamped) in the table → re-read by Id (a full-row source never
--             overwrites a newer row, so a change applied meanwhile by CDC is safe).
-- Returns {"removed": n, "reread": [ids], "missing": n, "stale": n, "check": n}.
create or replace function hc.inbound_reconcile(p_mapping_id integer, p_listing regclass, p_listed_at timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, public
as $$
declare
  t record;
  tbl text;
  removed integer;
  missing text[];
  stale text[];
  checks text[];
  cutoff timestamp := (p_listed_at - interval '5 minutes') at time zone 'UTC';
begin
  t := hc._inbound_target(p_mapping_id);
  tbl := format('%I.%I', t.schema_name, (t.m).table_name);
  execute format('delete from %s x where x.sfid is not null
                  and (x.systemmodstamp < $1 or x.sfid !~ ''^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$'')
                  and not exists (select 1 from %s l where l.sfid = x.sfid)', tbl, p_listing) using cutoff;
  get diagnostics removed = row_count;
  execute format('select coalesce(array_agg(x.sfid), ''{}'') from %s x where x.sfid is not null
                  and (x.systemmodstamp is null or x.systemmodstamp >= $1)
                  and not exists (select 1 from %s l where l.sfid = x.sfid)', tbl, p_listing) using cutoff into checks;
  execute format('select coalesce(array_agg(l.sfid), ''{}'') from %s l where not exists (select 1 from %s x where x.sfid = l.sfid)',
                 p_listing, tbl) into missing;
  execute format('select coalesce(array_agg(l.sfid), ''{}'') from %s l join %s x on x.sfid = l.sfid
                  where x.systemmodstamp is null or x.systemmodstamp < l.smod', p_listing, tbl) into stale;
  update hc.sync_positions set reconciled_at = p_listed_at, updated_at = now() where mapping_id = p_mapping_id;
  return jsonb_build_object('removed', removed, 'reread', to_jsonb(missing || stale || checks),
                            'missing', cardinality(missing), 'stale', cardinality(stale), 'check', cardinality(checks));
end;
$$;

-- A load read every record: it counts as a reconciliation (the next one is due a day later).
create or replace function hc.inbound_reconciled(p_mapping_id integer, p_at timestamptz)
returns void
language sql
as $$
  update hc.sync_positions set reconciled_at = p_at, updated_at = now() where mapping_id = p_mapping_id;
$$;
