-- The functions and views of sql/000020_outbound.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

create or replace function hc._outbound_claimer_alive(claimer integer)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select exists (
    select 1 from pg_locks l
     where l.locktype = 'advisory' and l.granted
       and l.database = (select oid from pg_database where datname = current_database())
       and l.classid::bigint = hc.lock_class('writer') and l.objid::bigint = claimer and l.objsubid = 2);
$$;

-- Whether a writer that is gone left claims (its lock is free), or records held after such a take-over are due: a round would take them over.
create or replace function hc._outbound_orphaned(p_connection_id integer)
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  -- (once per claimer, not per claimed entry: each asking reads pg_locks, and a live writer on another
  -- host may hold thousands of entries while this one stands by)
  select exists (select 1 from (select distinct c.claimer from hc._outbound_claims c where c.connection_id = p_connection_id offset 0) k
                  where not hc._outbound_claimer_alive(k.claimer))
         -- records held after such a take-over (hc._outbound_holds) whose wait is over
         or exists (select 1 from hc._outbound_holds h where h.connection_id = p_connection_id and h.until <= now());
$$;

-- A claimer number for a new writer; the caller then takes pg_advisory_lock(hc.lock_class('writer'), n) on its
-- dedicated session.
create or replace function hc.outbound_new_claimer()
returns integer
language sql
set search_path = pg_catalog, pg_temp
as $$ select nextval('hc._outbound_claimer_seq')::integer $$;

