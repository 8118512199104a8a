-- The functions and views of sql/000003_mapping.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- HC's Salesforce → Postgres type map (reference §2.3), from a describe field object.
-- Returns NULL for types that cannot be a column (compound address/location: map their components).
create or replace function hc.sf_to_pg_type(field jsonb) returns text
language sql immutable
as $$
  select case lower(field->>'type')
    when 'id'            then 'character varying(18)'
    when 'reference'     then 'character varying(18)'
    when 'string'        then format('character varying(%s)', coalesce(nullif((field->>'length')::int, 0), 255))
    when 'encryptedstring' then format('character varying(%s)', coalesce(nullif((field->>'length')::int, 0), 255))
    when 'combobox'      then format('character varying(%s)', coalesce(nullif((field->>'length')::int, 0), 255))
    when 'picklist'      then format('character varying(%s)', coalesce(nullif((field->>'length')::int, 0), 255))
    -- HC sizes every multi-select picklist at 4099, whatever the describe says.
    when 'multipicklist' then 'character varying(4099)'
    when 'email'         then format('character varying(%s)', coalesce(nullif((field->>'length')::int, 0), 80))
    when 'phone'         then format('character varying(%s)', coalesce(nullif((field->>'length')::int, 0), 40))
    when 'url'           then format('character varying(%s)', coalesce(nullif((field->>'length')::int, 0), 255))
    -- Short text areas keep their length (User.AboutMe is varchar(1000)); long/rich ones (Description,
    -- 32k) become text. HC's exact cut-off is unknown; 4096 separates the two families in practice.
    when 'textarea'      then case when coalesce((field->>'length')::int, 0) between 1 and 4096
                                   and coalesce(field->>'extraTypeInfo', '') not in ('richtextarea')
                              then format('character varying(%s)', (field->>'length')::int) else 'text' end
    when 'boolean'       then 'boolean'
    when 'int'           then 'integer'
    when 'long'          then 'bigint'
    -- Number/Currency/Percent lose precision and scale in HC (double precision); kept for compatibility.
    when 'double'        then 'double precision'
    when 'currency'      then 'double precision'
    when 'percent'       then 'double precision'
    when 'date'          then 'date'
    when 'datetime'      then 'timestamp without time zone'
    when 'time'          then 'time without time zone'
    when 'base64'        then 'text'
    when 'anytype'       then 'text'
    else null  -- address, location, complexvalue, json, …
  end
$$;

