-- 000013_inbound_fence: inbound leadership (000012) becomes a fencing token, and hc.inbound_leaders looks
-- at this database's advisory locks only (pg_locks lists every database's; advisory locks are per
-- database, so another database's sidecar showed up as this one's leader).

-- Leadership is also a fencing token: every take-over bumps the connection's epoch, and a change-event
-- batch commits only while its epoch is current (hc.inbound_fence, in the batch's transaction). A leader
-- that lost its lock session without noticing yet (a network cut) can then not move a replay id behind
-- the new leader's back: its batch fails and is rolled back. The take-over's UPDATE waits for batches
-- still holding the row FOR SHARE, so the new leader reads every position the old one committed.
create table if not exists hc.inbound_leases (
  connection_id integer primary key references hc.connections on delete cascade,
  epoch         bigint not null default 0,
  since         timestamptz not null default now()
);

-- Tries to become the inbound leader of a connection on the caller's session (held until the session
-- ends). Returns the new epoch when the caller leads now, NULL when another session does. (000012's
-- version returned a boolean: a return type cannot be replaced in place.)
drop function if exists hc.inbound_try_lead(integer);
create function hc.inbound_try_lead(p_connection_id integer)
returns bigint
language plpgsql
set search_path = pg_catalog, public
as $$
declare
  e bigint;
begin
  if not pg_try_advisory_lock(1751347067, p_connection_id) then
    return null;
  end if;
  insert into hc.inbound_leases as l (connection_id, epoch) values (p_connection_id, 1)
  on conflict (connection_id) do update set epoch = l.epoch + 1, since = now()
  returning epoch into e;
  return e;
end;
$$;

-- In a batch's transaction: the batch may commit only if its leader's epoch is still the current one.
create or replace function hc.inbound_fence(p_connection_id integer, p_epoch bigint)
returns void
language plpgsql
set search_path = pg_catalog, public
as $$
begin
  perform 1 from hc.inbound_leases where connection_id = p_connection_id and epoch = p_epoch for share;
  if not found then
    raise exception 'hcsync: this sidecar is no longer the inbound leader of connection % (epoch %)', p_connection_id, p_epoch
      using errcode = 'lock_not_available', hint = 'Another sidecar took over; this one stands by. Nothing to do.';
  end if;
end;
$$;

-- Who leads the inbound side of each connection: the backend holding the lock (null: nobody, e.g. no
-- sidecar running, or the leader just died and a standby has not taken over yet).
drop view if exists hc.inbound_leaders;
create view hc.inbound_leaders as
select c.id as connection_id, c.name as connection_name, e.epoch, e.since, l.pid, a.application_name, a.client_addr
from hc.connections c
left join pg_locks l on l.locktype = 'advisory' and l.granted
  -- advisory locks are per database, pg_locks shows every database's
  and l.database = (select oid from pg_database where datname = current_database())
  and l.classid::bigint = 1751347067 and l.objid::bigint = c.id and l.objsubid = 2
left join pg_stat_activity a on a.pid = l.pid
left join hc.inbound_leases e on e.connection_id = c.id;
