// SOQL on the in-memory org: parsed by @jetstreamapp/soql-parser-js, evaluated here.
import { parseQuery, type Query, type FieldType as SoqlField, type WhereClause, type OrderByClause } from '@jetstreamapp/soql-parser-js';
import type { Org, Rec } from './org.js';
import type { FieldMeta, ObjectMeta } from './schema.js';
import { isNumberType, isTextType } from './schema.js';
import { parseDateTime, formatDateTime, csvCell } from './values.js';
import { normalizeId } from './ids.js';

export class SoqlError extends Error {
  constructor(public errorCode: string, message: string, public status = 400) { super(message); }
}

const parseCache = new Map<string, Query>();
function parse(soql: string): Query {
  let q = parseCache.get(soql);
  if (q) return q;
  try {
    q = parseQuery(soql);
  } catch (e) {
    const m = String((e as Error).message ?? e);
    const found = /but found:? --> '([^']*)' <--|but found: '([^']*)'/.exec(m);
    const tok = found ? (found[1] ?? found[2]) : '';
    throw new SoqlError('MALFORMED_QUERY', tok ? `\n${soql}\n^\nERROR at Row:1:Column:1\nunexpected token: ${tok}` : `\n${soql}\n^\nERROR at Row:1:Column:1\nunexpected token: <EOF>`);
  }
  if (parseCache.size > 5000) parseCache.clear();
  parseCache.set(soql, q);
  return q;
}

const caret = (soql: string, msg: string) => `\n${soql}\n^\nERROR at Row:1:Column:1\n${msg}`;

export interface Column {
  /** Output path, e.g. ['Account','Name'] */
  path: string[];
  /** Objects along the path, parallel to path[0..n-2] */
  relObjects: ObjectMeta[];
  field: FieldMeta;
  header: string;
}

interface SubSelect { relationshipName: string; child: ObjectMeta; field: string; plan: Plan }

export interface Plan {
  obj: ObjectMeta;
  columns: Column[];
  subs: SubSelect[];
  /** Order of output keys: column (index) or sub-query (index) */
  layout: Array<{ kind: 'col' | 'sub'; i: number }>;
  where?: (r: Rec) => boolean;
  order: Array<{ col: Column; desc: boolean; nullsLast: boolean }>;
  limit?: number;
  offset?: number;
  count: 'none' | 'count()' | 'aggregate';
  aggregates: Array<{ fn: string; col?: Column; alias: string }>;
}

export interface QueryResult {
  plan: Plan;
  rows: Rec[];
  totalSize: number;
}

export class Soql {
  constructor(private org: Org) {}

  plan(soql: string): Plan {
    const q = parse(soql);
    if (!q.sObject) throw new SoqlError('MALFORMED_QUERY', caret(soql, 'unexpected token: FROM'));
    const obj = this.org.object(q.sObject);
    if (!obj) throw new SoqlError('INVALID_TYPE', caret(soql, `sObject type '${q.sObject}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`));
    return this.planFor(obj, q, soql);
  }

  private column(obj: ObjectMeta, path: string[], soql: string): Column {
    const relObjects: ObjectMeta[] = [];
    const outPath: string[] = [];
    let o = obj;
    for (let i = 0; i < path.length - 1; i++) {
      const rel = o.relationships.get(path[i].toLowerCase());
      const target = rel && this.org.object(rel.referenceTo.find((t) => this.org.object(t)) ?? '');
      if (!rel || !target) throw new SoqlError('INVALID_FIELD', caret(soql, `Didn't understand relationship '${path[i]}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`));
      relObjects.push(o);
      outPath.push(rel.relationshipName!);
      o = target;
    }
    const name = path[path.length - 1];
    const f = o.fieldsByLower.get(name.toLowerCase());
    if (!f) throw new SoqlError('INVALID_FIELD', caret(soql, `No such column '${name}' on entity '${o.name}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`));
    relObjects.push(o);
    outPath.push(f.name);
    return { path: outPath, relObjects, field: f, header: outPath.join('.') };
  }