-- Column values (hstore text from the trigger log) → the Salesforce record body, by hc._mapping_fields:
-- hc._outbound_bodies for many ops in one statement (a claim's 2,000 bodies, one function call each,
-- took 0.3-0.4 s of the claim), hc._outbound_body for one.
-- Only fields Salesforce lets us write for this operation are sent; id, sfid and HC's own columns never.
-- Values are typed for JSON: booleans and numbers as such, datetimes as ISO-8601 UTC. A relationship
-- external-id column (<relationship>__<extid>) becomes {"Relationship": {"ExtId__c": value}} so a child
-- can point at a parent that has no sfid yet.
create or replace function hc._outbound_bodies(op_ids integer[], mapping_ids integer[], vals text[], for_insert boolean[])
returns table (op_id integer, body jsonb)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  -- (Set-based: every op's values are joined to the fields in one hash join, not one lookup per op.)
  with o as materialized (
    select * from unnest(op_ids, mapping_ids, vals, for_insert) o(op_id, mapping_id, vals, for_insert)),
  kv as (
    select o.op_id, o.mapping_id, o.vals, o.for_insert, e.key, e.value from o, hc._hstore_each(o.vals) e)
  select o.op_id, coalesce(b.body, '{}'::jsonb)
    from o left join (
      select kv.op_id, jsonb_object_agg(
               case when f.sf_type = 'relationship_external_id' then f.relationship_name else f.field_name end,
               case
                 when f.sf_type = 'relationship_external_id' then
                   case when kv.value is null then null else jsonb_build_object(f.target_field, kv.value) end
                 when kv.value is null then 'null'::jsonb
                 when f.sf_type = 'boolean' then to_jsonb(kv.value::boolean)
                 when f.sf_type in ('int', 'double', 'currency', 'percent', 'long') then to_jsonb(kv.value::numeric)
                 when f.sf_type = 'datetime' then
                   to_jsonb(to_char(kv.value::timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                 else to_jsonb(kv.value)
               end) body
        from kv
        join hc._mapping_fields f on f.mapping_id = kv.mapping_id and f.column_name = kv.key
       where f.column_name not in ('id', 'sfid', '_hc_lastop', '_hc_err')
         and f.field_name <> 'Id'
         and not coalesce(f.calculated, false)
         and case when kv.for_insert then coalesce(f.createable, false) else coalesce(f.updateable, false) end
         -- A relationship reference set to null cannot be expressed as {"Rel": null}; the lookup column
         -- itself (e.g. accountid) carries the null.
         and not (f.sf_type = 'relationship_external_id' and kv.value is null)
         -- ...and when the parent is named by external id, an empty lookup column (accountid null: the app
         -- does not know the parent's sfid) is left out rather than sent as a null that clears the link.
         and not (kv.value is null and f.sf_type = 'reference' and exists (
               select 1 from hc._hstore_each(kv.vals) kv2
                 join hc._mapping_fields f2 on f2.mapping_id = kv.mapping_id and f2.column_name = kv2.key
                where f2.sf_type = 'relationship_external_id' and f2.relationship_name = f.relationship_name
                  and kv2.value is not null))
       group by kv.op_id) b on b.op_id = o.op_id;
$$;

create or replace function hc._outbound_body(mapping_id integer, vals text, for_insert boolean)
returns jsonb
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select b.body from hc._outbound_bodies(array[0], array[mapping_id], array[vals], array[for_insert]) b;
$$;

-- Claim step 1: claims of writers that are gone (and the caller's own leftovers) go back to the queue.
create or replace function hc._claim_take_over(c hc.connections, p_claimer integer)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  tl text := format('%I._trigger_log', c.schema_name);
  gone integer[];
  dead_ids integer[];
  orphaned jsonb;
  seqscan_was text;
begin
  -- Entries of writers that died (their advisory lock is gone) go back to NEW. So do the caller's own:
  -- a writer claims only when it holds nothing in flight, so what it still holds is from a round that
  -- failed before its outcome was recorded (creates keep their attempts: the lookup finds them).
  -- (Whether a claimer lives is asked once per claimer, not once per claimed entry: each asking reads
  -- pg_locks, and other writer lanes hold thousands of entries. OFFSET 0 keeps the test above the
  -- DISTINCT: pushed below it, it read pg_locks 6,000 times, 0.6-0.9 s of each claim with 4 lanes.)
  -- The claimers that are gone are collected first, then their claims deleted: as one statement, after
  -- an analyze had seen _outbound_claims nearly empty, the planner joined the claims to the DISTINCT
  -- rescanned once per claim, 2,000 x 8,000 claims, 2.8 s of every claim (4 lanes waited 7-9 s each for
  -- the claim lock; a 1,000,000 backlog went from 4,000 to 800 rows/s at once).
  select coalesce(array_agg(k.claimer), '{}') into gone
    from (select distinct x.claimer from hc._outbound_claims x where x.connection_id = c.id offset 0) k
   where k.claimer = p_claimer or not hc._outbound_claimer_alive(k.claimer);
  with dead as (
    delete from hc._outbound_claims k
     where k.connection_id = c.id and k.claimer = any (gone)
    returning k.log_id, k.claimer, k.claimed_at)
  select array_agg(d.log_id), coalesce(jsonb_agg(jsonb_build_array(d.log_id, d.claimed_at)) filter (
           where d.claimer <> p_claimer), '[]')
    into dead_ids, orphaned from dead d;
  -- (another writer's claims that it died holding: their records wait, see hc._outbound_holds, until 4 s
  -- after the claim or after the last create it sent of the record, whichever is later)
  if jsonb_array_length(orphaned) > 0 then
    seqscan_was := current_setting('enable_seqscan');
    perform set_config('enable_seqscan', 'off', true);   -- the entries by id: see 'Entries by id' below
    execute format($q$insert into hc._outbound_holds as h (connection_id, table_name, record_id, until)
                      select $1, x.table_name, x.record_id, x.until from (
                        select t.table_name, t.record_id,
                               greatest(max((d->>1)::timestamptz),
                                        (select max(a.sent_at) from hc._outbound_attempts a
                                          where a.connection_id = $1 and a.table_name = t.table_name and a.record_id = t.record_id))
                                 + interval '4 seconds' as until
                          from jsonb_array_elements($2) d join %s t on t.id = (d->>0)::int
                         where t.table_name is not null and t.record_id is not null
                         group by t.table_name, t.record_id) x
                       where x.until > now()
                      on conflict (connection_id, table_name, record_id) do update set until = greatest(h.until, excluded.until)$q$, tl)
      using c.id, orphaned;
    perform set_config('enable_seqscan', seqscan_was, true);
  end if;
  delete from hc._outbound_holds h where h.connection_id = c.id and h.until <= now();
  -- By id. (This also looked for PENDING entries with no claim at all, on every claim: a scan of every
  -- PENDING version the queue has held since its last vacuum, which a bitmap scan never marks dead. On a
  -- backlog of 1,000,000 it had grown to 644,000 index entries and 33,000 pages, 140 ms of a 310 ms claim
  -- by 640,000 sent. hc.outbound_sweep_unclaimed does that once, when a writer starts.)
  if cardinality(dead_ids) > 0 then
    seqscan_was := current_setting('enable_seqscan');
    perform set_config('enable_seqscan', 'off', true);
    execute format($q$update %s set state = 'NEW', updated_at = now() where id = any($1) and state = 'PENDING'$q$, tl)
      using dead_ids;
    perform set_config('enable_seqscan', seqscan_was, true);
  end if;
end;
$fn$;

-- Entries PENDING with no claim of any writer, back to NEW (how many is returned). A writer of hcsync
-- never leaves one (its claims name every entry it marks PENDING, and take-over returns a dead writer's),
-- but Heroku Connect's own writer does when it is stopped mid-round: a queue taken over from it must not
-- keep them for ever. The writer calls this when it starts, once its claimers are locked; a live
-- writer's entries are claimed in the transaction that marks them PENDING, so they are never taken.
create or replace function hc.outbound_sweep_unclaimed(connection_id integer)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  c hc.connections;
  n integer;
begin
  select * into c from hc.connections x where x.id = outbound_sweep_unclaimed.connection_id;
  if not found then
    return 0;
  end if;
  execute format($q$update %1$I._trigger_log t set state = 'NEW', updated_at = now()
                     where t.state = 'PENDING'
                       and not exists (select 1 from hc._outbound_claims k where k.connection_id = $1 and k.log_id = t.id)$q$,
                 c.schema_name)
    using c.id;
  get diagnostics n = row_count;
  return n;
end;
$fn$;

-- Claim step 2: the tables whose changes may be sent now; the others are told once an hour.
create or replace function hc._claim_ready_tables(c hc.connections)
returns text[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  tl text := format('%I._trigger_log', c.schema_name);
  ready text[];
begin
  -- Only changes to tables whose mapping is ready are sent. The others wait, NEW, and are never dropped:
  -- a table with no mapping yet (moving from Heroku Connect, _trigger_log holds what HC had not sent
  -- before `hcsync import`), a mapping whose table is not built yet (applied_at), or one being loaded or
  -- reloaded: sent during the load, a create could be read back as a second row and a delete or update
  -- be undone by a page read before it (the load keeps pending local changes, so they win until sent).
  -- Each waiting table is told in hc.sync_log ('waiting_for_mapping'), at most once an hour per table
  -- and mapping state, and counted in hc.status (unmapped_writes) and hc.mappings (pending_writes).
  select coalesce(array_agg(m.table_name), '{}') into ready from hc._mappings m
    join hc.mapping_states s on s.state = m.state
   where m.connection_id = c.id and m.applied_at is not null and not s.holds_writes;
  execute format($q$
    with recursive waiting(name) as (   -- the distinct tables with NEW entries, one index probe each
      (select table_name::text from %1$s where state = 'NEW' order by table_name limit 1)
      union all
      select (select table_name::text from %1$s where state = 'NEW' and table_name > w.name order by table_name limit 1)
        from waiting w where w.name is not null)
    insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail)
    select $1, m.id, 'outbound', case when m.id is null then 'warn' else 'info' end, 'waiting_for_mapping',
           case when m.id is null
                then format('changes to %%s wait: the table has no mapping (they are sent once one is created or imported)', w.name)
                else format('changes to %%s wait until mapping %%s is ready (state %%s%%s)', w.name, m.object_name, m.state,
                            case when m.applied_at is null then ', table not built yet' else '' end) end,
           jsonb_build_object('table', w.name, 'mapping_state', m.state)
      from waiting w left join hc._mappings m on m.connection_id = $1 and m.table_name = w.name
     where w.name is not null and not (w.name = any ($2))
       and not exists (select 1 from hc.sync_log s where s.connection_id = $1 and s.at > now() - interval '1 hour'
                          and s.event = 'waiting_for_mapping' and s.detail->>'table' = w.name
                          and s.detail->>'mapping_state' is not distinct from m.state)$q$, tl)
    using c.id, ready;
  return ready;
end;
$fn$;

-- Claim step 3: the entries this claim takes (_ob_cand), locked.
create or replace function hc._claim_candidates(c hc.connections, ready text[], max_entries integer)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  tl text := format('%I._trigger_log', c.schema_name);
  cand_ids integer[];
  bitmap_was text;
  sort_was text;
begin
  create temp table if not exists _ob_cand (
    id integer, table_name text, record_id integer, action text, sfid text, vals text, old text
  ) on commit drop;
  truncate _ob_cand;
  -- The oldest NEW entries of ready tables, skipping records with an entry in flight (PENDING under any
  -- claimer: the writer runs several claims at once) or held (hc._outbound_holds). The queue is walked
  -- in id order through _trigger_log_idx_state_id and the walk stops at max_entries; each entry's record
  -- is looked up by record_id (OFFSET 0 keeps the state test out of that index probe). After a burst the
  -- queue's statistics still say it is nearly empty, and the planner then read every NEW entry (a bitmap
  -- scan of 100,000 entries, anti-joined and sorted) for each claim of 2,000: 0.3-0.4 s of every claim.
  -- Bitmap scans and sorts are ruled out for this one statement, so only the ordered walk is left.
  bitmap_was := current_setting('enable_bitmapscan');
  sort_was := current_setting('enable_sort');
  perform set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true);
  execute format($q$
    select array(
      select x.id from %1$s x
       where x.state = 'NEW'
         and x.table_name::text = any ($2)
         and not exists (select 1 from (select p.table_name, p.state from %1$s p where p.record_id = x.record_id offset 0) p
                          where p.table_name = x.table_name and p.state = 'PENDING')
         and not exists (select 1 from hc._outbound_holds h
                          where h.connection_id = $3 and h.table_name = x.table_name::text and h.record_id = x.record_id)
       order by x.id limit $1)$q$, tl)
    into cand_ids using max_entries, ready, c.id;
  perform set_config('enable_bitmapscan', bitmap_was, true), set_config('enable_sort', sort_was, true);
  -- Locked by id (the state is tested on the row as locked: as a condition beside the id, the stale
  -- statistics made the planner read every NEW entry again to find these).
  execute format($q$
    insert into _ob_cand
    select id, table_name, record_id, action, sfid, nullif("values", ''), nullif(old, '')
      from (select t.* from %1$s t where t.id = any ($1) order by t.id offset 0 for update skip locked) t
     where t.state = 'NEW'
     order by t.id$q$, tl)
    using cand_ids;
  -- A record's entries must stay in order: once one is skipped (locked by another session), its later
  -- entries wait too.
  -- (With claims serialised by the connection lock, skips only come from application transactions.)

  -- A record's INSERT goes before its other entries even when its entry is younger: hc.retry of an
  -- archived FAILED insert queues it anew, behind the updates that were waiting for it.
  if c.write_algorithm = 'ordered' then
    delete from _ob_cand x where exists (select 1 from _ob_cand y where y.table_name = x.table_name
                                          and y.record_id = x.record_id
                                          and (y.action <> 'INSERT', y.id) < (x.action <> 'INSERT', x.id));
  end if;
end;
$fn$;

-- Claim step 4: one op per record (_ob_ops), its merged values, and what its row looks like now.
create or replace function hc._claim_condense(c hc.connections)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
begin
  create temp table if not exists _ob_ops (
    op_id integer, log_ids integer[], table_name text, record_id integer, mapping_id integer, object_name text,
    upsert_field text, first_action text, last_action text, vals text, log_sfid text,
    row_exists boolean, row_sfid text, row_vals text, upsert_value text, action text, ignore_reason text,
    body jsonb, error text, attempted boolean
  ) on commit drop;
  truncate _ob_ops;
  -- Merged values: per record and column the newest entry's value. Computed for all records at once
  -- (a per-record subquery over the candidates made a 2,000-entry claim quadratic), and only for records
  -- with more than one entry: a record's only entry is its values as they are (ordered writes, or a
  -- burst of single-row changes: every op).
  insert into _ob_ops (op_id, log_ids, table_name, record_id, first_action, last_action, vals, log_sfid)
  with several as (
    select y.table_name, y.record_id from _ob_cand y group by y.table_name, y.record_id having count(*) > 1),
  latest as (
    select distinct on (y.table_name, y.record_id, kv.key) y.table_name, y.record_id, kv.key, kv.value
      from _ob_cand y join several s on s.table_name = y.table_name and s.record_id = y.record_id
     cross join lateral hc._hstore_each(y.vals) kv
     order by y.table_name, y.record_id, kv.key, y.id desc),
  merged as (
    select table_name, record_id, hc._hstore_of(array_agg(key), array_agg(value)) vals from latest group by table_name, record_id),
  grouped as (
    select max(x.id) op_id, array_agg(x.id order by x.id) log_ids, x.table_name, x.record_id,
           (array_agg(x.action order by x.action <> 'INSERT', x.id))[1] first_action,
           (array_agg(x.action order by x.id desc))[1] last_action,
           (array_agg(coalesce(x.sfid, hc._hstore_get(x.old, 'sfid')) order by x.id desc)
              filter (where coalesce(x.sfid, hc._hstore_get(x.old, 'sfid')) is not null))[1] log_sfid,
           count(*) entries, (array_agg(x.vals))[1] only_vals
      from _ob_cand x
     group by x.table_name, x.record_id)
  select g.op_id, g.log_ids, g.table_name, g.record_id, g.first_action, g.last_action,
         case when g.entries = 1 then g.only_vals else mv.vals end, g.log_sfid
    from grouped g left join merged mv on mv.table_name = g.table_name and mv.record_id = g.record_id;

  -- (The upsert column is looked up once per mapping, not once per op: OFFSET 0 keeps the subquery whole.)
  update _ob_ops o set mapping_id = m.id, object_name = m.object_name, upsert_field = m.upsert_column
    from (select m.id, m.table_name, m.object_name,
                 (select f.column_name from hc._mapping_fields f
                   where f.mapping_id = m.id and lower(f.field_name) = lower(m.config->>'upsert_field')) upsert_column
            from hc._mappings m where m.connection_id = c.id offset 0) m
   where m.table_name = o.table_name;

  -- What the mapped row looks like now: does it still exist, has it an sfid, its external id. (Its
  -- values through the capture's cast of the row type to hstore, made when the mapping was applied:
  -- only where a create may be sent, an INSERT entry or a row without sfid, see below.)
  for t in select distinct o.table_name, o.upsert_field from _ob_ops o where o.mapping_id is not null loop
    execute format($q$update _ob_ops o set row_exists = true, row_sfid = r.sfid,
                                           row_vals = case when o.first_action = 'INSERT' or coalesce(r.sfid, o.log_sfid) is null
                                                           then hc._hstore_text(r::%s, array['id', 'sfid', '_hc_lastop', '_hc_err']) end,
                                           upsert_value = %s
                        from %I.%I r where o.table_name = $1 and r.id = o.record_id$q$,
                   hc._hstore_type(),
                   case when t.upsert_field is null then 'null' else format('r.%I::text', t.upsert_field) end,
                   c.schema_name, t.table_name)
      using t.table_name;
  end loop;

  -- Creates whose outcome is unknown (sent, the answer lost: hc._outbound_attempts still holds them).
  update _ob_ops o set attempted = true
   where exists (select 1 from hc._outbound_attempts a
                  where a.connection_id = c.id and a.table_name = o.table_name and a.record_id = o.record_id);
end;
$fn$;

-- Claim step 5: what each op does in Salesforce (insert, update, delete, or nothing and why).
create or replace function hc._claim_decide(c hc.connections)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  tl text := format('%I._trigger_log', c.schema_name);
begin
  -- A row deleted before its create's outcome was known: the create may have landed (or landed and
  -- its write-back failed, the entry keeping the Id). Its record must go too, or it stays in Salesforce
  -- and a re-read brings the deleted row back: a delete op, of the known Id or of whatever the
  -- lost-create lookup finds (nothing found: nothing to delete).
  update _ob_ops o set action = case
      when o.mapping_id is null then null
      when o.first_action = 'INSERT' and (o.last_action = 'DELETE' or not coalesce(o.row_exists, false))
           and (o.attempted or o.log_sfid is not null) then 'delete'
      when o.first_action = 'INSERT' and (o.last_action = 'DELETE' or not coalesce(o.row_exists, false)) then null
      when o.first_action = 'INSERT' and coalesce(o.row_sfid, '') = '' then 'insert'
      when o.first_action = 'INSERT' then 'update'           -- re-queued insert of a row Salesforce already has
      when o.last_action = 'DELETE' then 'delete'
      else 'update' end,
    ignore_reason = case
      when o.mapping_id is null then 'no mapping for table ' || o.table_name
      when o.first_action = 'INSERT' and (o.last_action = 'DELETE' or not coalesce(o.row_exists, false))
           and not (o.attempted or o.log_sfid is not null)
        then 'row deleted before it was sent: nothing to create' end;

  -- A create sends the row as it is now: a failed INSERT re-queued by hc.retry after the row was fixed
  -- carries the fix, and later changes of a row not yet created are not sent as separate updates first.
  update _ob_ops o set vals = hc._hstore_concat(coalesce(o.vals, ''), o.row_vals) where o.action = 'insert' and o.row_vals is not null;

  -- So an INSERT entry holds values older than what any attempt of its create sent. When such a create
  -- is in doubt and its record is known already (the read side found it by its external id: the row has
  -- the sfid, and the op is an update), the INSERT's own values do not go again: only the later entries'
  -- (and of those, the writer leaves out what every attempt sent). Sent whole, a value captured at insert
  -- went over a user's change made since (the convergence test, latest, seed 882388341: a Department the
  -- row set right after its insert, then changed in Salesforce, became null on both sides).
  update _ob_ops o
     set vals = coalesce((select hc._hstore_of(array_agg(l.key), array_agg(l.value))
                            from (select distinct on (kv.key) kv.key, kv.value
                                    from _ob_cand y cross join lateral hc._hstore_each(y.vals) kv
                                   where y.table_name = o.table_name and y.record_id = o.record_id and y.action <> 'INSERT'
                                   order by kv.key, y.id desc) l), '')
   where o.action = 'update' and o.first_action = 'INSERT' and o.attempted;

  -- A delete needs the Id Salesforce knows; an insert that never happened needs no delete.
  update _ob_ops o set action = null, ignore_reason = 'row was never created in Salesforce: nothing to delete'
   where o.action = 'delete' and coalesce(o.log_sfid, o.row_sfid) is null and not coalesce(o.attempted, false);

  -- An update of a row Salesforce does not have yet (no sfid):
  --  * its create is queued or in flight (the record's INSERT entry NEW or PENDING): it waits for it,
  --    not claimed, NEW;
  --  * otherwise its create failed (Salesforce refused it, or a value could not be typed) and the
  --    application has changed the row since. The change is the application's fix, so the row is
  --    created now with its current values: nothing else would ever send it, while the row reads
  --    PENDING. If that create is refused too, the row reads FAILED again with the new error. A failed
  --    create whose record exists (its write-back failed: the FAILED entry keeps the Id) is sent as an
  --    update of that record instead (adopted), never created twice;
  --  * its row is gone: nothing to send (IGNORED; the delete was IGNORE at capture, without sfid),
  --    unless that create was sent again and its outcome is unknown (or its record exists): then its
  --    record is deleted, as for a row deleted before its INSERT's outcome was known (see above).
  if exists (select 1 from _ob_ops o where o.action = 'update' and coalesce(o.row_sfid, o.log_sfid) is null) then
    execute format($q$
      delete from _ob_ops o
       where o.action = 'update' and coalesce(o.row_sfid, o.log_sfid) is null
         and exists (select 1 from %s q where q.state in ('NEW', 'PENDING') and q.action = 'INSERT'
                        and q.table_name = o.table_name and q.record_id = o.record_id)$q$, tl);
    execute format($q$
      update _ob_ops o
         set action = 'resend',
             log_sfid = (select l.sfid from (select id, sfid from %1$I._trigger_log
                                              where state = 'FAILED' and action = 'INSERT' and sfid is not null
                                                and table_name = o.table_name and record_id = o.record_id
                                             union all
                                             select id, sfid from %1$I._trigger_log_archive
                                              where state = 'FAILED' and action = 'INSERT' and sfid is not null
                                                and table_name = o.table_name and record_id = o.record_id) l
                          order by l.id desc limit 1)
       where o.action = 'update' and coalesce(o.row_sfid, o.log_sfid) is null$q$, c.schema_name);
    update _ob_ops o
       set action = case when coalesce(o.row_exists, false) then 'insert'
                         when o.attempted or o.log_sfid is not null then 'delete' end,
           vals = case when coalesce(o.row_exists, false) then hc._hstore_concat(coalesce(o.vals, ''), o.row_vals) else o.vals end,
           ignore_reason = case when not coalesce(o.row_exists, false) and not (o.attempted or o.log_sfid is not null)
                                then 'row deleted before it was created in Salesforce: nothing to send' end
     where o.action = 'resend';
  end if;
end;
$fn$;

-- Claim step 7 (after the conflict rules): children whose parent Salesforce does not have yet wait.
create or replace function hc._claim_wait_for_parents(c hc.connections)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
begin
  -- A child whose relationship external-id column (e.g. account__external_id__c) names a parent row of a
  -- mapped table that Salesforce does not have yet (its create still queued, in this very claim, or
  -- FAILED) waits, NEW, for that parent: sent now it would only fail with Salesforce's "no such
  -- parent". Once the parent is created (after hc.retry of a failed one) the child goes.
  for t in
    select distinct o.mapping_id, f.column_name, pm.table_name as parent_table, pf.column_name as parent_column
      from _ob_ops o
      join hc._mapping_fields f on f.mapping_id = o.mapping_id and f.sf_type = 'relationship_external_id'
      join hc._mappings pm on pm.connection_id = c.id and lower(pm.object_name) = lower(f.reference_to[1])
      join hc._mapping_fields pf on pf.mapping_id = pm.id and lower(pf.field_name) = lower(f.target_field)
                                and pf.sf_type <> 'relationship_external_id'
     where o.action in ('insert', 'update')
  loop
    -- The wait is told once per waiting entry (hc.sync_log 'waiting_for_parent', naming the parent row),
    -- so an operator sees why a row is not sent.
    execute format($q$
      with w as (
        delete from _ob_ops o
         where o.mapping_id = $1 and o.action in ('insert', 'update') and hc._hstore_get(o.vals, $2) is not null
           and exists (select 1 from %1$I.%2$I p where p.%3$I::text = hc._hstore_get(o.vals, $2) and coalesce(p.sfid, '') = '')
        returning o.log_ids[1] entry, o.table_name, o.record_id, o.mapping_id, hc._hstore_get(o.vals, $2) parent_value)
      insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail)
      select $3, w.mapping_id, 'outbound', 'info', 'waiting_for_parent',
             format('%%s id %%s waits for its parent: %%s row with %%s = %%s is not in Salesforce yet (its create is queued, '
                    'in flight or FAILED; once it is created, after hc.retry if it failed, this row is sent)',
                    w.table_name, w.record_id, %2$L, %3$L, w.parent_value),
             jsonb_build_object('entry', w.entry, 'table', w.table_name, 'record_id', w.record_id,
                                'parent_table', %2$L, 'parent_column', %3$L, 'parent_value', w.parent_value)
        from w
       where not exists (select 1 from hc.sync_log s where s.connection_id = $3 and s.mapping_id = w.mapping_id
                            and s.event = 'waiting_for_parent' and s.detail @> jsonb_build_object('entry', w.entry))$q$,
                   c.schema_name, t.parent_table, t.parent_column)
      using t.mapping_id, t.column_name, c.id;
  end loop;
end;
$fn$;

-- Claim step 8: the bodies, typed for Salesforce; a value that cannot be typed fails its own op.
create or replace function hc._claim_bodies(c hc.connections)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  bad_field record;
  err_msg text;
  bad text;
begin
  -- The bodies, typed for Salesforce. A value that cannot be typed (the application retyped
  -- numberofemployees to text and wrote 'many') fails its own op, never the claim: the set-based
  -- statement is redone one op at a time, in subtransactions, only when it fails.
  begin
    update _ob_ops o set body = '{}'::jsonb where o.action = 'delete';
    -- (The CTE leaves the arrays behind: an UPDATE ... FROM carries whole rows of what it joins, and
    -- with the arrays in them 2,000 rows sorted 300 MB.)
    with b as materialized (
      select b.op_id, b.body
        from (select array_agg(x.op_id) ids, array_agg(x.mapping_id) mappings, array_agg(coalesce(x.vals, '')) vals,
                     array_agg(x.action = 'insert') for_insert
                from _ob_ops x where x.action in ('insert', 'update')) a,
             hc._outbound_bodies(a.ids, a.mappings, a.vals, a.for_insert) b)
    update _ob_ops o set body = b.body from b where b.op_id = o.op_id;
  exception when others then
    for t in select o.op_id, o.mapping_id, o.vals, o.action from _ob_ops o where o.action in ('insert', 'update') order by o.op_id loop
      begin
        update _ob_ops o set body = hc._outbound_body(o.mapping_id, coalesce(o.vals, ''), o.action = 'insert')
         where o.op_id = t.op_id;
      exception when others then
        get stacked diagnostics err_msg = message_text;
        -- Name the column: try each value alone.
        bad := null;
        for bad_field in select e.key, e.value, f.field_name, f.sf_type from hc._hstore_each(t.vals) e
                           join hc._mapping_fields f on f.mapping_id = t.mapping_id and f.column_name = e.key
                          order by e.key loop
          begin
            perform hc._outbound_body(t.mapping_id, hc._hstore_of(array[bad_field.key], array[bad_field.value]), t.action = 'insert');
          exception when others then
            bad := format('column %s value %s cannot be sent as Salesforce field %s (%s): ',
                          bad_field.key, quote_literal(bad_field.value), bad_field.field_name, bad_field.sf_type);
            exit;
          end;
        end loop;
        update _ob_ops o
           set error = format('INVALID_VALUE: %s%s. Fix the value (or the column''s type); the row''s next change '
                              'sends it again, or hc.retry once it is fixed.', coalesce(bad, ''), err_msg)
         where o.op_id = t.op_id;
      end;
    end loop;
  end;
end;
$fn$;

-- Claim step 9: the outcome of the claim in the queue: FAILED (untyped), IGNORED, or PENDING under the claimer.
create or replace function hc._claim_record(c hc.connections, p_claimer integer)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  n integer;
  tl text := format('%I._trigger_log', c.schema_name);
  t record;
  seqscan_was text;
begin
  -- Entries by id. Each op's entries are updated through the queue's primary key, one probe per op:
  -- sequential scans are ruled out for these statements. After a burst the queue's statistics can say
  -- it holds a single row, and the planner then scanned the whole queue once per op (a nested loop with
  -- the queue outside): 10-23 s for one claim of 2,000 in the CDC-on benchmark.
  seqscan_was := current_setting('enable_seqscan');
  perform set_config('enable_seqscan', 'off', true);

  -- Ops whose values could not be typed: FAILED now, the row told (_hc_lastop FAILED, _hc_err), as if
  -- Salesforce had refused them. Written as the sync (not captured); the status trigger keeps FAILED.
  if exists (select 1 from _ob_ops o where o.error is not null) then
    execute format($q$update %s t set state = 'FAILED', updated_at = now(), processed_at = now(),
                            processed_tx = txid_current(), sf_result = 1, sf_message = o.error
                        from _ob_ops o where o.error is not null and t.id = any(o.log_ids)$q$, tl);
    for t in select distinct o.table_name from _ob_ops o where o.error is not null loop
      execute format($q$update %I.%I r set _hc_lastop = 'FAILED', _hc_err = o.error
                          from _ob_ops o where o.table_name = $1 and o.error is not null and r.id = o.record_id$q$,
                     c.schema_name, t.table_name)
        using t.table_name;
    end loop;
    insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail)
    select c.id, o.mapping_id, 'outbound', 'warn', 'write_failed', o.error,
           jsonb_build_object('entry', o.op_id, 'record_id', o.record_id, 'action', o.action)
      from _ob_ops o where o.error is not null;
    update _ob_ops o set action = null where o.error is not null;
  end if;

  -- Nothing to send: IGNORED, processed now.
  execute format($q$update %s t set state = 'IGNORED', updated_at = now(), processed_at = now(),
                          processed_tx = txid_current(), sf_message = o.ignore_reason
                      from _ob_ops o where o.action is null and o.error is null and t.id = any(o.log_ids)$q$, tl);

  -- The rest: PENDING, owned by this claimer.
  insert into hc._outbound_claims (connection_id, log_id, op_id, claimer, action)
  select c.id, l, o.op_id, p_claimer, o.action from _ob_ops o, unnest(o.log_ids) l where o.action is not null;
  execute format($q$update %s t set state = 'PENDING', updated_at = now()
                      from _ob_ops o where o.action is not null and t.id = any(o.log_ids)$q$, tl);
  get diagnostics n = row_count;
  perform set_config('enable_seqscan', seqscan_was, true);
