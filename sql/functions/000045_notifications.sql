-- The functions and views of sql/000045_notifications.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- Records a notification and sends its NOTIFY; notifications older than 90 days go.
create or replace function hc._notify(c hc.connections, m hc._mappings, kind text, message text, detail jsonb default null)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  n hc.notifications;
begin
  -- Kept 90 days (their deliveries with them): notifications are few, so the purge rides on the next one.
  delete from hc.notifications x where x.connection_id = c.id and x.at < now() - interval '90 days';
  insert into hc.notifications (connection_id, mapping_id, kind, object_name, message, detail)
  values (c.id, m.id, kind, m.object_name, message, detail)
  returning * into n;
  perform pg_notify('hc_notifications', jsonb_build_object(
    'id', n.id, 'connection', c.name, 'schema', c.schema_name, 'kind', n.kind, 'object', n.object_name,
    'message', left(n.message, 1000), 'count', coalesce((n.detail->>'count')::integer, 1), 'at', n.at)::text);
  return n.id;
end;
$$;

-- writes_failed: after each statement that logs write failures (hc.outbound_claim, hc.outbound_complete),
-- per mapping. The writes that failed in this transaction are FAILED already (processed_tx is this
-- transaction's); any other FAILED write of the mapping from the last 24 hours means it was failing
-- before. The advisory lock serialises two writers' transactions failing the same mapping at once, so
-- the second sees the first's failures and does not notify twice.
create or replace function hc._notify_write_failures()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  r record;
  c hc.connections;
  m hc._mappings;
  before boolean;
begin
  for r in select n.connection_id, n.mapping_id, count(*) as failed, (array_agg(n.message order by n.id))[1] as message
             from new_rows n
            where n.event = 'write_failed' and n.mapping_id is not null
            group by 1, 2 loop
    select * into c from hc.connections where id = r.connection_id;
    select * into m from hc._mappings where id = r.mapping_id;
    continue when c.id is null or m.id is null;
    perform pg_advisory_xact_lock(hc.lock_class('notify_writes'), r.mapping_id);
    continue when exists (select 1 from hc.notifications x
                           where x.mapping_id = m.id and x.kind = 'writes_failed' and x.at = now());
    execute format($q$select exists (select 1 from %1$I._trigger_log
                                      where state = 'FAILED' and table_name = $1 and updated_at > now() - interval '24 hours'
                                        and processed_tx is distinct from txid_current())
                          or exists (select 1 from %1$I._trigger_log_archive
                                      where state = 'FAILED' and table_name = $1 and updated_at > now() - interval '24 hours')$q$,
                   c.schema_name)
      into before using m.table_name;
    continue when before;
    perform hc._notify(c, m, 'writes_failed',
      format('%s write(s) of %s to Salesforce failed: %s', r.failed, m.object_name, r.message),
      jsonb_build_object('count', r.failed));
  end loop;
  return null;
end;
$$;

-- connection_error and mapping_error: on entering an error state.
create or replace function hc._notify_state_error()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections;
  m hc._mappings;
begin
  if tg_table_name = 'connections' then
    if (select category from hc.connection_states where state = new.state) = 'error'
       and (select category from hc.connection_states where state = old.state) is distinct from 'error' then
      c := new;
      perform hc._notify(c, null, 'connection_error',
        format('The connection %s is in an error state: %s (%s)%s', c.name,
               (select label from hc.connection_states where state = new.state), new.state,
               coalesce('. ' || new.state_message, '')),
        jsonb_build_object('state', new.state, 'from', old.state));
    end if;
  else
    if (select category from hc.mapping_states where state = new.state) = 'error'
       and (select category from hc.mapping_states where state = old.state) is distinct from 'error' then
      m := new;
      select * into c from hc.connections where id = m.connection_id;
      perform hc._notify(c, m, 'mapping_error',
        format('The mapping %s is in an error state: %s (%s)%s', m.object_name,
               (select label from hc.mapping_states where state = new.state), new.state,
               coalesce('. ' || new.state_message, '')),
        jsonb_build_object('state', new.state, 'from', old.state));
    end if;
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Notifications as the dashboard and `hcsync notifications` show them: newest first, with whether
-- the condition still holds (active: the mapping still has failed writes, or the connection or mapping
-- is still in an error state) and the webhook's delivery state.
create or replace function hc.notifications_list(lim integer default 50, connection_name text default null)
returns table (id bigint, at timestamptz, kind text, object_name text, message text, active boolean,
               webhook text, attempts integer, delivered_at timestamptz)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
begin
  if lim is null or lim < 1 or lim > 1000 then
    raise exception 'hcsync: the notification count must be 1 to 1000, not %', lim using errcode = 'invalid_parameter_value',
      hint = 'Pass 50, say.';
  end if;
  return query
    select n.id, n.at, n.kind, n.object_name, n.message,
           case n.kind
             when 'connection_error' then (select s.category = 'error' from hc.connection_states s where s.state = c.state)
             when 'mapping_error' then coalesce((select s.category = 'error' from hc._mappings x join hc.mapping_states s on s.state = x.state where x.id = n.mapping_id), false)
             else coalesce((select v.errored_writes > 0 from hc.mappings v where v.mapping_id = n.mapping_id), false)
           end,
           case when n.delivered_at is not null then 'delivered' when n.gave_up_at is not null then 'gave up'
                when n.attempts > 0 then 'retrying' else 'not sent' end,
           n.attempts, n.delivered_at
      from hc.notifications n
     where n.connection_id = c.id
     order by n.id desc
     limit lim;
end;
$$;

-- Milliseconds until the next retry of an undelivered notification of the last day is due (negative: overdue), or null when none waits: the webhook sender's sleep.
create or replace function hc._notification_next_due_ms(p_connection_id integer)
returns numeric
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select extract(epoch from min(next_attempt_at) - now()) * 1000 from hc.notifications
   where connection_id = p_connection_id and delivered_at is null and gave_up_at is null and at > now() - interval '1 day';
$$;

-- The webhook sender (the sidecar) claims due notifications of the last day: each is leased for
-- lease_seconds (its next_attempt_at moves forward), so another sidecar skips it meanwhile.
create or replace function hc.notification_claim(p_connection_id integer, p_max integer default 20, p_lease_seconds integer default 60)
returns setof hc.notifications
language sql
set search_path = pg_catalog, pg_temp
as $$
  update hc.notifications n set next_attempt_at = now() + make_interval(secs => p_lease_seconds)
   where n.id in (select x.id from hc.notifications x
                   where x.connection_id = p_connection_id and x.delivered_at is null and x.gave_up_at is null
                     and x.next_attempt_at <= now() and x.at > now() - interval '1 day'
                   order by x.id limit p_max for update skip locked)
  returning n.*;
$$;

-- Records one webhook attempt: delivered on ok; otherwise due again after a backoff of 2^(attempt-1)
-- seconds × p_backoff_seconds (capped at 10 minutes), or given up after p_max_attempts.
create or replace function hc.notification_attempt(p_id bigint, p_target text, p_status integer, p_error text, p_duration_ms integer,
                                                   p_ok boolean, p_max_attempts integer, p_backoff_seconds numeric default 1)
returns hc.notifications
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  n hc.notifications;
begin
  update hc.notifications x set attempts = x.attempts + 1 where x.id = p_id returning * into n;
  if not found then
    return null;
  end if;
  insert into hc.notification_deliveries (notification_id, attempt, target, status, error, duration_ms, ok)
  values (p_id, n.attempts, p_target, p_status, left(p_error, 2000), p_duration_ms, p_ok);
  update hc.notifications x
     set delivered_at = case when p_ok then now() end,
         gave_up_at = case when not p_ok and n.attempts >= p_max_attempts then now() end,
         next_attempt_at = case when p_ok or n.attempts >= p_max_attempts then x.next_attempt_at
                                else now() + make_interval(secs => least(600, p_backoff_seconds * 2 ^ (n.attempts - 1))) end
   where x.id = p_id
  returning * into n;
  return n;
end;
$$;