-- True when a JSON value is a whole number (a JSON number, not a string) within [lo, hi].
create or replace function hc._whole_number_between(v jsonb, lo numeric, hi numeric) returns boolean
language sql immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when jsonb_typeof(v) = 'number'
              then (v #>> '{}')::numeric = trunc((v #>> '{}')::numeric) and (v #>> '{}')::numeric between lo and hi
              else false end
$$;

-- Validates a mapping config in HC's export format; raises naming the key and the fix.
create or replace function hc._check_config(object_name text, config jsonb) returns void
language plpgsql immutable
as $$
declare
  k text;
  v jsonb;
begin
  if config is null or jsonb_typeof(config) <> 'object' then
    raise exception 'hcsync: the config of mapping % must be a JSON object, not %', object_name, coalesce(jsonb_typeof(config), 'null')
      using errcode = 'invalid_parameter_value',
            hint = 'e.g. {"access": "read_only", "fields": {"Id": {}, "SystemModstamp": {}, "Name": {}}}';
  end if;
  if object_name is null or object_name !~ '^[A-Za-z][A-Za-z0-9_]*$' or octet_length(object_name) > 63 then
    raise exception 'hcsync: "%" is not a Salesforce object API name', object_name
      using errcode = 'invalid_parameter_value',
            hint = 'Use the API name, e.g. Contact or My_Object__c: letters, digits and underscores, at most 60 characters with the namespace (Postgres cuts table names at 63).';
  end if;
  if not (config ? 'access') or config->>'access' not in ('read_only', 'read_write') then
    raise exception 'hcsync: mapping %: access must be "read_only" or "read_write", not %', object_name, coalesce((config->'access')::text, 'missing')
      using errcode = 'invalid_parameter_value',
            hint = 'Set "access": "read_only" to copy Salesforce into Postgres, or "read_write" to also send Postgres changes to Salesforce.';
  end if;
  if jsonb_typeof(config->'fields') is distinct from 'object' or config->'fields' = '{}' then
    raise exception 'hcsync: mapping %: "fields" must be a non-empty object of field API names', object_name
      using errcode = 'invalid_parameter_value', hint = 'e.g. "fields": {"Id": {}, "SystemModstamp": {}, "IsDeleted": {}, "LastName": {}}';
  end if;
  for k, v in select * from jsonb_each(config->'fields') loop
    if k !~ '^[A-Za-z][A-Za-z0-9_]*$' or jsonb_typeof(v) <> 'object' then
      raise exception 'hcsync: mapping %: field entry "%": % is not valid', object_name, k, v
        using errcode = 'invalid_parameter_value', hint = 'Each field is its API name mapped to an options object, usually {}: "LastName": {}';
    end if;
    if octet_length(k) > 63 then
      raise exception 'hcsync: mapping %: field "%" would be a column name of % bytes', object_name, k, octet_length(k)
        using errcode = 'invalid_parameter_value',
              hint = 'Postgres cuts column names at 63 bytes. Salesforce field API names have at most 60 characters; a relationship external-id column (<Relationship>__<ExternalIdField>) must fit in 63 too: map the lookup field instead.';
    end if;
  end loop;
  if config ? 'indexes' then
    if jsonb_typeof(config->'indexes') <> 'object' then
      raise exception 'hcsync: mapping %: "indexes" must be an object', object_name
        using errcode = 'invalid_parameter_value', hint = 'e.g. "indexes": {"Id": {"unique": true}, "SystemModstamp": {"unique": false}}';
    end if;
    for k, v in select * from jsonb_each(config->'indexes') loop
      if jsonb_typeof(v) <> 'object' or jsonb_typeof(coalesce(v->'unique', 'false')) <> 'boolean' then
        raise exception 'hcsync: mapping %: index entry "%": % is not valid', object_name, k, v
          using errcode = 'invalid_parameter_value', hint = 'Each index is a mapped field with {"unique": true|false}.';
      end if;
      if not exists (select 1 from jsonb_object_keys(config->'fields') f where lower(f) = lower(k)) then
        raise exception 'hcsync: mapping %: index on "%", which is not a mapped field', object_name, k
          using errcode = 'invalid_parameter_value', hint = 'Add the field to "fields" or remove the index.';
      end if;
    end loop;
  end if;
  if config ? 'upsert_field' and jsonb_typeof(config->'upsert_field') <> 'null' then
    if jsonb_typeof(config->'upsert_field') <> 'string'
       or not exists (select 1 from jsonb_object_keys(config->'fields') f where lower(f) = lower(config->>'upsert_field')) then
      raise exception 'hcsync: mapping %: upsert_field % must name a mapped field', object_name, config->'upsert_field'
        using errcode = 'invalid_parameter_value', hint = 'Add it to "fields" (it should be a unique External ID field in Salesforce) or remove upsert_field.';
    end if;
  end if;
  -- Conflict handling (sql/000050_conflicts.sql); Heroku Connect ignores both keys.
  if config ? 'conflict_policy' and (jsonb_typeof(config->'conflict_policy') <> 'string'
                                     or config->>'conflict_policy' not in ('manual', 'sf_wins', 'pg_wins', 'latest')) then
    raise exception 'hcsync: mapping %: conflict_policy must be "manual", "sf_wins", "pg_wins" or "latest", not %', object_name, config->'conflict_policy'
      using errcode = 'invalid_parameter_value',
            hint = 'manual (the default) parks a field changed on both sides until hc.resolve_conflict decides; latest keeps the later change.';
  end if;
  if config ? 'field_ownership' then
    if jsonb_typeof(config->'field_ownership') <> 'object' then
      raise exception 'hcsync: mapping %: field_ownership must be an object of field names and owners, not %', object_name, config->'field_ownership'
        using errcode = 'invalid_parameter_value', hint = 'e.g. "field_ownership": {"Phone": "pg", "Rating": "sf"}';
    end if;
    for k, v in select * from jsonb_each(config->'field_ownership') loop
      if v not in ('"pg"', '"sf"') then
        raise exception 'hcsync: mapping %: field_ownership of "%" must be "pg" or "sf", not %', object_name, k, v
          using errcode = 'invalid_parameter_value', hint = '"pg": the Postgres value always wins; "sf": Salesforce''s value always wins.';
      end if;
      if not exists (select 1 from jsonb_object_keys(config->'fields') f where lower(f) = lower(k)) then
        raise exception 'hcsync: mapping %: field_ownership names "%", which is not a mapped field', object_name, k
          using errcode = 'invalid_parameter_value', hint = 'Add the field to "fields" or remove it from field_ownership.';
      end if;
    end loop;
  end if;
  -- Numeric settings are whole numbers within a range the sync can honour: a poll interval past Node's
  -- timer limit (2,147,483 s) fired at once, so the mapping polled back to back; a day is the longest
  -- interval that still means "poll" (the drift sweep runs hourly anyway).
  if config ? 'sf_polling_seconds' and not hc._whole_number_between(config->'sf_polling_seconds', 1, 86400) then
    raise exception 'hcsync: mapping %: sf_polling_seconds must be a whole number of seconds from 1 to 86,400, not %', object_name, config->'sf_polling_seconds'
      using errcode = 'invalid_parameter_value', hint = 'Heroku Connect''s default is 600 (10 minutes); e.g. "sf_polling_seconds": 600.';
  end if;
  if config ? 'sf_notify_enabled' and jsonb_typeof(config->'sf_notify_enabled') <> 'boolean' then
    raise exception 'hcsync: mapping %: sf_notify_enabled must be true or false, not %', object_name, config->'sf_notify_enabled'
      using errcode = 'invalid_parameter_value', hint = 'true turns on Accelerated Polling (change events wake the poll).';
  end if;
  if config ? 'sf_max_daily_api_calls' and not hc._whole_number_between(config->'sf_max_daily_api_calls', 1, 2147483647) then
    raise exception 'hcsync: mapping %: sf_max_daily_api_calls must be a whole number from 1 to 2,147,483,647, not %', object_name, config->'sf_max_daily_api_calls'
      using errcode = 'invalid_parameter_value', hint = 'Heroku Connect exports carry 30000: "sf_max_daily_api_calls": 30000.';
  end if;
end;
$$;

-- Heroku Connect derives names from the table name: hc_<t>_logger, hc_<t>_logtrigger, <t>_pkey,
-- hcu_idx_<t>_<column>, … Postgres keeps 63 bytes of a name and silently cuts the rest, so for long
-- object names (a namespaced custom object reaches 60 characters) two of them became one: the logger
-- and status functions and triggers of a 59- or 60-character object replaced each other, and two
-- indexes of one table, or of two tables sharing 55 leading characters, were the same index. HC's
-- name is kept whenever it fits; a longer one keeps its prefix and suffix, shortens the middle and
-- adds 8 hex digits of the full name's md5, which keeps it unique within 63 bytes.
create or replace function hc._name(prefix text, middle text, suffix text) returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  full_name text := prefix || middle || suffix;
  tag text := '_' || left(md5(full_name), 8);
  kept text := middle;
begin
  if octet_length(full_name) <= 63 then
    return full_name;
  end if;
  while octet_length(prefix || kept || tag || suffix) > 63 loop
    kept := left(kept, -1);
  end loop;
  return prefix || kept || tag || suffix;
end;
$$;

-- The sequence behind a mapped table's id: whatever Postgres named it when the table was created (its
-- own cut of <t>_id_seq for long names, numbered on a clash), or whatever a Heroku Connect table uses.
-- NULL when id has no sequence default.
create or replace function hc._id_sequence(tbl regclass) returns text
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select d.refobjid::regclass::text
    from pg_attribute a
    join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
    join pg_depend d on d.classid = 'pg_attrdef'::regclass and d.objid = ad.oid and d.refclassid = 'pg_class'::regclass
    join pg_class sq on sq.oid = d.refobjid and sq.relkind = 'S'
   where a.attrelid = tbl and a.attname = 'id'
   limit 1
