-- The functions and views of sql/000002_connection.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- The hstore type, qualified by the schema its extension lives in (public in Heroku Connect databases,
-- heroku_ext in Heroku's newer ones): HC's re-queue functions take an hstore argument.
create or replace function hc._hstore_type() returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select format('%I.hstore', n.nspname) from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'hstore'
$$;

-- What HC's re-queue functions accept: a row that exists in a mapped table of the connection, with the
-- sfid the row has (when the hstore names one).
create or replace function hc._requeue_check(s text, t text, row_id text, src text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  present boolean;
  row_sfid text;
  given boolean;
  given_sfid text;
begin
  if not exists (select 1 from hc._mappings m join hc.connections c on c.id = m.connection_id
                  where c.schema_name = s and m.table_name = t) then
    raise exception 'hcsync: %.% is not a mapped table', s, t
      using errcode = 'invalid_parameter_value', hint = 'Pass the mapped table''s name, as listed in hc.mappings.';
  end if;
  execute format('select true, sfid::text from %I.%I where id = $1', s, t) into present, row_sfid using row_id::integer;
  if present is null then
    raise exception 'hcsync: %.% has no row with id %', s, t, row_id
      using errcode = 'no_data_found', hint = format('Re-queue a row as it is: select %I.hc_capture_update_from_row(hstore(t.*), %L) from %I.%I t where id = ...;', s, t, s, t);
  end if;
  select true, p.value into given, given_sfid from hc._hstore_pairs(src) p where p.key = 'sfid';
  if given and given_sfid is distinct from row_sfid then
    raise exception 'hcsync: the entry for %.% row % names sfid %, but the row''s sfid is %', s, t, row_id,
        coalesce(given_sfid, 'NULL'), coalesce(row_sfid, 'NULL')
      using errcode = 'invalid_parameter_value', hint = 'Build the hstore from the row itself: hstore(t.*).';
  end if;
end;
$$;

-- Connection objects, step 1: HC's metadata table, the outbound queue (_trigger_log) and its archive.
create or replace function hc._install_queue(s text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
begin
  -- HC's schema metadata; HC declares the database unusable when it (or the trigger logs) disappear.
  execute format($ddl$
    create table if not exists %1$I._hcmeta (
      id       serial constraint _hcmeta_pkey primary key,
      hcver    integer,
      org_id   character varying(50),
      details  text
    )$ddl$, s);
  execute format($ddl$
    insert into %1$I._hcmeta (hcver, details)
    select 3, 'hcsync' where not exists (select 1 from %1$I._hcmeta)$ddl$, s);

  -- The outbound queue: one row per captured change. old/"values" are hstore *text* (not hstore).
  execute format($ddl$
    create table if not exists %1$I._trigger_log (
      id            serial constraint _trigger_log_pkey primary key,
      txid          bigint,
      created_at    timestamp with time zone default now(),
      updated_at    timestamp with time zone default now(),
      processed_at  timestamp with time zone,
      processed_tx  bigint,
      state         character varying(8),
      action        character varying(7),
      table_name    character varying(128),
      record_id     integer,
      sfid          character varying(18),
      old           text,
      "values"      text,
      sf_result     integer,
      sf_message    text
    )$ddl$, s);
  execute format('create index if not exists _trigger_log_idx_created_at on %I._trigger_log (created_at)', s);
  execute format('create index if not exists _trigger_log_idx_state_id on %I._trigger_log (state, id)', s);
  execute format($ddl$create index if not exists _trigger_log_idx_state_table_name on %I._trigger_log (state, table_name)
                      where state in ('NEW', 'PENDING')$ddl$, s);
  -- Ours (hcsync_*), not HC's: the read side looks up the entries of the rows a change-event batch
  -- touches by record id (HC's own indexes would make it read the whole queue for every batch), and a
  -- pending local DELETE by sfid.
  execute format('create index if not exists hcsync_trigger_log_record_id on %I._trigger_log (record_id)', s);
  execute format($ddl$create index if not exists hcsync_trigger_log_pending_sfid on %I._trigger_log (sfid)
                      where state in ('NEW', 'PENDING')$ddl$, s);

  -- Processed entries move here and keep their id (no sequence, no defaults).
  execute format($ddl$
    create table if not exists %1$I._trigger_log_archive (
      id            integer not null constraint _trigger_log_archive_pkey primary key,
      txid          bigint,
      created_at    timestamp with time zone,
      updated_at    timestamp with time zone,
      processed_at  timestamp with time zone,
      processed_tx  bigint,
      state         character varying(8),
      action        character varying(7),
      table_name    character varying(128),
      record_id     integer,
      sfid          character varying(18),
      old           text,
      "values"      text,
      sf_result     integer,
      sf_message    text
    )$ddl$, s);
  execute format('create index if not exists _trigger_log_archive_idx_created_at on %I._trigger_log_archive (created_at)', s);
  execute format('create index if not exists _trigger_log_archive_idx_record_id on %I._trigger_log_archive (record_id)', s);
  execute format($ddl$create index if not exists _trigger_log_archive_idx_state_table_name on %I._trigger_log_archive (state, table_name)
                      where state = 'FAILED'$ddl$, s);
end;
$fn$;

-- Connection objects, step 2: HC's inbound event log (_sf_event_log).
create or replace function hc._install_event_log(s text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
begin
  -- Inbound events (streaming/CDC notifications) as HC lays them out.
  execute format($ddl$
    create table if not exists %1$I._sf_event_log (
      id            serial constraint _sf_event_log_pkey primary key,
      table_name    character varying(128),
      action        character varying(7),
      synced_at     timestamp with time zone default now(),
      sf_timestamp  timestamp with time zone,
      sfid          character varying(20),
      record        text,
      processed     boolean
    )$ddl$, s);
  execute format('create index if not exists idx__sf_event_log_comp_key on %I._sf_event_log (table_name, synced_at)', s);
  execute format('create index if not exists idx__sf_event_log_sfid on %I._sf_event_log (sfid)', s);
end;
$fn$;

-- Connection objects, step 3: the writer's wake-up on every queued entry.
create or replace function hc._install_queue_notify(s text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
begin
  -- The writer's wake-up: channel '<schema>.hc_trigger_log', payload 'ping'. Never row data: payloads
  -- are limited to 8000 bytes and identical payloads in one transaction collapse into one notification.
  execute format($ddl$
    create or replace function %1$I.tlog_notify_trigger() returns trigger
    language plpgsql
    as $body$
    begin
      -- VERSION 1 --
      perform pg_notify(%2$L, 'ping');
      return new;
    end;
    $body$$ddl$, s, s || '.hc_trigger_log');
  execute format('drop trigger if exists tlog_insert_trigger on %I._trigger_log', s);
  execute format('create trigger tlog_insert_trigger after insert on %1$I._trigger_log for each row execute procedure %1$I.tlog_notify_trigger()', s);
end;
$fn$;

-- Connection objects, step 4: HC's re-queue functions (hc_capture_*_from_row), the owner's alone.
create or replace function hc._install_requeue(s text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
declare
  hs text := hc._hstore_type();
begin
  -- HC's documented way to re-queue a row (Ordered Writes): a new INSERT entry from the full row.
  -- SECURITY DEFINER: callers need no rights on _trigger_log. Like the capture triggers it resolves
  -- nothing outside pg_catalog and hc: the hstore argument is read as its text (hc._hstore_pairs), not
  -- through the extension's operators, which an overload in the extension's schema could replace.
  execute format($ddl$
    create or replace function %1$I.hc_capture_insert_from_row(source_row %2$s, table_name character varying, excluded_cols text[] default array[]::text[])
    returns integer
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
    as $body$
    #variable_conflict use_variable
    declare
      excluded_cols_standard text[] := array['_hc_lastop', '_hc_err']::text[];
      src text := source_row::text;
      row_id text := (select p.value from hc._hstore_pairs(src) p where p.key = 'id');
      retval integer;
    begin
      -- VERSION 1 --
      if row_id is null then
        -- source_row is required to have an int id value
        return null;
      end if;
      -- The writer sends what an entry says, so only a change of a row that exists in a mapped table of
      -- this connection, under the row's own sfid, is queued (an entry naming another record's sfid
      -- would write to that record).
      perform hc._requeue_check(%1$L, table_name, row_id, src);
      excluded_cols_standard := array_remove(array_remove(excluded_cols, 'id'), 'sfid') || excluded_cols_standard;
      insert into %1$I._trigger_log (action, table_name, txid, created_at, state, record_id, "values")
      values ('INSERT', table_name, txid_current(), clock_timestamp(), 'NEW',
              row_id::integer, hc._hstore_subset(src, excluded_cols_standard))
      returning id into retval;
      return retval;
    end;
    $body$$ddl$, s, hs);

  -- …and a new UPDATE entry carrying only columns_to_include (all columns when empty), old = NULL.
  execute format($ddl$
    create or replace function %1$I.hc_capture_update_from_row(source_row %2$s, table_name character varying, columns_to_include text[] default array[]::text[])
    returns integer
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
    as $body$
    #variable_conflict use_variable
    declare
      excluded_cols_standard text[] := array['_hc_lastop', '_hc_err']::text[];
      src text := source_row::text;
      row_id text := (select p.value from hc._hstore_pairs(src) p where p.key = 'id');
      retval integer;
    begin
      -- VERSION 1 --
      if row_id is null then
        -- source_row is required to have an int id value
        return null;
      end if;
      -- The writer sends what an entry says, so only a change of a row that exists in a mapped table of
      -- this connection, under the row's own sfid, is queued (an entry naming another record's sfid
      -- would write to that record).
      perform hc._requeue_check(%1$L, table_name, row_id, src);
      insert into %1$I._trigger_log (action, table_name, txid, created_at, state, record_id, sfid, "values", old)
      values ('UPDATE', table_name, txid_current(), clock_timestamp(), 'NEW', row_id::integer,
              (select p.value from hc._hstore_pairs(src) p where p.key = 'sfid'),
              hc._hstore_subset(src, excluded_cols_standard, columns_to_include), null)
      returning id into retval;
      return retval;
    end;
    $body$$ddl$, s, hs);

  -- Nobody but the owner changes the queue or calls the re-queue functions.
  execute format('revoke all on function %1$I.hc_capture_insert_from_row(%2$s, character varying, text[]), %1$I.hc_capture_update_from_row(%2$s, character varying, text[]) from public', s, hs);
  execute format('revoke all on function %I.tlog_notify_trigger() from public', s);
end;
$fn$;


create or replace function hc._install_connection_objects(s text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $fn$
begin
  execute format('create schema if not exists %I', s);
  -- The steps: hc._install_queue, hc._install_event_log, hc._install_queue_notify, hc._install_requeue.
  perform hc._install_queue(s);
  perform hc._install_event_log(s);
  perform hc._install_queue_notify(s);
  perform hc._install_requeue(s);
end;
$fn$;

-- Creates a connection: a row in hc.connections and HC's objects in schema_name. State NEW until the
-- sidecar has authenticated against the org. Returns the connection id.
create or replace function hc.create_connection(name text, schema_name text default 'salesforce')
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set client_min_messages = warning
as $$
declare
  c hc.connections;
  created boolean := false;
  foreign_objects text;
begin
  if name is null or btrim(name) = '' then
    raise exception 'hcsync: a connection needs a name' using errcode = 'invalid_parameter_value',
      hint = 'e.g. select hc.create_connection(''my-app'', ''salesforce'');';
  end if;
  -- At most 48 bytes: the writer's wake-up channel is '<schema>.hc_trigger_log' (HC's name), and
  -- pg_notify refuses a channel name past 63 bytes, which would fail every captured write.
  if schema_name is null or schema_name !~ '^[a-z_][a-z0-9_$]{0,47}$' then
    raise exception 'hcsync: "%" is not a usable schema name for a connection', schema_name
      using errcode = 'invalid_parameter_value',
            hint = 'Use a lower-case name of letters, digits and underscores, at most 48 characters (Heroku Connect''s default is salesforce).';
  end if;
  if schema_name in ('hc', 'public', 'information_schema') or schema_name like 'pg\_%' then
    raise exception 'hcsync: schema "%" is reserved and cannot hold a connection', schema_name
      using errcode = 'invalid_parameter_value', hint = 'Pick another schema name, e.g. salesforce.';
  end if;
  if exists (select 1 from hc.connections x where x.name = create_connection.name or x.schema_name = create_connection.schema_name) then
    raise exception 'hcsync: a connection named "%" or using schema "%" already exists', name, schema_name
      using errcode = 'duplicate_object',
            hint = 'Choose another name/schema, or remove the old one with DROP SCHEMA ... CASCADE and DELETE FROM hc.connections.';
  end if;
  -- An existing schema is adopted only when it is empty or a Heroku Connect schema (moving from HC keeps
  -- its tables): an application's own schema is refused, so that nothing of it is ever under a connection.
  if exists (select 1 from pg_namespace n where n.nspname = create_connection.schema_name) then
    if to_regclass(format('%I._hcmeta', schema_name)) is null and to_regclass(format('%I._trigger_log', schema_name)) is null then
      select string_agg(x.name, ', ' order by x.name) into foreign_objects
        from (select c2.relname::text as name from pg_class c2 join pg_namespace n on n.oid = c2.relnamespace
               where n.nspname = create_connection.schema_name and c2.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
              union all
              select p.proname::text || '()' from pg_proc p join pg_namespace n on n.oid = p.pronamespace
               where n.nspname = create_connection.schema_name
              union all
              select t.typname::text from pg_type t join pg_namespace n on n.oid = t.typnamespace
               where n.nspname = create_connection.schema_name and t.typtype in ('b', 'd', 'e', 'r', 'm')
                 and t.typelem = 0) x;
      if foreign_objects is not null then
        raise exception 'hcsync: schema "%" already exists and is not a Heroku Connect schema (it holds %)', schema_name, foreign_objects
          using errcode = 'duplicate_schema',
                hint = 'Give the connection a new schema name (hcsync creates it), an empty schema, or the schema of a Heroku Connect database, e.g. select hc.create_connection(''my-app'', ''salesforce'');';
      end if;
    end if;
  else
    created := true;
  end if;
  insert into hc.connections (name, schema_name, created_schema) values (name, schema_name, created) returning * into c;
  perform hc._install_connection_objects(schema_name);
  -- The operator and viewer roles read HC's queue. HC's re-queue functions stay the owner's: the writer sends what an
  -- entry says (hc.retry re-queues failed writes for operators).
  execute format('grant usage on schema %I to hcsync_admin, hcsync_viewer', schema_name);
  execute format('grant select on %1$I._trigger_log, %1$I._trigger_log_archive, %1$I._sf_event_log, %1$I._hcmeta to hcsync_admin, hcsync_viewer', schema_name);
  perform hc._control(c, 'create_connection', null, jsonb_build_object('name', name, 'schema_name', schema_name));
  return c.id;
end;
$$;