end;
$fn$;

-- Claims work for one writer: NEW → PENDING, oldest first, FOR UPDATE SKIP LOCKED. Returns one JSON
-- op per Salesforce call item:
--   {op_id, log_ids, mapping_id, object, table, record_id, action: insert|update|delete, sfid,
--    body, upsert_field, upsert_value, attempts: [{started_at, sent}]}
-- merged (per connection write_algorithm): every NEW entry of a record condenses into one op, the newest
--   values winning; superseded entries end MERGED when the op completes.
-- ordered: one op per entry, in capture order; a record's later entries wait for its earlier one.
-- Records with an entry PENDING elsewhere are skipped (one op per record in flight). Claims are
-- serialised per connection by a transaction-level advisory lock, so two writers never split a record.
create or replace function hc.outbound_claim(connection_id integer, claimer integer, max_entries integer default 2000)
returns setof jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
-- The claim's statements read a few thousand rows of temporary tables that have no statistics, so the
-- planner's estimates run to millions of rows and, where the server has JIT, it compiled them: 1.1 s of
-- a 2.6 s claim of 2,000 entries on PostgreSQL 15, for statements that run in milliseconds.
set jit = off
as $fn$
declare
  c hc.connections;
  ready text[];
begin
  -- FOR SHARE: hc.pause() (an UPDATE of this row) waits for a running claim, and a claim that starts
  -- later sees PAUSED. Without it a claim that read IDLE could, in a later statement, pick up a change
  -- committed after the pause.
  select * into c from hc.connections where id = outbound_claim.connection_id for share;
  if not found then
    raise exception 'hcsync: connection % does not exist', connection_id using errcode = 'undefined_object';
  end if;
  perform pg_advisory_xact_lock(hc.lock_class('claim'), c.id);

  -- The steps, each a function of its own above; they hand their work on in the temporary tables
  -- _ob_cand (the entries taken) and _ob_ops (one op per record).
  perform hc._claim_take_over(c, claimer);

  -- Paused means paused: capture continues (the triggers), nothing is sent.
  if c.state = 'PAUSED' then
    return;
  end if;

  ready := hc._claim_ready_tables(c);
  perform hc._claim_candidates(c, ready, max_entries);
  perform hc._claim_condense(c);
  perform hc._claim_decide(c);
  -- Conflicts (sql/000050_conflicts.sql): records with an open delete conflict wait, NEW; parked fields
  -- and fields Salesforce owns are left out of updates.
  perform hc._conflicts_claim(c.id);
  perform hc._claim_wait_for_parents(c);
  perform hc._claim_bodies(c);
  perform hc._claim_record(c, claimer);

  return query
  select jsonb_build_object(
           'op_id', o.op_id, 'log_ids', to_jsonb(o.log_ids), 'mapping_id', o.mapping_id, 'object', o.object_name,
           'table', o.table_name, 'record_id', o.record_id, 'action', o.action,
           'sfid', coalesce(o.row_sfid, o.log_sfid),
           'body', o.body,
           'upsert_field', case when o.action = 'insert' and o.upsert_value is not null
                                then (select f.field_name from hc._mapping_fields f
                                       where f.mapping_id = o.mapping_id and f.column_name = o.upsert_field) end,
           'upsert_value', case when o.action = 'insert' then o.upsert_value end,
           -- A create Salesforce accepted whose write-back failed (entry FAILED with the sfid, then
           -- hc.retry): the record exists, so it is sent as an update of it and reported as the insert.
           'adopted', o.action = 'insert' and o.log_sfid is not null,
           -- one per version of what was sent (hc._outbound_attempts.earlier); also for the update of a
           -- create in doubt whose record the read side has found (the row took its sfid by external id):
           -- what an attempt sent is not sent again (sidecar/sync/outbound/adopt.ts)
           'attempts', coalesce((select jsonb_agg(jsonb_build_object('log_id', a.log_id, 'started_at', a.started_at, 'sent', v.sent,
                                                                     'upsert_field', a.upsert_field, 'found_sfid', a.found_sfid)
                                                  order by a.started_at, v.n)
                                   from hc._outbound_attempts a,
                                        jsonb_array_elements(a.earlier || jsonb_build_array(a.sent)) with ordinality v(sent, n)
                                  where a.connection_id = c.id and a.table_name = o.table_name and a.record_id = o.record_id
                                    and (o.action = 'insert' or (o.action = 'update' and o.first_action = 'INSERT')
                                         or (o.action = 'delete' and coalesce(o.row_sfid, o.log_sfid) is null))),
                                '[]'::jsonb))
    from _ob_ops o
   where o.action is not null
   order by o.op_id;
