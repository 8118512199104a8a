-- The functions and views of sql/000040_dashboard.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- ---------------------------------------------------------------------------------------------------
-- Live updates. A NOTIFY on channel hcsync_activity (payload: the connection id) whenever sync-log rows
-- are added or a mapping's row changes (state, progress, a poll or a write done), so that the
-- dashboard's open pages re-read what changed instead of polling. NOTIFY folds identical payloads
-- within a transaction: a run that logs a thousand rows sends one nudge.
create or replace function hc._activity_notify()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform pg_notify('hcsync_activity', coalesce(new.connection_id::text, ''));
  return null;
end;
$$;

-- ---------------------------------------------------------------------------------------------------
-- One mapping as the detail view shows it: its hc.mappings row and its fields (from the describe).
create or replace function hc.dashboard_mapping(object_name text, connection_name text default null)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings := hc._mapping(object_name, connection_name);
begin
  return (select to_jsonb(v) from hc.mappings v where v.mapping_id = m.id)
      || jsonb_build_object('fields', coalesce((
           select jsonb_agg(jsonb_build_object('field_name', f.field_name, 'column_name', f.column_name, 'sf_type', f.sf_type,
                                               'pg_type', f.pg_type, 'external_id', f.external_id, 'updateable', f.updateable,
                                               'createable', f.createable, 'calculated', f.calculated)
                            order by f.field_name)
             from hc._mapping_fields f where f.mapping_id = m.id), '[]'));
end;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Activity per time bucket over the last `hours`, optionally for one object:
--   outbound: writes Salesforce accepted (SUCCESS in the trigger log and its archive, by when they
--             were processed), and rejections (hc.sync_log write_failed: a failure stays counted when
--             it is later retried or discarded);
--   inbound:  rows whose current version came from Salesforce (_hc_lastop SYNCED), by their
--             SystemModstamp, and inbound errors (hc.sync_log, level error).
create or replace function hc.dashboard_activity(hours integer default 24, object_name text default null, connection_name text default null)
returns table (bucket timestamptz, inbound_rows bigint, inbound_errors bigint, outbound_rows bigint, outbound_errors bigint)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  step interval := case when hours <= 6 then interval '5 minutes' when hours <= 48 then interval '1 hour' else interval '1 day' end;
  since timestamptz := now() - make_interval(hours => hours);
  only_table text := case when object_name is null then null else (hc._mapping(object_name, connection_name)).table_name end;
  m record;
  inbound_sql text := '';
begin
  if hours is null or hours < 1 or hours > 24 * 90 then
    raise exception 'hcsync: the activity period must be 1 to 2160 hours, not %', hours using errcode = 'invalid_parameter_value',
      hint = 'Pass hours => 24 (a day) or 168 (a week).';
  end if;
  -- Inbound rows of every mapped table that has the columns (a table being created may not yet).
  for m in select x.table_name, x.id from hc._mappings x
            where x.connection_id = c.id and (only_table is null or x.table_name = only_table)
              and exists (select 1 from pg_attribute a where a.attrelid = to_regclass(format('%I.%I', c.schema_name, x.table_name))
                           and a.attname = 'systemmodstamp' and not a.attisdropped) loop
    inbound_sql := inbound_sql || format(
      ' union all select systemmodstamp as at from %I.%I where _hc_lastop = ''SYNCED'' and systemmodstamp >= $1', c.schema_name, m.table_name);
  end loop;
  return query execute format($q$
    with buckets as (
      select g as b from generate_series(date_bin($2, $1, 'epoch'::timestamptz), now(), $2) g),
    outbound as (
      select date_bin($2, updated_at, 'epoch'::timestamptz) as b, count(*) as ok
        from (select updated_at, table_name from %1$I._trigger_log where updated_at >= $1 and state = 'SUCCESS'
              union all
              select updated_at, table_name from %1$I._trigger_log_archive where updated_at >= $1 and state = 'SUCCESS') t
       where $4::text is null or t.table_name = $4
       group by 1),
    inbound as (
      select date_bin($2, at, 'epoch'::timestamptz) as b, count(*) as n
        from (select null::timestamptz as at where false %2$s) r group by 1),
    errors as (
      select date_bin($2, l.at, 'epoch'::timestamptz) as b,
             count(*) filter (where l.direction = 'inbound' and l.level = 'error') as inbound_n,
             count(*) filter (where l.direction = 'outbound' and l.event = 'write_failed') as outbound_n
        from hc.sync_log l
       where l.connection_id = $3 and l.at >= $1
         and ($4::text is null or l.mapping_id = (select x.id from hc._mappings x where x.connection_id = $3 and x.table_name = $4))
       group by 1)
    select buckets.b, coalesce(inbound.n, 0), coalesce(errors.inbound_n, 0), coalesce(outbound.ok, 0), coalesce(errors.outbound_n, 0)
      from buckets left join outbound using (b) left join inbound using (b) left join errors using (b)
     order by 1$q$, c.schema_name, inbound_sql)
    using since, step, c.id, only_table;
