-- The functions and views of sql/000030_ops.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- hc.metrics(): one row per Prometheus sample (metric name, labels, value). /metrics renders them.
-- Per connection: state, outbound queue by state (pending = NEW + PENDING, errored = FAILED, synced =
-- SUCCESS, counted over the queue and its archive, i.e. the retention window), outbound lag (age of the
-- oldest unsent change), API calls of the last 24 hours (Salesforce's own window) and the org's last
-- reported usage. Per mapping: state, rows in Postgres by _hc_lastop, inbound lag (time since the last
-- successful poll).
create or replace function hc.metrics()
returns table (metric text, labels jsonb, value double precision)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections;
  m hc._mappings;
  cl jsonb;
  ml jsonb;
  r record;
  est double precision;
  inbound double precision;
begin
  for c in select * from hc.connections order by id loop
    cl := jsonb_build_object('connection', c.name);
    metric := 'hcsync_connection_state'; labels := cl || jsonb_build_object('state', c.state); value := 1; return next;

    -- The outbound queue. Archive rows keep their state, so SUCCESS counts every write still retained.
    for r in execute format($q$
        select s.state, count(*)::float8 as n
          from (select state from %1$I._trigger_log union all select state from %1$I._trigger_log_archive) s
         group by s.state$q$, c.schema_name) loop
      metric := 'hcsync_trigger_log_rows'; labels := cl || jsonb_build_object('state', coalesce(r.state, 'NULL')); value := r.n; return next;
    end loop;
    execute format($q$
        select count(*) filter (where state in ('NEW', 'PENDING'))::float8 as pending,
               coalesce(extract(epoch from now() - min(created_at) filter (where state in ('NEW', 'PENDING'))), 0)::float8 as lag
          from %1$I._trigger_log$q$, c.schema_name) into r;
    metric := 'hcsync_pending_writes'; labels := cl; value := r.pending; return next;
    metric := 'hcsync_outbound_lag_seconds'; labels := cl; value := r.lag; return next;
    execute format($q$
        select count(*) filter (where state = 'FAILED')::float8 as failed, count(*) filter (where state = 'SUCCESS')::float8 as success
          from (select state from %1$I._trigger_log union all select state from %1$I._trigger_log_archive) s$q$, c.schema_name) into r;
    metric := 'hcsync_errored_writes'; labels := cl; value := r.failed; return next;
    metric := 'hcsync_rows_synced'; labels := cl || '{"direction": "outbound"}'; value := r.success; return next;
    -- API calls: Salesforce counts a rolling 24 hours.
    for r in select a.kind, count(*)::float8 as n from hc.api_calls a
              where a.connection_id = c.id and a.at > now() - interval '24 hours' group by a.kind loop
      metric := 'hcsync_api_calls_24h'; labels := cl || jsonb_build_object('kind', r.kind); value := r.n; return next;
    end loop;
    for r in select d.transport, d.channel, sum(d.delivered)::float8 as n from hc.event_deliveries d
              where d.connection_id = c.id and d.hour > now() - interval '24 hours' group by d.transport, d.channel loop
      metric := 'hcsync_change_events_delivered_24h'; labels := cl || jsonb_build_object('transport', r.transport, 'channel', r.channel);
      value := r.n; return next;
    end loop;
    for r in select a.api_used, a.api_limit from hc.api_calls a
              where a.connection_id = c.id and a.api_limit is not null order by a.id desc limit 1 loop
      metric := 'hcsync_api_usage_used'; labels := cl; value := r.api_used; return next;
      metric := 'hcsync_api_usage_limit'; labels := cl; value := r.api_limit; return next;
      metric := 'hcsync_api_usage_remaining'; labels := cl; value := r.api_limit - r.api_used; return next;
    end loop;

    inbound := 0;
    for m in select * from hc._mappings where connection_id = c.id order by object_name loop
      ml := cl || jsonb_build_object('object', m.object_name);
      metric := 'hcsync_mapping_state'; labels := ml || jsonb_build_object('state', m.state); value := 1; return next;
      -- Conflicts (hc.conflicts): open = parked, waiting for hc.resolve_conflict; resolved = decided.
      for r in select s.state, (select count(*) from hc.conflicts k where k.mapping_id = m.id
                                  and (k.resolved_at is null) = (s.state = 'open'))::float8 as n
                 from (values ('open'), ('resolved')) s(state) loop
        metric := 'hcsync_conflicts'; labels := ml || jsonb_build_object('state', r.state); value := r.n; return next;
      end loop;
      metric := 'hcsync_inbound_lag_seconds'; labels := ml;
      -- Since the mapping last heard from Salesforce: a poll, or a batch of change events applied (its
      -- replay position stored). A CDC mapping is not polled while its events arrive.
      value := extract(epoch from now() - greatest(m.last_poll_at,
                 (select p.updated_at from hc.sync_positions p where p.mapping_id = m.id and p.replay_id is not null)));
      if value is not null then return next; end if;
      if to_regclass(format('%I.%I', c.schema_name, m.table_name)) is null then continue; end if;
      -- Exact counts while tables are small; past a million rows the planner's estimate is close enough
      -- for a dashboard and a scrape must not scan the table.
      select reltuples into est from pg_class where oid = to_regclass(format('%I.%I', c.schema_name, m.table_name));
      if est > 1e6 then
        metric := 'hcsync_table_rows'; labels := ml || '{"lastop": "ALL"}'; value := est; return next;
      else
        for r in execute format('select coalesce(_hc_lastop, %L) as op, count(*)::float8 as n from %I.%I group by 1',
                                'NULL', c.schema_name, m.table_name) loop
          metric := 'hcsync_table_rows'; labels := ml || jsonb_build_object('lastop', r.op); value := r.n; return next;
          if r.op = 'SYNCED' then inbound := inbound + r.n; end if;
        end loop;
      end if;
    end loop;
    -- Inbound: rows whose current version came from Salesforce (the sync writes them as SYNCED).
    metric := 'hcsync_rows_synced'; labels := cl || '{"direction": "inbound"}'; value := inbound; return next;
  end loop;
end;
$$;

-- hc.diagnose(): Heroku Connect's diagnose rules that the database can answer (reference §8.3), one
-- row per check with HC's colours. The sidecar's `hcsync diagnose` adds the schema-version and the
-- Salesforce checks (API version, limits) it can only make from outside.
create or replace function hc.diagnose()
returns table (scope text, subject text, rule text, status text, message text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v integer := current_setting('server_version_num')::int;
  c hc.connections;
  m hc._mappings;
  n integer;
  names text;
begin
  scope := 'database'; subject := current_database(); rule := 'POSTGRES_VERSION';
  if v between 140000 and 189999 then
    status := 'GREEN'; message := format('PostgreSQL %s is supported (14–18)', current_setting('server_version'));
  else
    status := 'RED'; message := format('PostgreSQL %s is not supported: use PostgreSQL 14 to 18', current_setting('server_version'));
  end if;
  return next;

  rule := 'ADMIN_ROLE';
  if (select count(*) from pg_roles where rolname in ('hcsync_admin', 'hcsync_viewer')) = 2 then
    status := 'GREEN'; message := 'roles hcsync_admin and hcsync_viewer exist (grant them to people who operate or watch the sync)';
  else
    status := 'RED'; message := 'role hcsync_admin or hcsync_viewer is missing: run hcsync migrate as a role with CREATEROLE';
  end if;
  return next;

  rule := 'HSTORE';
  if exists (select 1 from pg_extension where extname = 'hstore') then
    status := 'GREEN'; message := 'extension hstore is installed';
  else
    status := 'RED'; message := 'extension hstore is missing: the capture triggers need it (CREATE EXTENSION hstore)';
  end if;
  return next;

  -- A role that may create objects in public (PostgreSQL 14's default for every role; databases upgraded
  -- from 14 keep it) can plant an exact-type overload of a function or operator that a session of
  -- another role then calls. hcsync's functions and the sidecar's sessions resolve nothing in public;
  -- operators' sessions (psql, the CLI) and the applications' still may. hc and the
  -- connection schemas hold the functions that run as the owner: nobody else may create objects there.
  rule := 'WRITABLE_SCHEMAS';
  select string_agg(format('%s (%s)', x.nspname, x.grantees), '; ' order by x.nspname) into names
    from (select n.nspname, string_agg(distinct case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end, ', ') as grantees
            from pg_namespace n
            cross join lateral aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
           where (n.nspname in ('public', 'hc')
                  or n.nspname in (select schema_name from hc.connections)
                  or n.oid = (select extnamespace from pg_extension where extname = 'hstore'))
             and a.privilege_type = 'CREATE' and a.grantee <> n.nspowner
             and not coalesce((select rolsuper from pg_roles where oid = a.grantee), false)
           group by n.nspname) x;
  if names is null then
    status := 'GREEN'; message := 'only their owners may create objects in public, hc, the connection schemas and the hstore extension''s schema';
  else
    status := 'RED';
    message := format('roles other than the owner may create objects in schema %s: any of them can take over the sessions that call functions there (the sync''s, an operator''s): REVOKE CREATE ON SCHEMA public FROM PUBLIC (and from each role named), as PostgreSQL 15 does by default', names);
  end if;
  return next;

  select count(*) into n from hc.connections;
  if n = 0 then
    scope := 'connection'; subject := null; rule := 'CONNECTION'; status := 'YELLOW';
    message := 'no connection yet: hcsync run creates one for HC_SCHEMA, or select hc.create_connection(name, schema)';
    return next;
  end if;

  for c in select * from hc.connections order by id loop
    scope := 'connection'; subject := c.name;
    rule := 'CONNECTION_STATE';
    status := case (select category from hc.connection_states s where s.state = c.state)
                when 'error' then 'RED' when 'provisioning' then 'YELLOW' else 'GREEN' end;
    if c.state = 'PAUSED' then status := 'YELLOW'; end if;
    message := format('state %s%s', c.state, coalesce(': ' || c.state_message, ''));
    if c.state = 'PAUSED' then message := message || ' (select hc.resume() to sync again)'; end if;
    if status = 'RED' then message := message || ' (fix the cause, then select hc.recover())'; end if;
    return next;

    rule := 'HEROKU_CONNECT_OBJECTS';
    if to_regclass(format('%I._trigger_log', c.schema_name)) is not null
       and to_regclass(format('%I._trigger_log_archive', c.schema_name)) is not null
       and to_regclass(format('%I._hcmeta', c.schema_name)) is not null then
      status := 'GREEN'; message := format('schema %s has _hcmeta, _trigger_log and _trigger_log_archive', c.schema_name);
    else
      status := 'RED'; message := format('schema %s lacks Heroku Connect''s objects: run select hc._install_connection_objects(%L)', c.schema_name, c.schema_name);
    end if;
    return next;

    -- Changes that no mapping will send until one is made for their table (HC's log can hold changes
    -- to tables an export file leaves out): they wait, and are not lost, but need the operator.
    rule := 'UNMAPPED_WRITES';
    if to_regclass(format('%I._trigger_log', c.schema_name)) is not null then
      execute format($q$select sum(k)::integer, string_agg(format('%%s (%%s)', t, k), ', ' order by t)
                         from (select l.table_name::text t, count(*) k from %I._trigger_log l
                                where l.state = 'NEW'
                                  and not exists (select 1 from hc._mappings m where m.connection_id = $1 and m.table_name = l.table_name)
                                group by 1) x$q$, c.schema_name)
        into n, names using c.id;
      if coalesce(n, 0) = 0 then
        status := 'GREEN'; message := 'every change in _trigger_log belongs to a mapped table';
      else
        status := 'YELLOW';
        message := format('%s change(s) in %I._trigger_log wait because their table has no mapping: %s. They are sent once the mapping is created or imported (hcsync import, hc.create_mapping)', n, c.schema_name, names);
      end if;
      return next;
    end if;

    rule := 'NUMBER_OF_MAPPINGS';
    select count(*) into n from hc._mappings where connection_id = c.id;
    status := case when n = 0 or n > 50 then 'YELLOW' else 'GREEN' end;
    message := case when n = 0 then 'no mappings: add one with hcsync mapping:create or hc.create_mapping'
                    when n > 50 then format('%s mappings: more than 50 slow every poll cycle', n)
                    else format('%s mapping(s)', n) end;
    return next;

    for m in select * from hc._mappings where connection_id = c.id order by object_name loop
      scope := 'mapping'; subject := m.object_name;

      rule := 'MAPPING_STATE';
      status := case (select category from hc.mapping_states s where s.state = m.state)
                  when 'error' then 'RED' when 'temporary' then 'YELLOW' else 'GREEN' end;
      message := format('state %s%s', m.state, coalesce(': ' || m.state_message, ''));
      return next;

      -- HC's rule: a read-write mapping without a unique identifier can create duplicates in Salesforce
      -- when an insert is retried (the first attempt may have succeeded unseen).
      rule := 'UPSERT_FIELD';
      if m.config->>'access' <> 'read_write' then
        status := 'SKIPPED'; message := 'read-only mapping';
      elsif coalesce(m.config->>'upsert_field', '') = '' then
        status := 'RED'; message := 'read-write mapping without an upsert field: retried inserts can duplicate records; add a unique External ID field and set upsert_field';
      else
        status := 'GREEN'; message := format('upsert field %s', m.config->>'upsert_field');
      end if;
      return next;

      -- Formula fields change in Salesforce without SystemModstamp moving, so Postgres goes stale.
      rule := 'CALCULATED_FIELDS';
      select count(*), string_agg(field_name, ', ' order by field_name) into n, names
        from hc._mapping_fields f where f.mapping_id = m.id and f.calculated;
      if not exists (select 1 from hc._mapping_fields f where f.mapping_id = m.id) then
        status := 'SKIPPED'; message := 'no fields described yet (the sidecar describes the object on start)';
      elsif n > 0 then
        status := 'YELLOW'; message := format('formula field(s) %s only refresh when the record itself changes', names);
      else
        status := 'GREEN'; message := 'no formula fields';
      end if;
      return next;

      rule := 'NUMBER_OF_FIELDS';
      n := (select count(*) from jsonb_object_keys(m.config->'fields'));
      status := case when n > 100 then 'YELLOW' else 'GREEN' end;
      message := format('%s field(s)%s', n, case when n > 100 then ': many fields make every poll and load slower' else '' end);
      return next;
    end loop;
  end loop;
end;
$$;
