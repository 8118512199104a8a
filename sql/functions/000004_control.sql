-- The functions and views of sql/000004_control.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- The sidecar reports the connection's state here (NEW → IDLE after authenticating, errors, …).
create or replace function hc.set_connection_state(state text, message text default null, connection_name text default null)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
begin
  if not exists (select 1 from hc.connection_states s where s.state = set_connection_state.state) then
    raise exception 'hcsync: "%" is not a connection state', state using errcode = 'invalid_parameter_value',
      hint = 'Valid states: ' || (select string_agg(s.state, ', ' order by s.state) from hc.connection_states s) || '.';
  end if;
  if c.state = set_connection_state.state and c.state_message is not distinct from message then
    return;
  end if;
  update hc.connections set state = set_connection_state.state, state_message = message, updated_at = now() where id = c.id;
  insert into hc.sync_log (connection_id, level, event, message, detail)
  values (c.id, case when (select category from hc.connection_states s where s.state = set_connection_state.state) = 'error' then 'error' else 'info' end,
          'connection_state', message, jsonb_build_object('from', c.state, 'to', state));
end;
$$;

-- Pause: HC allows it only from IDLE. hcsync also accepts POLLING_DB_CHANGES (IDLE with the writer
-- momentarily busy; it finishes the batch in flight, as HC does) and RECOVERY/NEW/NEED_AUTHENTICATION
-- (nothing runs yet; pausing keeps it from starting). Captures keep accumulating in _trigger_log.
create or replace function hc.pause(connection_name text default null)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
begin
  if c.state = 'PAUSED' then
    raise notice 'hcsync: connection "%" is already paused', c.name;
    return c.state;
  end if;
  if c.state not in ('IDLE', 'POLLING_DB_CHANGES', 'BUSY', 'RECOVERY', 'NEW', 'NEED_AUTHENTICATION') then
    raise exception 'hcsync: connection "%" is in state %, and can only be paused when idle', c.name, c.state
      using errcode = 'object_not_in_prerequisite_state',
            hint = case when (select category from hc.connection_states where state = c.state) = 'error'
                        then 'Fix the cause (see hc.status.state_message), then run select hc.recover();'
                        else 'Wait until it is IDLE (select state from hc.status) and try again.' end;
  end if;
  perform hc.set_connection_state('PAUSED', 'paused by ' || session_user, c.name);
  perform hc._control(c, 'pause', null, jsonb_build_object('from', c.state));
  return 'PAUSED';
end;
$$;

-- Resume: a paused connection goes IDLE and continues from the last successful poll. Like a second
-- pause, resuming a connection that is already running changes nothing and says so; only an error state
-- is refused, because resume is not how an error is cleared.
create or replace function hc.resume(connection_name text default null)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
begin
  if c.state <> 'PAUSED' then
    if (select category from hc.connection_states where state = c.state) = 'error' then
      raise exception 'hcsync: connection "%" is not paused (state %)', c.name, c.state
        using errcode = 'object_not_in_prerequisite_state',
              hint = 'An error state is cleared with select hc.recover();';
    end if;
    raise notice 'hcsync: connection "%" is not paused (state %); nothing to resume', c.name, c.state;
    return c.state;
  end if;
  perform hc.set_connection_state('IDLE', null, c.name);
  perform hc._control(c, 'resume', null, null);
  return 'IDLE';
end;
$$;