end;
$$;

-- API calls per time bucket over the last `hours` from the ledger (hc.api_calls), with the org's usage
-- and daily allowance as last reported by Salesforce (Sforce-Limit-Info) in that bucket.
create or replace function hc.dashboard_api_usage(hours integer default 24, connection_name text default null)
returns table (bucket timestamptz, calls bigint, errors bigint, api_used integer, api_limit integer)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  step interval := case when hours <= 6 then interval '5 minutes' when hours <= 48 then interval '1 hour' else interval '1 day' end;
  since timestamptz := now() - make_interval(hours => hours);
begin
  if hours is null or hours < 1 or hours > 24 * 90 then
    raise exception 'hcsync: the API usage period must be 1 to 2160 hours, not %', hours using errcode = 'invalid_parameter_value',
      hint = 'Pass hours => 24 (a day) or 168 (a week).';
  end if;
  return query
    with buckets as (select g as b from generate_series(date_bin(step, since, 'epoch'::timestamptz), now(), step) g),
    ledger as (
      select date_bin(step, a.at, 'epoch'::timestamptz) as b, count(*) as n,
             count(*) filter (where a.error is not null or a.status >= 400) as failed,
             (array_agg(a.api_used order by a.at desc) filter (where a.api_used is not null))[1] as used,
             (array_agg(a.api_limit order by a.at desc) filter (where a.api_limit is not null))[1] as lim
        from hc.api_calls a where a.connection_id = c.id and a.at >= since group by 1)
    select buckets.b, coalesce(ledger.n, 0), coalesce(ledger.failed, 0), ledger.used, ledger.lim
      from buckets left join ledger using (b) order by 1;
end;
$$;

-- ---------------------------------------------------------------------------------------------------
-- The event types of the sync log over the last `hours` (by the (connection_id, at) index), with how
-- many lines each and the latest: what the Logs tab offers to filter by, most frequent first.
create or replace function hc.dashboard_log_events(hours integer default 168, connection_name text default null)
returns table (event text, lines bigint, last_at timestamptz, worst_level text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
begin
  if hours is null or hours < 1 or hours > 24 * 90 then
    raise exception 'hcsync: the log period must be 1 to 2160 hours, not %', hours using errcode = 'invalid_parameter_value',
      hint = 'Pass hours => 168 (a week).';
  end if;
  return query
    select l.event, count(*), max(l.at),
           (array['debug', 'info', 'warn', 'error'])[max(array_position(array['debug', 'info', 'warn', 'error'], l.level))]
      from hc.sync_log l
     where l.connection_id = c.id and l.at >= now() - make_interval(hours => hours)
     group by l.event
     order by count(*) desc, l.event;
end;
$$;

-- The connection's state, its message and the state's category: the dashboard's /healthz.
create or replace function hc._connection_health(p_connection_id integer)
returns table (state text, state_message text, category text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select c.state, c.state_message, s.category from hc.connections c join hc.connection_states s using (state) where c.id = p_connection_id;
$$;

-- The audit trail of the connection and of no connection with each entry's object, newest first, at most p_limit entries (null: all): the dashboard's.
create or replace function hc._audit_trail(p_connection_id integer, p_limit integer default null)
returns table (id bigint, at timestamptz, actor text, principal text, action text, object_name text, detail jsonb)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select a.id, a.at, a.actor, a.principal, a.action, m.object_name, a.detail
    from hc.audit_log a left join hc._mappings m on m.id = a.mapping_id
   where a.connection_id = p_connection_id or a.connection_id is null order by a.id desc limit p_limit;
$$;
