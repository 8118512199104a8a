-- The functions and views of sql/000050_conflicts.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- The policy of a mapping's config (manual when the key is absent).
create or replace function hc._conflict_policy(config jsonb)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(config->>'conflict_policy', 'manual');
$$;

-- The owner of a field ('pg', 'sf' or null) under a mapping's config (field names case-insensitive).
create or replace function hc._conflict_owner(config jsonb, field_name text)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select o.value from jsonb_each_text(coalesce(config->'field_ownership', '{}')) o
   where lower(o.key) = lower(field_name) limit 1;
$$;

-- A statement over a batch source (p_src, alias s, parameter $1 = the JSON rows) giving, for the row of
-- Id $3, its mapped fields typed as their columns and back to text (comparable with the row's hstore
-- text) keyed by column ($2), and when Salesforce had them.
create or replace function hc._conflict_incoming_sql(p_mapping_id integer, p_src text, p_fields text[], out q text, out cols text[],
                                                      out q_all text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  exprs text[];
  at_expr text;
begin
  select array_agg(i.column_name order by i.column_name),
         array_agg(format('((%s)::%s)::text', hc._inbound_cast(format('s.%I', i.soql_name), i.sf_type, i.pg_type), i.pg_type)
                   order by i.column_name)
    into cols, exprs
    from hc._inbound_fields i
   where i.mapping_id = p_mapping_id and i.soql_name = any (p_fields)
     and i.column_name not in ('sfid', 'id', '_hc_lastop', '_hc_err');
  at_expr := case when 'hcsync_at' = any (p_fields) then '(s.hcsync_at)::timestamptz'
                  when 'systemmodstamp' = any (cols) then
                    format('(%s)::timestamptz', hc._inbound_cast('s."SystemModstamp"', 'datetime', 'timestamp with time zone'))
                  else 'null::timestamptz' end;
  q := format('select jsonb_object($2, array[%s]::text[]), %s from %s where s."Id" = $3',
              coalesce(array_to_string(exprs, ', '), ''), at_expr, p_src);
  -- The same for many records at once ($3 an array of Ids): {Id: [values, at]}.
  q_all := format('select coalesce(jsonb_object_agg(s."Id", jsonb_build_array(jsonb_object($2, array[%s]::text[]), %s)), ''{}'') from %s where s."Id" = any ($3)',
                  coalesce(array_to_string(exprs, ', '), ''), at_expr, p_src);
end;
$$;

-- Takes columns out of a record's NEW local updates (their values are not to be sent); an entry left
-- with nothing is IGNORED, naming the conflict.
create or replace function hc._conflict_unsend(p_tlog text, p_table text, p_record_id integer, p_columns text[], p_conflict bigint, p_why text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  execute format($q$update %s l set "values" = hc._hstore_subset(l."values", $3), updated_at = now()
                     where l.table_name = $1 and l.record_id = $2 and l.state = 'NEW' and l.action = 'UPDATE'
                       and exists (select 1 from hc._hstore_each(l."values") kv where kv.key = any ($3))$q$, p_tlog)
    using p_table, p_record_id, p_columns;
  execute format($q$update %s l set state = 'IGNORED', updated_at = now(), processed_at = now(), processed_tx = txid_current(),
                            sf_message = $3
                     where l.table_name = $1 and l.record_id = $2 and l.state = 'NEW' and l.action = 'UPDATE'
                       and coalesce(l."values", '') = ''$q$, p_tlog)
    using p_table, p_record_id, format('conflict %s: %s', p_conflict, p_why);
end;
$$;

-- Queues a local update of a record's columns to be sent like any captured change (values as text).
create or replace function hc._conflict_send(p_tlog text, p_tbl text, p_table text, p_record_id integer, p_values jsonb)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_values is null or p_values = '{}' then
    return;
  end if;
  -- (created_at and updated_at one and the same moment, as the capture trigger writes them: an entry whose
  -- updated_at is later has been sent once, see hc._conflict_judge)
  execute format($q$insert into %s (txid, created_at, updated_at, state, action, table_name, record_id, sfid, old, "values")
                    select txid_current(), n.at, n.at, 'NEW', 'UPDATE', $1, t.id, t.sfid,
                           hc._hstore_text(t::%s, array['_hc_lastop', '_hc_err']),
                           hc._hstore_of(array(select jsonb_object_keys($3)), array(select $3->>k from jsonb_object_keys($3) k))
                      from %s t, (select clock_timestamp() as at) n where t.id = $2 and t.sfid is not null$q$, p_tlog, hc._hstore_type(), p_tbl)
    using p_table, p_record_id, p_values;
end;
$$;

-- Whether a local change of these columns of a record is on its way to Salesforce: claimed (PENDING), or
-- answered since this transaction began. Asked after the batch took the record's waiting changes out of
-- the queue: a writer may have claimed one after the batch read it as waiting.
create or replace function hc._conflict_claimed(p_tlog text, p_table text, p_record_id integer, p_columns text[])
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  found_one boolean;
begin
  execute format($q$select exists (select 1 from %s l where l.table_name = $1 and l.record_id = $2 and l.action = 'UPDATE'
                      and (l.state = 'PENDING' or (l.state in ('SUCCESS', 'MERGED') and l.processed_at >= now()))
                      and exists (select 1 from hc._hstore_each(l."values") kv where kv.key = any ($3)))$q$, p_tlog)
    using p_table, p_record_id, p_columns into found_one;
  return found_one;
end;
$$;

-- Creates a record again for a row Salesforce deleted while it was changed locally (the local side won):
-- the row loses its sfid and its waiting updates, and its INSERT is queued: the writer creates the
-- record from the row as it is and writes the new Id back.
create or replace function hc._conflict_recreate(p_tlog text, p_tbl text, p_table text, p_record_id integer, p_conflict bigint)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  execute format($q$update %s l set state = 'IGNORED', updated_at = now(), processed_at = now(), processed_tx = txid_current(), sf_message = $3
                     where l.table_name = $1 and l.record_id = $2 and l.state = 'NEW'$q$, p_tlog)
    using p_table, p_record_id, format('conflict %s: the record was deleted in Salesforce; it is created again from the row', p_conflict);
  execute format('update %s set sfid = null, _hc_lastop = ''PENDING'' where id = $1', p_tbl) using p_record_id;
  execute format($q$insert into %s (txid, created_at, updated_at, state, action, table_name, record_id, "values")
                    select txid_current(), clock_timestamp(), clock_timestamp(), 'NEW', 'INSERT', $1, t.id,
                           hc._hstore_text(t::%s, array['_hc_lastop', '_hc_err'])
                      from %s t where t.id = $2$q$, p_tlog, hc._hstore_type(), p_tbl)
    using p_table, p_record_id;
end;
$$;

-- Two values are the same change when equal but for case and surrounding blanks: Salesforce automation
-- rewrites what we send that way (a before-save flow lower-casing Email), and our own value coming back
-- so is no change of Salesforce's (the lost-create lookup matches sent values the same way).
create or replace function hc._conflict_same(a text, b text)
returns boolean
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select a is not distinct from b or coalesce(lower(btrim(a)) = lower(btrim(b)), false);
$$;

-- latest: is Salesforce's change the later one? Salesforce's times may come in whole seconds (a
-- SystemModstamp, an org's event header): then a Postgres change within that same second is a tie, and
-- a tie goes to Salesforce.
create or replace function hc._conflict_sf_later(sf_at timestamptz, pg_at timestamptz)
returns boolean
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when sf_at is null or pg_at is null then sf_at is not null
              when sf_at = date_trunc('second', sf_at) then sf_at >= date_trunc('second', pg_at)
              else sf_at >= pg_at end;
$$;

-- Brings back a row deleted here whose delete lost to Salesforce's change: the deleted row (p_old, the
-- delete's `old`) with Salesforce's values over it, under its old id, written as the sync writes (not
-- captured). The record is read again as well (hc.inbound_rereads), which refreshes every field. A row
-- that cannot go back (a unique value taken meanwhile) comes back through that read alone.
create or replace function hc._conflict_revive(p_mapping_id integer, p_tbl text, p_sfid text, p_old jsonb, p_sf jsonb)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  begin
    execute format('insert into %1$s select * from jsonb_populate_record(null::%1$s, $1) on conflict do nothing', p_tbl)
      using coalesce(p_old, '{}') || coalesce(p_sf, '{}') || jsonb_build_object('sfid', p_sfid, '_hc_lastop', 'SYNCED');
  exception when others then
    null;
  end;
  insert into hc.inbound_rereads as q (mapping_id, sfid, not_before) values (p_mapping_id, p_sfid, now())
  on conflict (mapping_id, sfid) do update set not_before = least(q.not_before, excluded.not_before);
end;
$$;

-- Conflict step 1 (per record): an open update conflict of the record follows both sides' latest values,
-- and its parked columns keep their local value.
create or replace function hc._conflict_follow_parked(m hc._mappings, p_origin text, rid integer, rsfid text, rh text, inc jsonb, at_sf timestamptz, inout st jsonb, out openc hc.conflicts)
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  p_mapping_id integer := m.id;
  refresh jsonb;
  fname text;
begin
  -- Parked columns keep their local value; the conflict follows both sides' latest values (not our
  -- own writes coming back: Salesforce's version stays the other user's).
  select * into openc from hc.conflicts c
   where c.mapping_id = p_mapping_id and c.sfid = rsfid and c.kind = 'update' and c.resolved_at is null
   for update;
  if found then
    select coalesce(jsonb_object_agg(col, inc->>col), '{}') into refresh
      from unnest(openc.columns) col where inc ? col and p_origin <> 'cdc-echo';
    for fname in select col from unnest(openc.columns) col where inc ? col loop
      st := st || jsonb_build_object(fname, 'pending');
    end loop;
    update hc.conflicts set sf_values = coalesce(sf_values, '{}') || refresh,
                            sf_at = coalesce(greatest(sf_at, at_sf), sf_at, at_sf),
                            pg_values = (select coalesce(jsonb_object_agg(col, hc._hstore_get(rh, col)), '{}') from unnest(openc.columns) col)
     where id = openc.id;
  end if;
end;
$fn$;

-- Conflict step 2 (per record): which changed columns conflict, and who wins each (the field's owner,
-- else the policy; 'parked' under manual). Returns {winner: [{col, field, base, pg_at, in_flight, owner}]}.
create or replace function hc._conflict_judge(m hc._mappings, p_origin text, rid integer, rsfid text, rh text, inc jsonb, at_sf timestamptz, st jsonb, openc hc.conflicts, pol text, tlog text, tarch text)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  p_mapping_id integer := m.id;
  since timestamptz;
  groups jsonb;
  e record;
  fname text;
  owner text;
  win text;
  pg_at timestamptz;
  sent_back boolean;
  sent_back_at timestamptz;
  sf_again boolean;
begin
  -- The local entries naming each column: the agreed value before them, when the last was made,
  -- whether one is on its way to Salesforce (PENDING, or sent since the incoming values were read).
  since := at_sf - interval '5 seconds';
  groups := '{}';
  for e in execute format($q$
      select kv.key as col,
             -- (a create of ours sent meanwhile: what it sent is what both sides agreed on)
             (array_agg(case when x.action = 'INSERT' then hc._hstore_get(x."values", kv.key) else hc._hstore_get(x.old, kv.key) end
                        order by x.id))[1] as base,
             -- values of ours Salesforce has or may have by now: seeing one of them is not a change there.
             -- (An entry back in the queue after it was sent, updated_at past created_at, may have landed:
             -- its call timed out, or its writer died, and Salesforce may still have done it.)
             array_agg(hc._hstore_get(x."values", kv.key)) filter (where x.state <> 'NEW' or x.updated_at > x.created_at) as ours,
             max(x.created_at) as pg_at, min(x.created_at) as first_at,
             bool_or((x.state <> 'NEW' or x.updated_at > x.created_at) and x.action = 'UPDATE') as in_flight
        -- (found by record_id alone, then filtered: see the same lookup in hc.inbound_merge)
        from (select id, action, state, old, "values", created_at, updated_at from (select * from %1$s where record_id = $2 offset 0) l
               where table_name = $1 and action in ('INSERT', 'UPDATE')
                 and (state in ('NEW', 'PENDING') or (state in ('SUCCESS', 'MERGED') and processed_at >= $3))
              union all
              select id, action, state, old, "values", created_at, updated_at from (select * from %2$s where record_id = $2 offset 0) l
               where $3 is not null and table_name = $1 and action in ('INSERT', 'UPDATE')
                 and state in ('SUCCESS', 'MERGED') and processed_at >= $3) x,
             hc._hstore_each(x."values") kv
       group by kv.key$q$, tlog, tarch)
    using m.table_name, rid, since
  loop
    continue when not (inc ? e.col) or not (st ? e.col) or st->>e.col not in ('pending', 'sent');
    continue when openc.id is not null and e.col = any (openc.columns);
    -- The row's value may be Salesforce's own, sent back after a conflict it won (our value had reached
    -- Salesforce over it: hc._conflict_send). That is no local change, and it is as old as Salesforce's
    -- change, not as new as its queueing. Asked once, where the incoming value differs from the row's and
    -- the answer matters (a change event of someone else's, or the latest policy).
    sent_back := false;
    sent_back_at := null;
    if (p_origin = 'cdc' or pol = 'latest') and not hc._conflict_same(inc->>e.col, hc._hstore_get(rh, e.col)) then
      select true, c.sf_at into sent_back, sent_back_at
        from hc.conflicts c
       where c.mapping_id = p_mapping_id and c.sfid = rsfid and c.kind = 'update' and c.winner = 'sf'
         and c.sf_overwritten and e.col = any (c.columns)
         and c.sf_values->>e.col is not distinct from hc._hstore_get(rh, e.col)
         and c.resolved_at >= e.pg_at - interval '5 seconds'
       order by c.id desc limit 1;
      sent_back := coalesce(sent_back, false);
    end if;
    -- Another change of such a field in Salesforce (a change event of someone else's) wins over it whatever
    -- the policy (unless Postgres owns the field), even one back to the value before our change, which the
    -- rules below would take for no change at all. So does one back to that value after our change of it
    -- was sent (PENDING, or answered) and made after our change was: Salesforce had our value, so someone
    -- set it back after our write landed. Taken for no change, the row kept our value while Salesforce kept
    -- theirs (seen in the convergence test: a user's change event right after our write's echo, before its
    -- answer was recorded). (An event older than our change, a record's CREATE arriving late, say, still
    -- reads as no change.)
    sf_again := case when p_origin = 'cdc'
                      and (sent_back or (e.in_flight and at_sf > e.pg_at and hc._conflict_same(inc->>e.col, e.base)
                                         and not hc._conflict_same(inc->>e.col, hc._hstore_get(rh, e.col))))
                     then hc._conflict_owner(m.config, (select f.field_name from hc._mapping_fields f
                                                         where f.mapping_id = p_mapping_id and f.column_name = e.col)) is distinct from 'pg'
                     else false end;
    if not sf_again then
      -- A column only sent (none of our changes of it waits) is judged on a change event of someone
      -- else's alone: a full row read after our write may carry our value as automation rewrote it,
      -- which the re-read rules handle.
      continue when st->>e.col = 'sent' and p_origin <> 'cdc';
      continue when hc._conflict_same(inc->>e.col, hc._hstore_get(rh, e.col));     -- both sides agree
      continue when hc._conflict_same(inc->>e.col, e.base);                          -- Salesforce did not change it
      -- Ours, coming back: an echo of our write (cdc-echo) or a full row read after it. A change event of
      -- someone else's (cdc: not marked client=hcsync) is their change even when it sets a value we sent.
      continue when p_origin <> 'cdc' and exists (select 1 from unnest(e.ours) o where hc._conflict_same(o, inc->>e.col));
      -- Postgres did not (in the end); a value of ours Salesforce automation re-cased and the row took back is no change
      continue when hc._conflict_same(hc._hstore_get(rh, e.col), e.base);
      -- Seen already (a poll page and a change event telling the same change).
      continue when exists (select 1 from hc.conflicts c where c.mapping_id = p_mapping_id and c.sfid = rsfid
                               and c.kind = 'update' and e.col = any (c.columns)
                               and c.sf_values->>e.col is not distinct from inc->>e.col
                               and c.detected_at >= e.first_at - interval '5 seconds');
    end if;
    select f.field_name into fname from hc._mapping_fields f where f.mapping_id = p_mapping_id and f.column_name = e.col;
    owner := hc._conflict_owner(m.config, fname);
    -- Under latest, a value sent back counts as of Salesforce's change.
    pg_at := case when pol = 'latest' and not sf_again then coalesce(sent_back_at, e.pg_at) else e.pg_at end;
    win := case when sf_again then 'sf'
                when owner in ('pg', 'sf') then owner
                when pol = 'sf_wins' then 'sf'
                when pol = 'pg_wins' then 'pg'
                when pol = 'latest' then case when hc._conflict_sf_later(coalesce(at_sf, now()), pg_at) then 'sf' else 'pg' end
                else 'parked' end;
    groups := jsonb_set(groups, array[win], coalesce(groups->win, '[]') || jsonb_build_array(jsonb_build_object(
      'col', e.col, 'field', fname, 'base', e.base, 'pg_at', pg_at, 'in_flight', e.in_flight,
      'owner', owner)), true);
  end loop;
  return groups;
end;
$fn$;

-- Conflict step 3 (per record): each group recorded in hc.conflicts (parked ones joined to the open
-- conflict) and its winner applied: Salesforce's value taken and the local change not sent, the local value
-- sent, or both held. Returns the columns' new marks, the open conflict, and how many were recorded.
create or replace function hc._conflict_settle(m hc._mappings, p_origin text, rid integer, rsfid text, rh text, inc jsonb, at_sf timestamptz, groups jsonb, pol text, tlog text, tbl text,
                                               inout st jsonb, inout openc hc.conflicts, out n integer)
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  p_mapping_id integer := m.id;
  g record;
  cid bigint;
  in_flight boolean;
  fname text;
begin
  n := 0;
  for g in select key as win, value as items from jsonb_each(groups) loop
    in_flight := exists (select 1 from jsonb_array_elements(g.items) i where (i->>'in_flight')::boolean);
    if g.win = 'parked' and openc.id is not null then
      cid := openc.id;
      update hc.conflicts c
         set columns = c.columns || array(select i->>'col' from jsonb_array_elements(g.items) i),
             fields = c.fields || array(select i->>'field' from jsonb_array_elements(g.items) i),
             pg_values = c.pg_values || (select jsonb_object_agg(i->>'col', hc._hstore_get(rh, i->>'col')) from jsonb_array_elements(g.items) i),
             sf_values = c.sf_values || (select jsonb_object_agg(i->>'col', inc->>(i->>'col')) from jsonb_array_elements(g.items) i),
             base_values = c.base_values || (select jsonb_object_agg(i->>'col', i->'base') from jsonb_array_elements(g.items) i),
             sf_overwritten = c.sf_overwritten or in_flight
       where c.id = cid;
    else
      insert into hc.conflicts (connection_id, mapping_id, object_name, table_name, record_id, sfid, kind, fields, columns,
                                pg_values, sf_values, base_values, pg_at, sf_at, policy, winner, origin, sf_overwritten,
                                resolved_at, resolved_by, resolution)
      select m.connection_id, p_mapping_id, m.object_name, m.table_name, rid, rsfid, 'update',
             array(select i->>'field' from jsonb_array_elements(g.items) i),
             array(select i->>'col' from jsonb_array_elements(g.items) i),
             (select jsonb_object_agg(i->>'col', hc._hstore_get(rh, i->>'col')) from jsonb_array_elements(g.items) i),
             (select jsonb_object_agg(i->>'col', inc->>(i->>'col')) from jsonb_array_elements(g.items) i),
             (select jsonb_object_agg(i->>'col', i->'base') from jsonb_array_elements(g.items) i),
             (select max((i->>'pg_at')::timestamptz) from jsonb_array_elements(g.items) i),
             at_sf,
             case when exists (select 1 from jsonb_array_elements(g.items) i where i->>'owner' in ('pg', 'sf'))
                  then 'ownership' else pol end,
             nullif(g.win, 'parked'), p_origin, in_flight,
             case when g.win <> 'parked' then now() end,
             case when g.win = 'parked' then null
                  when exists (select 1 from jsonb_array_elements(g.items) i where i->>'owner' in ('pg', 'sf')) then 'ownership'
                  else 'policy' end,
             case when g.win = 'parked' then null
                  when exists (select 1 from jsonb_array_elements(g.items) i where i->>'owner' in ('pg', 'sf')) then 'ownership'
                  else 'policy' end
      returning id into cid;
    end if;
    n := n + 1;
    if g.win = 'sf' then
      -- Salesforce's value is applied, and the local change of it is not sent. If one was on its
      -- way already, Salesforce's value is sent after it, so that it stays.
      for fname in select i->>'col' from jsonb_array_elements(g.items) i loop
        st := st || jsonb_build_object(fname, 'take');
      end loop;
      perform hc._conflict_unsend(tlog, m.table_name, rid, array(select i->>'col' from jsonb_array_elements(g.items) i),
                                  cid, 'Salesforce''s value won; this value is not sent');
      -- A writer may have claimed the entry after it was read as NEW above (after a resume the writer
      -- and this batch start at once): the unsend then found nothing NEW to take, and the local value
      -- is on its way after all. Salesforce's value follows it, as for one in flight from the start.
      if not in_flight then
        in_flight := hc._conflict_claimed(tlog, m.table_name, rid, array(select i->>'col' from jsonb_array_elements(g.items) i));
        if in_flight then
          update hc.conflicts set sf_overwritten = true where id = cid;
          perform hc._conflict_send(tlog, tbl, m.table_name, rid,
                                    (select jsonb_object_agg(i->>'col', inc->>(i->>'col')) from jsonb_array_elements(g.items) i));
        end if;
      elsif in_flight then
        perform hc._conflict_send(tlog, tbl, m.table_name, rid,
                                  (select jsonb_object_agg(i->>'col', inc->>(i->>'col')) from jsonb_array_elements(g.items) i
                                    where (i->>'in_flight')::boolean));
      end if;
    elsif g.win = 'pg' then
      -- The local value stays and is sent; if it went out before Salesforce's change, again.
      for fname in select i->>'col' from jsonb_array_elements(g.items) i loop
        st := st || jsonb_build_object(fname, 'pending');
      end loop;
      if in_flight then
        perform hc._conflict_send(tlog, tbl, m.table_name, rid,
                                  (select jsonb_object_agg(i->>'col', hc._hstore_get(rh, i->>'col')) from jsonb_array_elements(g.items) i
                                    where (i->>'in_flight')::boolean));
      end if;
    else
      -- Parked: the local value stays, and is not sent (the claim holds parked columns back). A claim
      -- made before the conflict was recorded may have taken it already: the conflict says so.
      for fname in select i->>'col' from jsonb_array_elements(g.items) i loop
        st := st || jsonb_build_object(fname, 'pending');
      end loop;
      if not in_flight and hc._conflict_claimed(tlog, m.table_name, rid, array(select i->>'col' from jsonb_array_elements(g.items) i)) then
        update hc.conflicts set sf_overwritten = true where id = cid;
      end if;
      select * into openc from hc.conflicts where id = cid;
    end if;
  end loop;
end;
$fn$;

-- Conflict step 4 (per record): a field Postgres owns that Salesforce changed alone keeps its value, which
-- is sent back, and the overruled change is recorded. Returns the new marks and 1 when it recorded one.
create or replace function hc._conflict_owned(m hc._mappings, p_origin text, rid integer, rsfid text, rh text, inc jsonb, at_sf timestamptz, owned_pg text[], tlog text, tbl text,
                                              inout st jsonb, out n integer)
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  p_mapping_id integer := m.id;
  undo jsonb;
  fname text;
begin
  n := 0;
  -- A field Postgres owns that Salesforce changed alone (no local change of it waits): the row keeps
  -- its value, which is sent back to Salesforce, and the overruled change is recorded.
  if cardinality(owned_pg) > 0 and p_origin <> 'cdc-echo' then
    select jsonb_object_agg(col, hc._hstore_get(rh, col)) into undo
      from unnest(owned_pg) col
     where inc ? col and not (st ? col) and not hc._conflict_same(inc->>col, hc._hstore_get(rh, col))
       and not exists (select 1 from hc.conflicts c where c.mapping_id = p_mapping_id and c.sfid = rsfid and c.kind = 'update'
                          and col = any (c.columns) and c.sf_values->>col is not distinct from inc->>col
                          and c.detected_at > now() - interval '1 minute');
    if undo is not null then
      insert into hc.conflicts (connection_id, mapping_id, object_name, table_name, record_id, sfid, kind, fields, columns,
                                pg_values, sf_values, pg_at, sf_at, policy, winner, origin, resolved_at, resolved_by, resolution)
      select m.connection_id, p_mapping_id, m.object_name, m.table_name, rid, rsfid, 'update',
             array(select f.field_name from jsonb_object_keys(undo) c join hc._mapping_fields f on f.mapping_id = p_mapping_id and f.column_name = c),
             array(select c from jsonb_object_keys(undo) c), undo,
             (select jsonb_object_agg(c, inc->>c) from jsonb_object_keys(undo) c),
             null, at_sf, 'ownership', 'pg', p_origin, now(), 'ownership', 'ownership';
      n := n + 1;
      for fname in select jsonb_object_keys(undo) loop
        st := st || jsonb_build_object(fname, 'pending');
      end loop;
      perform hc._conflict_send(tlog, tbl, m.table_name, rid, undo);
    end if;
  end if;
end;
$fn$;

-- Inbound, called by hc.inbound_merge once it knows the local changes of the batch's rows (p_pend,
-- {record_id: {column: "pending" | "sent"}}), before it builds its SET list. Finds the conflicts,
-- records them, applies the policy, and returns the map hc.inbound_merge applies with: a column marked
-- "take" gets Salesforce's value, "pending" keeps the local one. Parked columns of open conflicts are
-- kept too, and their conflict row follows Salesforce's latest value. Returns {"pend": {...}, "conflicts": n}.
create or replace function hc._conflicts_inbound(p_mapping_id integer, p_origin text, p_src text, p_fields text[],
                                                 p_rows jsonb, p_pend jsonb)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  tbl text;
  tlog text;
  tarch text;
  pol text;
  pend jsonb := coalesce(p_pend, '{}');
  recs integer[];
  parked integer[];
  owned_pg text[] := '{}';
  inc_sql text;
  inc_all_sql text;
  inc_cols text[];
  incoming jsonb;
  sfids text[];
  r record;
  inc jsonb;
  at_sf timestamptz;
  st jsonb;
  openc hc.conflicts;
  groups jsonb;
  n integer := 0;
  res record;   -- a step's answer
begin
  t := hc._inbound_target(p_mapping_id);
  tbl := format('%I.%I', t.schema_name, (t.m).table_name);
  tlog := format('%I._trigger_log', t.schema_name);
  tarch := format('%I._trigger_log_archive', t.schema_name);
  pol := hc._conflict_policy((t.m).config);

  recs := array(select k::integer from jsonb_object_keys(pend) k);
  if exists (select 1 from hc.conflicts c where c.mapping_id = p_mapping_id and c.resolved_at is null and c.kind = 'update') then
    execute format($q$select coalesce(array_agg(c.record_id), '{}') from hc.conflicts c
                       where c.mapping_id = $2 and c.resolved_at is null and c.kind = 'update'
                         and c.sfid in (select s."Id" from %s)$q$, p_src)
      using p_rows, p_mapping_id into parked;
    recs := recs || parked;
  end if;
  -- Fields Postgres owns, in this batch: every row of it is looked at (Salesforce's change of such a
  -- field is undone, below).
  owned_pg := array(select f.column_name from hc._inbound_fields f
                     where f.mapping_id = p_mapping_id and f.soql_name = any (p_fields)
                       and hc._conflict_owner((t.m).config, f.field_name) = 'pg');
  if cardinality(owned_pg) > 0 and p_origin <> 'cdc-echo' then
    execute format('select coalesce(array_agg(t.id), ''{}'') from %s t where t.sfid in (select s."Id" from %s)', tbl, p_src)
      using p_rows into parked;
    recs := recs || parked;
  end if;
  if cardinality(recs) = 0 then
    return jsonb_build_object('pend', pend, 'conflicts', 0);
  end if;

  select * into inc_sql, inc_cols, inc_all_sql from hc._conflict_incoming_sql(p_mapping_id, p_src, p_fields);
  if cardinality(inc_cols) is null then
    return jsonb_build_object('pend', pend, 'conflicts', 0);
  end if;
  -- The incoming values of all these records, read from the batch once (per record, each lookup read
  -- the whole batch again: a 2,000-row poll page of rows with local changes took seconds, its rows
  -- locked all along). A value that does not cast fails the set: then they are read one by one.
  begin
    execute format('select coalesce(array_agg(t.sfid), ''{}'') from %s t where t.id = any ($1) and t.sfid is not null', tbl)
      using recs into sfids;
    execute inc_all_sql using p_rows, inc_cols, sfids into incoming;
  exception when others then
    incoming := null;
  end;

  for r in execute format($q$select t.id, t.sfid, hc._hstore_text(t::%s, array['_hc_lastop', '_hc_err']) h
                               from %s t where t.id = any ($1) and t.sfid is not null order by t.id$q$, hc._hstore_type(), tbl)
    using recs
  loop
    if incoming is not null then
      inc := incoming -> r.sfid -> 0;
      at_sf := (incoming -> r.sfid ->> 1)::timestamptz;
      if jsonb_typeof(inc) is distinct from 'object' then
        inc := null;
      end if;
    else
      begin
        execute inc_sql using p_rows, inc_cols, r.sfid into inc, at_sf;
      exception when others then
        continue;   -- a row that does not cast fails alone in the apply
      end;
    end if;
    continue when inc is null;
    st := coalesce(pend -> r.id::text, '{}');

    -- The steps for this record: hc._conflict_follow_parked, hc._conflict_judge, hc._conflict_settle,
    -- hc._conflict_owned.
    res := hc._conflict_follow_parked(t.m, p_origin, r.id, r.sfid, r.h, inc, at_sf, st);
    st := res.st;
    openc := res.openc;

    -- (only when some incoming value of such a column differs from the row's: otherwise nothing below
    -- can find a conflict, and the record's entries need not be read)
    if p_origin <> 'cdc-echo' and st <> '{}'
       and exists (select 1 from jsonb_each_text(st) x
                    where x.value in ('pending', 'sent') and inc ? x.key
                      and not hc._conflict_same(inc->>x.key, hc._hstore_get(r.h, x.key))) then
      groups := hc._conflict_judge(t.m, p_origin, r.id, r.sfid, r.h, inc, at_sf, st, openc, pol, tlog, tarch);
      res := hc._conflict_settle(t.m, p_origin, r.id, r.sfid, r.h, inc, at_sf, groups, pol, tlog, tbl, st, openc);
      st := res.st;
      openc := res.openc;
      n := n + res.n;
    end if;
    if cardinality(owned_pg) > 0 and p_origin <> 'cdc-echo' then
      res := hc._conflict_owned(t.m, p_origin, r.id, r.sfid, r.h, inc, at_sf, owned_pg, tlog, tbl, st);
      st := res.st;
      n := n + res.n;
    end if;
    -- (only when changed: each || copies the whole map, and a page holds 2,000 records)
    if st <> '{}' and st is distinct from pend -> r.id::text then
      pend := pend || jsonb_build_object(r.id::text, st);
    end if;
  end loop;
  return jsonb_build_object('pend', pend, 'conflicts', n);
end;
$fn$;

-- Inbound, after hc.inbound_merge applied a batch: records of the batch whose local DELETE is still
-- waiting while Salesforce changed them (a change event, or a newer SystemModstamp than the deleted
-- row had). pg_wins: the delete goes on. sf_wins: the delete is not sent and the record is read again
-- (the row comes back, recorded). manual: the delete waits, unsent, and the row stays away. Returns
-- the number of conflicts found.
create or replace function hc._conflicts_pg_delete(p_mapping_id integer, p_origin text, p_src text, p_fields text[], p_rows jsonb)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  tlog text;
  tarch text;
  pol text;
  inc_sql text;
  inc_cols text[];
  d record;
  inc jsonb;
  at_sf timestamptz;
  ours text[];
  base text;
  changed text[];
  win text;
  cid bigint;
  n integer := 0;
begin
  if p_origin = 'cdc-echo' then
    return 0;
  end if;
  t := hc._inbound_target(p_mapping_id);
  tlog := format('%I._trigger_log', t.schema_name);
  tarch := format('%I._trigger_log_archive', t.schema_name);
  pol := hc._conflict_policy((t.m).config);
  select * into inc_sql, inc_cols from hc._conflict_incoming_sql(p_mapping_id, p_src, p_fields);
  for d in execute format($q$select l.sfid, min(l.record_id) record_id, min(l.created_at) created_at,
                                    (array_agg(l.old order by l.id))[1] old, bool_or(l.state = 'PENDING') in_flight
                               from %s l where l.state in ('NEW', 'PENDING') and l.action = 'DELETE' and l.table_name = $2
                                and l.sfid in (select s."Id" from %s) group by l.sfid$q$, tlog, p_src)
    using p_rows, (t.m).table_name
  loop
    begin
      execute inc_sql using p_rows, coalesce(inc_cols, '{}'), d.sfid into inc, at_sf;
    exception when others then
      continue;
    end;
    -- Our own writes of the record that may have landed after the deleted row's version (in flight, or
    -- answered since its SystemModstamp): a full row read (not a change event, whose echoes of our
    -- writes never come here) shows them as changes, and they are no change of Salesforce's.
    ours := null;
    if p_origin <> 'cdc' then
      execute format($q$select array_agg(l."values") from (
                          select state, processed_at, "values" from %1$s where table_name = $1 and record_id = $2 and action in ('INSERT', 'UPDATE')
                          union all
                          select state, processed_at, "values" from %2$s where table_name = $1 and record_id = $2 and action in ('INSERT', 'UPDATE')) l
                         where l.state = 'PENDING' or (l.state in ('SUCCESS', 'MERGED') and l.processed_at >= $3)$q$, tlog, tarch)
        using (t.m).table_name, d.record_id,
              coalesce(hc._hstore_get(d.old, 'systemmodstamp')::timestamp at time zone 'UTC', d.created_at)
        into ours;
    end if;
    -- The row as Salesforce last had it, before the local changes not sent yet (the first one's `old`).
    execute format($q$select (array_agg(l.old order by l.id))[1] from %s l
                       where l.table_name = $1 and l.record_id = $2 and l.state = 'NEW' and l.action in ('UPDATE', 'DELETE')$q$, tlog)
      using (t.m).table_name, d.record_id into base;
    base := coalesce(base, d.old::text);
    -- What Salesforce changed after the row was deleted here: a change event's fields; in a full row,
    -- the values that differ from that row and are not ours.
    select coalesce(array_agg(x.key order by x.key), '{}') into changed
      from jsonb_each_text(coalesce(inc, '{}')) x
     where x.key not in ('systemmodstamp', 'lastmodifieddate', 'isdeleted')
       and (p_origin = 'cdc'
            or (not hc._conflict_same(x.value, hc._hstore_get(base, x.key))
                and not exists (select 1 from unnest(ours) v where hc._conflict_same(x.value, hc._hstore_get(v, x.key)))));
    -- Did Salesforce change the record after the row was deleted here? A change event says so; a full
    -- row says so by a value it changed, or by a SystemModstamp newer than the row's while no write of
    -- ours can account for it.
    continue when not (p_origin = 'cdc' or cardinality(changed) > 0
                       or (ours is null and inc->>'systemmodstamp' is not null and hc._hstore_get(base, 'systemmodstamp') is not null
                           and (inc->>'systemmodstamp')::timestamp > hc._hstore_get(base, 'systemmodstamp')::timestamp));
    if exists (select 1 from hc.conflicts c where c.mapping_id = p_mapping_id and c.sfid = d.sfid and c.kind = 'pg_delete'
                  and (c.resolved_at is null or c.detected_at >= d.created_at)) then
      update hc.conflicts c set sf_values = coalesce(c.sf_values, '{}') || coalesce(inc, '{}'), sf_at = coalesce(at_sf, c.sf_at)
       where c.mapping_id = p_mapping_id and c.sfid = d.sfid and c.kind = 'pg_delete' and c.resolved_at is null;
      continue;
    end if;
    win := case when pol = 'sf_wins' then 'sf'
                when pol = 'pg_wins' then 'pg'
                when pol = 'latest' then case when hc._conflict_sf_later(coalesce(at_sf, now()), d.created_at) then 'sf' else 'pg' end
                else null end;
    insert into hc.conflicts (connection_id, mapping_id, object_name, table_name, record_id, sfid, kind, columns,
                              pg_values, sf_values, base_values, pg_at, sf_at, policy, winner, origin, sf_overwritten,
                              resolved_at, resolved_by, resolution)
    values ((t.m).connection_id, p_mapping_id, (t.m).object_name, (t.m).table_name, d.record_id, d.sfid, 'pg_delete', changed,
            null, inc, (select jsonb_object_agg(key, value) from hc._hstore_each(d.old)), d.created_at, at_sf, pol, win, p_origin,
            coalesce(win = 'sf' and d.in_flight, false),
            case when win is not null then now() end, case when win is not null then 'policy' end, case when win is not null then 'policy' end)
    returning id into cid;
    n := n + 1;
    if win = 'sf' then
      perform hc._conflict_pg_delete_lost(tlog, (t.m).table_name, d.sfid, d.record_id, changed, cid,
                                          'Salesforce''s change won; the row comes back');
      perform hc._conflict_revive(p_mapping_id, format('%I.%I', t.schema_name, (t.m).table_name), d.sfid,
                                  (select jsonb_object_agg(key, value) from hc._hstore_each(d.old)), inc);
    end if;
  end loop;
  return n;
end;
$fn$;

-- A local delete lost to Salesforce's change: the delete is not sent, nor the values of the columns
-- Salesforce changed in the row's updates still queued before it (the application's, or a resend of
-- Salesforce's older values after an earlier conflict): Salesforce's win stands. The rest of those
-- updates go, as any local change of a column Salesforce did not change does.
create or replace function hc._conflict_pg_delete_lost(p_tlog text, p_table text, p_sfid text, p_record_id integer, p_columns text[], p_conflict bigint, p_why text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  execute format($q$update %s l set state = 'IGNORED', updated_at = now(), processed_at = now(), processed_tx = txid_current(), sf_message = $3
                     where l.table_name = $1 and l.sfid = $2 and l.state = 'NEW' and l.action = 'DELETE'$q$, p_tlog)
    using p_table, p_sfid, format('conflict %s: %s', p_conflict, p_why);
  if cardinality(p_columns) > 0 then
    perform hc._conflict_unsend(p_tlog, p_table, p_record_id, p_columns, p_conflict, p_why);
  end if;
end;
$$;

-- Inbound, before rows Salesforce deleted are removed (a CDC DELETE, IsDeleted = true): rows with a
-- local change still waiting are a conflict. sf_wins: the row goes and its waiting changes are not
-- sent. pg_wins: the row stays and its record is created again. manual: the row stays, its changes
-- wait unsent. Returns the sfids whose rows may be removed now.
create or replace function hc._conflicts_sf_delete(p_mapping_id integer, p_sfids text[], p_origin text, p_at timestamptz)
returns text[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  tbl text;
  tlog text;
  pol text;
  d record;
  win text;
  cid bigint;
  kept text[] := '{}';
begin
  if cardinality(coalesce(p_sfids, '{}')) = 0 then
    return coalesce(p_sfids, '{}');
  end if;
  t := hc._inbound_target(p_mapping_id);
  tbl := format('%I.%I', t.schema_name, (t.m).table_name);
  tlog := format('%I._trigger_log', t.schema_name);
  pol := hc._conflict_policy((t.m).config);
  for d in execute format($q$
      select x.id, x.sfid, hc._hstore_text(x::%s, array['_hc_lastop', '_hc_err']) h,
             (select max(l.created_at) from %s l where l.table_name = $2 and l.record_id = x.id
                and l.state in ('NEW', 'PENDING') and l.action = 'UPDATE' and coalesce(l."values", '') <> '') pg_at,
             (select array_agg(distinct kv.key) from %s l, hc._hstore_each(l."values") kv where l.table_name = $2 and l.record_id = x.id
                and l.state in ('NEW', 'PENDING') and l.action = 'UPDATE') cols
        from %s x where x.sfid = any ($1)$q$, hc._hstore_type(), tlog, tlog, tbl)
    using p_sfids, (t.m).table_name
  loop
    if exists (select 1 from hc.conflicts c where c.mapping_id = p_mapping_id and c.sfid = d.sfid and c.kind = 'sf_delete' and c.resolved_at is null) then
      kept := kept || d.sfid;
      continue;
    end if;
    continue when d.pg_at is null;
    win := case when pol = 'sf_wins' then 'sf'
                when pol = 'pg_wins' then 'pg'
                when pol = 'latest' then case when hc._conflict_sf_later(coalesce(p_at, now()), d.pg_at) then 'sf' else 'pg' end
                else null end;
    insert into hc.conflicts (connection_id, mapping_id, object_name, table_name, record_id, sfid, kind, columns, fields,
                              pg_values, sf_values, pg_at, sf_at, policy, winner, origin, resolved_at, resolved_by, resolution)
    values ((t.m).connection_id, p_mapping_id, (t.m).object_name, (t.m).table_name, d.id, d.sfid, 'sf_delete',
            coalesce(d.cols, '{}'),
            array(select f.field_name from unnest(coalesce(d.cols, '{}')) c join hc._mapping_fields f on f.mapping_id = p_mapping_id and f.column_name = c),
            (select jsonb_object_agg(c, hc._hstore_get(d.h, c)) from unnest(coalesce(d.cols, '{}')) c),
            null, d.pg_at, p_at, pol, win, p_origin,
            case when win is not null then now() end, case when win is not null then 'policy' end, case when win is not null then 'policy' end)
    returning id into cid;
    if win = 'sf' then
      execute format($q$update %s l set state = 'IGNORED', updated_at = now(), processed_at = now(), processed_tx = txid_current(), sf_message = $3
                         where l.table_name = $1 and l.record_id = $2 and l.state = 'NEW'$q$, tlog)
        using (t.m).table_name, d.id, format('conflict %s: the record was deleted in Salesforce; this change is not sent', cid);
    elsif win = 'pg' then
      perform hc._conflict_recreate(tlog, tbl, (t.m).table_name, d.id, cid);
      kept := kept || d.sfid;
    else
      kept := kept || d.sfid;
    end if;
  end loop;
  -- The records are gone from Salesforce: nothing of theirs is left to read again. A re-read waiting for
  -- the row's changes to be sent (after_writes) would wait for ever, as they wait for the conflict.
  delete from hc.inbound_rereads q where q.mapping_id = p_mapping_id and q.sfid = any (kept);
  return array(select x from unnest(p_sfids) x where not x = any (kept));
end;
$fn$;

-- Outbound, inside hc.outbound_claim (on its _ob_ops): nothing of a record with an open delete
-- conflict is sent (its entries stay NEW), and parked fields are left out of updates (an update left
-- with nothing is IGNORED, naming the conflict). Fields Salesforce owns are never sent either.
create or replace function hc._conflicts_claim(p_connection_id integer)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
begin
  if not exists (select 1 from hc.conflicts k where k.connection_id = p_connection_id and k.resolved_at is null)
     and not exists (select 1 from hc._mappings m where m.connection_id = p_connection_id and m.config ? 'field_ownership') then
    return;
  end if;
  delete from _ob_ops o
   using hc.conflicts k
   where k.connection_id = p_connection_id and k.resolved_at is null and k.kind in ('pg_delete', 'sf_delete')
     and k.mapping_id = o.mapping_id and k.record_id = o.record_id;
  update _ob_ops o
     set vals = hc._hstore_subset(coalesce(o.vals, ''), k.columns),
         ignore_reason = format('conflict %s is parked: hc.resolve_conflict(%s, ...) decides', k.id, k.id)
    from hc.conflicts k
   where k.connection_id = p_connection_id and k.resolved_at is null and k.kind = 'update'
     and k.mapping_id = o.mapping_id and k.record_id = o.record_id and o.action = 'update';
  -- A local change of a field Salesforce owns is not sent, and not kept either: the row takes back the
  -- value it had before (Salesforce's), as the sync writes (not captured), and the overruled change is
  -- recorded, resolved by ownership.
  for t in
    select o.op_id, o.mapping_id, o.table_name, o.record_id, o.vals, o.row_sfid, o.log_sfid, m.object_name, m.connection_id,
           (select c.schema_name from hc.connections c where c.id = m.connection_id) schema_name,
           array(select f.column_name from hc._mapping_fields f, hc._hstore_each(o.vals) kv
                  where f.mapping_id = o.mapping_id and f.column_name = kv.key and hc._conflict_owner(m.config, f.field_name) = 'sf'
                  order by f.column_name) cols
      from _ob_ops o join hc._mappings m on m.id = o.mapping_id
     where m.config ? 'field_ownership' and o.action = 'update'
  loop
    continue when cardinality(t.cols) = 0;
    insert into hc.conflicts (connection_id, mapping_id, object_name, table_name, record_id, sfid, kind, fields, columns,
                              pg_values, sf_values, base_values, pg_at, policy, winner, origin, resolved_at, resolved_by, resolution)
    select t.connection_id, t.mapping_id, t.object_name, t.table_name, t.record_id, coalesce(t.row_sfid, t.log_sfid), 'update',
           array(select f.field_name from unnest(t.cols) c join hc._mapping_fields f on f.mapping_id = t.mapping_id and f.column_name = c),
           t.cols,
           (select jsonb_object_agg(c, hc._hstore_get(t.vals, c)) from unnest(t.cols) c),
           (select jsonb_object_agg(c, (select hc._hstore_get(x.old, c) from _ob_cand x
                                         where x.table_name = t.table_name and x.record_id = t.record_id and x.action = 'UPDATE'
                                           and exists (select 1 from hc._hstore_each(x.vals) kv where kv.key = c) order by x.id limit 1))
              from unnest(t.cols) c),
           null, now(), 'ownership', 'sf', 'claim', now(), 'ownership', 'ownership';
    execute format('update %I.%I r set %s from (select * from jsonb_populate_record(null::%I.%I, $1)) v where r.id = $2',
                   t.schema_name, t.table_name,
                   (select string_agg(format('%1$I = v.%1$I', c), ', ') from unnest(t.cols) c),
                   t.schema_name, t.table_name)
      using (select k.sf_values from hc.conflicts k where k.mapping_id = t.mapping_id and k.record_id = t.record_id
              order by k.id desc limit 1), t.record_id;
  end loop;
  update _ob_ops o
     set vals = hc._hstore_subset(coalesce(o.vals, ''),
                                  array(select f.column_name from hc._mapping_fields f
                                         where f.mapping_id = o.mapping_id and hc._conflict_owner(m.config, f.field_name) = 'sf')),
         ignore_reason = coalesce(o.ignore_reason, 'only fields Salesforce owns (field_ownership) changed: nothing to send')
    from hc._mappings m
   where m.id = o.mapping_id and m.config ? 'field_ownership' and o.action = 'update';
  update _ob_ops o set action = null where o.action = 'update' and coalesce(o.vals, '') = '';
  update _ob_ops o set ignore_reason = null where o.action is not null;
  -- A row whose change is held by a parked conflict does not read PENDING for ever: it reads FAILED
  -- with the conflict in _hc_err (written as the sync writes, so not captured), until it is resolved.
  for t in select distinct o.table_name from _ob_ops o where o.action is null and o.ignore_reason like 'conflict %' loop
    execute format($q$update %I.%I r set _hc_lastop = 'FAILED', _hc_err = 'CONFLICT: ' || o.ignore_reason
                        from _ob_ops o where o.table_name = $1 and o.action is null and o.ignore_reason like 'conflict %%'
                         and r.id = o.record_id$q$,
                   (select c.schema_name from hc.connections c where c.id = p_connection_id), t.table_name)
      using t.table_name;
  end loop;
end;
$fn$;

-- Resolves a parked conflict: p_choice is 'pg' (Postgres's values), 'sf' (Salesforce's) or a JSON
-- object of chosen values ({"Phone": "555-0100"}, field or column names) for every field of the
-- conflict. The chosen values reach the side that lost through the normal paths: the row is written as
-- the sync writes it (not captured), and what Salesforce must get is queued in _trigger_log and sent by
-- the writer like any change. A delete conflict takes 'pg' or 'sf': for a local delete, 'pg' sends the
-- delete and 'sf' reads the record back; for a delete in Salesforce, 'sf' removes the row and 'pg'
-- creates the record again from the row. Returns the conflict as resolved.
create or replace function hc.resolve_conflict(p_id bigint, p_choice jsonb)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set xmlbinary = hex
as $fn$
declare
  k hc.conflicts;
  c hc.connections;
  tbl text;
  tlog text;
  h text;
  chosen jsonb;
  missing text[];
  extra text[];
  to_pg jsonb;
  to_sf jsonb;
  win text;
begin
  select * into k from hc.conflicts where id = p_id for update;
  if not found then
    raise exception 'hcsync: conflict % does not exist', p_id
      using errcode = 'undefined_object', hint = 'List open conflicts: select * from hc.conflicts where resolved_at is null (or hcsync conflicts).';
  end if;
  if k.resolved_at is not null then
    raise exception 'hcsync: conflict % was resolved already (%, winner %, at %)', p_id, k.resolution, k.winner, k.resolved_at
      using errcode = 'object_not_in_prerequisite_state', hint = 'Only open (parked) conflicts can be resolved.';
  end if;
  if p_choice is null or not (jsonb_typeof(p_choice) = 'object' or p_choice #>> '{}' in ('pg', 'sf')) then
    raise exception 'hcsync: resolve conflict % with ''pg'', ''sf'' or an object of chosen values, not %', p_id, coalesce(p_choice::text, 'null')
      using errcode = 'invalid_parameter_value', hint = format('e.g. select hc.resolve_conflict(%s, ''pg'')', p_id);
  end if;
  select * into c from hc.connections where id = k.connection_id;
  tbl := format('%I.%I', c.schema_name, k.table_name);
  tlog := format('%I._trigger_log', c.schema_name);

  if k.kind in ('pg_delete', 'sf_delete') then
    if jsonb_typeof(p_choice) = 'object' then
      raise exception 'hcsync: conflict % is a delete against a change: resolve it with ''pg'' or ''sf''', p_id
        using errcode = 'invalid_parameter_value',
              hint = case when k.kind = 'pg_delete' then '''pg'' deletes the record in Salesforce too; ''sf'' brings the row back from Salesforce.'
                          else '''sf'' removes the row; ''pg'' creates the record again from the row.' end;
    end if;
    win := p_choice #>> '{}';
    if k.kind = 'pg_delete' and win = 'sf' then
      perform hc._conflict_pg_delete_lost(tlog, k.table_name, k.sfid, k.record_id, coalesce(k.columns, '{}'), p_id,
                                          'resolved for Salesforce: the row comes back');
      perform hc._conflict_revive(k.mapping_id, tbl, k.sfid, k.base_values, k.sf_values);
    elsif k.kind = 'sf_delete' and win = 'sf' then
      execute format($q$update %s l set state = 'IGNORED', updated_at = now(), processed_at = now(), processed_tx = txid_current(), sf_message = $3
                         where l.table_name = $1 and l.record_id = $2 and l.state = 'NEW'$q$, tlog)
        using k.table_name, k.record_id, format('conflict %s resolved for Salesforce: the record was deleted there', p_id);
      execute format('delete from %s where id = $1', tbl) using k.record_id;
    elsif k.kind = 'sf_delete' and win = 'pg' then
      perform hc._conflict_recreate(tlog, tbl, k.table_name, k.record_id, p_id);
    end if;
  else
    execute format('select hc._hstore_text(t::%s, array[''_hc_lastop'', ''_hc_err'']) from %s t where t.id = $1 for update',
                   hc._hstore_type(), tbl) using k.record_id into h;
    if h is null then
      raise exception 'hcsync: the row of conflict % (%.% id %) no longer exists', p_id, c.schema_name, k.table_name, k.record_id
        using errcode = 'no_data_found', hint = 'Nothing to write; the conflict stays open for the record. Delete the record in Salesforce or read it again (hc.reload).';
    end if;
    if jsonb_typeof(p_choice) = 'object' then
      -- Field or column names, case-insensitive.
      select jsonb_object_agg(coalesce(f.column_name, lower(x.key)), x.value) into chosen
        from jsonb_each(p_choice) x
        left join hc._mapping_fields f on f.mapping_id = k.mapping_id and lower(f.field_name) = lower(x.key);
      missing := array(select col from unnest(k.columns) col where not chosen ? col);
      extra := array(select key from jsonb_object_keys(chosen) key where not key = any (k.columns));
      if cardinality(missing) > 0 or cardinality(extra) > 0 then
        raise exception 'hcsync: conflict % is about %: give a value for each of them%', p_id, array_to_string(k.fields, ', '),
            case when cardinality(extra) > 0 then format(' (and only them; not %s)', array_to_string(extra, ', ')) else '' end
          using errcode = 'invalid_parameter_value';
      end if;
      select jsonb_object_agg(key, value #>> '{}') into chosen from jsonb_each(chosen);
      win := 'values';
    elsif p_choice #>> '{}' = 'pg' then
      select jsonb_object_agg(col, hc._hstore_get(h, col)) into chosen from unnest(k.columns) col;
      win := 'pg';
    else
      chosen := k.sf_values;
      win := 'sf';
    end if;
    select coalesce(jsonb_object_agg(col, chosen->col), '{}') into to_pg
      from unnest(k.columns) col where (chosen->>col) is distinct from hc._hstore_get(h, col);
    select coalesce(jsonb_object_agg(col, chosen->col), '{}') into to_sf
      from unnest(k.columns) col where k.sf_overwritten or (chosen->>col) is distinct from (k.sf_values->>col);
    if to_pg <> '{}' then
      execute format('update %s t set %s where t.id = $2', tbl,
                     (select string_agg(format('%I = ($1->>%L)::%s', f.column_name, f.column_name, f.pg_type), ', ')
                        from hc._mapping_fields f where f.mapping_id = k.mapping_id and to_pg ? f.column_name))
        using to_pg, k.record_id;
    end if;
    perform hc._conflict_send(tlog, tbl, k.table_name, k.record_id, to_sf);
  end if;

  update hc.conflicts
     set resolved_at = now(), winner = win, resolution = 'operator',
         resolved_by = session_user || coalesce(' (' || nullif(current_setting('hcsync.principal', true), '') || ')', '')
   where id = p_id
  returning * into k;
  perform hc._control(c, 'resolve_conflict', k.mapping_id, jsonb_build_object('conflict', p_id, 'choice', p_choice));
  perform pg_notify('hc_control', c.schema_name);
  return to_jsonb(k);
end;
$fn$;

-- The same with 'pg' / 'sf' / a JSON object written as text (so that hc.resolve_conflict(7, 'pg') works).
create or replace function hc.resolve_conflict(p_id bigint, p_choice text)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return hc.resolve_conflict(p_id, case when p_choice in ('pg', 'sf') then to_jsonb(p_choice) else p_choice::jsonb end);
end;
$$;

-- The conflicts of a connection, given by id or else by name or schema (null: the only one), for one object (any case; null: all), parked only (p_open true), resolved only (false) or all (null), or the one with id p_id: what the CLI and the dashboard list.
create or replace function hc._conflicts_of(p_connection_id integer, p_connection text, p_object text, p_open boolean, p_id bigint default null)
returns setof hc.conflicts
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select * from hc.conflicts k
   where k.connection_id = coalesce(p_connection_id, (hc._connection(p_connection)).id)
     and (p_id is null or k.id = p_id)
     and (p_object is null or lower(k.object_name) = lower(p_object))
     and (p_open is null or p_open = (k.resolved_at is null));
$$;
