-- 000012_inbound_leader: one inbound reader per connection, however many sidecars run.
--
-- The outbound writer is safe with several sidecars (SKIP LOCKED claims), but two inbound readers of one
-- connection would both load, both subscribe to the same change events and both move the same replay
-- ids and watermarks: double the API calls, and positions written by whichever commits last. So the
-- inbound side has a leader: the sidecar whose dedicated session holds the session-level advisory lock
-- (classid 1751347067, objid = connection id). The others stand by and try again every few seconds; when
-- the leader dies (even kill -9) Postgres ends its session and releases the lock, and a standby takes
-- over from the positions the leader committed.

-- Tries to become the inbound leader of a connection on the caller's session (held until the session
-- ends or hc.inbound_resign). True when the caller leads (again) now.
create or replace function hc.inbound_try_lead(p_connection_id integer)
returns boolean
language sql
as $$
  select pg_try_advisory_lock(1751347067, p_connection_id);
$$;

-- Who leads the inbound side of each connection: the backend holding the lock (null: nobody, e.g. no
-- sidecar running, or the leader just died and a standby has not taken over yet).
create or replace view hc.inbound_leaders as
select c.id as connection_id, c.name as connection_name, l.pid, a.application_name, a.client_addr, a.backend_start
from hc.connections c
left join pg_locks l on l.locktype = 'advisory' and l.granted and l.classid::bigint = 1751347067 and l.objid::bigint = c.id and l.objsubid = 2
left join pg_stat_activity a on a.pid = l.pid;