-- Recover: clears an error state (HC's "Recover"/restart). The connection goes to RECOVERY, and so do
-- its mappings in error states other than BAD_CONFIG/SYNC_REMOVED (those need a config change); the
-- sidecar re-checks the org and the database and moves them on.
create or replace function hc.recover(connection_name text default null)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  m record;
begin
  if c.state in ('PAUSED', 'DESTROY_CONNECTION') then
    raise exception 'hcsync: connection "%" is %, which recover does not change', c.name, c.state
      using errcode = 'object_not_in_prerequisite_state',
            hint = case c.state when 'PAUSED' then 'Use select hc.resume();' else 'The connection is being deleted.' end;
  end if;
  perform hc.set_connection_state('RECOVERY', 'recover requested by ' || session_user, c.name);
  for m in select x.id from hc._mappings x join hc.mapping_states s on s.state = x.state
            where x.connection_id = c.id and s.category = 'error' and x.state not in ('BAD_CONFIG', 'SYNC_REMOVED') loop
    perform hc.set_mapping_state(m.id, 'RECOVERY', 'recover requested');
  end loop;
  perform hc._control(c, 'recover', null, jsonb_build_object('from', c.state));
  return 'RECOVERY';
end;
$$;

-- Records an operator request on a mapping for the sidecar to pick up.
create or replace function hc._request(action text, object_name text, connection_name text)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings := hc._mapping(object_name, connection_name);
  c hc.connections;
  pending integer;
begin
  select * into c from hc.connections where id = m.connection_id;
  if action in ('reload', 'poll') then
    if c.state = 'PAUSED' then
      raise exception 'hcsync: connection "%" is paused; % of % would not run', c.name, action, m.object_name
        using errcode = 'object_not_in_prerequisite_state', hint = 'Resume it first: select hc.resume();';
    end if;
    if (select category from hc.connection_states where state = c.state) = 'error' then
      raise exception 'hcsync: connection "%" is in error state %', c.name, c.state
        using errcode = 'object_not_in_prerequisite_state', hint = 'Fix the cause and run select hc.recover(); first.';
    end if;
    if m.state in ('BAD_CONFIG', 'SYNC_REMOVED') then
      raise exception 'hcsync: mapping % is %: %', m.object_name, m.state, coalesce(m.state_message, '')
        using errcode = 'object_not_in_prerequisite_state', hint = 'Fix its config with hc.update_mapping(...) (or delete it) first.';
    end if;
    -- A reload rewrites every row from Salesforce: local changes not yet sent are refused. Refuse at once, where
    -- the operator is, rather than have the sidecar refuse later in a log line (it checks again when
    -- it starts the reload, for changes made in between).
    if action = 'reload' and to_regclass(format('%I._trigger_log', c.schema_name)) is not null then
      execute format($q$select count(*) from %I._trigger_log where state in ('NEW', 'PENDING') and table_name = $1$q$, c.schema_name)
        into pending using m.table_name;
      if pending > 0 then
        raise exception 'hcsync: reload of % refused: % local change(s) to %.% are still waiting to be sent to Salesforce',
            m.object_name, pending, c.schema_name, m.table_name
          using errcode = 'object_in_use',
                hint = 'Wait until pending_writes is 0 in select * from hc.mappings (the writer is sending them; resume a paused connection first), then reload again.';
      end if;
    end if;
    if action = 'poll' and m.requested = 'reload' then
      raise notice 'hcsync: a reload of % is already requested; it includes a poll', m.object_name;
      return m.requested;
    end if;
    if action = 'poll' and m.state in ('INITIAL', 'RELOAD_TABLE') then
      raise exception 'hcsync: % is still loading (state %); a poll follows the load anyway', m.object_name, m.state
        using errcode = 'object_not_in_prerequisite_state', hint = 'Wait for DATA_SYNCED (select state from hc.mappings).';
    end if;
  elsif action = 'abort' then
    if m.requested in ('reload', 'poll') and m.state in ('DATA_SYNCED', 'ABORTED') then
      -- Not started yet: cancelling the request is the whole abort.
      update hc._mappings set requested = null, requested_at = null, updated_at = now() where id = m.id;
      perform hc._control(c, 'abort', m.id, jsonb_build_object('object_name', m.object_name, 'cancelled', m.requested));
      return 'cancelled';
    end if;
    -- Whether a state has a load or poll to stop is the lifecycle's (hc.mapping_states.abortable).
    if m.requested is null and not (select s.abortable from hc.mapping_states s where s.state = m.state) then
      raise exception 'hcsync: nothing to abort on % (state %)', m.object_name, m.state
        using errcode = 'object_not_in_prerequisite_state', hint = 'Abort stops a running load or poll; none is running or requested.';
    end if;
  end if;
  update hc._mappings set requested = action, requested_at = now(), updated_at = now() where id = m.id;
  perform hc._control(c, action, m.id, jsonb_build_object('object_name', m.object_name, 'state', m.state, 'replaces', m.requested));
  return action;
end;
$$;

-- Reload: read every record again into the table (rows and ids stay; rows Salesforce no longer has go
-- once the reload completes). Returns the request.
create or replace function hc.reload(object_name text, connection_name text default null)
returns text language sql security definer set search_path = pg_catalog, pg_temp
as $$ select hc._request('reload', object_name, connection_name) $$;

-- Poll now: poll Salesforce for this object at once instead of at the next interval.
create or replace function hc.poll_now(object_name text, connection_name text default null)
returns text language sql security definer set search_path = pg_catalog, pg_temp
as $$ select hc._request('poll', object_name, connection_name) $$;

-- Abort: stop the mapping's running load/poll (mapping → ABORTED; the table keeps its rows); a request
-- not yet started is cancelled.
create or replace function hc.abort(object_name text, connection_name text default null)
returns text language sql security definer set search_path = pg_catalog, pg_temp
as $$ select hc._request('abort', object_name, connection_name) $$;

-- The sidecar takes the request it is about to act on (clears it so it is done once). Returns the
-- request, or NULL when there was none.
create or replace function hc.take_request(mapping_id integer)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  r text;
begin
  select x.requested into r from hc._mappings x where x.id = take_request.mapping_id for update;
  if r is not null then
    update hc._mappings x set requested = null, requested_at = null, updated_at = now() where x.id = take_request.mapping_id;
  end if;
  -- A reload is under way from the moment it is taken, in the same transaction: the mapping never
  -- looks finished (DATA_SYNCED, nothing requested) before the reload has run, and a sidecar killed
  -- right after taking it resumes the reload on start instead of losing the request.
  if r = 'reload' then
    perform hc.set_mapping_state(take_request.mapping_id, 'RELOAD_TABLE', 'reload taken by the sidecar');
  end if;
  -- Likewise a poll of an aborted mapping: it is live again from the moment the poll is taken (a
  -- `--wait` never sees it ABORTED with nothing requested, which means stopped for good).
  if r = 'poll' and exists (select 1 from hc._mappings x where x.id = take_request.mapping_id and x.state = 'ABORTED') then
    perform hc.set_mapping_state(take_request.mapping_id, 'DATA_SYNCED', null);
  end if;
  return r;
end;
$$;

-- Merged vs Ordered writes (HC's features.poll_db_no_merge). Takes effect at the writer's next batch.
create or replace function hc.set_write_algorithm(algorithm text, connection_name text default null)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
begin
  if algorithm is null or lower(algorithm) not in ('merged', 'ordered') then
    raise exception 'hcsync: write algorithm must be ''merged'' or ''ordered'', not %', coalesce('''' || algorithm || '''', 'NULL')
      using errcode = 'invalid_parameter_value',
            hint = 'ordered applies captured changes one by one in capture order; merged folds changes per record into fewer calls.';
  end if;
  update hc.connections
     set write_algorithm = lower(algorithm),
         features = features || jsonb_build_object('poll_db_no_merge', lower(algorithm) = 'ordered'),
         updated_at = now()
   where id = c.id;
  perform hc._control(c, 'set_write_algorithm', null, jsonb_build_object('from', c.write_algorithm, 'to', lower(algorithm)));
  return lower(algorithm);
end;
$$;

-- Failed writes of a connection, as one set (live queue and archive). Used by retry/discard and the
-- hc.write_errors view.
create or replace function hc._failed_writes(c hc.connections)
returns table (id integer, archived boolean, table_name text, record_id integer, sfid text, action text,
               sf_result integer, sf_message text, created_at timestamptz, updated_at timestamptz)
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return query execute format($q$
    select id, false, table_name::text, record_id, sfid::text, action::text, sf_result, sf_message, created_at, updated_at
      from %1$I._trigger_log where state = 'FAILED'
    union all
    select id, true, table_name::text, record_id, sfid::text, action::text, sf_result, sf_message, created_at, updated_at
      from %1$I._trigger_log_archive where state = 'FAILED'$q$, c.schema_name);
end;
$$;

-- Chooses failed writes: by _trigger_log id(s), or all of one table (table or object name), or all.
create or replace function hc._pick_failed(c hc.connections, ids integer[], table_name text)
returns table (id integer, archived boolean)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  t text := lower(_pick_failed.table_name);
  missing integer[];
begin
  if ids is not null then
    select array_agg(i) into missing from unnest(ids) i
     where not exists (select 1 from hc._failed_writes(c) f where f.id = i);
    if missing is not null then
      raise exception 'hcsync: trigger-log id(s) % are not failed writes of connection "%"', missing, c.name
        using errcode = 'invalid_parameter_value',
              hint = 'List failed writes with select * from hc.write_errors; only FAILED entries can be retried or discarded.';
    end if;
  end if;
  if t is not null and not exists (select 1 from hc._mappings m where m.connection_id = c.id and m.table_name = t) then
    raise exception 'hcsync: connection "%" has no mapped table "%"', c.name, _pick_failed.table_name
      using errcode = 'undefined_object', hint = 'Pass the table (or object) name as listed in hc.mappings.';
  end if;
  return query select f.id, f.archived from hc._failed_writes(c) f
    where (ids is null or f.id = any (ids)) and (t is null or f.table_name = t);
end;
$$;

-- A failed change that later writes of the same record have overtaken is not sent again as it was:
-- Salesforce already has newer values. Of each picked entry, the fields that a later entry of the record
-- sent (SUCCESS or MERGED) are dropped; an update left with nothing to send, and a create of a record
-- that a later entry created (the row has its sfid), become MERGED and stay out of the retry. Without
-- this, retrying after the application's fix went through sent the refused values over the fixed record.
-- Returns the number of entries settled so.
create or replace function hc._retry_overtaken(c hc.connections, ids integer[], archived boolean)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  tbl text := case when archived then '_trigger_log_archive' else '_trigger_log' end;
  n integer := 0;
  e record;
  later text[];
  rest text;
  row_sfid text;
begin
  if ids is null then
    return 0;
  end if;
  for e in execute format('select id, action, table_name::text tn, record_id, sfid, "values" v from %I.%I where id = any ($1) and state = $2 order by id',
                          c.schema_name, tbl) using ids, 'FAILED' loop
    continue when e.action = 'DELETE';
    execute format($q$select array_agg(distinct k.key) from (
                        select "values" from %1$I._trigger_log where record_id = $1 and table_name = $2 and id > $3 and state in ('SUCCESS', 'MERGED')
                        union all
                        select "values" from %1$I._trigger_log_archive where record_id = $1 and table_name = $2 and id > $3 and state in ('SUCCESS', 'MERGED')) l,
                        hc._hstore_pairs(l."values") k$q$, c.schema_name)
      into later using e.record_id, e.tn, e.id;
    continue when later is null;
    if e.action = 'INSERT' and e.sfid is null then
      if to_regclass(format('%I.%I', c.schema_name, e.tn)) is not null then
        execute format('select sfid::text from %I.%I where id = $1', c.schema_name, e.tn) into row_sfid using e.record_id;
      end if;
      rest := case when coalesce(row_sfid, '') <> '' then '' else e.v end;
    else
      rest := hc._hstore_subset(e.v, later);
    end if;
    if rest = '' then
      execute format($q$update %I.%I set state = 'MERGED', updated_at = now(),
                               sf_message = format('settled by hc.retry: later writes of this record sent newer values (%%s)', sf_message)
                         where id = $1$q$, c.schema_name, tbl) using e.id;
      n := n + 1;
    elsif rest is distinct from e.v then
      execute format('update %I.%I set "values" = $2 where id = $1', c.schema_name, tbl) using e.id, rest;
    end if;
  end loop;
  return n;
end;
$$;

-- Retry failed writes. A FAILED entry in _trigger_log goes back to NEW with its original id (HC's
-- Merged-Writes practice); the writer sends it at its place in id order. An archived FAILED entry is
-- copied back into _trigger_log as a new NEW entry and the archive row marked REQUEUED (HC's
-- practice for archived failures). hcsync uses the same rule under Ordered Writes: re-capturing from
-- the current row (hc_capture_*_from_row) would send today's values rather than the change that
-- failed, and a DELETE has no row left to capture from. Returns the number of entries re-queued.
create or replace function hc.retry(ids integer[] default null, table_name text default null, connection_name text default null)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  live integer[];
  archived integer[];
  n1 integer := 0;
  n2 integer := 0;
  overtaken integer;
begin
  select array_agg(p.id) filter (where not p.archived), array_agg(p.id) filter (where p.archived)
    into live, archived from hc._pick_failed(c, ids, table_name) p;
  overtaken := hc._retry_overtaken(c, live, false) + hc._retry_overtaken(c, archived, true);
  if live is not null then
    execute format($q$update %I._trigger_log set state = 'NEW', updated_at = now(), processed_at = null,
                      processed_tx = null, sf_result = null, sf_message = null
                      where id = any ($1) and state = 'FAILED'$q$, c.schema_name) using live;
    get diagnostics n1 = row_count;
  end if;
  if archived is not null then
    execute format($q$
      with moved as (
        update %1$I._trigger_log_archive set state = 'REQUEUED', updated_at = now()
         where id = any ($1) and state = 'FAILED'
        returning txid, action, table_name, record_id, sfid, old, "values")
      insert into %1$I._trigger_log (txid, created_at, updated_at, state, action, table_name, record_id, sfid, old, "values")
      select txid, clock_timestamp(), now(), 'NEW', action, table_name, record_id, sfid, old, "values" from moved$q$, c.schema_name)
      using archived;
    get diagnostics n2 = row_count;
  end if;
  perform hc._control(c, 'retry', null, jsonb_build_object('ids', ids, 'table_name', table_name, 'requeued', n1 + n2,
                                                          'overtaken', overtaken));
  return n1 + n2;
end;
$$;

-- Discard failed writes: mark them IGNORED (HC's "handled by hand"); nothing is sent. Returns the count.
create or replace function hc.discard(ids integer[] default null, table_name text default null, connection_name text default null)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  picked integer[];
  n1 integer := 0;
  n2 integer := 0;
begin
  select array_agg(p.id) into picked from hc._pick_failed(c, ids, table_name) p;
  if picked is not null then
    execute format($q$update %I._trigger_log set state = 'IGNORED', updated_at = now() where id = any ($1) and state = 'FAILED'$q$, c.schema_name) using picked;
    get diagnostics n1 = row_count;
    execute format($q$update %I._trigger_log_archive set state = 'IGNORED', updated_at = now() where id = any ($1) and state = 'FAILED'$q$, c.schema_name) using picked;
    get diagnostics n2 = row_count;
  end if;
  perform hc._control(c, 'discard', null, jsonb_build_object('ids', ids, 'table_name', table_name, 'discarded', n1 + n2));
  return n1 + n2;
end;
$$;

-- HC export file v1 (reference §6.2): connection block plus every mapping's config as stored.
create or replace function hc.export_config(connection_name text default null)
returns jsonb
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
begin
  return jsonb_build_object(
    'version', 1,
    'connection', jsonb_build_object(
      'organization_id', c.organization_id,
      'app_name', c.name,
      'name', c.name,
      'exported_at', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
      'features', c.features || jsonb_build_object('poll_db_no_merge', c.write_algorithm = 'ordered'),
      'api_version', c.api_version,
      'logplex_log_enabled', false),
    'mappings', coalesce((select jsonb_agg(jsonb_build_object('object_name', m.object_name, 'config', m.config) order by m.object_name)
                            from hc._mappings m where m.connection_id = c.id), '[]'));
end;
$$;

-- Imports an HC export file with PATCH semantics: mappings in the file are created or updated,
-- mappings absent from the file are left alone. The connection block is informational except the
-- write algorithm (features.poll_db_no_merge), the other feature flags and an unset api_version.
-- A database without a connection (moving from Heroku Connect: `hcsync migrate`, then this) gets one
-- from the file's connection block: named connection_name, else the block's name (HC's app name), in
-- schema salesforce, Heroku Connect's; an existing HC schema there is adopted with its trigger log.
-- All or nothing: one bad mapping rolls the whole import back. Returns {"created": [...], "updated": [...],
-- "unchanged": [...]}.
create or replace function hc.import_config(config jsonb, connection_name text default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections;
  mp jsonb;
  i integer := 0;
  existing hc._mappings;
  created text[] := '{}';
  updated text[] := '{}';
  unchanged text[] := '{}';
  flags jsonb;
  flag text;
  flag_value jsonb;
begin
  if config is null or jsonb_typeof(config) <> 'object' then
    raise exception 'hcsync: an import must be a JSON object (a Heroku Connect export file), not %', coalesce(jsonb_typeof(config), 'null')
      using errcode = 'invalid_parameter_value', hint = 'Pass the file as written by heroku connect:export or hc.export_config().';
  end if;
  if coalesce(config->>'version', '') <> '1' then
    raise exception 'hcsync: unsupported export file version %', coalesce(config->'version', 'null')
      using errcode = 'invalid_parameter_value', hint = 'hcsync reads Heroku Connect export files with "version": 1.';
  end if;
  if jsonb_typeof(config->'mappings') is distinct from 'array' then
    raise exception 'hcsync: the export file has no "mappings" array'
      using errcode = 'invalid_parameter_value', hint = 'Expected {"version": 1, "connection": {...}, "mappings": [{"object_name": ..., "config": {...}}]}.';
  end if;
  for mp in select * from jsonb_array_elements(config->'mappings') loop
    i := i + 1;
    if jsonb_typeof(mp) <> 'object' or jsonb_typeof(mp->'object_name') is distinct from 'string' then
      raise exception 'hcsync: mapping #% of the import has no object_name', i
        using errcode = 'invalid_parameter_value', hint = 'Each mapping is {"object_name": "Contact", "config": {...}}.';
    end if;
    perform hc._check_config(mp->>'object_name', mp->'config');
  end loop;

  if not exists (select 1 from hc.connections) then
    perform hc.create_connection(coalesce(connection_name, nullif(config->'connection'->>'name', ''),
                                          nullif(config->'connection'->>'app_name', ''), 'salesforce'), 'salesforce');
  end if;
  c := hc._connection(connection_name);

  -- The connection block's settings: Heroku Connect's feature flags are all true/false, and its API
  -- version reads like 62.0. Checked before anything is written, like the mappings.
  flags := coalesce(config->'connection'->'features', '{}');
  if jsonb_typeof(flags) <> 'object' then
    raise exception 'hcsync: the import''s connection "features" must be an object of flags, not %', flags
      using errcode = 'invalid_parameter_value', hint = 'e.g. "features": {"poll_db_no_merge": true, "disable_bulk_writes": false}';
  end if;
  for flag, flag_value in select * from jsonb_each(flags) loop
    if jsonb_typeof(flag_value) <> 'boolean' then
      raise exception 'hcsync: the import''s connection feature % must be true or false, not %', flag, flag_value
        using errcode = 'invalid_parameter_value', hint = format('Give true or false, e.g. "%s": true, or leave the flag out.', flag);
    end if;
  end loop;
  if config->'connection'->>'api_version' !~ '^\d{2,3}\.0$' then
    raise exception 'hcsync: the import''s connection api_version % is not a Salesforce API version', config->'connection'->'api_version'
      using errcode = 'invalid_parameter_value', hint = 'Give it as a string such as "62.0", or leave it out.';
  end if;
  if flags <> '{}' then
    update hc.connections x
       set features = x.features || flags,
           write_algorithm = case when flags ? 'poll_db_no_merge'
                                  then case when (flags->>'poll_db_no_merge')::boolean then 'ordered' else 'merged' end
                                  else x.write_algorithm end,
           api_version = coalesce(x.api_version, config->'connection'->>'api_version'),
           updated_at = now()
     where x.id = c.id;
  end if;

  for mp in select * from jsonb_array_elements(config->'mappings') loop
    select * into existing from hc._mappings m where m.connection_id = c.id and lower(m.object_name) = lower(mp->>'object_name');
    if not found then
      perform hc.create_mapping(mp->>'object_name', mp->'config', null, c.name);
      created := created || (mp->>'object_name');
    elsif existing.config = mp->'config' then
      unchanged := unchanged || existing.object_name;
    else
      perform hc.update_mapping(existing.object_name, mp->'config', null, c.name);
      updated := updated || existing.object_name;
    end if;
  end loop;
  perform hc._control(c, 'import_config', null,
    jsonb_build_object('created', to_jsonb(created), 'updated', to_jsonb(updated), 'unchanged', to_jsonb(unchanged),
                       'connection', config->'connection'));
  return jsonb_build_object('created', to_jsonb(created), 'updated', to_jsonb(updated), 'unchanged', to_jsonb(unchanged));
end;
$$;

-- The same, from text: a malformed file gets an error that says so (instead of a bare jsonb cast error).
create or replace function hc.import_config(config text, connection_name text default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  parsed jsonb;
begin
  begin
    parsed := config::jsonb;
  exception when invalid_text_representation then
    raise exception 'hcsync: the import is not valid JSON: %', sqlerrm
      using errcode = 'invalid_text_representation',
            hint = 'Check the file with jq . <file>; it should be a Heroku Connect export (version 1).';
  end;
  return hc.import_config(parsed, connection_name);
end;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Views

-- Per mapping: rows in Postgres (exact below 100k rows, else the planner's estimate, as HC estimates
-- large tables), pending and errored writes (errors: last 24 hours, as HC shows them).
create or replace function hc._mapping_counts(mapping_id integer)
returns table (pg_rows bigint, pending_writes bigint, errored_writes bigint)
language plpgsql stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings;
  s text;
  fq text;
  est bigint;
begin
  select * into m from hc._mappings x where x.id = _mapping_counts.mapping_id;
  select c.schema_name into s from hc.connections c where c.id = m.connection_id;
  fq := format('%I.%I', s, m.table_name);
  if to_regclass(fq) is null then
    pg_rows := null;
  else
    select greatest(reltuples, 0)::bigint into est from pg_class where oid = fq::regclass;
    if est > 100000 then
      pg_rows := est;
    else
      execute format('select count(*) from %s', fq) into pg_rows;
    end if;
  end if;
  execute format($q$select count(*) filter (where state in ('NEW', 'PENDING')),
                          count(*) filter (where state = 'FAILED')
                     from %I._trigger_log where table_name = $1 and state in ('NEW', 'PENDING', 'FAILED')$q$, s)
    into pending_writes, errored_writes using m.table_name;
  execute format($q$select $2 + count(*) from %I._trigger_log_archive
                     where table_name = $1 and state = 'FAILED' and created_at > now() - interval '24 hours'$q$, s)
    into errored_writes using m.table_name, errored_writes;
  return next;
end;
$$;

create or replace view hc.mappings as
select m.id as mapping_id,
       c.id as connection_id,
       c.name as connection_name,
       c.schema_name,
       m.object_name,
       m.table_name,
       m.config->>'access' as access,
       m.state,
       s.label as state_label,
       s.category as state_category,
       m.state_message,
       m.requested,
       m.requested_at,
       (select count(*) from hc._mapping_fields f where f.mapping_id = m.id) as field_count,
       n.pg_rows,
       n.pending_writes,
       n.errored_writes,
       m.last_poll_at,
       m.last_write_at,
       m.revision,
       m.applied_at,
       m.config,
       m.created_at,
       m.updated_at
  from hc._mappings m
  join hc.connections c on c.id = m.connection_id
  join hc.mapping_states s on s.state = m.state
  cross join lateral hc._mapping_counts(m.id) n;

-- Changes captured in a connection's _trigger_log for tables that have no mapping: they wait (NEW) and
-- are sent once a mapping for the table is created or imported (moving from Heroku Connect, the trigger
-- log can hold changes to tables the export file leaves out). Invoker's rights: the readers of
-- hc.status may read the trigger log.
create or replace function hc._unmapped_writes(c hc.connections)
returns bigint
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  n bigint;
begin
  if to_regclass(format('%I._trigger_log', c.schema_name)) is null then
    return 0;
  end if;
  execute format($q$select count(*) from %I._trigger_log l
                     where l.state = 'NEW'
                       and not exists (select 1 from hc._mappings m where m.connection_id = $1 and m.table_name = l.table_name)$q$,
                 c.schema_name)
    into n using c.id;
  return n;
end;
$$;

create or replace view hc.status as
select c.id as connection_id,
       c.name,
       c.schema_name,
       c.state,
       s.label as state_label,
       s.category as state_category,
       c.state_message,
       c.organization_id,
       c.api_version,
       c.write_algorithm,
       (select count(*) from hc._mappings m where m.connection_id = c.id) as mapping_count,
       (select count(*) from hc._mappings m join hc.mapping_states ms on ms.state = m.state
         where m.connection_id = c.id and ms.category = 'error') as mappings_in_error,
       case when exists (select 1 from hc._mappings m join hc.mapping_states ms on ms.state = m.state
                          where m.connection_id = c.id and ms.category = 'error') then 'ERROR' else 'OK' end as mappings_summary_state,
       coalesce((select sum(x.pending_writes) from hc.mappings x where x.connection_id = c.id), 0)::bigint as pending_writes,
       coalesce((select sum(x.errored_writes) from hc.mappings x where x.connection_id = c.id), 0)::bigint as errored_writes,
       hc._unmapped_writes(c) as unmapped_writes,
       (select max(m.last_poll_at) from hc._mappings m where m.connection_id = c.id) as last_poll_at,
       (select max(m.last_write_at) from hc._mappings m where m.connection_id = c.id) as last_write_at,
       c.created_at,
       c.updated_at,
       coalesce((select sum(d.delivered) from hc.event_deliveries d
                  where d.connection_id = c.id and d.hour > now() - interval '24 hours'), 0)::bigint as events_delivered_24h
  from hc.connections c
  join hc.connection_states s on s.state = c.state;

-- Every FAILED write (live queue and archive) with the Salesforce error, newest first.
create or replace view hc.write_errors as
select c.name as connection_name,
       c.schema_name,
       f.id as trigger_log_id,
       f.archived,
       f.table_name,
       m.object_name,
       f.record_id,
       f.sfid,
       f.action,
       f.sf_result,
       f.sf_message,
       f.created_at,
       f.updated_at
  from hc.connections c
  cross join lateral hc._failed_writes(c) f
  left join hc._mappings m on m.connection_id = c.id and m.table_name = f.table_name
 order by f.created_at desc, f.id desc;

-- Removes a connection: what hcsync made of it and its hc.* rows. That is each mapping's table (as
-- hc.delete_mapping decides), the connection's Heroku Connect objects (_hcmeta, the trigger logs,
-- _sf_event_log and their functions), and the schema when hcsync created it and nothing else is left in
-- it. Whatever else the schema holds (an application's tables) stays. confirm must repeat the
-- connection's name (as HC's CLI asks for the app name).
create or replace function hc.delete_connection(confirm text, connection_name text default null)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(coalesce(connection_name, confirm));
  m record;
begin
  if confirm is distinct from c.name then
    raise exception 'hcsync: deleting connection "%" drops schema % and every synced table in it', c.name, c.schema_name
      using errcode = 'invalid_parameter_value', hint = format('Confirm with select hc.delete_connection(%L);', c.name);
  end if;
  for m in select x.object_name from hc._mappings x where x.connection_id = c.id order by x.id loop
    perform hc.delete_mapping(m.object_name, c.name);
  end loop;
  execute format('drop function if exists %1$I.hc_capture_insert_from_row(%2$s, character varying, text[]), %1$I.hc_capture_update_from_row(%2$s, character varying, text[])',
                 c.schema_name, hc._hstore_type());
  execute format('drop table if exists %1$I._trigger_log, %1$I._trigger_log_archive, %1$I._sf_event_log, %1$I._hcmeta', c.schema_name);
  execute format('drop function if exists %I.tlog_notify_trigger()', c.schema_name);
  if c.created_schema then
    begin
      execute format('drop schema %I', c.schema_name);
    exception when dependent_objects_still_exist then
      raise notice 'hcsync: schema % is kept: it holds objects hcsync did not make', c.schema_name;
    end;
  end if;
  delete from hc.connections where id = c.id;
  insert into hc.audit_log (action, detail) values ('delete_connection', jsonb_build_object('name', c.name, 'schema_name', c.schema_name));
  perform pg_notify('hc_control', c.schema_name);
end;
$$;