  private planFor(obj: ObjectMeta, q: Query | import('@jetstreamapp/soql-parser-js').Subquery, soql: string): Plan {
    const plan: Plan = { obj, columns: [], subs: [], layout: [], order: [], count: 'none', aggregates: [] };
    const seen = new Set<string>();
    for (const f of (q.fields ?? []) as SoqlField[]) {
      if (f.type === 'Field' || f.type === 'FieldRelationship') {
        const path = f.type === 'Field' ? f.field.split('.') : [...f.relationships, f.field];
        const col = this.column(obj, path, soql);
        const key = col.header.toLowerCase();
        if (seen.has(key)) throw new SoqlError('MALFORMED_QUERY', caret(soql, `duplicate field selected: ${col.header}`));
        seen.add(key);
        plan.layout.push({ kind: 'col', i: plan.columns.length });
        plan.columns.push(col);
      } else if (f.type === 'FieldFunctionExpression') {
        const fn = f.functionName.toUpperCase();
        if (fn === 'COUNT' && f.parameters.length === 0) { plan.count = 'count()'; continue; }
        if (['COUNT', 'MAX', 'MIN', 'SUM', 'AVG', 'COUNT_DISTINCT'].includes(fn) && typeof f.parameters[0] === 'string') {
          plan.count = 'aggregate';
          const col = this.column(obj, String(f.parameters[0]).split('.'), soql);
          plan.aggregates.push({ fn, col, alias: f.alias ?? `expr${plan.aggregates.length}` });
          continue;
        }
        throw new SoqlError('MALFORMED_QUERY', caret(soql, `function ${f.functionName} is not supported`));
      } else if (f.type === 'FieldSubquery') {
        const sq = f.subquery;
        const rel = obj.childRelationships.find((c) => c.relationshipName?.toLowerCase() === sq.relationshipName.toLowerCase());
        const child = rel && this.org.object(rel.childSObject);
        if (!rel || !child) throw new SoqlError('INVALID_TYPE', caret(soql, `Didn't understand relationship '${sq.relationshipName}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`));
        plan.layout.push({ kind: 'sub', i: plan.subs.length });
        plan.subs.push({ relationshipName: rel.relationshipName!, child, field: rel.field, plan: this.planFor(child, sq, soql) });
      } else {
        throw new SoqlError('MALFORMED_QUERY', caret(soql, 'unsupported field expression'));
      }
    }
    if (q.groupBy || q.having) throw new SoqlError('MALFORMED_QUERY', caret(soql, 'GROUP BY is not supported by this org'));
    if (plan.count === 'aggregate' && plan.columns.length) throw new SoqlError('MALFORMED_QUERY', caret(soql, `Field must be grouped or aggregated: ${plan.columns[0].field.name}`));
    if (plan.count === 'none' && plan.columns.length === 0 && plan.subs.length === 0) throw new SoqlError('MALFORMED_QUERY', caret(soql, 'unexpected token: FROM'));
    if (q.where) plan.where = this.compileWhere(obj, q.where, soql);
    for (const o of ([] as OrderByClause[]).concat(q.orderBy ?? [])) {
      if (!('field' in o) || !o.field) throw new SoqlError('MALFORMED_QUERY', caret(soql, 'unsupported ORDER BY'));
      const desc = o.order === 'DESC';
      plan.order.push({ col: this.column(obj, o.field.split('.'), soql), desc, nullsLast: o.nulls ? o.nulls === 'LAST' : desc });
    }
    plan.limit = q.limit;
    plan.offset = q.offset;
    if (plan.offset !== undefined && plan.offset > 2000) throw new SoqlError('NUMBER_OUTSIDE_VALID_RANGE', 'Maximum SOQL offset allowed is 2000');
    return plan;
  }

  // ------------------------------------------------------------ WHERE

