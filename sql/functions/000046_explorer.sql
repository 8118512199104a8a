-- The functions and views of sql/000046_explorer.sql, applied where that file says `--! functions`, and applied again
-- (create or replace) whenever this file changes: a fix after release edits this file.

-- Rows of one mapping's table: newest first (by id), at most lim. state: a _hc_lastop value (SYNCED,
-- INSERTED, UPDATED, PENDING, FAILED …) or null for all; search: a whole number matches id, anything
-- else sfid, _hc_err and name (when Name is mapped) case-insensitively.
create or replace function hc.dashboard_rows(object_name text, state text default null, search text default null,
                                             lim integer default 50, connection_name text default null)
returns setof jsonb
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings := hc._mapping(object_name, connection_name);
  c hc.connections := hc._connection(connection_name);
  rel regclass := to_regclass(format('%I.%I', c.schema_name, m.table_name));
  has_name boolean;
  has_stamp boolean;
  pattern text := '%' || replace(replace(replace(coalesce(search, ''), '\', '\\'), '%', '\%'), '_', '\_') || '%';
begin
  if lim is null or lim < 1 or lim > 500 then
    raise exception 'hcsync: the row count must be 1 to 500, not %', lim using errcode = 'invalid_parameter_value', hint = 'Pass 50, say.';
  end if;
  if rel is null then
    raise exception 'hcsync: the table of mapping % does not exist yet', m.object_name using errcode = 'object_not_in_prerequisite_state',
      hint = 'The sidecar creates it when it starts the mapping: see hc.mappings.state.';
  end if;
  select exists (select 1 from pg_attribute a where a.attrelid = rel and a.attname = 'name' and not a.attisdropped),
         exists (select 1 from pg_attribute a where a.attrelid = rel and a.attname = 'systemmodstamp' and not a.attisdropped)
    into has_name, has_stamp;
  return query execute format($q$
    select jsonb_build_object('id', t.id, 'sfid', t.sfid, 'name', %2$s, 'systemmodstamp', %3$s,
                              '_hc_lastop', t._hc_lastop, '_hc_err', t._hc_err)
      from %1$s t
     where ($1::text is null or t._hc_lastop = $1)
       and ($2::text is null or $2 = ''
            or case when $2 ~ '^\s*\d{1,9}\s*$' then t.id = trim($2)::integer
                    else t.sfid ilike $3 or t._hc_err ilike $3 %4$s end)
     order by t.id desc
     limit $4$q$,
    rel,
    case when has_name then 't.name' else 'null::text' end,
    case when has_stamp then 't.systemmodstamp' else 'null::timestamptz' end,
    case when has_name then 'or t.name ilike $3' else '' end)
    using nullif(state, ''), search, pattern, lim;
end;
$$;

-- One row whole: every column, and the mapping's fields (which column holds which Salesforce field).
create or replace function hc.dashboard_record(object_name text, row_id integer, connection_name text default null)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  m hc._mappings := hc._mapping(object_name, connection_name);
  c hc.connections := hc._connection(connection_name);
  r jsonb;
begin
  execute format('select to_jsonb(t) from %I.%I t where t.id = $1', c.schema_name, m.table_name) into r using row_id;
  if r is null then
    raise exception 'hcsync: %.% has no row with id %', c.schema_name, m.table_name, row_id using errcode = 'no_data_found',
      hint = 'Search the Sync Explorer for the row.';
  end if;
  return jsonb_build_object('object_name', m.object_name, 'table_name', m.table_name, 'row', r,
    'fields', coalesce((select jsonb_agg(jsonb_build_object('field_name', f.field_name, 'column_name', f.column_name, 'sf_type', f.sf_type,
                                                            'relationship_name', f.relationship_name, 'target_field', f.target_field)
                                         order by f.field_name)
                          from hc._mapping_fields f where f.mapping_id = m.id), '[]'));
end;
$$;
