-- The functions and views of sql/000010_inbound.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- The Salesforce side of each mapped column as the inbound reader selects it: `soql_name` is what a
-- SELECT lists and what Bulk CSV headers / flattened REST records are keyed by.
create or replace view hc._inbound_fields as
select f.mapping_id, f.field_name, f.column_name, f.sf_type, f.pg_type, coalesce(f.calculated, false) as calculated,
       case when f.sf_type = 'relationship_external_id' and f.relationship_name is not null and f.target_field is not null
            then f.relationship_name || '.' || f.target_field
            -- Salesforce answers with its own spelling (Name), whatever the config wrote (name).
            else coalesce((select e->>'name' from jsonb_array_elements(m.describe->'fields') e
                           where lower(e->>'name') = lower(f.field_name) limit 1), f.field_name) end as soql_name
from hc._mapping_fields f
join hc._mappings m on m.id = f.mapping_id;

-- The SOQL field list of a mapping, Id first (so Bulk CSV and REST pages share one column order).
create or replace function hc.inbound_soql_fields(p_mapping_id integer)
returns text[]
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select array_agg(soql_name order by (lower(field_name) <> 'id'), soql_name)
  from hc._inbound_fields where mapping_id = p_mapping_id;
$$;

-- Fields Salesforce computes (formulas, roll-ups): CDC payloads never carry them, so the reader fetches
-- them after applying an event (one query per batch of ids).
create or replace function hc.inbound_calculated_fields(p_mapping_id integer)
returns text[]
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(array_agg(soql_name order by soql_name), '{}') from hc._inbound_fields
  where mapping_id = p_mapping_id and calculated;
$$;

-- The cast of one source column (text) to its column type. varchar targets are left as text on
-- purpose: an explicit ::varchar(n) would silently truncate, an assignment raises (value too long),
-- which is what makes a too-long value fail its row instead of losing characters.
create or replace function hc._inbound_cast(src text, sf_type text, pg_type text)
returns text
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case
    when pg_type like 'character varying%' or pg_type = 'text' then format('nullif(%s, %L)', src, '')
    when pg_type like 'timestamp without time zone%' then
      -- Salesforce sends 2024-01-15T10:20:30.000+0000 (REST), …Z (Bulk, CDC): an absolute instant, kept as UTC.
      format('((nullif(%s, %L))::timestamptz at time zone %L)', src, '', 'UTC')
    when pg_type like 'timestamp with time zone%' then format('(nullif(%s, %L))::timestamptz', src, '')
    else format('(nullif(%s, %L))::%s', src, '', pg_type)
  end;
$$;