  private compileWhere(obj: ObjectMeta, w: WhereClause, soql: string): (r: Rec) => boolean {
    type T = { t: '(' | ')' | 'AND' | 'OR' | 'NOT' } | { t: 'C'; fn: (r: Rec) => boolean };
    const toks: T[] = [];
    let node: any = w;
    while (node) {
      if (node.operator === 'NOT' && (node.left == null || !('field' in node.left || 'fn' in node.left))) {
        for (let i = 0; i < (node.left?.openParen ?? 0); i++) toks.push({ t: '(' });
        toks.push({ t: 'NOT' });
        node = node.right;
        continue;
      }
      const c = node.left;
      for (let i = 0; i < (c.openParen ?? 0); i++) toks.push({ t: '(' });
      toks.push({ t: 'C', fn: this.condition(obj, c, soql) });
      for (let i = 0; i < (c.closeParen ?? 0); i++) toks.push({ t: ')' });
      if (node.operator && node.right) { toks.push({ t: node.operator }); node = node.right; } else node = null;
    }
    let p = 0;
    const malformed = () => new SoqlError('MALFORMED_QUERY', caret(soql, 'unexpected token: OR'));
    const expr = (): (r: Rec) => boolean => {
      const parts = [unary()];
      let op: string | undefined;
      while (p < toks.length && (toks[p].t === 'AND' || toks[p].t === 'OR')) {
        if (op && op !== toks[p].t) throw malformed(); // SOQL requires parentheses when mixing AND and OR
        op = toks[p++].t;
        parts.push(unary());
      }
      if (parts.length === 1) return parts[0];
      if (op !== 'AND') return (r) => parts.some((f) => f(r));
      // (an AND with an Id condition needs only that condition's records read: see run)
      return withIds((r) => parts.every((f) => f(r)), parts.map(byId).find((f) => f)?.ids);
    };
    const unary = (): (r: Rec) => boolean => {
      const t = toks[p++];
      if (!t) throw malformed();
      if (t.t === 'NOT') { const f = unary(); return (r) => !f(r); }
      if (t.t === '(') { const f = expr(); if (toks[p++]?.t !== ')') throw malformed(); return f; }
      if (t.t === 'C') return t.fn;
      throw malformed();
    };
    const f = expr();
    if (p !== toks.length) throw malformed();
    return f;
  }