end;
$fn$;

-- Records the creates about to be sent, committed before the call. ops: [{op_id, table, record_id,
-- object, body, upsert_field?}] (an upsert's body holds its external id value too: if the row is
-- deleted before the outcome is known, the record is found by it and deleted).
create or replace function hc.outbound_attempt(connection_id integer, claimer integer, ops jsonb)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into hc._outbound_attempts (connection_id, table_name, record_id, log_id, object_name, sent, upsert_field, claimer)
  select outbound_attempt.connection_id, o->>'table', (o->>'record_id')::int, (o->>'op_id')::int, o->>'object', o->'body',
         nullif(o->>'upsert_field', ''), outbound_attempt.claimer
    from jsonb_array_elements(ops) o
    join hc._outbound_claims k on k.connection_id = outbound_attempt.connection_id and k.log_id = (o->>'op_id')::int
                              and k.claimer = outbound_attempt.claimer
  on conflict (connection_id, table_name, record_id, log_id)
  do update set sent = excluded.sent, upsert_field = excluded.upsert_field, sent_at = clock_timestamp(), claimer = excluded.claimer,
                earlier = case when _outbound_attempts.sent = excluded.sent
                                 or exists (select 1 from jsonb_array_elements(_outbound_attempts.earlier) e where e = _outbound_attempts.sent)
                               then _outbound_attempts.earlier
                               else _outbound_attempts.earlier || jsonb_build_array(_outbound_attempts.sent) end;
