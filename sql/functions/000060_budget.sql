-- The functions and views of sql/000060_budget.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- Per connection: the org's last reported use and allowance, hcsync's own calls, a forecast for the day,
-- the level the governor acts on and the message that explains it. The forecast keeps the others' use
-- (the reported figure less hcsync's own calls of the day) and adds hcsync's own at the last hour's pace
-- for 24 hours. Plain SQL (no function calls): whoever may read hc may read it.
create or replace view hc.api_budget as
with b as (
  select c.id as connection_id,
         c.name as connection_name,
         r.api_used as used,
         r.api_limit as allowance,
         r.at as reported_at,
         o.calls_24h as own_calls_24h,
         o.calls_1h as own_calls_1h,
         coalesce(s.slow_percent, 70) as slow_percent,
         coalesce(s.pause_percent, 90) as pause_percent,
         coalesce(s.slow_factor, 4) as slow_factor,
         coalesce(s.pause_writes, false) as pause_writes
    from hc.connections c
    left join lateral (
      select a.api_used, a.api_limit, a.at from hc.api_calls a
       where a.connection_id = c.id and a.api_limit is not null and a.at > now() - interval '24 hours'
       order by a.at desc, a.id desc limit 1) r on true
    cross join lateral (
      select count(*) as calls_24h, count(*) filter (where a.at > now() - interval '1 hour') as calls_1h
        from hc.api_calls a where a.connection_id = c.id and a.at > now() - interval '24 hours') o
    left join hc.api_budget_settings s on s.connection_id = c.id
), l as (
  select b.*,
         case when b.allowance > 0 then round(100.0 * b.used / b.allowance, 1) end as used_percent,
         case when b.allowance > 0 then greatest(0, b.used - b.own_calls_24h) + b.own_calls_1h * 24 end as forecast_used,
         case when b.allowance is null or b.allowance <= 0 then 'normal'
              when b.used::bigint * 100 >= b.pause_percent::bigint * b.allowance then 'paused'
              when b.used::bigint * 100 >= b.slow_percent::bigint * b.allowance then 'slow'
              else 'normal' end as level,
         format('API budget: %s of %s daily API requests used (%s%%',
                to_char(b.used, 'FM999,999,999,990'), to_char(b.allowance, 'FM999,999,999,990'),
                trim(trailing '.' from trim(trailing '0' from round(100.0 * b.used / nullif(b.allowance, 0), 1)::text))) as figure
    from b
)
select l.connection_id, l.connection_name, l.used, l.allowance, l.used_percent, l.reported_at,
       l.own_calls_24h, l.own_calls_1h, l.forecast_used,
       case when l.allowance > 0 then round(100.0 * l.forecast_used / l.allowance, 1) end as forecast_percent,
       l.level, l.slow_percent, l.pause_percent, l.slow_factor, l.pause_writes,
       case l.level
         when 'slow' then l.figure || format(', slow from %s%%): background reads (polls, drift sweeps, reconciliations, Salesforce row counts) run %s times less often; writes go on',
                                             l.slow_percent, l.slow_factor)
         when 'paused' then l.figure || format(', paused from %s%%): background reads (polls, drift sweeps, reconciliations, Salesforce row counts) wait until use falls below %s%%; %s',
                                               l.pause_percent, l.pause_percent,
                                               case when l.pause_writes then 'writes wait too (pause_writes)' else 'writes go on' end)
       end as message,
       case l.level when 'slow' then l.figure || format(', slow from %s%%)', l.slow_percent) end as slow_prefix
  from l;

-- Per mapping: its own calls of the last 24 hours against its sf_max_daily_api_calls.
create or replace view hc.api_budget_mappings as
select m.id as mapping_id, m.connection_id, m.object_name,
       coalesce(n.calls, 0) as calls_24h,
       x.cap::integer as max_daily_api_calls,
       coalesce(coalesce(n.calls, 0) >= x.cap, false) as capped
  from hc._mappings m
  cross join lateral (select case when jsonb_typeof(m.config->'sf_max_daily_api_calls') = 'number'
                                  then (m.config->>'sf_max_daily_api_calls')::numeric::bigint end as cap) x
  left join lateral (select count(*) as calls from hc.api_calls a
                      where a.mapping_id = m.id and a.at > now() - interval '24 hours') n on true;

-- "40 s", "12 min", "4 h", "2 d": an interval as a state message says it.
create or replace function hc._budget_span(i interval)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when s < 120 then round(s)::text || ' s'
              when s < 7200 then round(s / 60)::text || ' min'
              when s < 172800 then trim(trailing '.' from trim(trailing '0' from round(s / 3600, 1)::text)) || ' h'
              else trim(trailing '.' from trim(trailing '0' from round(s / 86400, 1)::text)) || ' d' end
    from (select extract(epoch from i)::numeric as s) x;
$$;

-- Writes a governor message where operators look, leaving other messages alone: it replaces only an
-- empty message or an earlier "API budget:" one, and clears only its own. Changes go to the sync log.
create or replace function hc._budget_note(p_connection_id integer, p_mapping_id integer, p_message text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  n integer;
begin
  if p_mapping_id is null then
    update hc.connections set state_message = p_message, updated_at = now()
     where id = p_connection_id and state_message is distinct from p_message
       and (state_message is null or state_message like 'API budget:%');
  else
    update hc._mappings set state_message = p_message, updated_at = now()
     where id = p_mapping_id and state_message is distinct from p_message
       and (state_message is null or state_message like 'API budget:%');
  end if;
  get diagnostics n = row_count;
  if n > 0 then
    insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message)
    values (p_connection_id, p_mapping_id, case when p_mapping_id is null then null else 'inbound' end,
            case when p_message is null then 'info' else 'warn' end, 'api_budget',
            coalesce(p_message, 'API budget: back to normal, the work that waited goes again'));
  end if;
end;
$$;

-- The governor's answer for one piece of work: go now or not, the level, and why not. p_work is poll,
-- drift (the sweep and its Salesforce row count), reconcile (the id-by-id comparison) or write (the
-- writer's round; p_mapping_id null). p_interval: the work's own interval, stretched slow_factor times
-- at the slow level (measured from the mapping's last poll, sweep or reconciliation); work without an
-- interval (a repair after counts differed) goes at the slow level and waits at the paused one.
create or replace function hc.api_budget_gate(p_connection_id integer, p_mapping_id integer, p_work text, p_interval interval default null)
returns table (go boolean, level text, reason text)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  b record;
  m hc._mappings;
  cap bigint;
  own bigint;
  last timestamptz;
  w_status text;
  w_cause text;
  w_detail text;
  label text;
  note text;
begin
  if p_work is null or p_work not in ('poll', 'drift', 'reconcile', 'write') then
    raise exception 'hcsync: API budget work must be poll, drift, reconcile or write, not %', coalesce(p_work, 'NULL')
      using errcode = 'invalid_parameter_value';
  end if;
  -- Only the columns the answer needs: the view's counts of the day are not computed for them (the
  -- writer asks once a round).
  select x.level, x.message, x.slow_prefix, x.slow_factor, x.pause_writes into b
    from hc.api_budget x where x.connection_id = p_connection_id;
  if not found then
    raise exception 'hcsync: no connection with id %', p_connection_id using errcode = 'undefined_object';
  end if;
  level := b.level;
  go := true;
  if p_work = 'write' then
    if b.level = 'paused' and b.pause_writes then
      go := false; w_status := 'paused'; w_cause := 'org_allowance'; reason := b.message;
    end if;
  else
    select * into m from hc._mappings x where x.id = p_mapping_id and x.connection_id = p_connection_id;
    if not found then
      raise exception 'hcsync: connection % has no mapping with id %', p_connection_id, p_mapping_id using errcode = 'undefined_object';
    end if;
    label := case p_work when 'poll' then 'polls' when 'drift' then 'drift sweeps' else 'reconciliations' end;
    cap := case when jsonb_typeof(m.config->'sf_max_daily_api_calls') = 'number' then (m.config->>'sf_max_daily_api_calls')::numeric::bigint end;
    if cap is not null then
      -- Counted up to the cap only: reaching it is all that matters.
      select count(*) into own from (select 1 from hc.api_calls a where a.mapping_id = m.id and a.at > now() - interval '24 hours' limit cap) n;
    end if;
    if cap is not null and own >= cap then
      go := false; w_status := 'capped'; w_cause := 'mapping_cap';
      reason := format('API budget: %s made %s of its %s daily API calls (sf_max_daily_api_calls): its polls, drift sweeps and reconciliations wait until its calls of the last 24 hours fall below that; writes go on',
                       m.object_name, to_char(own, 'FM999,999,999,990'), to_char(cap, 'FM999,999,999,990'));
    elsif b.level = 'paused' then
      go := false; w_status := 'paused'; w_cause := 'org_allowance'; reason := b.message;
    elsif b.level = 'slow' then
      w_status := 'slowed'; w_cause := 'org_allowance';
      if p_interval is not null then
        last := case p_work
                  when 'poll' then m.last_poll_at
                  when 'drift' then (select p.drift_checked_at from hc.sync_positions p where p.mapping_id = m.id)
                  else (select p.reconciled_at from hc.sync_positions p where p.mapping_id = m.id) end;
        w_detail := format('%s run every %s instead of %s', label, hc._budget_span(p_interval * b.slow_factor), hc._budget_span(p_interval));
        -- Half an interval of slack: the sidecar's timer ticks at the plain interval, so the stretched
        -- one is reached at the slow_factor-th tick and not one later.
        if last is not null and last + p_interval * (b.slow_factor - 0.5) > now() then
          go := false;
          reason := b.slow_prefix || ': ' || w_detail;
        end if;
      end if;
    end if;
  end if;

  -- What waits, where operators look.
  if w_status is null then
    delete from hc.api_budget_waits x where x.connection_id = p_connection_id and x.mapping_id is not distinct from p_mapping_id and x.work = p_work;
  else
    insert into hc.api_budget_waits as x (connection_id, mapping_id, work, status, cause, detail)
    values (p_connection_id, p_mapping_id, p_work, w_status, w_cause, w_detail)
    on conflict (connection_id, coalesce(mapping_id, 0), work) do update
      set status = excluded.status, cause = excluded.cause, detail = excluded.detail, asked_at = now(),
          since = case when x.status = excluded.status then x.since else now() end;
  end if;
  if p_mapping_id is not null then
    select case when bool_or(x.status = 'capped') then reason
                when bool_or(x.status = 'paused') then b.message
                when bool_or(x.status = 'slowed') then b.slow_prefix || ': '
                     || coalesce(string_agg(x.detail, '; ' order by x.work) filter (where x.detail is not null), 'background reads run less often')
                     || '; writes go on'
           end
      into note
      from hc.api_budget_waits x where x.mapping_id = p_mapping_id;
    if note is null and exists (select 1 from hc.api_budget_waits x where x.mapping_id = p_mapping_id and x.status = 'capped') then
      note := (select m2.state_message from hc._mappings m2 where m2.id = p_mapping_id);
    end if;
    perform hc._budget_note(p_connection_id, p_mapping_id, note);
  end if;
  perform hc._budget_note(p_connection_id, null, b.message);
  return next;
end;
$$;

-- Whether the sidecar should ask Salesforce for its figure (one GET /limits): background reads are held
-- back and no call has reported the use for p_every. Without it, reads that wait would never learn that
-- the allowance has come back. Also brings the connection's message up to date.
create or replace function hc.api_budget_probe_due(p_connection_id integer, p_every interval)
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  b record;
begin
  select x.level, x.message, x.reported_at into b from hc.api_budget x where x.connection_id = p_connection_id;
  if not found then
    return false;
  end if;
  perform hc._budget_note(p_connection_id, null, b.message);
  if b.level = 'normal' then
    -- Back to normal with nobody asking (no background work due yet): the waits end with the figure.
    delete from hc.api_budget_waits x where x.connection_id = p_connection_id and x.status <> 'capped';
    perform hc._budget_note(p_connection_id, m.id, null)
       from hc._mappings m where m.connection_id = p_connection_id and m.state_message like 'API budget:%'
        and not exists (select 1 from hc.api_budget_waits x where x.mapping_id = m.id);
    return false;
  end if;
  return b.reported_at < now() - p_every;
end;
$$;

-- The operator's settings. NULL leaves a setting as it is.
create or replace function hc.set_api_budget(connection_name text default null, slow_percent integer default null, pause_percent integer default null,
                                             slow_factor integer default null, pause_writes boolean default null)
returns hc.api_budget_settings
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  cur hc.api_budget_settings;
  r hc.api_budget_settings;
begin
  select * into cur from hc.api_budget_settings s where s.connection_id = c.id;
  if not found then
    cur.slow_percent := 70; cur.pause_percent := 90; cur.slow_factor := 4; cur.pause_writes := false;
  end if;
  if slow_percent is not null and slow_percent not between 1 and 100 then
    raise exception 'hcsync: slow_percent must be a whole number from 1 to 100, not %', slow_percent
      using errcode = 'invalid_parameter_value', hint = 'The share of the daily API allowance from which background reads slow down, e.g. slow_percent => 70.';
  end if;
  if pause_percent is not null and pause_percent not between 1 and 100 then
    raise exception 'hcsync: pause_percent must be a whole number from 1 to 100, not %', pause_percent
      using errcode = 'invalid_parameter_value', hint = 'The share of the daily API allowance from which background reads wait, e.g. pause_percent => 90.';
  end if;
  if slow_factor is not null and slow_factor not between 2 and 100 then
    raise exception 'hcsync: slow_factor must be a whole number from 2 to 100, not %', slow_factor
      using errcode = 'invalid_parameter_value', hint = 'How many times longer background reads wait between runs at the slow level, e.g. slow_factor => 4.';
  end if;
  if coalesce(slow_percent, cur.slow_percent) > coalesce(pause_percent, cur.pause_percent) then
    raise exception 'hcsync: slow_percent (%) must not be above pause_percent (%)', coalesce(slow_percent, cur.slow_percent), coalesce(pause_percent, cur.pause_percent)
      using errcode = 'invalid_parameter_value', hint = 'e.g. select hc.set_api_budget(slow_percent => 70, pause_percent => 90);';
  end if;
  insert into hc.api_budget_settings as s (connection_id, slow_percent, pause_percent, slow_factor, pause_writes)
  values (c.id, coalesce(slow_percent, cur.slow_percent), coalesce(pause_percent, cur.pause_percent),
          coalesce(slow_factor, cur.slow_factor), coalesce(pause_writes, cur.pause_writes))
  on conflict (connection_id) do update
    set slow_percent = excluded.slow_percent, pause_percent = excluded.pause_percent, slow_factor = excluded.slow_factor,
        pause_writes = excluded.pause_writes, updated_at = now()
  returning * into r;
  perform hc._control(c, 'set_api_budget', null,
                      jsonb_build_object('slow_percent', r.slow_percent, 'pause_percent', r.pause_percent,
                                         'slow_factor', r.slow_factor, 'pause_writes', r.pause_writes));
  return r;
end;
$$;

-- The governor's samples for /metrics, beside hc.metrics(): the level, the use and forecast as ratios of
-- the allowance, what waits and why (cause org_allowance or mapping_cap; object '' for the writer), and
-- each mapping's own calls against its sf_max_daily_api_calls.
create or replace function hc.api_budget_metrics()
returns table (metric text, labels jsonb, value double precision)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select 'hcsync_api_budget_level', jsonb_build_object('connection', b.connection_name, 'level', b.level), 1::float8
    from hc.api_budget b
  union all
  select 'hcsync_api_budget_used_ratio', jsonb_build_object('connection', b.connection_name), b.used::float8 / b.allowance
    from hc.api_budget b where b.allowance > 0
  union all
  select 'hcsync_api_budget_forecast_ratio', jsonb_build_object('connection', b.connection_name), b.forecast_used::float8 / b.allowance
    from hc.api_budget b where b.allowance > 0
  union all
  select 'hcsync_api_budget_waiting',
         jsonb_build_object('connection', c.name, 'object', coalesce(m.object_name, ''), 'work', w.work, 'cause', w.cause), 1::float8
    from hc.api_budget_waits w join hc.connections c on c.id = w.connection_id left join hc._mappings m on m.id = w.mapping_id
   where w.status in ('paused', 'capped')
  union all
  select 'hcsync_api_budget_slowed',
         jsonb_build_object('connection', c.name, 'object', coalesce(m.object_name, ''), 'work', w.work), 1::float8
    from hc.api_budget_waits w join hc.connections c on c.id = w.connection_id left join hc._mappings m on m.id = w.mapping_id
   where w.status = 'slowed'
  union all
  select 'hcsync_mapping_api_calls_24h', jsonb_build_object('connection', c.name, 'object', p.object_name), p.calls_24h::float8
    from hc.api_budget_mappings p join hc.connections c on c.id = p.connection_id
  union all
  select 'hcsync_mapping_api_calls_max', jsonb_build_object('connection', c.name, 'object', p.object_name), p.max_daily_api_calls::float8
    from hc.api_budget_mappings p join hc.connections c on c.id = p.connection_id where p.max_daily_api_calls is not null;
$$;

-- Records Salesforce calls in hc.api_calls, the API-call ledger (a mapping id that no longer exists is recorded as none): the sidecar's flush.
create or replace function hc._record_api_calls(p_calls jsonb)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into hc.api_calls (at, connection_id, mapping_id, kind, method, path, status, duration_ms, api_used, api_limit)
  select x.at, x.connection_id, m.id, x.kind, x.method, x.path, x.status, x.duration_ms, x.api_usage_used, x.api_usage_limit
    from jsonb_to_recordset(p_calls) as x(at timestamptz, connection_id int, mapping_id int, kind text, method text, path text,
         status int, duration_ms int, api_usage_used int, api_usage_limit int)
    left join hc._mappings m on m.id = x.mapping_id;
$$;

-- Adds change-event deliveries to the connection's count of this hour, per transport and channel (hc.event_deliveries): the sidecar's flush.
create or replace function hc._record_deliveries(p_connection_id integer, p_deliveries jsonb)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into hc.event_deliveries as d (connection_id, hour, transport, channel, delivered)
  select p_connection_id, date_trunc('hour', now()), x.transport, x.channel, x.n
    from jsonb_to_recordset(p_deliveries) as x(transport text, channel text, n bigint)
  on conflict (connection_id, hour, transport, channel) do update set delivered = d.delivered + excluded.delivered;
$$;

-- What waits for the governor (hc.api_budget_waits) in the connections a name or schema names (all when null), the writer's waits as '(writer)': the CLI's budget.
create or replace function hc._api_budget_waits(p_connection text default null)
returns table (object_name text, work text, status text, cause text, since timestamptz)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(m.object_name, '(writer)'), w.work, w.status, w.cause, w.since
    from hc.api_budget_waits w left join hc._mappings m on m.id = w.mapping_id
   where w.connection_id in (select id from hc.connections where p_connection is null or name = p_connection or schema_name = p_connection)
   order by 1, 2;
$$;