  private condition(obj: ObjectMeta, c: any, soql: string): (r: Rec) => boolean {
    if (!c.field) throw new SoqlError('MALFORMED_QUERY', caret(soql, 'functions in WHERE are not supported'));
    const col = this.column(obj, c.field.split('.'), soql);
    const f = col.field;
    const get = (r: Rec) => col.path.length === 1 ? this.org.value(obj, r, f) : this.org.getPath(obj, r, col.path.join('.'));
    // Keywords are case-insensitive in SOQL; the parser keeps an operator's spelling (`like`, `in`).
    const op: string = String(c.operator).toUpperCase();
    if (c.literalType === 'SUBQUERY' || c.valueQuery) {
      const sub = this.planFor(this.org.object(c.valueQuery.sObject) ?? (() => { throw new SoqlError('INVALID_TYPE', caret(soql, `sObject type '${c.valueQuery.sObject}' is not supported.`)); })(), c.valueQuery, soql);
      let cache: Set<unknown> | undefined;
      const values = () => {
        if (!cache) { const res = this.run(sub, false); cache = new Set(res.rows.map((r) => this.cell(sub, sub.columns[0], r))); }
        return cache;
      };
      return op === 'NOT IN' ? (r) => !values().has(get(r)) : (r) => values().has(get(r));
    }
    const types: string[] = ([] as string[]).concat(c.literalType ?? []);
    const raws: string[] = ([] as string[]).concat(c.value ?? []);
    const nVars: number[] = ([] as number[]).concat(c.dateLiteralVariable ?? []);
    const lits = raws.map((raw, i) => this.literal(f, types[i] ?? types[0], raw, nVars[i] ?? nVars[0], soql));
    const cmp = (a: unknown, b: Lit): number => compareValues(f, a, b.v);
    const one = lits[0];
    const isText = isTextType(f.type) || f.type === 'id' || f.type === 'reference';
    const plain = lits.every((l) => l.v != null && !l.range);
    // Id = x and Id IN (...) are looked up, as Salesforce looks them up by its index, not scanned for
    if (col.path.length === 1 && f.name === 'Id' && (op === '=' || op === 'IN') && plain) {
      const ids = [...new Set(lits.map((l) => String(l.v)))];
      const set = new Set(ids);
      return withIds((r) => set.has(String(get(r))), ids);
    }
    switch (op) {
      case '=': return (r) => matchEq(get(r), one, isText, cmp);
      case '!=': return (r) => !matchEq(get(r), one, isText, cmp);
      case '<': return (r) => { const v = get(r); return v != null && one.v != null && (one.range ? cmp(v, { v: one.range[0] }) < 0 : cmp(v, one) < 0); };
      case '<=': return (r) => { const v = get(r); return v != null && one.v != null && (one.range ? cmp(v, { v: one.range[1] }) < 0 : cmp(v, one) <= 0); };
      case '>': return (r) => { const v = get(r); return v != null && one.v != null && (one.range ? cmp(v, { v: one.range[1] }) >= 0 : cmp(v, one) > 0); };
      case '>=': return (r) => { const v = get(r); return v != null && one.v != null && (one.range ? cmp(v, { v: one.range[0] }) >= 0 : cmp(v, one) >= 0); };
      case 'LIKE': {
        if (!isText) throw new SoqlError('INVALID_FIELD', caret(soql, `invalid operator on id field`));
        const re = new RegExp('^' + String(one.v).replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.') + '$', 'is');
        return (r) => { const v = get(r); return v != null && re.test(String(v)); };
      }
      case 'IN': case 'NOT IN': {
        // (text compared through one set of the lower-cased values, not value by value for each record)
        const set = isText && plain ? new Set(lits.map((l) => String(l.v).toLowerCase())) : undefined;
        const has = set ? (r: Rec) => { const v = get(r); return v != null && set.has(String(v).toLowerCase()); }
                        : (r: Rec) => lits.some((l) => matchEq(get(r), l, isText, cmp));
        return op === 'IN' ? has : (r) => !has(r);
      }
      case 'INCLUDES': case 'EXCLUDES': {
        const want = lits.map((l) => String(l.v).toLowerCase().split(';').sort().join(';'));
        const has = (r: Rec) => { const v = get(r); if (v == null) return false; const set = new Set(String(v).toLowerCase().split(';')); return want.some((w) => w.split(';').every((x) => set.has(x))); };
        return op === 'INCLUDES' ? has : (r) => !has(r);
      }
    }
    throw new SoqlError('MALFORMED_QUERY', caret(soql, `unexpected token: ${op}`));
  }

  private literal(f: FieldMeta, type: string, raw: string, n: number | undefined, soql: string): Lit {
    const mismatch = (want: string) => new SoqlError('INVALID_FIELD', caret(soql, `value of filter criterion for field '${f.name}' must be of type ${want} and should not be enclosed in quotes`));
    if (type === 'NULL') return { v: null };
    switch (f.type) {
      case 'datetime': {
        if (type === 'DATETIME') return { v: parseDateTime(raw) };
        if (type === 'DATE_LITERAL' || type === 'DATE_N_LITERAL') { const [a, b] = dateRange(raw, n); return { v: a, range: [a, b] }; }
        if (type === 'DATE') throw mismatch('dateTime');
        throw mismatch('dateTime');
      }
      case 'date': {
        if (type === 'DATE') return { v: Date.parse(raw + 'T00:00:00Z') };
        if (type === 'DATE_LITERAL' || type === 'DATE_N_LITERAL') { const [a, b] = dateRange(raw, n); return { v: a, range: [a, b] }; }
        throw mismatch('date');
      }
      case 'boolean':
        if (type !== 'BOOLEAN') throw mismatch('boolean');
        return { v: raw.toUpperCase() === 'TRUE' };
      case 'int': case 'double': case 'currency': case 'percent':
        if (type !== 'INTEGER' && type !== 'DECIMAL' && !type.includes('CURRENCY')) throw mismatch('number');
        return { v: Number(raw.replace(/^[A-Z]{3}/, '')) };
      default: {
        if (type !== 'STRING') {
          throw new SoqlError('INVALID_FIELD', caret(soql, `value of filter criterion for field '${f.name}' must be of type ${f.type === 'id' || f.type === 'reference' ? 'id' : 'string'} and should be enclosed in quotes`));
        }
        const s = unquote(raw);
        if (f.type === 'id' || f.type === 'reference') {
          const id = normalizeId(s);
          if (!id && s !== '') throw new SoqlError('INVALID_QUERY_FILTER_OPERATOR', caret(soql, `invalid ID field: ${s}`));
          return { v: id ?? s };
        }
        return { v: s };
      }
    }
  }

  // ------------------------------------------------------------ execution

  run(plan: Plan, scanAll: boolean): QueryResult {
    const rows: Rec[] = [];
    const where = plan.where;
    const table = this.org.table(plan.obj);
    const ids = where ? byId(where)?.ids : undefined;
    // (by Id: those records, in the order of their ids, which is the order they were created in)
    const source = ids ? ids.filter((id) => table.has(id)).sort().map((id) => table.get(id)!) : table.values();
    for (const r of source) {
      if (!scanAll && r.IsDeleted) continue;
      if (where && !where(r)) continue;
      rows.push(r);
    }
    if (plan.order.length) {
      const keys = plan.order.map((o) => ({ ...o, get: (r: Rec) => this.cell(plan, o.col, r) }));
      rows.sort((a, b) => {
        for (const k of keys) {
          const va = k.get(a), vb = k.get(b);
          if (va == null || vb == null) {
            if (va == null && vb == null) continue;
            return (va == null) === k.nullsLast ? 1 : -1;
          }
          const c = compareValues(k.col.field, va, vb, true);
          if (c !== 0) return k.desc ? -c : c;
        }
        return 0;
      });
    }
    let out = rows;
    if (plan.offset) out = out.slice(plan.offset);
    if (plan.limit !== undefined) out = out.slice(0, plan.limit);
    return { plan, rows: out, totalSize: plan.count === 'aggregate' ? 1 : out.length };
  }

  cell(plan: Plan, col: Column, r: Rec): unknown {
    if (col.path.length === 1) return this.org.value(plan.obj, r, col.field);
    return this.org.getPath(plan.obj, r, col.path.join('.'));
  }

  /** JSON record as the REST API returns it. */
  toJson(plan: Plan, r: Rec, version: string): Rec {
    const out: Rec = { attributes: { type: plan.obj.name, url: `/services/data/v${version}/sobjects/${plan.obj.name}/${r.Id as string}` } };
    for (const l of plan.layout) {
      if (l.kind === 'col') {
        const col = plan.columns[l.i];
        if (col.path.length === 1) { out[col.field.name] = this.org.value(plan.obj, r, col.field); continue; }
        // parent path: nest objects
        let target: Rec = out, o = plan.obj, cur: Rec | undefined = r;
        for (let i = 0; i < col.path.length - 1; i++) {
          const rel = o.relationships.get(col.path[i].toLowerCase())!;
          const pid = cur?.[rel.name] as string | undefined;
          const parent = pid ? this.org.find(pid) : undefined;
          const key = col.path[i];
          if (!parent) { if (!(key in target)) target[key] = null; target = undefined as unknown as Rec; break; }
          let nested = target[key] as Rec | null | undefined;
          if (!nested) { nested = { attributes: { type: parent.obj.name, url: `/services/data/v${version}/sobjects/${parent.obj.name}/${pid}` } }; target[key] = nested; }
          target = nested; o = parent.obj; cur = parent.rec;
        }
        if (target && cur) target[col.field.name] = this.org.value(o, cur, col.field);
      } else {
        const s = plan.subs[l.i];
        const children = this.run({ ...s.plan, where: ((w) => (c: Rec) => c[s.field] === r.Id && (!w || w(c)))(s.plan.where) }, false);
        out[s.relationshipName] = children.rows.length === 0 ? null : { totalSize: children.rows.length, done: true, records: children.rows.map((c) => this.toJson(s.plan, c, version)) };
      }
    }
    return out;
  }

  /**
   * `query?columns=true`: the query's column metadata instead of its rows (the `sf` CLI formats its tables from
   * it). Relationship paths nest in `joinColumns`; a sub-query is an `aggregate` column of its child columns.
   */
  columnMetadata(plan: Plan): Rec {
    type Meta = Rec & { joinColumns: Meta[] };
    const apexType = (f: FieldMeta): string => {
      switch (f.type) {
        case 'id': case 'reference': return 'Id';
        case 'boolean': return 'Boolean';
        case 'int': return 'Integer';
        case 'double': case 'percent': return 'Double';
        case 'currency': return 'Decimal';
        case 'date': return 'Date';
        case 'datetime': return 'Datetime';
        default: return 'String';
      }
    };
    const leaf = (f: FieldMeta, columnName: string, displayName: string): Meta => ({
      aggregate: false, apexType: apexType(f), booleanType: f.type === 'boolean', columnName, custom: f.custom, displayName,
      foreignKeyName: null, insertable: f.createable, joinColumns: [], numberType: isNumberType(f.type), textType: isTextType(f.type), updatable: f.updateable,
    });
    const group = (columnName: string, displayName: string, aggregate: boolean): Meta => ({
      aggregate, apexType: null, booleanType: false, columnName, custom: columnName.endsWith('__r'), displayName,
      foreignKeyName: null, insertable: false, joinColumns: [], numberType: false, textType: false, updatable: false,
    });
    const columns = (p: Plan): Meta[] => {
      const out: Meta[] = [];
      for (const l of p.layout) {
        if (l.kind === 'sub') {
          const sub = p.subs[l.i];
          const g = group(sub.relationshipName, sub.relationshipName, true);
          g.joinColumns = columns(sub.plan);
          out.push(g);
          continue;
        }
        const col = p.columns[l.i];
        if (col.path.length === 1) { out.push(leaf(col.field, col.field.name, col.field.name)); continue; }
        // Owner.Name: a group per relationship along the path, merged with an earlier column on the same path.
        let level = out;
        for (let i = 0; i < col.path.length - 1; i++) {
          const name = col.path[i];
          let g = level.find((m) => m.columnName === name && !m.aggregate && m.apexType === null);
          if (!g) { g = group(name, col.path.slice(0, i + 1).join('.'), false); level.push(g); }
          level = g.joinColumns;
        }
        level.push(leaf(col.field, col.field.name, col.header));
      }
      return out;
    };
    const meta = plan.count === 'aggregate'
      ? plan.aggregates.map((a) => {
        const type = a.fn === 'COUNT' || a.fn === 'COUNT_DISTINCT' ? 'Integer' : a.fn === 'AVG' || a.fn === 'SUM' ? 'Double' : apexType(a.col!.field);
        return { aggregate: true, apexType: type, booleanType: false, columnName: a.alias, custom: false, displayName: `${a.fn}(${a.col!.header})`,
          foreignKeyName: null, insertable: false, joinColumns: [], numberType: type === 'Integer' || type === 'Double', textType: type === 'String', updatable: false };
      })
      : columns(plan);
    return {
      columnMetadata: meta, entityName: plan.obj.name, groupBy: false,
      idSelected: plan.columns.some((c) => c.path.length === 1 && c.field.name === 'Id'), keyPrefix: plan.obj.keyPrefix,
    };
  }

  aggregateRow(plan: Plan, rows: Rec[]): Rec {
    const out: Rec = { attributes: { type: 'AggregateResult' } };
    for (const a of plan.aggregates) {
      const vals = rows.map((r) => this.cell(plan, a.col!, r)).filter((v) => v != null);
      let v: unknown = null;
      switch (a.fn) {
        case 'COUNT': v = vals.length; break;
        case 'COUNT_DISTINCT': v = new Set(vals.map((x) => String(x).toLowerCase())).size; break;
        case 'SUM': v = vals.length ? vals.reduce((s: number, x) => s + Number(x), 0) : null; break;
        case 'AVG': v = vals.length ? vals.reduce((s: number, x) => s + Number(x), 0) / vals.length : null; break;
        case 'MAX': v = vals.length ? vals.reduce((m, x) => (compareValues(a.col!.field, x, m, true) > 0 ? x : m)) : null; break;
        case 'MIN': v = vals.length ? vals.reduce((m, x) => (compareValues(a.col!.field, x, m, true) < 0 ? x : m)) : null; break;
      }
      out[a.alias] = v;
    }
    return out;
  }

  /** CSV cells of one row (Bulk query results). */
  csvRow(plan: Plan, r: Rec): string[] {
    return plan.columns.map((c) => csvCell(this.cell(plan, c, r), c.field));
  }
}

type Lit = { v: unknown; range?: [number, number] };

function unquote(raw: string): string {
  const s = raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  return s.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' } as Record<string, string>)[c] ?? c);
}

function toMs(f: FieldMeta, v: unknown): number {
  if (typeof v === 'number') return v;
  if (f.type === 'date') return Date.parse(String(v) + 'T00:00:00Z');
  return parseDateTime(String(v));
}

function compareValues(f: FieldMeta, a: unknown, b: unknown, bothRecord = false): number {
  if (f.type === 'datetime' || f.type === 'date') {
    const x = toMs(f, a), y = bothRecord ? toMs(f, b) : (b as number);
    return x - y;
  }
  if (isNumberType(f.type)) return Number(a) - Number(b);
  if (f.type === 'boolean') return Number(a) - Number(b);
  const x = String(a).toLowerCase(), y = String(b).toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A WHERE predicate that holds only for the records of `ids` (Id = x, Id IN (...), or an AND with one). */
type ById = ((r: Rec) => boolean) & { ids?: string[] };
function withIds(f: (r: Rec) => boolean, ids: string[] | undefined): (r: Rec) => boolean {
  if (ids) (f as ById).ids = ids;
  return f;
}
function byId(f: (r: Rec) => boolean): ById | undefined {
  return (f as ById).ids ? (f as ById) : undefined;
}

function matchEq(v: unknown, l: Lit, isText: boolean, cmp: (a: unknown, b: Lit) => number): boolean {
  if (l.v === null) return v == null;
  if (v == null) return false;
  if (l.range) { const c0 = cmp(v, { v: l.range[0] }), c1 = cmp(v, { v: l.range[1] }); return c0 >= 0 && c1 < 0; }
  if (isText) return String(v).toLowerCase() === String(l.v).toLowerCase();
  return cmp(v, l) === 0;
}

const DAY = 86_400_000;
function dateRange(lit: string, n?: number): [number, number] {
  const now = new Date();
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const name = lit.split(':')[0].toUpperCase();
  const k = n ?? Number(lit.split(':')[1] ?? 0);
  const month = (offset: number): [number, number] => {
    const s = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1);
    return [s, Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset + 1, 1)];
  };
  const year = (offset: number): [number, number] => [Date.UTC(now.getUTCFullYear() + offset, 0, 1), Date.UTC(now.getUTCFullYear() + offset + 1, 0, 1)];
  switch (name) {
    case 'TODAY': return [today, today + DAY];
    case 'YESTERDAY': return [today - DAY, today];
    case 'TOMORROW': return [today + DAY, today + 2 * DAY];
    case 'LAST_N_DAYS': return [today - k * DAY, today + DAY];
    case 'NEXT_N_DAYS': return [today + DAY, today + (k + 1) * DAY];
    case 'N_DAYS_AGO': return [today - k * DAY, today - (k - 1) * DAY];
    case 'LAST_90_DAYS': return [today - 90 * DAY, today + DAY];
    case 'NEXT_90_DAYS': return [today + DAY, today + 91 * DAY];
    case 'THIS_MONTH': return month(0);
    case 'LAST_MONTH': return month(-1);
    case 'NEXT_MONTH': return month(1);
    case 'THIS_YEAR': return year(0);
    case 'LAST_YEAR': return year(-1);
    case 'NEXT_YEAR': return year(1);
    case 'LAST_WEEK': case 'THIS_WEEK': case 'NEXT_WEEK': {
      const dow = new Date(today).getUTCDay();
      const start = today - dow * DAY + (name === 'LAST_WEEK' ? -7 : name === 'NEXT_WEEK' ? 7 : 0) * DAY;
      return [start, start + 7 * DAY];
    }
  }
  throw new SoqlError('MALFORMED_QUERY', `unsupported date literal ${lit}`);
}

export { formatDateTime };