$$;

-- Completion step 1: the answers this claimer may still record (_ob_res), each op's row and new _hc_lastop.
create or replace function hc._complete_results(c hc.connections, p_claimer integer, results jsonb)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  tl text := format('%I._trigger_log', c.schema_name);
  n integer;
begin
  create temp table if not exists _ob_res (
    op_id integer, log_ids integer[], table_name text, record_id integer, action text, outcome text, sfid text,
    error text, lastop text, newer boolean, claimed_at timestamptz
  ) on commit drop;
  truncate _ob_res;
  -- (the action is the claim's: hc._outbound_claims recorded it)
  with r as (
    select (e->>'op_id')::int op_id, e->>'outcome' outcome, nullif(e->>'sfid', '') sfid, e->>'error' error
      from jsonb_array_elements(results) e),
  mine as (
    delete from hc._outbound_claims k using r
     where k.connection_id = c.id and k.claimer = p_claimer and k.op_id = r.op_id
    returning k.op_id, k.log_id, k.action, k.claimed_at)
  insert into _ob_res (op_id, log_ids, outcome, sfid, error, action, claimed_at)
  select r.op_id, array_agg(m.log_id order by m.log_id), r.outcome, r.sfid, r.error, max(m.action), min(m.claimed_at)
    from r join mine m on m.op_id = r.op_id
   group by r.op_id, r.outcome, r.sfid, r.error;
  get diagnostics n = row_count;

  -- (Each op's entry by its id: joined instead, the queue was read whole, a seq scan of 100,000 entries.)
  execute format($q$update _ob_res o set (table_name, record_id) = (select t.table_name, t.record_id from %s t where t.id = o.op_id)$q$, tl);
  analyze _ob_res;

  -- Rows with a newer change still queued (not part of this op), looked up by record_id (OFFSET 0 keeps
  -- the state test out of the index probe). A probe through the state index read every queued entry
  -- for every row (10,000 queued updates made each write-back cost seconds); a hash join against the
  -- queue, which replaced it, still read all 100,000 NEW entries of a burst for each batch of 2,000.
  execute format($q$update _ob_res o set newer = true
                     where exists (select 1 from (select q.id, q.table_name, q.state from %s q where q.record_id = o.record_id offset 0) q
                                    where q.table_name = o.table_name and q.state in ('NEW', 'PENDING')
                                      and not q.id = any(o.log_ids))$q$, tl);

  update _ob_res o set lastop = case when o.outcome = 'failed' then 'FAILED'
                                     when o.action = 'insert' then 'INSERTED'
                                     when o.action = 'update' then 'UPDATED' end
   where o.outcome in ('ok', 'failed') and o.action <> 'delete';
  return n;
end;
$fn$;

-- Completion step 2: the rows, locked in id order, take their sfid and _hc_lastop; phantom rows of our
-- creates go and their records are queued to be read again (the count is returned).
create or replace function hc._complete_write_back(c hc.connections)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  w record;
  locked bigint;
  phantom text;
  writeback text;
  err_msg text;
  n_reread integer;
  reread integer := 0;   -- records queued to be read again (phantom rows removed)
  hash_was text := current_setting('enable_hashjoin');
  merge_was text := current_setting('enable_mergejoin');
begin
  for t in select distinct table_name from _ob_res where lastop is not null order by table_name loop
    continue when to_regclass(format('%I.%I', c.schema_name, t.table_name)) is null;
    -- The rows are locked first, in id order, the order the read side locks them in (hc.inbound_merge
    -- and the change-event batch): with both paths taking row locks in one order they cannot deadlock.
    execute format($q$select count(*) from (select 1 from %I.%I r where r.id in (select o.record_id from _ob_res o
                                             where o.table_name = $1 and o.lastop is not null)
                                             order by r.id for update of r) x$q$, c.schema_name, t.table_name)
      using t.table_name into locked;
    -- The read side may have stored the record we just created as a row of its own before this
    -- write-back (HC's duplicate-record race: without an upsert field nothing matches the CDC echo or a
    -- re-read to the app's row). A row holding the sfid Salesforce just gave us that the sync made (no
    -- INSERT of the application's in the trigger log or its archive) is that echo, even when the
    -- application has changed it since (its changes were sent to that same record, or are queued with
    -- its sfid): it goes (not captured, so nothing is deleted in Salesforce) and the application's row
    -- takes the sfid. hc.outbound_echo_pending keeps the CDC echo from creating such a row in the first
    -- place; this covers re-reads and the drift sweep. What that row got from Salesforce (a flow's values
    -- on save, SystemModstamp) goes with it, and no change event brings it again: the record is queued to
    -- be read again, so the application's row gets it.
    phantom := format($q$
      with gone as (
        delete from %1$I.%2$I d using _ob_res o
         where o.table_name = $1 and o.action = 'insert' and o.outcome in ('ok', 'failed') and d.sfid = o.sfid
           and d.id <> o.record_id
           and not exists (select 1 from %1$I._trigger_log l where l.table_name = $1 and l.record_id = d.id and l.action = 'INSERT')
           and not exists (select 1 from %1$I._trigger_log_archive l where l.table_name = $1 and l.record_id = d.id and l.action = 'INSERT')
           %%s
        returning d.sfid)
      insert into hc.inbound_rereads as q (mapping_id, sfid, not_before)
      select m.id, gone.sfid, now() from gone join hc._mappings m on m.connection_id = %3$s and m.table_name = $1
      on conflict (mapping_id, sfid) do nothing$q$, c.schema_name, t.table_name, c.id);
    -- Write back (a sync session: not captured). _hc_lastop is set explicitly so the status trigger
    -- keeps it. A create's sfid is written back also when the op failed with one: an adopted create
    -- (sent as an update of the record it made) whose update Salesforce refused, the record there. A
    -- successful update of a row with a newer change still queued leaves the row alone: it stays PENDING
    -- until that change is written too.
    -- The rows are written in sfid order, as the read side enters the records it does not know
    -- (hc.inbound_merge): the read side may be entering the very record just created as a phantom row,
    -- uncommitted, and two sessions entering the same two sfids into the unique index in opposite orders
    -- deadlock. (The ordered results drive a nested loop over the rows' primary key: a hash or merge join
    -- would write them in the table's order.)
    writeback := format($q$
      update %1$I.%2$I r
         set sfid = case when o.action = 'insert' then coalesce(o.sfid, r.sfid) else r.sfid end,
             _hc_lastop = o.lastop,
             _hc_err = case when o.outcome = 'failed' then o.error end
        from (select * from _ob_res o where o.table_name = $1 and o.lastop is not null %%s order by o.sfid, o.op_id) o
       where r.id = o.record_id
         and (o.lastop <> 'UPDATED' or o.newer is not true)$q$, c.schema_name, t.table_name);
    begin
      execute format(phantom, '') using t.table_name;
      get diagnostics n_reread = row_count;
      reread := reread + n_reread;
      perform set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true);
      execute format(writeback, '') using t.table_name;
      perform set_config('enable_hashjoin', hash_was, true), set_config('enable_mergejoin', merge_was, true);
    exception
      -- A deadlock, serialization failure or lock timeout says nothing about the row: the whole call
      -- fails and the writer records the same results again (it still holds the claims).
      when deadlock_detected or serialization_failure or lock_not_available or query_canceled then
        raise;
      when others then
      -- One row at a time. A unique violation on sfid raised because a read-side transaction committed
      -- its row for our record while we waited is cured here too: that row is visible now and goes.
      -- (The join settings are back as they were: the block's subtransaction took them with it.)
      for w in select o.op_id from _ob_res o where o.table_name = t.table_name and o.lastop is not null order by o.sfid, o.op_id loop
        begin
          execute format(phantom, 'and o.op_id = $2') using t.table_name, w.op_id;
          get diagnostics n_reread = row_count;
          reread := reread + n_reread;
          execute format(writeback, 'and o.op_id = $2') using t.table_name, w.op_id;
        exception
          when deadlock_detected or serialization_failure or lock_not_available or query_canceled then
            raise;
          when others then
          get stacked diagnostics err_msg = message_text;
          update _ob_res o
             set error = format('WRITE_BACK_FAILED: Salesforce accepted the %s%s, but writing the result to row %s.%s id %s failed: %s. '
                                'Fix the cause (a trigger or constraint on the table), then hc.retry sends the row again%s.',
                                o.action, coalesce(' (record ' || o.sfid || ')', ''),
                                c.schema_name, o.table_name, o.record_id, err_msg,
                                case when o.action = 'insert' and o.sfid is not null
                                     then ' as an update of that record (it is not created twice)' else '' end),
                 outcome = 'failed', lastop = 'FAILED'
           where o.op_id = w.op_id;
          begin   -- tell the row, if the row lets us
            execute format($q$update %I.%I r set _hc_lastop = 'FAILED', _hc_err = o.error
                                from _ob_res o where o.op_id = $1 and r.id = o.record_id$q$, c.schema_name, t.table_name)
              using w.op_id;
          exception when others then
            null;
          end;
        end;
      end loop;
    end;
  end loop;
  return reread;
end;
$fn$;

-- Completion step 3: the queue's entries take their outcome.
create or replace function hc._complete_entries(c hc.connections)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  tl text := format('%I._trigger_log', c.schema_name);
  seqscan_was text;
  log_table text;
begin
  -- The entries by id, as in hc.outbound_claim ('Entries by id').
  seqscan_was := current_setting('enable_seqscan');
  perform set_config('enable_seqscan', 'off', true);
  -- Transient: back to the queue as they were.
  execute format($q$update %s t set state = 'NEW', updated_at = now()
                      from _ob_res o where o.outcome = 'retry' and t.id = any(o.log_ids)$q$, tl);

  -- A failed write-back of a create keeps the record's sfid in the entry: the retry adopts it.
  execute format($q$update %s t set state = case when o.outcome = 'failed' then 'FAILED'
                                                  when t.id = o.op_id then 'SUCCESS' else 'MERGED' end,
                                     updated_at = now(), processed_at = now(), processed_tx = txid_current(),
                                     sf_result = case when o.outcome = 'failed' then 1 else 0 end,
                                     sf_message = case when o.outcome = 'failed' then o.error end,
                                     sfid = coalesce(t.sfid, o.sfid)
                      from _ob_res o where o.outcome in ('ok', 'failed') and t.id = any(o.log_ids)$q$, tl);
  perform set_config('enable_seqscan', seqscan_was, true);

  -- A create that succeeded settles the record's earlier failed creates: the application's fix (a later
  -- change of the row) was sent as this create, with the row's values as they are. They become MERGED,
  -- so hc.write_errors no longer lists a failure that is fixed, and hc.retry cannot send the refused
  -- values again over the record that now exists. So does one hc.retry put back in the queue while
  -- this create was on its way (NEW again): claimed next, it went as an update with the refused values.
  -- Put back from the archive, it is a new entry (a later id) of the failed create's transaction: older
  -- by its txid than the change that created the record.
  if exists (select 1 from _ob_res where action = 'insert' and outcome = 'ok') then
    foreach log_table in array array['_trigger_log', '_trigger_log_archive'] loop
      execute format($q$update %1$I.%2$I t set state = 'MERGED', updated_at = now(),
                               sf_message = format('settled: entry %%s created the record after this create failed (%%s)', o.op_id, t.sf_message)
                          from _ob_res o
                         where o.action = 'insert' and o.outcome = 'ok' and t.table_name = o.table_name
                           and t.record_id = o.record_id and t.state in ('FAILED', 'NEW')
                           and (t.id < o.op_id or t.txid < (select f.txid from %1$I._trigger_log f where f.id = o.op_id))
                           and t.action = 'INSERT' and t.sfid is null$q$, c.schema_name, log_table);
    end loop;
  end if;
end;
$fn$;

-- Completion step 4: a create that was in doubt (sent by an earlier claim, its answer lost) and is settled
-- now, its record found: while we did not know, others may have changed the record (another user, a flow),
-- and the adopted create sent only what was ours. The record is read again, so the row gets the rest, or
-- goes when a user deleted the record (the read side's delete rules). Only where the row holds the
-- record's sfid; a create sent once (its attempt made by this very claim) is not read again. Returns how
-- many were queued.
create or replace function hc._complete_rereads(c hc.connections)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  n integer;
  queued integer := 0;
begin
  for t in select distinct o.table_name from _ob_res o
            where o.outcome in ('ok', 'failed') and o.action in ('insert', 'update') and o.sfid is not null
              and exists (select 1 from hc._outbound_attempts a
                           where a.connection_id = c.id and a.table_name = o.table_name and a.record_id = o.record_id
                             and a.started_at < o.claimed_at) loop
    continue when to_regclass(format('%I.%I', c.schema_name, t.table_name)) is null;
    execute format($q$
      insert into hc.inbound_rereads as q (mapping_id, sfid, not_before, after_writes)
      select distinct m.id, o.sfid, now(), true
        from _ob_res o
        join hc._mappings m on m.connection_id = $2 and m.table_name = o.table_name
        join %I.%I r on r.id = o.record_id and r.sfid = o.sfid
       where o.table_name = $1 and o.outcome in ('ok', 'failed') and o.action in ('insert', 'update')
         and exists (select 1 from hc._outbound_attempts a
                      where a.connection_id = $2 and a.table_name = o.table_name and a.record_id = o.record_id
                        and a.started_at < o.claimed_at)
      on conflict (mapping_id, sfid) do nothing$q$, c.schema_name, t.table_name)
      using t.table_name, c.id;
    get diagnostics n = row_count;
    queued := queued + n;
  end loop;
  return queued;
end;
$fn$;

-- Completion step 5: what follows from the outcomes: attempts settled, deletes of records whose row went
-- meanwhile, the mapping's last write, failures in hc.sync_log.
create or replace function hc._complete_follow_ups(c hc.connections)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  tl text := format('%I._trigger_log', c.schema_name);
  t record;
begin
  -- The outcome of these creates is known now (a delete of a row whose create was in doubt found the
  -- record and deleted it, or found none; an update went to the record the read side found).
  delete from hc._outbound_attempts a using _ob_res o
   where a.connection_id = c.id and a.table_name = o.table_name and a.record_id = o.record_id
     and o.outcome in ('ok', 'failed');

  -- Created, but the row was deleted meanwhile: delete the new record too (as a queued entry of ours).
  for t in select distinct table_name from _ob_res where action = 'insert' and outcome = 'ok' and sfid is not null loop
    continue when to_regclass(format('%I.%I', c.schema_name, t.table_name)) is null;
    execute format($q$
      insert into %3$s (txid, created_at, updated_at, state, action, table_name, record_id, sfid, old)
      select txid_current(), clock_timestamp(), clock_timestamp(), 'NEW', 'DELETE', o.table_name, o.record_id, o.sfid,
             hc._hstore_of(array['sfid'], array[o.sfid])
        from _ob_res o
       where o.table_name = $1 and o.action = 'insert' and o.outcome = 'ok' and o.sfid is not null
         and not exists (select 1 from %1$I.%2$I r where r.id = o.record_id)$q$, c.schema_name, t.table_name, tl)
      using t.table_name;
  end loop;

  update hc._mappings m set last_write_at = now()
   where m.connection_id = c.id and m.table_name in (select table_name from _ob_res where outcome = 'ok');

  -- A parked conflict recorded while this op was being claimed (after a resume the writer and the reader
  -- start at once): the claim may not have seen it, and sent the parked value. The conflict says so
  -- (sf_overwritten), so that the operator's choice is sent whatever it is. (Said of a claim that did see
  -- it, it only costs that send.)
  update hc.conflicts k set sf_overwritten = true
    from _ob_res o join hc._mappings m on m.connection_id = c.id and m.table_name = o.table_name
   where o.outcome = 'ok' and o.action in ('update', 'insert') and k.mapping_id = m.id and k.record_id = o.record_id
     and k.kind = 'update' and k.resolved_at is null and not k.sf_overwritten
     and k.detected_at >= o.claimed_at - interval '5 seconds';

  insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail)
  select c.id, m.id, 'outbound', 'warn', 'write_failed', o.error,
         jsonb_build_object('entry', o.op_id, 'record_id', o.record_id, 'action', o.action, 'sfid', o.sfid)
    from _ob_res o left join hc._mappings m on m.connection_id = c.id and m.table_name = o.table_name
   where o.outcome = 'failed';
end;
$fn$;

-- Records what the lost-create lookup found, before anything is sent to it. found: [{op_id, table,
-- record_id, sfid}] (an insert's earlier create is that record; a delete's is the record to delete). Only
-- for ops this claimer still holds. Later rounds take the record as found instead of looking it up again.
create or replace function hc.outbound_found(connection_id integer, claimer integer, found jsonb)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update hc._outbound_attempts a set found_sfid = f->>'sfid'
    from jsonb_array_elements(found) f
    join hc._outbound_claims k on k.connection_id = outbound_found.connection_id and k.log_id = (f->>'op_id')::int
                              and k.claimer = outbound_found.claimer
   where a.connection_id = outbound_found.connection_id and a.table_name = f->>'table'
     and a.record_id = (f->>'record_id')::int;
$$;

-- Records what Salesforce answered. results: [{op_id, outcome: 'ok'|'failed'|'retry', sfid?, error?}]; each op
-- is recorded as the action its claim decided (hc._outbound_claims.action)
--   ok      lead entry SUCCESS, superseded entries MERGED; sfid written back on insert; _hc_lastop
--           INSERTED/UPDATED (only when no newer change of the row waits: then it stays PENDING)
--   failed  entries FAILED with sf_message; the row gets _hc_lastop FAILED and _hc_err
--   retry   a transient failure: entries back to NEW, untouched (attempts kept: the outcome is unknown)
-- Only ops this claimer still holds are applied: a writer presumed dead cannot overwrite anything.
-- An insert whose row was deleted while the create was in flight queues the DELETE of the new record
-- (HC's "re-inserted record" anomaly cannot happen).
--
-- Write-back is set-based; when the statement fails (a user trigger raising, a constraint of the
-- app's), it is redone one row at a time in subtransactions, so one row's error never blocks its batch.
-- Such a row's entries end FAILED with the error and the sfid Salesforce gave: the record exists, and a
-- retry (hc.retry) sends the row as an update of that record instead of creating it a second time.
create or replace function hc.outbound_complete(connection_id integer, claimer integer, results jsonb)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
set jit = off   -- as in hc.outbound_claim
as $fn$
declare
  c hc.connections;
  n integer;
  reread integer;
begin
  select * into c from hc.connections where id = outbound_complete.connection_id;
  -- The steps, each a function of its own above; they hand their work on in the temporary table _ob_res.
  n := hc._complete_results(c, claimer, results);
  reread := hc._complete_write_back(c);
  perform hc._complete_entries(c);
  reread := reread + hc._complete_rereads(c);
  perform hc._complete_follow_ups(c);

  -- The read side takes its queued re-reads when nudged (it re-reads the mappings on hc_control).
  if reread > 0 then
    perform pg_notify('hc_control', c.schema_name);
  end if;

  return n;
end;
$fn$;

-- The read side asks before applying the CDC echo of our own writes (changeOrigin client=hcsync):
-- which of these records, unknown to the mapped table, may be creates of ours whose sfid is not written
-- back yet? While a create of this table is recorded in hc._outbound_attempts (committed before the
-- call, deleted in the transaction that writes the sfid back), an unknown record in an echo is skipped
-- instead of inserted as a second row: the writer's write-back (or, after a crash, the lookup of lost
-- creates) gives it to the application's row. Without an upsert field nothing else could match them.
create or replace function hc.outbound_echo_pending(mapping_id integer, sfids text[])
returns text[]
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $fn$
declare
  m hc._mappings;
  s text;
  held text[];
begin
  select * into m from hc._mappings where id = outbound_echo_pending.mapping_id;
  -- (An upsert's echo carries its external id: it matches the row without this.)
  if not found or not exists (select 1 from hc._outbound_attempts a
                               where a.connection_id = m.connection_id and a.table_name = m.table_name
                                 and a.upsert_field is null) then
    return '{}';
  end if;
  select schema_name into s from hc.connections where id = m.connection_id;
  execute format('select coalesce(array_agg(sfid), ''{}'') from %I.%I where sfid = any($1)', s, m.table_name)
    into held using sfids;
  return coalesce((select array_agg(x) from unnest(sfids) x where not x = any(held)), '{}');
end;
$fn$;

-- Which of these Salesforce ids the application's rows of a table already hold (the lost-create lookup
-- must not adopt them). A row the read side stored for a create of ours before the write-back (after a
-- crash, the re-read on start finds the record the dead writer created) does not count: the sync made
-- it (no INSERT of the application's in the trigger log or its archive), and the write-back of the
-- adopted record removes it. That holds after the application has changed such a row too: it sees a
-- second row for its own record (by its natural key, say) and changes both, which sends its change to
-- that record; counted as held, the record was not adopted and the row was created again (a duplicate
-- in both systems, found by the 30-minute soak).
create or replace function hc.outbound_held_sfids(connection_id integer, table_name text, sfids text[])
returns text[]
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $fn$
declare
  s text;
  held text[];
begin
  select c.schema_name into s from hc.connections c where c.id = outbound_held_sfids.connection_id;
  execute format($q$
    select coalesce(array_agg(r.sfid), '{}') from %1$I.%2$I r
     where r.sfid = any($1)
       and (exists (select 1 from %1$I._trigger_log l where l.table_name = $2 and l.record_id = r.id and l.action = 'INSERT')
            or exists (select 1 from %1$I._trigger_log_archive l where l.table_name = $2 and l.record_id = r.id and l.action = 'INSERT'))$q$,
    s, table_name) into held using sfids, table_name;
  return held;
end;
$fn$;

-- Gives back everything a writer holds (graceful stop): PENDING → NEW. Attempts stay.
create or replace function hc.outbound_release(connection_id integer, claimer integer)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  c hc.connections;
  ids integer[];
begin
  select * into c from hc.connections where id = outbound_release.connection_id;
  with d as (delete from hc._outbound_claims k where k.connection_id = c.id and k.claimer = outbound_release.claimer
             returning k.log_id)
  select array_agg(log_id) into ids from d;
  execute format($q$update %I._trigger_log set state = 'NEW', updated_at = now() where state = 'PENDING' and id = any($1)$q$,
                 c.schema_name) using ids;
  return coalesce(array_length(ids, 1), 0);
end;
$fn$;

-- Moves processed entries (SUCCESS, MERGED, IGNORED, IGNORE, READONLY, FAILED) older than keep_seconds
-- to _trigger_log_archive, and purges archived entries older than retention_days. FAILED entries are
-- archived too (HC's archive indexes them by state); hc.retry re-queues from either table.
create or replace function hc.outbound_archive(connection_id integer, retention_days integer default 31,
                                               keep_seconds integer default 0)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  c hc.connections;
  n integer;
begin
  select * into c from hc.connections where id = outbound_archive.connection_id;
  execute format($q$
    with moved as (
      delete from %1$I._trigger_log t
       where t.state in ('SUCCESS', 'MERGED', 'IGNORED', 'IGNORE', 'READONLY', 'FAILED')
         and coalesce(t.processed_at, t.updated_at, t.created_at) <= now() - make_interval(secs => $1)
      returning t.*)
    insert into %1$I._trigger_log_archive select * from moved
    on conflict (id) do update set state = excluded.state, updated_at = excluded.updated_at,
      processed_at = excluded.processed_at, processed_tx = excluded.processed_tx, sfid = excluded.sfid,
      sf_result = excluded.sf_result, sf_message = excluded.sf_message$q$, c.schema_name)
    using keep_seconds;
  get diagnostics n = row_count;
  execute format($q$delete from %I._trigger_log_archive
                     where coalesce(processed_at, created_at) < now() - make_interval(days => $1)$q$, c.schema_name)
    using retention_days;
  return n;
end;
$fn$;