-- The mapping row with its connection schema, or an error naming what is missing.
create or replace function hc._inbound_target(p_mapping_id integer, out m hc._mappings, out schema_name text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  select * into m from hc._mappings where id = p_mapping_id;
  if not found then
    raise exception 'hcsync: mapping % does not exist (deleted while the sidecar was working?)', p_mapping_id
      using errcode = 'undefined_object';
  end if;
  select c.schema_name into schema_name from hc.connections c where c.id = m.connection_id;
end;
$$;

-- Merge step 1: the plan (hc._merge_plan) for a batch of rows of p_fields from p_source.
create or replace function hc._merge_plan(p_mapping_id integer, p_source text, p_fields text[], p_origin text)
returns hc._merge_plan
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  f record;
  tbl text;
  tlog text;
  src text;
  sel text[] := '{}';
  cols text[] := '{}';
  id_expr text;
  upsert_col text;
  upsert_expr text;
  has_isdeleted boolean := false;
  isdeleted_expr text;
  smod_expr text;
  at_expr text;
  full_row boolean;
begin
  t := hc._inbound_target(p_mapping_id);
  tbl := format('%I.%I', t.schema_name, (t.m).table_name);
  tlog := format('%I._trigger_log', t.schema_name);
  if not ('Id' = any (p_fields)) then
    raise exception 'hcsync: inbound rows for % carry no Id', (t.m).object_name using errcode = 'invalid_parameter_value';
  end if;

  if p_source = 'json' then
    src := format('jsonb_to_recordset($1) as s(%s)',
                  (select string_agg(format('%I text', x), ', ') from unnest(p_fields) x));
  else
    src := format('%s as s', p_source::regclass);
  end if;

  -- Columns present in this batch that the mapping knows (unknown keys are ignored: a describe can list
  -- more than is mapped). Id is the key and never updated.
  for f in
    select i.* from hc._inbound_fields i
    where i.mapping_id = p_mapping_id and i.soql_name = any (p_fields)
    order by i.column_name
  loop
    if f.column_name = 'sfid' then
      continue;
    end if;
    sel := sel || hc._inbound_cast(format('s.%I', f.soql_name), f.sf_type, f.pg_type);
    cols := cols || quote_ident(f.column_name);
    if f.column_name = 'isdeleted' then
      has_isdeleted := true;
      isdeleted_expr := hc._inbound_cast(format('s.%I', f.soql_name), f.sf_type, f.pg_type);
    end if;
    if f.column_name = 'systemmodstamp' then
      smod_expr := hc._inbound_cast(format('s.%I', f.soql_name), f.sf_type, f.pg_type);
    end if;
  end loop;
  id_expr := 's."Id"';
  full_row := p_origin in ('load', 'poll', 'reread', 'drift');
  -- When Salesforce had these values (a change event's commit time, a re-read's start): rows without it
  -- are compared with pending local changes only.
  at_expr := case when 'hcsync_at' = any (p_fields) then '(s.hcsync_at)::timestamptz' else 'null::timestamptz' end;

  -- The upsert field (external id) as the second key, when mapped and present in this batch.
  select quote_ident(i.column_name), hc._inbound_cast(format('s.%I', i.soql_name), i.sf_type, i.pg_type)
    into upsert_col, upsert_expr
  from hc._inbound_fields i
  where i.mapping_id = p_mapping_id and i.field_name = (t.m).config ->> 'upsert_field' and i.soql_name = any (p_fields);
  return row(t.schema_name, tbl, tlog, src, sel, cols, id_expr, upsert_col, upsert_expr,
             has_isdeleted, isdeleted_expr, smod_expr, at_expr, full_row)::hc._merge_plan;
end;
$fn$;

-- Merge step 2 (the rows locked): the local changes of the rows this batch touches.
create or replace function hc._merge_pending(p hc._merge_plan, m hc._mappings, p_rows jsonb)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  waiting boolean := false;
  pend jsonb;
begin
  -- Local changes of the rows this batch touches (only those: the queue may hold 100,000 entries of other
  -- rows), as {record_id: {column: "pending" | "sent"}}. "pending": a NEW/PENDING entry names the column.
  -- "sent": a write of ours named it and was answered after hcsync_at − 5 s (the clocks of Salesforce and
  -- Postgres may differ by that much), so the incoming value may be older than it. Usually empty.
  if p.at_expr = 'null::timestamptz' then   -- (nothing to look up when no local change waits at all)
    execute format($q$select exists (select 1 from %s where state in ('NEW', 'PENDING') and table_name = %L)$q$, p.tlog, m.table_name)
      into waiting;
  end if;
  pend := '{}';
  if p.at_expr <> 'null::timestamptz' or waiting then
  execute format($q$
    with b as (select distinct t.id, %1$s - interval '5 seconds' as since
                 from %2$s join %3$s t on (t.sfid = %4$s %8$s)),
    -- (each row's entries are found by record_id alone, the rest filtered after: the planner's figures
    -- for the queue lag behind a burst, and a plan that also read the state index, 10,000 new entries,
    -- once per row took seconds with the rows locked)
    e as (
      select b.id, l.state, l.action, l."values"
        from b cross join lateral (select * from %5$s l where l.record_id = b.id offset 0) l
       where l.table_name = %6$L and l.action in ('INSERT', 'UPDATE')
         and (l.state in ('NEW', 'PENDING') or (l.state in ('SUCCESS', 'MERGED') and l.processed_at >= b.since))
      union all
      select b.id, l.state, l.action, l."values"
        from b cross join lateral (select * from %7$s l where b.since is not null and l.record_id = b.id offset 0) l
       where l.table_name = %6$L and l.action in ('INSERT', 'UPDATE') and l.state in ('SUCCESS', 'MERGED') and l.processed_at >= b.since)
    select coalesce(jsonb_object_agg(id::text, cols), '{}') from (
      select id, jsonb_object_agg(k, st) as cols from (
        select e.id, kv.key as k, case when bool_or(e.state in ('NEW', 'PENDING')) then 'pending' else 'sent' end as st
        from e, lateral hc._hstore_each(e."values") kv
        -- an INSERT entry lists every column: the NULL ones were not set, so not sent either
        where e.state in ('NEW', 'PENDING') or e.action = 'UPDATE' or kv.value is not null
        group by e.id, kv.key) y
      group by id) x$q$, p.at_expr, p.src, p.tbl, p.id_expr, p.tlog, m.table_name, format('%I._trigger_log_archive', p.schema_name),
      -- a row our writer created and has not stamped with its sfid yet is found by its external id (the
      -- adopt step below): its pending changes count too
      case when p.upsert_col is null then '' else format('or (t.sfid is null and t.%s = %s)', p.upsert_col, p.upsert_expr) end)
    using p_rows into pend;
  end if;
  return pend;
end;
$fn$;

-- Merge step 4: of the records Salesforce reports deleted while changed here, those the conflict policy keeps.
create or replace function hc._merge_kept_deleted(p hc._merge_plan, p_mapping_id integer, p_origin text, p_rows jsonb)
returns text[]
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  kept text[] := '{}';
begin
  if p.has_isdeleted then
    begin
      execute format('select coalesce(array_agg(%s), ''{}'') from %s where coalesce(%s, false)', p.id_expr, p.src, p.isdeleted_expr)
        using p_rows into kept;
    exception when others then
      kept := '{}';
    end;
    if cardinality(kept) > 0 then
      kept := array(select x from unnest(kept) x
                     except select y from unnest(hc._conflicts_sf_delete(p_mapping_id, kept, p_origin, null)) y);
    end if;
  end if;
  return kept;
end;
$fn$;

-- Merge step 5: records to read again once what our writes changed is answered (the count is returned).
create or replace function hc._merge_queue_rereads(p hc._merge_plan, p_mapping_id integer, p_origin text, p_rows jsonb, pend jsonb)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  stmt text;
  rid text;
  n bigint;
  n_reread integer := 0;
begin
  -- Records with such a "sent" column that differs: queued to be read again as they are now (after the
  -- 5 s, so that the re-read sees every write of ours answered so far). So are records whose incoming
  -- value differs from a "pending" column (but for someone else's change event, which the conflict rules
  -- judge): it may be that very write, answered but not recorded yet (its answer lost, say), with a value
  -- Salesforce rewrote on save (a flow); those are read once the local change is no longer waiting
  -- (after_writes), since a read before that keeps the pending value again, and nothing else would bring
  -- the rewritten value back. Rows that do not cast are left to the apply below, which fails them alone.
  if pend::text like '%"sent"%' or (p_origin <> 'cdc' and pend::text like '%"pending"%') then
    stmt := format($q$
        insert into hc.inbound_rereads as q (mapping_id, sfid, not_before, after_writes)
        select %1$s, s.sfid, now() + interval '5 seconds', %8$s
          from (select %2$s as sfid %3$s from %4$s where true %%s) s join %5$s t on (t.sfid = s.sfid %7$s)
         where %6$s or %8$s
        on conflict (mapping_id, sfid) do update set not_before = greatest(q.not_before, excluded.not_before),
                                                     after_writes = q.after_writes or excluded.after_writes$q$,
        p_mapping_id, p.id_expr,
        (select coalesce(string_agg(format(', %s as %s', e, c), ''), '') from unnest(p.sel, p.cols) as u(e, c)),
        p.src, p.tbl,
        (select coalesce(string_agg(format('(($2 -> t.id::text ->> %2$L) = ''sent'' and t.%1$s is distinct from s.%1$s)', c, trim(both '"' from c)), ' or '), 'false')
           from unnest(p.cols) c),
        case when p.upsert_col is null then '' else format('or (t.sfid is null and t.%1$s = s.%1$s)', p.upsert_col) end,
        -- (not for a column an open conflict parks, nor a record an open delete conflict keeps: those
        -- values wait for hc.resolve_conflict on purpose, whose writes bring their own echoes; read again,
        -- they would be queued again, for ever. Another column of that record is read as any other.)
        case when p_origin = 'cdc' then 'false'
             else (select coalesce('coalesce(' || string_agg(format('(($2 -> t.id::text ->> %2$L) = ''pending'' and t.%1$s is distinct from s.%1$s
                                                                      and not exists (select 1 from hc.conflicts k where k.mapping_id = %3$s and k.sfid = t.sfid
                                                                                       and k.resolved_at is null and (k.kind <> ''update'' or %2$L = any (k.columns))))',
                                                                    c, trim(both '"' from c), p_mapping_id), ' or ')
                                   || ', false)',
                                   'false')
                     from unnest(p.cols) c) end);
    begin
      execute format(stmt, '') using p_rows, pend;
      get diagnostics n_reread = row_count;
    exception when others then
      -- A row whose values do not cast (the apply below fails it alone, into the sync log) must not keep
      -- the others from being queued: one row at a time, each in its own subtransaction.
      for rid in execute format('select %s from %s', p.id_expr, p.src) using p_rows loop
        begin
          execute format(stmt, format('and %s = %L', p.id_expr, rid)) using p_rows, pend;
          get diagnostics n = row_count;
          n_reread := n_reread + n;
        exception when others then
          null;   -- (that row's own failure is logged by the apply)
        end;
      end loop;
    end;
  end if;
  return n_reread;
end;
$fn$;

-- Merge step 6: the rows stored, set-based, or one at a time when the set fails (a row that does not
-- fit fails alone, into the sync log).
create or replace function hc._merge_apply(p hc._merge_plan, m hc._mappings, p_origin text, p_rows jsonb, pend jsonb, kept text[],
                                           out n_applied bigint, out n_deleted bigint, out n_failed integer)
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  p_mapping_id integer := m.id;
  sets text[] := '{}';
  stmt text;
  rid text;
  n bigint;
  err_msg text;
  err_state text;
begin
  n_failed := 0;
  -- The SET list: a pending local column keeps its value; a column a write of ours may have changed
  -- since the incoming values were read keeps it too when they differ (the record is read again).
  select coalesce(array_agg(format('%1$s = case when ($2 -> t.id::text ->> %2$L) = ''pending'' then t.%1$s
                                                when ($2 -> t.id::text ->> %2$L) = ''sent'' and t.%1$s is distinct from excluded.%1$s then t.%1$s
                                                else excluded.%1$s end', c, trim(both '"' from c))), '{}')
    into sets from unnest(p.cols) c;

  -- One statement text, applied set-based, or per row (filter on one Id) when the set fails. New rows go
  -- in in sfid order, the order in which the writer stamps the rows of its creates with theirs
  -- (hc._complete_write_back): a record the writer just created can be read here before its write-back (a
  -- re-read), and two sessions entering the same two sfids into the unique index in opposite orders
  -- deadlock.
  stmt := format($q$
    with src as (
      select %2$s as sfid %3$s, %4$s as _del
      from %5$s
      where %2$s is not null %%s
    ),
    gone as (   -- rows Salesforce reports deleted (IsDeleted = true from a queryAll)
      delete from %1$s t using src where src._del and t.sfid = src.sfid and not src.sfid = any ($3) returning 1
    ),
    adopt as (  -- a row our writer created and is about to stamp with its sfid
      %6$s
    ),
    up as (
      insert into %1$s as t (sfid %7$s)
      select sfid %8$s from src
      where not src._del
        and not exists (select 1 from (select l.action, l.table_name from %9$s l
                                        where l.sfid = src.sfid and l.state in ('NEW', 'PENDING') offset 0) l
                        where l.action = 'DELETE' and l.table_name = %10$L)
        and not exists (select 1 from adopt where adopt.sfid = src.sfid)
      order by src.sfid
      on conflict (sfid) do update set %11$s
      %12$s
      returning 1
    )
    select (select count(*) from up) + (select count(*) from adopt), (select count(*) from gone)$q$,
    p.tbl,
    p.id_expr,
    (select coalesce(string_agg(format(', %s as %s', e, c), ''), '') from unnest(p.sel, p.cols) as u(e, c)),
    case when p.has_isdeleted then format('coalesce(%s, false)', p.isdeleted_expr) else 'false' end,
    p.src,
    case when p.upsert_col is null then 'select null::text as sfid where false'
         else format($a$update %1$s t set sfid = src.sfid %2$s
                        from src
                        where not src._del and t.sfid is null and t.%3$s = src.%3$s and src.%3$s is not null
                          and not exists (select 1 from %1$s x where x.sfid = src.sfid)
                        returning t.sfid$a$,
                     p.tbl,
                     (select coalesce(string_agg(format(', %1$s = case when ($2 -> t.id::text ->> %2$L) = ''pending'' then t.%1$s
                                                               when ($2 -> t.id::text ->> %2$L) = ''sent'' and t.%1$s is distinct from src.%1$s then t.%1$s
                                                               else src.%1$s end', c, trim(both '"' from c)), ''), '')
                        from unnest(p.cols) c where c <> p.upsert_col),
                     p.upsert_col) end,
    (select coalesce(string_agg(', ' || c, ''), '') from unnest(p.cols) c),
    (select coalesce(string_agg(', ' || c, ''), '') from unnest(p.cols) c),
    p.tlog,
    m.table_name,
    case when cardinality(sets) = 0 then 'sfid = excluded.sfid' else array_to_string(sets, ', ') end,
    -- A full row older than what the table holds (a poll page racing a CDC event) is not applied.
    case when p.full_row and p.smod_expr is not null
         then 'where t.systemmodstamp is null or excluded.systemmodstamp is null or excluded.systemmodstamp >= t.systemmodstamp'
         else '' end);

  begin
    execute format(stmt, '') using p_rows, pend, kept into n_applied, n_deleted;
  exception when others then
    -- The set failed on some row: apply one row at a time, each in its own subtransaction, so only the
    -- rows that do not fit fail (into the sync log, with the record id and the fix).
    n_applied := 0;
    n_deleted := 0;
    for rid in execute format('select %s from %s', p.id_expr, p.src) using p_rows loop
      begin
        execute format(stmt, format('and %s = %L', p.id_expr, rid)) using p_rows, pend, kept into n, n_deleted;
        n_applied := n_applied + n;
      exception when others then
        get stacked diagnostics err_msg = message_text, err_state = returned_sqlstate;
        n_failed := n_failed + 1;
        insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail)
        values (m.connection_id, p_mapping_id, 'inbound', 'error', 'row_failed',
                format('%s %s could not be stored: %s. Fix: widen or retype the column (hc.create_mapping/import_config), or correct the value in Salesforce; the row is read again on its next change or reload.',
                       m.object_name, rid, err_msg),
                jsonb_build_object('sfid', rid, 'sqlstate', err_state, 'error', err_msg, 'origin', p_origin));
      end;
    end loop;
  end;
end;
$fn$;

-- Applies rows to a mapping's table. p_source is either 'json' (p_rows is a JSON array of objects keyed
-- by soql name, values as Salesforce sends them) or the name of a staging table with one text column per
-- soql name (Bulk CSV pages are COPYed there). p_fields lists the soql names present (a CDC UPDATE
-- carries only the changed fields: the others are left alone). 'Id' must be among them.
-- p_origin is recorded in the log ('load', 'poll', 'cdc', 'cdc-echo', 'reread', 'drift').
-- Returns {"applied": n, "deleted": n, "failed": n, "conflicts": n, "skipped_deleted": n}.
create or replace function hc.inbound_merge(p_mapping_id integer, p_source text, p_fields text[],
                                            p_rows jsonb default null, p_origin text default 'load')
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  p hc._merge_plan;
  tbl text;
  tlog text;
  src text;
  id_expr text;
  pend jsonb;
  failed jsonb := '{}';
  n_reread integer := 0;
  n_applied bigint := 0;
  n_deleted bigint := 0;
  n_failed integer := 0;
  n_conflicts integer := 0;
  n_skipped integer := 0;
  n bigint;
  conf jsonb;
  kept text[] := '{}';
begin
  t := hc._inbound_target(p_mapping_id);
  tlog := format('%I._trigger_log', t.schema_name);
  -- The steps: hc._merge_plan, then (the rows locked) hc._merge_pending, the conflict rules,
  -- hc._merge_kept_deleted, hc._merge_queue_rereads and hc._merge_apply.
  p := hc._merge_plan(p_mapping_id, p_source, p_fields, p_origin);
  tbl := p.tbl;
  src := p.src;
  id_expr := p.id_expr;

  -- The rows this batch touches are locked first, in id order (as hc.outbound_complete locks them):
  -- a writer recording results for the same rows can then never deadlock with us. And only once we
  -- hold them is the set of pending local changes read: an application update of one of these rows
  -- that was in flight commits before we get the lock, and its trigger-log entry is visible to the
  -- next statement. Read before the lock, that entry was missed and the echo overwrote the newer local
  -- value, which the echo of the newer value then left alone (it was pending by then): local and
  -- Salesforce disagreed for good.
  execute format('select count(*) from (select 1 from %s t where t.sfid in (select %s from %s) order by t.id for update of t) x',
                 tbl, id_expr, src)
    using p_rows into n;

  pend := hc._merge_pending(p, t.m, p_rows);

  -- Conflicts (sql/000050_conflicts.sql): a column changed here and in Salesforce since the value both
  -- last agreed on is decided by the mapping's conflict_policy and recorded in hc.conflicts; a column
  -- Salesforce wins is marked "take", a parked or Postgres-won one "pending".
  conf := hc._conflicts_inbound(p_mapping_id, p_origin, src, p_fields, p_rows, pend);
  pend := conf->'pend';
  n_conflicts := (conf->>'conflicts')::integer;

  -- Rows Salesforce reports deleted (IsDeleted) while changed here: the policy decides; those kept stay.
  kept := hc._merge_kept_deleted(p, p_mapping_id, p_origin, p_rows);

  n_reread := hc._merge_queue_rereads(p, p_mapping_id, p_origin, p_rows, pend);

  -- Rows whose last local change Salesforce refused: after a partial (change event) row they read FAILED
  -- again, with their error (below). A full row replaces every column with Salesforce's value.
  if not p.full_row then
    execute format($q$select coalesce(jsonb_object_agg(t.id::text, t._hc_err), '{}') from %s t
                       where t._hc_lastop = 'FAILED' and t.sfid in (select %s from %s)$q$, tbl, id_expr, src)
      using p_rows into failed;
  end if;

  -- Rows whose local DELETE is pending are not brought back (HC's "temporarily revived deletes"). Each
  -- record's pending entries are looked up by its sfid (hcsync_trigger_log_pending_sfid), the rest
  -- filtered after (offset 0): with the queue's statistics behind a burst, the planner otherwise read
  -- every pending entry of the table once per batch (98,000 of them for an echo batch of 118, 25 ms),
  -- here and again in hc._merge_apply.
  execute format($q$select count(*) from (select %1$s as sfid from %2$s) src
                   where exists (select 1 from (select l.action, l.table_name from %3$s l
                                                 where l.sfid = src.sfid and l.state in ('NEW', 'PENDING') offset 0) l
                                 where l.action = 'DELETE' and l.table_name = %4$L)$q$, id_expr, src, tlog, (t.m).table_name)
    using p_rows into n_skipped;

  select a.n_applied, a.n_deleted, a.n_failed into n_applied, n_deleted, n_failed
    from hc._merge_apply(p, t.m, p_origin, p_rows, pend, kept) a;

  -- A local delete still waiting while Salesforce changed the record: the policy decides.
  if n_skipped > 0 then
    n_conflicts := n_conflicts + hc._conflicts_pg_delete(p_mapping_id, p_origin, src, p_fields, p_rows);
  end if;

  -- A refused value is still in the row: it reads FAILED with its error, not SYNCED (a sync session's
  -- explicit status is kept by the status trigger).
  if failed <> '{}' then
    execute format($q$update %s t set _hc_lastop = 'FAILED', _hc_err = f.value
                        from jsonb_each_text($1) f where t.id = f.key::integer and t._hc_lastop is distinct from 'FAILED'$q$, tbl)
      using failed;
  end if;

  return jsonb_build_object('applied', n_applied, 'deleted', n_deleted, 'failed', n_failed,
                            'conflicts', n_conflicts, 'skipped_deleted', n_skipped, 'reread', n_reread);
end;
$fn$;

-- Salesforce deleted these records (CDC DELETE, getDeleted/queryAll IsDeleted): the rows go (HC removes
-- them), except rows changed here meanwhile, which the mapping's conflict_policy decides (p_at: when
-- Salesforce deleted them, at the latest). Returns how many rows were removed.
create or replace function hc.inbound_delete(p_mapping_id integer, p_sfids text[], p_origin text default 'cdc', p_at timestamptz default null)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  t record;
  n integer;
begin
  t := hc._inbound_target(p_mapping_id);
  p_sfids := hc._conflicts_sf_delete(p_mapping_id, p_sfids, p_origin, p_at);
  execute format('delete from %I.%I where sfid = any ($1)', t.schema_name, (t.m).table_name) using p_sfids;
  get diagnostics n = row_count;
  return n;
end;
$$;

-- Applies one batch of change events in one statement, and so in one transaction with the replay id of
-- its last event: after kill -9 the subscription resumes exactly after what was committed. The sidecar
-- lays the events out in waves (the k-th change of each record in wave k, so each is applied in order)
-- and fetches what a payload cannot carry before calling; p_batch:
--   {"epoch": n,                       the inbound leadership the batch was read under (hc.inbound_fence)
--    "touched": [sfid],                every record the batch names
--    "waves": [{"groups": [{"origin": "cdc" | "cdc-echo" | "reread", "fields": [soql name], "rows": [{...}]}],
--               "deletes": [sfid]}],
--    "echo": [sfid],                   records named by an echo of our own create or update
--    "reread": [sfid], "read_at": ts,  queued re-reads this batch read (at read_at) and so replaces
--    "channel", "replay_id", "watermark"}
-- Steps:
--   1. the fence: only the current leader commits;
--   2. the rows are locked in id order (as hc.outbound_complete locks them: no deadlock), waiting at most
--      200 ms; rows the application (or the writer recording results) still holds then are skipped: the
--      application never waits on a change-event batch for longer than that;
--   3. the re-reads done are taken off the queue; what this batch carries for a skipped row, and echoes of
--      creates of ours not written back yet (hc.outbound_echo_pending), are left out and wait, in their
--      order, in hc.inbound_deferred_echoes; those whose row holds the record and is free now are applied,
--      before this batch's own events, as the change events they were (not read again: by then a write
--      of ours may have landed over a user's change, and a read would not tell that the user made it);
--   4. wave by wave, each group goes through hc.inbound_merge, which compares it with the pending (and
--      recently sent) local changes of these rows only, and the wave's deletes follow; then the position.
-- Returns the summed counts of hc.inbound_merge plus {"deferred": n} (records skipped, their changes kept).
create or replace function hc.inbound_apply(p_mapping_id integer, p_batch jsonb)
returns jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
  tbl text;
  touched text[] := array(select jsonb_array_elements_text(coalesce(p_batch->'touched', '[]')));
  held text[];
  skipped text[] := '{}';
  behind text[] := '{}';
  n_skipped integer;
  ours text[] := '{}';
  w jsonb;
  g jsonb;
  rows jsonb;
  r jsonb;
  total jsonb := '{"applied": 0, "deleted": 0, "failed": 0, "conflicts": 0, "skipped_deleted": 0, "reread": 0}';
  dels text[];
  k text;
  ready text[];
  deferred jsonb := '[]';
  applied bigint[];
  lock_wait text := current_setting('lock_timeout');
begin
  t := hc._inbound_target(p_mapping_id);
  tbl := format('%I.%I', t.schema_name, (t.m).table_name);

  -- 1. Only the current leader's batch commits.
  if p_batch->>'epoch' is not null then
    perform hc.inbound_fence((t.m).connection_id, (p_batch->>'epoch')::bigint);
  end if;

  -- Deferred changes whose record a row holds: applied first, so their rows are locked too. After an hour
  -- (a row held that long, or a create of ours never written back) they are given up: a record a row
  -- holds is read again instead.
  execute format($q$
    with gone as (delete from hc.inbound_deferred_echoes e where e.mapping_id = $1 and e.deferred_at < now() - interval '1 hour'
                  returning e.sfid)
    insert into hc.inbound_rereads as q (mapping_id, sfid, not_before)
    select distinct $1, gone.sfid, now() from gone join %s t on t.sfid = gone.sfid
    on conflict (mapping_id, sfid) do nothing$q$, tbl)
    using p_mapping_id;
  if exists (select 1 from hc.inbound_deferred_echoes e where e.mapping_id = p_mapping_id) then
    execute format('select coalesce(array_agg(distinct e.sfid), ''{}'') from hc.inbound_deferred_echoes e join %s t on t.sfid = e.sfid where e.mapping_id = $1', tbl)
      using p_mapping_id into ready;
  end if;

  -- 2. Lock the rows in id order. The rows of records with deferred changes first, without waiting: one
  --    still held stays behind (with what this batch carries for it), and a row an application holds for
  --    long does not cost every batch a wait. Then the batch's other rows: an application transaction
  --    holding one of them makes us wait 200 ms at most; then we take the rows that are free, and what the
  --    batch carries for the others waits (3). (The first pass never waits, so the two passes cannot
  --    deadlock with the writer, which locks in id order too.)
  if cardinality(ready) > 0 then
    execute format('select coalesce(array_agg(sfid), ''{}'') from (select t.sfid from %s t where t.sfid = any ($1) order by t.id for update of t skip locked) x', tbl)
      using ready into held;
    behind := array(select x from unnest(ready) x where not x = any (held));
    touched := array(select x from unnest(touched) x where not x = any (ready));
  end if;
  if cardinality(touched) > 0 then
    begin
      perform set_config('lock_timeout', '200ms', true);
      execute format('select array_agg(sfid) from (select t.sfid from %s t where t.sfid = any ($1) order by t.id for update of t) x', tbl)
        using touched into held;
    exception when lock_not_available then
      execute format('select array_agg(sfid) from (select t.sfid from %s t where t.sfid = any ($1) order by t.id for update of t skip locked) x', tbl)
        using touched into held;
      execute format('select coalesce(array_agg(t.sfid), ''{}'') from %s t where t.sfid = any ($1) and not t.sfid = any ($2)', tbl)
        using touched, coalesce(held, '{}') into skipped;
    end;
    perform set_config('lock_timeout', lock_wait, true);
  end if;
  n_skipped := cardinality(skipped);
  skipped := skipped || behind;

  -- 3. Re-reads this batch carries are done (unless queued again since they were read); for a skipped
  --    row the values read wait with its other changes, below.
  if jsonb_array_length(coalesce(p_batch->'reread', '[]')) > 0 then
    delete from hc.inbound_rereads q
     where q.mapping_id = p_mapping_id and q.sfid in (select jsonb_array_elements_text(p_batch->'reread'))
       and q.not_before <= (p_batch->>'read_at')::timestamptz;
  end if;
  if jsonb_array_length(coalesce(p_batch->'echo', '[]')) > 0 then
    ours := hc.outbound_echo_pending(p_mapping_id, array(select jsonb_array_elements_text(p_batch->'echo')));
  end if;
  -- Echoes of creates not written back yet wait (in their order) for the write-back, and what the batch
  -- carries for a skipped row waits for the row.
  ours := ours || skipped;
  if cardinality(ours) > 0 then
    insert into hc.inbound_deferred_echoes (mapping_id, sfid, origin, fields, row)
    select p_mapping_id, x.sfid, x.origin, x.fields, x.row from (
      select w.i, g.j, r.k, r.x->>'Id' as sfid, g.x->>'origin' as origin,
             array(select jsonb_array_elements_text(g.x->'fields')) as fields, r.x as row
        from jsonb_array_elements(coalesce(p_batch->'waves', '[]')) with ordinality w(x, i),
             jsonb_array_elements(coalesce(w.x->'groups', '[]')) with ordinality g(x, j),
             jsonb_array_elements(g.x->'rows') with ordinality r(x, k)
       where r.x->>'Id' = any (ours)
      union all
      select w.i, 1e9::bigint, d.k, d.x, 'cdc', null::text[], null::jsonb
        from jsonb_array_elements(coalesce(p_batch->'waves', '[]')) with ordinality w(x, i),
             jsonb_array_elements_text(coalesce(w.x->'deletes', '[]')) with ordinality d(x, k)
       where d.x = any (ours)) x
     order by x.i, x.j, x.k;
  end if;
  -- A skipped row the batch carries nothing for, and whose record waits for nothing here: read again.
  if cardinality(skipped) > 0 then
    insert into hc.inbound_rereads as q (mapping_id, sfid, not_before)
    select p_mapping_id, x, now() + interval '1 second' from unnest(skipped) x
     where not exists (select 1 from hc.inbound_deferred_echoes e where e.mapping_id = p_mapping_id and e.sfid = x)
    on conflict (mapping_id, sfid) do update set not_before = greatest(q.not_before, excluded.not_before);
  end if;
  -- Deferred changes whose record a row holds now, the row locked above: applied before this batch's
  -- waves, in waves of their own as the reader lays events out (a record's k-th deferred change in the
  -- k-th, grouped by origin and field list), so a hundred of them are a few merges, not a hundred.
  if cardinality(ready) > 0 then
    with d as (
      select e.id, e.sfid, e.origin, e.fields, e.row, row_number() over (partition by e.sfid order by e.id) as k
        from hc.inbound_deferred_echoes e
       where e.mapping_id = p_mapping_id and e.sfid = any (ready) and not e.sfid = any (skipped)),
    g as (
      select d.k, jsonb_agg(jsonb_build_object('origin', d.origin, 'fields', to_jsonb(d.fields), 'rows', d.rows)) as groups
        from (select d.k, d.origin, d.fields, jsonb_agg(d.row order by d.id) as rows
                from d where d.fields is not null group by d.k, d.origin, d.fields) d
       group by d.k),
    x as (
      select d.k, jsonb_agg(d.sfid order by d.id) filter (where d.fields is null) as deletes from d group by d.k)
    select coalesce(jsonb_agg(jsonb_build_object('groups', coalesce(g.groups, '[]'), 'deletes', coalesce(x.deletes, '[]'))
                              order by x.k), '[]'),
           (select array_agg(d.id) from d)
      into deferred, applied
      from x left join g on g.k = x.k;
    delete from hc.inbound_deferred_echoes e where e.id = any (applied);
  end if;
  update hc.inbound_deferred_echoes e set check_at = now() + interval '1 second'
   where e.mapping_id = p_mapping_id and e.check_at <= now();

  -- 4. Wave by wave: the rows, group by group (each group shares one field list), then the deletes.
  for w in select x from jsonb_array_elements(deferred || coalesce(p_batch->'waves', '[]')) x loop
    for g in select x from jsonb_array_elements(coalesce(w->'groups', '[]')) x loop
      -- (rebuilt only when some record is left out: re-aggregating 10,000 rows is wasted work otherwise)
      if cardinality(ours || skipped) = 0 then
        rows := g->'rows';
      else
        select coalesce(jsonb_agg(x), '[]') into rows from jsonb_array_elements(g->'rows') x
         where not (x->>'Id') = any (ours || skipped);
      end if;
      continue when jsonb_array_length(rows) = 0;
      r := hc.inbound_merge(p_mapping_id, 'json', array(select jsonb_array_elements_text(g->'fields')), rows, g->>'origin');
      for k in select jsonb_object_keys(total) loop
        total := jsonb_set(total, array[k], to_jsonb(coalesce((total->>k)::bigint, 0) + coalesce((r->>k)::bigint, 0)));
      end loop;
    end loop;
    dels := array(select x from jsonb_array_elements_text(coalesce(w->'deletes', '[]')) x where not x = any (skipped || ours));
    if cardinality(dels) > 0 then
      -- (when Salesforce deleted them, at the latest: the batch's last commit; a conflict under latest compares it)
      total := jsonb_set(total, '{deleted}', to_jsonb((total->>'deleted')::bigint
                                                      + hc.inbound_delete(p_mapping_id, dels, 'cdc', (p_batch->>'watermark')::timestamptz)));
    end if;
  end loop;
  if p_batch->>'replay_id' is not null then
    perform hc.inbound_position(p_mapping_id, p_batch->>'channel', p_batch->>'replay_id', (p_batch->>'watermark')::timestamptz);
  end if;
  return total || jsonb_build_object('deferred', n_skipped);
end;
$fn$;

-- The queued re-reads of a mapping that may go when their time comes: all but those waiting for a local
-- change of their record to be sent (after_writes while a NEW or PENDING entry names the row).
create or replace function hc._inbound_rereads_open(p_mapping_id integer)
returns table (sfid text, not_before timestamptz)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $fn$
declare
  t record;
begin
  if not exists (select 1 from hc.inbound_rereads q where q.mapping_id = p_mapping_id) then
    return;
  end if;
  t := hc._inbound_target(p_mapping_id);
  return query execute format($q$
    select q.sfid, q.not_before from hc.inbound_rereads q
     where q.mapping_id = $1
       and (not q.after_writes or not exists (
             select 1 from %1$s r join %2$s l on l.record_id = r.id
              where r.sfid = q.sfid and l.table_name = $2 and l.state in ('NEW', 'PENDING')))$q$,
    format('%I.%I', t.schema_name, (t.m).table_name), format('%I._trigger_log', t.schema_name))
    using p_mapping_id, (t.m).table_name;
end;
$fn$;

-- The records due to be read again (at most p_limit), for the next batch to read and apply.
create or replace function hc.inbound_rereads_due(p_mapping_id integer, p_limit integer default 2000)
returns text[]
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(array_agg(sfid), '{}') from (
    select sfid from hc._inbound_rereads_open(p_mapping_id) where not_before <= now()
     order by not_before limit p_limit) x;
$$;

-- When the reader should look at its queued re-reads next (null: none queued). Those waiting for local
-- changes to be sent are looked at again every second, as the deferred echoes are: a change may be
-- recorded without any further change event to wake the reader.
create or replace function hc.inbound_rereads_next(p_mapping_id integer)
returns timestamptz
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select min(x) from (select min(not_before) x from hc._inbound_rereads_open(p_mapping_id)
                      union all
                      select min(check_at) from hc.inbound_deferred_echoes where mapping_id = p_mapping_id
                      union all
                      select now() + interval '1 second'
                       where exists (select 1 from hc.inbound_rereads q where q.mapping_id = p_mapping_id and q.after_writes)) y;
$$;

-- Where the mapping's inbound sync stands (its hc.sync_positions row, none before its first position): what the sidecar reads of it.
create or replace function hc._sync_position(p_mapping_id integer)
returns setof hc.sync_positions
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select * from hc.sync_positions where mapping_id = p_mapping_id;
$$;

-- Logs an inbound event of the sidecar to hc.sync_log (a finished load or reload, a drift repair); no level: the column's default.
create or replace function hc.inbound_log(p_connection_id integer, p_mapping_id integer, p_event text, p_message text, p_detail jsonb, p_level text default null)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_level is null then
    insert into hc.sync_log (connection_id, mapping_id, direction, event, message, detail) values (p_connection_id, p_mapping_id, 'inbound', p_event, p_message, p_detail);
  else
    insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail) values (p_connection_id, p_mapping_id, 'inbound', p_level, p_event, p_message, p_detail);
  end if;
end;
$$;

-- Records how far the inbound reader has applied, in the caller's transaction (the same one that applied
-- the rows): a crash either keeps both or neither. NULL arguments leave a value as it is; the poll
-- watermark never moves backwards.
create or replace function hc.inbound_position(p_mapping_id integer, p_replay_channel text default null, p_replay_id text default null,
                                               p_poll_watermark timestamptz default null, p_delete_watermark timestamptz default null,
                                               p_reset_replay boolean default false)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into hc.sync_positions as p (mapping_id, replay_channel, replay_id, poll_watermark, delete_watermark)
  values (p_mapping_id, p_replay_channel, p_replay_id, p_poll_watermark, p_delete_watermark)
  on conflict (mapping_id) do update set
    replay_channel = case when p_reset_replay then excluded.replay_channel else coalesce(excluded.replay_channel, p.replay_channel) end,
    replay_id = case when p_reset_replay then excluded.replay_id else coalesce(excluded.replay_id, p.replay_id) end,
    poll_watermark = greatest(p.poll_watermark, excluded.poll_watermark),
    delete_watermark = greatest(p.delete_watermark, excluded.delete_watermark),
    updated_at = now();
$$;

-- Progress of a load (rows, rate, ETA), shown in hc.mappings.
create or replace function hc.inbound_progress(p_mapping_id integer, p_progress jsonb)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update hc._mappings set progress = p_progress where id = p_mapping_id;
$$;

-- A finished poll: when it ran (hc.mappings.last_poll_at).
create or replace function hc.inbound_polled(p_mapping_id integer)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update hc._mappings set last_poll_at = now() where id = p_mapping_id;
$$;

-- Before a reload starts: refused while local writes wait to be sent (the operator waits for the writer,
-- or discards the entries, and asks again). Forgets what an earlier, interrupted reload had read.
create or replace function hc.inbound_begin_reload(p_mapping_id integer)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  t record;
  n integer;
begin
  t := hc._inbound_target(p_mapping_id);
  execute format($q$select count(*) from %I._trigger_log where state in ('NEW', 'PENDING') and table_name = %L$q$,
                 t.schema_name, (t.m).table_name) into n;
  if n > 0 then
    raise exception 'hcsync: reload of % refused: % local change(s) to %.% are still waiting to be sent to Salesforce',
        (t.m).object_name, n, t.schema_name, (t.m).table_name
      using errcode = 'object_in_use',
            hint = format('Wait until select count(*) from %I._trigger_log where state in (''NEW'',''PENDING'') and table_name = %L is 0 (or discard them with hc.discard), then call hc.reload(%L) again.',
                          t.schema_name, (t.m).table_name, (t.m).object_name);
  end if;
  delete from hc._reload_seen where mapping_id = p_mapping_id;
end;
$$;

-- The sfids a reload has read (called with each page, in the page's transaction).
create or replace function hc.inbound_reload_seen(p_mapping_id integer, p_sfids text[])
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  insert into hc._reload_seen (mapping_id, sfid)
  select p_mapping_id, x from unnest(p_sfids) x where x is not null
  on conflict do nothing;
$$;

-- A reload has read every record: rows with an sfid it did not read are gone from Salesforce and are
-- removed now (not before: an aborted reload removes nothing). A row the application changed since the
-- reload began (an entry in the trigger log or its archive) is left to the drift sweep: its sfid may
-- have been written back after the records were read. The positions start again from the reload, as
-- after a first load. Returns the number of rows removed.
create or replace function hc.inbound_finish_reload(p_mapping_id integer, p_started timestamptz)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  t record;
  n integer;
begin
  t := hc._inbound_target(p_mapping_id);
  execute format($q$
    delete from %1$I.%2$I x
     where x.sfid is not null
       and not exists (select 1 from hc._reload_seen s where s.mapping_id = $1 and s.sfid = x.sfid)
       and not exists (select 1 from %1$I._trigger_log l
                        where l.table_name = $3 and l.record_id = x.id
                          and (l.state in ('NEW', 'PENDING') or l.created_at >= $2 or l.processed_at >= $2))
       and not exists (select 1 from %1$I._trigger_log_archive l
                        where l.record_id = x.id and l.table_name = $3 and (l.created_at >= $2 or l.processed_at >= $2))$q$,
    t.schema_name, (t.m).table_name) using p_mapping_id, p_started, (t.m).table_name;
  get diagnostics n = row_count;
  delete from hc._reload_seen where mapping_id = p_mapping_id;
  delete from hc.sync_positions where mapping_id = p_mapping_id;
  return n;
end;
$$;

-- The connection's first start binds it to its org (HC's rule): the org id and API version are recorded
-- in <schema>._hcmeta and hc.connections. A different org later is refused, because the table contents
-- (sfids) belong to the first one.
create or replace function hc.bind_org(p_connection_id integer, p_org_id text, p_api_version text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections;
  bound text;
begin
  select * into c from hc.connections where id = p_connection_id for update;
  if not found then
    raise exception 'hcsync: connection % does not exist', p_connection_id using errcode = 'undefined_object';
  end if;
  if p_org_id is null or p_org_id = '' then
    raise exception 'hcsync: Salesforce did not tell which org this is (no organization id after sign-in)'
      using hint = 'Check SF_LOGIN_URL and that the integration user can call the identity service.';
  end if;
  execute format('select org_id from %I._hcmeta order by id limit 1', c.schema_name) into bound;
  bound := coalesce(bound, c.organization_id);
  -- Ids compare on their 15-character case-sensitive form (an org id may be given in 15 or 18 chars).
  if bound is not null and left(bound, 15) <> left(p_org_id, 15) then
    raise exception 'hcsync: connection "%" (schema %) belongs to Salesforce org %, but the credentials sign in to org %',
        c.name, c.schema_name, bound, p_org_id
      using errcode = 'invalid_authorization_specification',
            hint = 'Use the credentials of the org this schema was synced with, or create a new connection (another HC_SCHEMA) for the other org.';
  end if;
  execute format($q$update %I._hcmeta set org_id = $1, details = $2 where id = (select min(id) from %I._hcmeta)$q$, c.schema_name, c.schema_name)
    using p_org_id, 'hcsync api_version=' || p_api_version;
  update hc.connections set organization_id = p_org_id, api_version = p_api_version, updated_at = now()
  where id = p_connection_id and (organization_id is distinct from p_org_id or api_version is distinct from p_api_version);
  -- Signed in and bound: a new connection is ready (HC: NEW/NEED_AUTHENTICATION → IDLE).
  if c.state in ('NEW', 'NEED_AUTHENTICATION') then
    perform hc.set_connection_state('IDLE', null, c.name);
  end if;
end;
$$;

-- Id reconciliation under the hourly drift count.
--
-- The hourly drift sweep compares SELECT COUNT() with the table's row count: one API call, but blind to
-- a missed create and a missed delete that cancel out. So, once a day (HC_RECONCILE_SECONDS) or whenever
-- the counts differ, the sidecar lists every live record's Id and SystemModstamp (REST pages up to
-- 10,000 rows, a Bulk 2.0 query above: a few API calls per mapping), COPYs the list into a temp table,
-- and this function compares it with the table. The comparison and the removals are here; the sidecar
-- only re-reads by Id what this function asks for.

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
set search_path = pg_catalog, pg_temp
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
                  and not exists (select 1 from %s l where l.sfid = x.sfid)
                  -- (a row kept by an open conflict, deleted in Salesforce while changed here, waits for its decision)
                  and not exists (select 1 from hc.conflicts k where k.mapping_id = $2 and k.sfid = x.sfid and k.resolved_at is null)',
                 tbl, p_listing) using cutoff, p_mapping_id;
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
set search_path = pg_catalog, pg_temp
as $$
  update hc.sync_positions set reconciled_at = p_at, updated_at = now() where mapping_id = p_mapping_id;
$$;

-- Tries to become the inbound leader of a connection on the caller's session (held until the session
-- ends). Returns the new epoch when the caller leads now, NULL when another session does.
create or replace function hc.inbound_try_lead(p_connection_id integer)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  e bigint;
begin
  if not pg_try_advisory_lock(hc.lock_class('inbound_lead'), p_connection_id) then
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
set search_path = pg_catalog, pg_temp
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
create or replace view hc.inbound_leaders as
select c.id as connection_id, c.name as connection_name, e.epoch, e.since, l.pid, a.application_name, a.client_addr
from hc.connections c
left join pg_locks l on l.locktype = 'advisory' and l.granted
  -- advisory locks are per database, pg_locks shows every database's
  and l.database = (select oid from pg_database where datname = current_database())
  and l.classid::bigint = hc.lock_class('inbound_lead') and l.objid::bigint = c.id and l.objsubid = 2
left join pg_stat_activity a on a.pid = l.pid
left join hc.inbound_leases e on e.connection_id = c.id;

-- The drift sweep's clock lives in the database: the sweep ran HC_DRIFT_SECONDS after each start of the
-- sidecar, so a sidecar restarted more often than that (deploys, a crash loop) never swept at all. Now
-- the time of the last sweep is stored (hc.sync_positions.drift_checked_at), and a starting sidecar
-- sweeps when the interval since then has passed, whatever happened in between.

-- A finished sweep (count compared, ids reconciled when due).
create or replace function hc.inbound_drift_checked(p_mapping_id integer)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
  update hc.sync_positions set drift_checked_at = now(), updated_at = now() where mapping_id = p_mapping_id;
$$;

-- When the next sweep of a mapping is due: an interval after the last sweep, or after the load (which
-- read everything) when there was none yet.
create or replace function hc.inbound_drift_due(p_mapping_id integer, p_interval interval)
returns timestamptz
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(p.drift_checked_at, p.reconciled_at, now()) + p_interval
  from hc.sync_positions p where p.mapping_id = p_mapping_id;
$$;