$$;

-- The body of the AFTER row trigger function hc_<t>_logger (reference §2.7, "VERSION 4"): writes one
-- _trigger_log row per application change. SECURITY DEFINER, so roles that may write the table but not
-- the queue are still captured; therefore it resolves nothing outside pg_catalog and hc (search_path
-- pg_catalog, pg_temp) and resolves no hstore function or operator by name: old::hstore is the cast
-- made when the mapping is applied, and hc._hstore_text's operators were bound when it was created
-- (see hc._install_row_hstore); hstore(old.*) could be replaced by an overload in the extension's schema.
create or replace function hc._logger_ddl(s text, t text, read_only boolean) returns text
language sql stable
as $fn$
  select format($ddl$
    create or replace function %1$I.%2$I() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
    as $body$
    declare
      trigger_row %1$I._trigger_log;
      excluded_cols text[] := array['_hc_lastop', '_hc_err']::text[];
    begin
      -- VERSION 4 --
      trigger_row := row();
      trigger_row.id := nextval(%3$L);
      trigger_row.action := tg_op::text;
      trigger_row.table_name := tg_table_name::text;
      trigger_row.txid := txid_current();
      trigger_row.created_at := clock_timestamp();
      trigger_row.updated_at := trigger_row.created_at;
      trigger_row.state := %4$L;
      if (tg_op = 'DELETE') then
        trigger_row.record_id := old.id;
        trigger_row.old := hc._hstore_text(old::%7$s, excluded_cols);
        trigger_row.sfid := old.sfid;
        %5$s
      elsif (tg_op = 'INSERT') then
        trigger_row.record_id := new.id;
        trigger_row."values" := hc._hstore_text(new::%7$s, excluded_cols);
      elsif (tg_op = 'UPDATE') then
        trigger_row.record_id := new.id;
        trigger_row.old := hc._hstore_text(old::%7$s, excluded_cols);
        trigger_row."values" := hc._hstore_text(new::%7$s, excluded_cols, trigger_row.old);
        %6$s
        trigger_row.sfid := old.sfid;
      end if;
      insert into %1$I._trigger_log values (trigger_row.*);
      return null;
    end;
    $body$$ddl$,
    s, hc._name('hc_', t, '_logger'), quote_ident(s) || '._trigger_log_id_seq',
    case when read_only then 'READONLY' else 'NEW' end,
    -- A DELETE of a row Salesforce never had, and an UPDATE that changed nothing, need no write.
    case when read_only then '' else 'if (old.sfid is null) then trigger_row.state := ''IGNORE''; end if;' end,
    case when read_only then '' else 'if (trigger_row."values" = '''') then trigger_row.state := ''IGNORE''; end if;' end,
    hc._hstore_type())
$fn$;

-- The BEFORE row trigger function hc_<t>_status: application writes mark the row PENDING; writes by
-- the sync (xmlbinary = hex) mark it SYNCED unless the sync sets _hc_lastop explicitly (INSERTED,
-- UPDATED, FAILED, …) on an UPDATE.
create or replace function hc._status_ddl(s text, t text) returns text
language sql immutable
as $fn$
  select format($ddl$
    create or replace function %1$I.%2$I() returns trigger
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $body$
    begin
      if (public.get_xmlbinary() = 'base64') then  -- user op
        new._hc_lastop := 'PENDING';
        new._hc_err := null;
        return new;
      else  -- connect op
        if (tg_op = 'UPDATE' and new._hc_lastop is not null and new._hc_lastop is distinct from old._hc_lastop) then
          return new;
        end if;
        new._hc_lastop := 'SYNCED';
        new._hc_err := null;
        return new;
      end if;
    end;
    $body$$ddl$, s, hc._name('hc_', t, '_status'))
$fn$;

-- sfid is Salesforce's record Id, written by the sync alone. An application that clears or changes it
-- orphans the row: the record's next change arrives as a second row, and the row's own changes no
-- longer reach the record. hcsync refuses it (an extra BEFORE UPDATE trigger, hcsync_sfid_guard; HC's
-- own triggers are untouched). The sync's writes (xmlbinary = hex) pass; an operator repairing a link
-- sets hcsync.allow_sfid_change = on in their session first.
create or replace function hc.sfid_guard() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('hcsync.allow_sfid_change', true), '') in ('on', 'true', '1', 'yes') then
    return new;
  end if;
  raise exception 'hcsync: changing sfid of %.% row % (% to %) is refused: sfid links the row to its Salesforce record and is written by the sync',
      tg_table_schema, tg_table_name, old.id, coalesce(old.sfid, 'NULL'), coalesce(new.sfid, 'NULL')
    using errcode = 'insufficient_privilege',
          hint = 'Leave sfid out of the UPDATE. To remove the record, DELETE the row (the delete reaches Salesforce). '
                 'To relink the row anyway (an operator repairing it): SET hcsync.allow_sfid_change = on; UPDATE ...';
end;
$$;

-- An application UPDATE that changes no column is logged IGNORE by HC's logger (nothing to send), yet
-- HC's status trigger has already marked the row PENDING: it stayed PENDING for ever, with nothing that
-- would ever send it, and a FAILED row lost its error. hcsync keeps the status the row had (an extra
-- BEFORE UPDATE trigger, hcsync_noop_guard, named to fire after HC's status trigger; HC's own
-- triggers are untouched). Rows are compared byte for byte (*=, record_image_eq, the comparison REFRESH
-- MATERIALIZED VIEW CONCURRENTLY uses), which works for every column type, even one without an equality
-- operator; printing both rows as text, as before, took a third of an application UPDATE's capture cost.
create or replace function hc.noop_guard() returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  before_change record := old;
begin
  before_change._hc_lastop := new._hc_lastop;
  before_change._hc_err := new._hc_err;
  if before_change operator(pg_catalog.*=) new then
    new._hc_lastop := old._hc_lastop;
    new._hc_err := old._hc_err;
  end if;
  return new;
end;
$$;

-- Orders "closest field" suggestions in error hints without needing the fuzzystrmatch extension.
create or replace function hc._name_distance(a text, b text) returns integer
language sql immutable
as $$
  select case when a = b then 0
              when position(a in b) > 0 or position(b in a) > 0 then 1
              when left(a, 3) = left(b, 3) then 2
              else 3 + abs(length(a) - length(b)) end
$$;

-- Mapping DDL step 1: the columns the mapping wants, in describe order: [{field, column, pg_type, d, pos}].
-- Raises (22023, naming the field and the fix) for a field the describe does not have or cannot map.
create or replace function hc._ddl_columns(m hc._mappings, c hc.connections, describe jsonb)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  wanted jsonb := '[]';
  fname text;
  d jsonb;
  r jsonb;
  pgt text;
  col text;
  target text;
  target_len integer;
  names text;
begin
  -- Id and SystemModstamp are required in every mapping, IsDeleted whenever the object has it
  -- (User, RecordType… have none): they are the identity, the polling cursor and the delete flag.
  for fname in
    select f from (
      select key as f, 1 as o from jsonb_object_keys(m.config->'fields') as key
      union all select 'Id', 0 union all select 'SystemModstamp', 0
      union all select 'IsDeleted', 0 where exists (select 1 from jsonb_array_elements(describe->'fields') e where e->>'name' = 'IsDeleted')
    ) x
    order by o desc  -- the config's spelling wins over the implied one
  loop
    if exists (select 1 from jsonb_array_elements(wanted) w where lower(w->>'field') = lower(fname)) then
      continue;
    end if;
    select e into d from jsonb_array_elements(describe->'fields') e where lower(e->>'name') = lower(fname);
    if d is not null then
      pgt := hc.sf_to_pg_type(d);
      if pgt is null then
        raise exception 'hcsync: field %.% has Salesforce type %, which cannot be mapped to a column', m.object_name, d->>'name', d->>'type'
          using errcode = 'invalid_parameter_value',
                hint = case when d->>'type' in ('address', 'location')
                            then 'Map its component fields instead (e.g. ' || coalesce((select string_agg(e->>'name', ', ') from jsonb_array_elements(describe->'fields') e where e->>'compoundFieldName' = d->>'name'), 'BillingStreet, BillingCity') || ') and remove ' || (d->>'name') || ' from "fields".'
                            else 'Remove ' || (d->>'name') || ' from the mapping''s "fields".' end;
      end if;
      col := case when d->>'name' = 'Id' then 'sfid' else lower(d->>'name') end;
      wanted := wanted || jsonb_build_object('field', fname, 'column', col, 'pg_type', pgt, 'd', d,
        'pos', (select o from jsonb_array_elements(describe->'fields') with ordinality a(e, o) where e->>'name' = d->>'name'));
      continue;
    end if;
    -- Not a field: maybe a relationship external-id column, <RelationshipName>__<ExternalIdField>
    -- (Account__External_Id__c for Contact.Account, ObjectA__r__Ext__c for a custom lookup).
    select e into r from jsonb_array_elements(describe->'fields') e
      where e->>'type' = 'reference' and e->>'relationshipName' is not null
        and lower(fname) like lower(e->>'relationshipName') || '\_\_%'
      order by length(e->>'relationshipName') desc limit 1;
    if r is null then
      select string_agg(e->>'name', ', ' order by e->>'name') into names
        from (select e from jsonb_array_elements(describe->'fields') e
              order by hc._name_distance(lower(e->>'name'), lower(fname)) limit 5) x;
      raise exception 'hcsync: % has no field "%" (mapping %)', m.object_name, fname, m.object_name
        using errcode = 'invalid_parameter_value',
              hint = 'Remove "' || fname || '" from the mapping''s fields, or correct the API name (field names are case-insensitive). Closest fields in the describe: ' || coalesce(names, '(none)') || '.';
    end if;
    target := substr(fname, length(r->>'relationshipName') + 3);
    -- The column holds the parent's external id; size it like the parent's field when that object is
    -- mapped in this connection, else like a typical external id (varchar(255)).
    select f.length into target_len
      from hc._mapping_fields f join hc._mappings pm on pm.id = f.mapping_id
     where pm.connection_id = c.id and lower(pm.object_name) = lower(r->'referenceTo'->>0)
       and lower(f.field_name) = lower(target) and f.sf_type <> 'relationship_external_id';
    wanted := wanted || jsonb_build_object('field', fname, 'column', lower(fname),
      'pg_type', format('character varying(%s)', coalesce(target_len, 255)),
      'd', jsonb_build_object('name', fname, 'type', 'relationship_external_id', 'length', coalesce(target_len, 255),
                              'nillable', true, 'createable', r->'createable', 'updateable', r->'updateable',
                              'calculated', false, 'externalId', false, 'unique', false,
                              'referenceTo', r->'referenceTo', 'relationshipName', r->'relationshipName', 'targetField', target),
      'pos', 100000 + (select o from jsonb_array_elements(describe->'fields') with ordinality a(e, o) where e->>'name' = r->>'name'));
  end loop;

  -- Describe order keeps columns where Salesforce users expect them.
  select jsonb_agg(w order by (w->>'pos')::int) into wanted from jsonb_array_elements(wanted) w;
  return wanted;
end;
$$;

-- Mapping DDL step 2: the table made, or altered to the wanted columns (only columns the mapping made are
-- dropped; a column the application added stays, and one it added under a newly mapped field's name refuses).
create or replace function hc._ddl_table(m hc._mappings, s text, t text, wanted jsonb,
                                         out created boolean, out added text[], out dropped text[], out retyped text[])
language plpgsql
set search_path = pg_catalog, pg_temp
set client_min_messages = warning
as $$
declare
  fq text := format('%I.%I', s, t);
  cur record;
  d jsonb;
begin
  created := false;
  added := '{}';
  dropped := '{}';
  retyped := '{}';
  if to_regclass(fq) is null then
    execute format('create table %s (%s, id serial, _hc_lastop character varying(32), _hc_err text, constraint %I primary key (id))',
      fq,
      (select string_agg(format('%I %s', w->>'column', w->>'pg_type'), ', ') from jsonb_array_elements(wanted) w),
      hc._name('', t, '_pkey'));
    created := true;
  else
    -- A table this mapping did not create is only adopted when it is a Heroku Connect table (moving
    -- from HC keeps the data); HC itself errors on pre-created tables, and so do we.
    if m.applied_at is null and (select count(*) from pg_attribute a where a.attrelid = fq::regclass and not a.attisdropped
                                  and a.attname in ('id', 'sfid', '_hc_lastop', '_hc_err')) < 4 then
      raise exception 'hcsync: table % already exists and is not a Heroku Connect table', fq
        using errcode = 'duplicate_table',
              hint = 'Rename or drop the existing table (hcsync never replaces a table it did not create), then apply the mapping again.';
    end if;
    for cur in
      select a.attname::text as name, format_type(a.atttypid, a.atttypmod) as type
        from pg_attribute a
       where a.attrelid = fq::regclass and a.attnum > 0 and not a.attisdropped
         and a.attname not in ('id', '_hc_lastop', '_hc_err')
    loop
      select w into d from jsonb_array_elements(wanted) w where w->>'column' = cur.name;
      if d is null then
        -- Only a column this mapping made (a field it mapped until now, as hc._mapping_fields still
        -- records) is dropped. Columns the application added, and those of a Heroku Connect table
        -- taken over that the config does not map, are the application's: they stay, with their data.
        if cur.name = 'sfid' or not exists (select 1 from hc._mapping_fields f
                                             where f.mapping_id = m.id and f.column_name = cur.name) then
          continue;
        end if;
        execute format('alter table %s drop column %I', fq, cur.name);
        dropped := dropped || cur.name;
      elsif m.applied_at is not null and cur.name <> 'sfid'
            and not exists (select 1 from hc._mapping_fields f where f.mapping_id = m.id and f.column_name = cur.name) then
        -- A newly mapped field whose column the application already added: retyping it (an explicit
        -- cast cuts long text silently) and loading Salesforce's values into it would replace its data.
        raise exception 'hcsync: %.% already has a column "%" that this mapping did not make; mapping % onto it would replace its values',
            s, t, cur.name, d->>'field'
          using errcode = 'invalid_parameter_value',
                hint = format('Rename the application''s column (ALTER TABLE %s RENAME COLUMN %I TO %I) and apply the mapping again, or leave %s out of "fields".',
                              fq, cur.name, 'app_' || cur.name, d->>'field');
      elsif d->>'pg_type' <> cur.type then
        execute format('alter table %s alter column %I type %s using %I::%s', fq, cur.name, d->>'pg_type', cur.name, d->>'pg_type');
        retyped := retyped || cur.name;
      end if;
    end loop;
    for d in select w from jsonb_array_elements(wanted) w
              where not exists (select 1 from pg_attribute a where a.attrelid = fq::regclass and not a.attisdropped and a.attname = w->>'column')
    loop
      execute format('alter table %s add column %I %s', fq, d->>'column', d->>'pg_type');
      added := added || (d->>'column');
    end loop;
  end if;
end;
$$;

-- Mapping DDL step 3: the indexes, with Heroku Connect's names (hcu_ for unique).
create or replace function hc._ddl_indexes(m hc._mappings, s text, t text, wanted jsonb)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set client_min_messages = warning
as $$
declare
  fq text := format('%I.%I', s, t);
  idx_wanted jsonb := '{}';   -- index name -> {column, unique}
  k text;
  v jsonb;
  col text;
  cur record;
begin
  -- Indexes: HC's names, hcu_ for unique. Id (sfid) is always unique, SystemModstamp always indexed.
  idx_wanted := jsonb_build_object(
    hc._name('hcu_idx_', t, '_sfid'), jsonb_build_object('column', 'sfid', 'unique', true),
    hc._name('hc_idx_', t, '_systemmodstamp'), jsonb_build_object('column', 'systemmodstamp', 'unique', false));
  for k, v in select * from jsonb_each(coalesce(m.config->'indexes', '{}'))
              union all select m.config->>'upsert_field', '{"unique": true}'
                where m.config->>'upsert_field' is not null
                  and not exists (select 1 from jsonb_object_keys(coalesce(m.config->'indexes', '{}')) i where lower(i) = lower(m.config->>'upsert_field'))
  loop
    select w->>'column' into col from jsonb_array_elements(wanted) w where lower(w->>'field') = lower(k);
    if col in ('sfid', 'systemmodstamp') then continue; end if;
    idx_wanted := idx_wanted || jsonb_build_object(
      hc._name(case when coalesce((v->>'unique')::boolean, false) then 'hcu_idx_' else 'hc_idx_' end, t || '_' || col, ''),
      jsonb_build_object('column', col, 'unique', coalesce((v->>'unique')::boolean, false)));
  end loop;
  for cur in
    select i.relname::text as name from pg_index x join pg_class i on i.oid = x.indexrelid
     where x.indrelid = fq::regclass and (i.relname like 'hc\_idx\_%' or i.relname like 'hcu\_idx\_%')
  loop
    if not idx_wanted ? cur.name then
      execute format('drop index %I.%I', s, cur.name);
    end if;
  end loop;
  for k, v in select * from jsonb_each(idx_wanted) loop
    execute format('create %s index if not exists %I on %s (%I)',
      case when (v->>'unique')::boolean then 'unique' else '' end, k, fq, v->>'column');
  end loop;
end;
$$;

-- Mapping DDL step 4: the capture and status triggers, the guards, and the grants on the table.
create or replace function hc._ddl_triggers(c hc.connections, s text, t text, read_only boolean)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
set client_min_messages = warning
as $$
declare
  fq text := format('%I.%I', s, t);
  role text;
begin
  -- HC's two triggers, plus hcsync's TRUNCATE, sfid and no-op guards (see hc.truncate_guard, hc.sfid_guard,
  -- hc.noop_guard).
  perform hc._install_row_hstore(fq::regclass);
  execute hc._logger_ddl(s, t, read_only);
  execute hc._status_ddl(s, t);
  execute format('revoke all on function %I.%I(), %I.%I() from public', s, hc._name('hc_', t, '_logger'), s, hc._name('hc_', t, '_status'));
  execute format('drop trigger if exists %I on %s', hc._name('hc_', t, '_logtrigger'), fq);
  execute format('create trigger %I after insert or delete or update on %s for each row when (%s()::text = ''base64''::text) execute procedure %I.%I()',
    hc._name('hc_', t, '_logtrigger'), fq, hc._xmlbinary_function(), s, hc._name('hc_', t, '_logger'));
  execute format('drop trigger if exists %I on %s', hc._name('hc_', t, '_status_trigger'), fq);
  execute format('create trigger %I before insert or update on %s for each row execute procedure %I.%I()',
    hc._name('hc_', t, '_status_trigger'), fq, s, hc._name('hc_', t, '_status'));
  execute format('drop trigger if exists hcsync_truncate_guard on %s', fq);
  execute format('create trigger hcsync_truncate_guard before truncate on %s for each statement execute procedure hc.truncate_guard()', fq);
  execute format('drop trigger if exists hcsync_sfid_guard on %s', fq);
  execute format('create trigger hcsync_sfid_guard before update on %s for each row when (old.sfid is distinct from new.sfid and %s()::text = ''base64''::text) execute procedure hc.sfid_guard()', fq, hc._xmlbinary_function());
  execute format('drop trigger if exists hcsync_noop_guard on %s', fq);
  execute format('create trigger hcsync_noop_guard before update on %s for each row when (%s()::text = ''base64''::text) execute procedure hc.noop_guard()', fq, hc._xmlbinary_function());

  -- Application roles registered for this connection write the new table too.
  for role in select role_name from hc._app_roles where connection_id = c.id loop
    execute format('grant select, insert, update, delete on %s to %I', fq, role);
    if hc._id_sequence(fq::regclass) is not null then
      execute format('grant usage, select on sequence %s to %I', hc._id_sequence(fq::regclass), role);
    end if;
  end loop;
  execute format('grant select on %s to hcsync_admin, hcsync_viewer', fq);
end;
$$;

-- Creates or alters a mapping's table from the object's describe and the mapping's config, and
-- rewrites hc._mapping_fields. Raises (22023, naming the field) when the config does not fit the
-- describe; the inbound sync catches that and sets the mapping to BAD_CONFIG.
-- Returns what changed: {"created": bool, "added": [...], "dropped": [...], "retyped": [...]}.
create or replace function hc.apply_mapping_ddl(mapping_id integer, describe jsonb)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set client_min_messages = warning
as $$
declare
  m hc._mappings;
  c hc.connections;
  s text;
  t text;
  fq text;
  read_only boolean;
  wanted jsonb;
  created boolean;
  added text[];
  dropped text[];
  retyped text[];
begin
  select * into m from hc._mappings where id = apply_mapping_ddl.mapping_id for update;
  if not found then
    raise exception 'hcsync: no mapping with id %', mapping_id using errcode = 'undefined_object',
      hint = 'See select mapping_id, object_name from hc.mappings;';
  end if;
  select * into c from hc.connections where id = m.connection_id;
  s := c.schema_name;
  t := m.table_name;
  fq := format('%I.%I', s, t);
  read_only := m.config->>'access' = 'read_only';

  if describe is null or jsonb_typeof(describe) <> 'object' or jsonb_typeof(describe->'fields') <> 'array' then
    raise exception 'hcsync: the describe for % must be a Salesforce sObject describe: an object with a "fields" array', m.object_name
      using errcode = 'invalid_parameter_value', hint = 'Pass the JSON of GET /services/data/vXX.X/sobjects/<Object>/describe.';
  end if;
  if lower(coalesce(describe->>'name', m.object_name)) <> lower(m.object_name) then
    raise exception 'hcsync: the describe is for %, but the mapping is for %', describe->>'name', m.object_name
      using errcode = 'invalid_parameter_value', hint = 'Describe the mapped object.';
  end if;

  -- The steps: hc._ddl_columns, hc._ddl_table, hc._ddl_indexes, hc._ddl_triggers; then the fields recorded.
  wanted := hc._ddl_columns(m, c, describe);
  select x.created, x.added, x.dropped, x.retyped into created, added, dropped, retyped from hc._ddl_table(m, s, t, wanted) x;
  perform hc._ddl_indexes(m, s, t, wanted);
  perform hc._ddl_triggers(c, s, t, read_only);

  delete from hc._mapping_fields where _mapping_fields.mapping_id = m.id;
  insert into hc._mapping_fields (mapping_id, field_name, column_name, sf_type, pg_type, length, nillable, createable,
                                  updateable, calculated, external_id, "unique", reference_to, relationship_name, target_field)
  select m.id, w->>'field', w->>'column', w->'d'->>'type', w->>'pg_type',
         nullif((w->'d'->>'length')::int, 0),
         (w->'d'->>'nillable')::boolean, (w->'d'->>'createable')::boolean, (w->'d'->>'updateable')::boolean,
         (w->'d'->>'calculated')::boolean, (w->'d'->>'externalId')::boolean, (w->'d'->>'unique')::boolean,
         case when jsonb_typeof(w->'d'->'referenceTo') = 'array' and w->'d'->'referenceTo' <> '[]'
              then array(select jsonb_array_elements_text(w->'d'->'referenceTo')) end,
         w->'d'->>'relationshipName', w->'d'->>'targetField'
    from jsonb_array_elements(wanted) w;

  update hc._mappings set describe = apply_mapping_ddl.describe, applied_at = now(), updated_at = now() where id = m.id;
  insert into hc.sync_positions (mapping_id) values (m.id) on conflict do nothing;
  insert into hc.sync_log (connection_id, mapping_id, direction, event, message, detail)
  values (c.id, m.id, 'inbound', 'ddl', case when created then 'created table ' || fq else 'altered table ' || fq end,
          jsonb_build_object('created', created, 'added', to_jsonb(added), 'dropped', to_jsonb(dropped), 'retyped', to_jsonb(retyped)));
  return jsonb_build_object('created', created, 'added', to_jsonb(added), 'dropped', to_jsonb(dropped), 'retyped', to_jsonb(retyped));
end;
$$;

-- Creates a mapping (state INITIAL). With a describe the table is created at once; without one the
-- sidecar describes the object and calls hc.apply_mapping_ddl. Returns the mapping id.
create or replace function hc.create_mapping(object_name text, config jsonb, describe jsonb default null, connection_name text default null)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  c hc.connections := hc._connection(connection_name);
  id integer;
begin
  perform hc._check_config(object_name, config);
  if exists (select 1 from hc._mappings m where m.connection_id = c.id and lower(m.object_name) = lower(create_mapping.object_name)) then
    raise exception 'hcsync: connection "%" already maps %', c.name, object_name
      using errcode = 'duplicate_object',
            hint = 'Change it with hc.update_mapping(object_name, config) or hc.import_config(...), or remove it with hc.delete_mapping(object_name).';
  end if;
  insert into hc._mappings (connection_id, object_name, table_name, config)
  values (c.id, object_name, lower(object_name), config)
  returning _mappings.id into id;
  perform hc._control(c, 'create_mapping', id, jsonb_build_object('object_name', object_name, 'config', config));
  if describe is not null then
    perform hc.apply_mapping_ddl(id, describe);
  end if;
  return id;
end;
$$;

-- Replaces a mapping's config (HC's edit). The table is altered at once when a describe is given or the
-- last one still covers every configured field; otherwise the mapping goes to SCHEMA_CHANGED and the
-- sidecar describes the object again. Added columns put the mapping in RESYNC (back-fill from
-- Salesforce), as HC does. Returns the mapping id.
create or replace function hc.update_mapping(object_name text, config jsonb, describe jsonb default null, connection_name text default null)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings := hc._mapping(object_name, connection_name);
  c hc.connections;
  result jsonb;
begin
  perform hc._check_config(m.object_name, config);
  select * into c from hc.connections where connections.id = m.connection_id;
  if m.config = config and describe is null then
    return m.id;  -- nothing changed
  end if;
  -- Only the conflict keys changed: nothing to describe or build, and the sync goes on as it is.
  if (m.config - 'conflict_policy' - 'field_ownership') = (config - 'conflict_policy' - 'field_ownership') and describe is null then
    update hc._mappings set config = update_mapping.config, updated_at = now() where id = m.id;
    perform hc._control(c, 'update_mapping', m.id, jsonb_build_object('object_name', m.object_name, 'config', config, 'previous', m.config));
    return m.id;
  end if;
  update hc._mappings set config = update_mapping.config, revision = revision + 1, updated_at = now() where id = m.id;
  perform hc._control(c, 'update_mapping', m.id, jsonb_build_object('object_name', m.object_name, 'config', config, 'previous', m.config));
  if describe is not null then
    result := hc.apply_mapping_ddl(m.id, describe);
  elsif m.describe is not null and m.applied_at is not null then
    begin
      result := hc.apply_mapping_ddl(m.id, m.describe);
    exception when invalid_parameter_value then
      -- e.g. a field the stored describe does not know yet: the sidecar must describe again.
      perform hc.set_mapping_state(m.id, 'SCHEMA_CHANGED', 'config changed; waiting for a fresh describe');
      return m.id;
    end;
  elsif m.applied_at is not null then
    perform hc.set_mapping_state(m.id, 'SCHEMA_CHANGED', 'config changed; waiting for a fresh describe');
    return m.id;
  end if;
  if result is not null and not (result->>'created')::boolean and jsonb_array_length(result->'added') > 0 then
    perform hc.set_mapping_state(m.id, 'RESYNC', 'new columns: ' || (select string_agg(x, ', ') from jsonb_array_elements_text(result->'added') x));
  end if;
  return m.id;
end;
$$;

-- Removes a mapping. Like Heroku Connect it drops the table, when the mapping built it or took it over
-- (drop_table => false keeps it, detached: triggers removed, data left alone); a table it never built is
-- not touched. Unsent changes of the table are marked IGNORED.
create or replace function hc.delete_mapping(object_name text, connection_name text default null, drop_table boolean default true)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings := hc._mapping(object_name, connection_name);
  c hc.connections;
  fq text;
begin
  select * into c from hc.connections where connections.id = m.connection_id;
  fq := format('%I.%I', c.schema_name, m.table_name);
  -- The mapping owns its table once hc.apply_mapping_ddl has built it or taken over a Heroku Connect
  -- table (applied_at is set; it refuses any other). Before that, a table of the same name is somebody
  -- else's, and it is left exactly as it is.
  if to_regclass(fq) is not null and m.applied_at is null then
    raise notice 'hcsync: table % was not built by this mapping and is left as it is', fq;
  elsif to_regclass(fq) is not null then
    perform hc._drop_row_hstore(fq::regclass);
    if drop_table then
      execute format('drop table %s', fq);
    else
      execute format('drop trigger if exists %I on %s', hc._name('hc_', m.table_name, '_logtrigger'), fq);
      execute format('drop trigger if exists %I on %s', hc._name('hc_', m.table_name, '_status_trigger'), fq);
      execute format('drop trigger if exists hcsync_truncate_guard on %s', fq);
      execute format('drop trigger if exists hcsync_sfid_guard on %s', fq);
      execute format('drop trigger if exists hcsync_noop_guard on %s', fq);
    end if;
  end if;
  if m.applied_at is not null then
    execute format('drop function if exists %I.%I()', c.schema_name, hc._name('hc_', m.table_name, '_logger'));
    execute format('drop function if exists %I.%I()', c.schema_name, hc._name('hc_', m.table_name, '_status'));
  end if;
  execute format($q$update %I._trigger_log set state = 'IGNORED', updated_at = now(), sf_message = 'mapping deleted'
                    where table_name = %L and state in ('NEW', 'PENDING')$q$, c.schema_name, m.table_name);
  delete from hc._mappings where id = m.id;
  perform hc._control(c, 'delete_mapping', null, jsonb_build_object('object_name', m.object_name, 'table_name', m.table_name,
                                                                    'drop_table', drop_table, 'config', m.config));
end;
$$;

-- The sidecar reports a mapping's state here (SQL owns the vocabulary and the lifecycle: a move that
-- hc.mapping_states.next does not allow is refused, naming the states that may follow). Also logged to
-- hc.sync_log.
create or replace function hc.set_mapping_state(mapping_id integer, state text, message text default null)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings;
begin
  select * into m from hc._mappings where id = set_mapping_state.mapping_id for update;
  if not found then
    raise exception 'hcsync: no mapping with id %', mapping_id using errcode = 'undefined_object',
      hint = 'See select mapping_id, object_name from hc.mappings;';
  end if;
  if not exists (select 1 from hc.mapping_states s where s.state = set_mapping_state.state) then
    raise exception 'hcsync: "%" is not a mapping state', state using errcode = 'invalid_parameter_value',
      hint = 'Valid states: ' || (select string_agg(s.state, ', ' order by s.state) from hc.mapping_states s) || '.';
  end if;
  if not exists (select 1 from hc.mapping_states s where s.state = m.state and set_mapping_state.state = any (s.next)) then
    raise exception 'hcsync: mapping % cannot go from % to %', m.object_name, m.state, set_mapping_state.state
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'From ' || m.state || ' it may go to: ' || (select array_to_string(s.next, ', ') from hc.mapping_states s where s.state = m.state)
                   || '. The lifecycle is in select * from hc.mapping_states.';
  end if;
  if m.state = set_mapping_state.state and m.state_message is not distinct from message then
    return;
  end if;
  update hc._mappings set state = set_mapping_state.state, state_message = message, updated_at = now() where id = m.id;
  insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail)
  values (m.connection_id, m.id, 'inbound',
          case when (select category from hc.mapping_states s where s.state = set_mapping_state.state) = 'error' then 'error' else 'info' end,
          'state', message, jsonb_build_object('from', m.state, 'to', state));
end;
$$;

-- The mappings of a connection, or one mapping by id (null: any), with their state's phase: what the sidecar and the CLI read of hc._mappings.
create or replace function hc._mapping_rows(p_connection_id integer default null, p_id integer default null)
returns table (id integer, connection_id integer, object_name text, table_name text, config jsonb, state text, state_message text,
               phase text, requested text, revision integer, progress jsonb)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select m.id, m.connection_id, m.object_name, m.table_name, m.config, m.state, m.state_message, s.phase, m.requested, m.revision, m.progress
    from hc._mappings m join hc.mapping_states s on s.state = m.state
   where (p_connection_id is null or m.connection_id = p_connection_id)
     and (p_id is null or m.id = p_id);
$$;
