// The org's data: records in memory, DML with Salesforce's checks, recycle bin, automation, change events.
import { randomUUID } from 'node:crypto';
import type { OrgDefinition, ObjectMeta, FieldMeta, OrgMeta } from './schema.js';
import { normalizeOrg } from './schema.js';
import { makeId, normalizeId, ORG_ID } from './ids.js';
import { coerce, formatDateTime, type FieldError } from './values.js';
import { evalCondition, evalFormula } from './expr.js';
import { RecordTable } from './store.js';
import { largeTextDiff } from './textdiff.js';

export type Rec = Record<string, unknown>;

export interface SaveResult {
  id?: string;
  success: boolean;
  errors: FieldError[];
  created?: boolean;
  /** HTTP status a single-record REST call should use for this failure. */
  httpStatus?: number;
  /** Ambiguous upsert: the matching ids. */
  multiple?: string[];
  /** Error code a single-record REST call reports instead of the per-record one (e.g. NOT_FOUND). */
  restCode?: string;
}

export interface ChangeEvent {
  entityName: string;
  changeType: 'CREATE' | 'UPDATE' | 'DELETE' | 'UNDELETE' | 'GAP_CREATE' | 'GAP_UPDATE' | 'GAP_DELETE' | 'GAP_UNDELETE' | 'GAP_OVERFLOW';
  recordIds: string[];
  changedFields: string[];
  nulledFields: string[];
  diffFields: string[];
  changeOrigin: string;
  transactionKey: string;
  sequenceNumber: number;
  commitTimestamp: number;
  commitNumber: number;
  commitUser: string;
  fields: Rec;
}

export interface DmlContext {
  userId: string;
  /** CDC changeOrigin, e.g. com/salesforce/api/rest/62.0;client=hcsync */
  origin: string;
  allOrNone?: boolean;
  /** Source of values: CSV (Bulk) treats every value as text and `#N/A` as null. */
  csv?: boolean;
}

export type DmlOp =
  | { kind: 'insert'; object: string; values: Rec }
  | { kind: 'update'; object?: string; id: unknown; values: Rec }
  | { kind: 'upsert'; object: string; extField: string; extValue?: unknown; values: Rec }
  | { kind: 'delete'; object?: string; id: unknown }
  | { kind: 'undelete'; object?: string; id: unknown };

export class DmlError extends Error {
  constructor(public status: number, public errorCode: string, message: string, public fields?: string[]) { super(message); }
}

interface Undo { table: RecordTable; id: string; before: Rec | undefined; obj: ObjectMeta }

const err = (statusCode: string, message: string, fields: string[] = []): FieldError => ({ statusCode, message, fields });

export interface OrgStats { created: number; updated: number; deleted: number; undeleted: number }

export class Org {
  meta: OrgMeta;
  tables = new Map<string, RecordTable>(); // object name -> id -> record (packed: store.ts)
  /** object.field(lower) -> normalised value -> id, or ids when several (unique / external id fields) */
  private indexes = new Map<string, Map<string, string | Set<string>>>();
  private seq = 0;
  private commitNumber = 1_000_000;
  lockFailures = 0;
  /** What /limits/recordCount reports instead of the live count (Salesforce's figures are estimates). */
  recordCountEstimates = new Map<string, number>();
  stats: OrgStats = { created: 0, updated: 0, deleted: 0, undeleted: 0 };
  defaultUserId = '';
  listeners: Array<(events: ChangeEvent[]) => void> = [];
  mergeEvents = true;

  constructor(public def: OrgDefinition) {
    this.meta = normalizeOrg(def);
    this.reset();
  }

  reset(): void {
    this.tables.clear();
    this.indexes.clear();
    this.seq = 0;
    this.stats = { created: 0, updated: 0, deleted: 0, undeleted: 0 };
    for (const o of this.meta.ordered) {
      this.tables.set(o.name, new RecordTable());
      for (const f of o.fields) if (f.unique || f.externalId) this.indexes.set(`${o.name}.${f.name.toLowerCase()}`, new Map());
    }
    this.seedUsers();
  }

  private seedUsers(): void {
    const users = this.def.users ?? [{ username: 'admin@hcsync.emulator', password: 'emulator-password', firstName: 'Admin', lastName: 'User', email: 'admin@hcsync.emulator' }];
    const userObj = this.object('User');
    const now = formatDateTime(Date.now());
    users.forEach((u, i) => {
      const id = makeId(userObj?.keyPrefix ?? '005', this.nextSeq());
      if (i === 0) this.defaultUserId = id;
      if (!userObj) return;
      const rec: Rec = { Id: id, Username: u.username, FirstName: u.firstName ?? null, LastName: u.lastName ?? 'User', Email: u.email ?? u.username, IsActive: true, Alias: (u.lastName ?? 'user').slice(0, 8),
        CreatedDate: now, CreatedById: this.defaultUserId || id, LastModifiedDate: now, LastModifiedById: this.defaultUserId || id, SystemModstamp: now };
      this.tables.get(userObj.name)!.set(id, rec);
    });
  }

  get orgId(): string { return ORG_ID; }

  nextSeq(): number { return ++this.seq; }

  object(name: string): ObjectMeta | undefined { return this.meta.objects.get(name.toLowerCase()); }

  objectForId(id: string): ObjectMeta | undefined { return this.meta.byPrefix.get(id.slice(0, 3)); }

  table(o: ObjectMeta): RecordTable { return this.tables.get(o.name)!; }

  /** Live or deleted record by id (any object). */
  find(id: string): { obj: ObjectMeta; rec: Rec } | undefined {
    const obj = this.objectForId(id);
    if (!obj) return undefined;
    const rec = this.table(obj).get(id);
    return rec ? { obj, rec } : undefined;
  }

  userByUsername(username: string): Rec | undefined {
    const u = this.object('User');
    if (!u) return undefined;
    for (const r of this.table(u).values()) if (String(r.Username).toLowerCase() === username.toLowerCase()) return r;
    return undefined;
  }

  /** Field value including formula fields. */
  value(obj: ObjectMeta, rec: Rec, field: FieldMeta): unknown {
    if (field.calculated && field.formula) {
      try {
        const v = evalFormula(field.formula, (n) => this.getPath(obj, rec, n));
        return this.shapeFormula(field, v);
      } catch { return null; }
    }
    const v = rec[field.name];
    return v === undefined ? (field.type === 'boolean' ? false : null) : v;
  }

  private shapeFormula(f: FieldMeta, v: unknown): unknown {
    if (v == null) return null;
    if (f.type === 'boolean') return v === true;
    if (f.type === 'int' || f.type === 'double' || f.type === 'currency' || f.type === 'percent') { const n = Number(v); return isFinite(n) ? n : null; }
    const s = String(v);
    return s === '' ? null : s;
  }

  /** Resolves `Field` or `Rel.Field` (parent relationships) on a record. */
  getPath(obj: ObjectMeta, rec: Rec, path: string): unknown {
    const parts = path.split('.');
    let o = obj, r: Rec | undefined = rec;
    for (let i = 0; i < parts.length - 1; i++) {
      const rel = o.relationships.get(parts[i].toLowerCase());
      if (!rel || !r) return null;
      const pid = r[rel.name] as string | null | undefined;
      if (!pid) return null;
      const p = this.find(pid);
      if (!p) return null;
      o = p.obj; r = p.rec;
    }
    const f = o.fieldsByLower.get(parts[parts.length - 1].toLowerCase());
    if (!f || !r) return null;
    return this.value(o, r, f);
  }

  // ---------------------------------------------------------------- DML

  /** Runs operations as one transaction. With allOrNone any failure rolls every record back. */
  dml(ops: DmlOp[], ctx: DmlContext): SaveResult[] {
    const tx = new Tx(this, ctx);
    const results = ops.map((op) => tx.run(op));
    const failed = results.some((r) => !r.success);
    if (failed && ctx.allOrNone) {
      tx.rollback();
      return results.map((r) => r.success
        ? { success: false, errors: [err('ALL_OR_NONE_OPERATION_ROLLED_BACK', 'Record rolled back because not all records were valid and the request was using AllOrNone header')] }
        : { ...r, id: r.id && r.created === undefined ? r.id : undefined, created: undefined });
    }
    tx.commit();
    return results;
  }

  /** Events are delivered to listeners (the CDC bus) after commit. */
  emit(events: ChangeEvent[]): void {
    if (events.length === 0) return;
    for (const l of this.listeners) l(events);
  }

  nextCommitNumber(): number { return ++this.commitNumber; }

  /** Outer transaction (composite allOrNone, dry runs): committed DML is held until endOuter. */
  outer?: { txs: Tx[] };

  beginOuter(): void { this.outer = { txs: [] }; }

  endOuter(commit: boolean): void {
    const o = this.outer;
    this.outer = undefined;
    if (!o) return;
    if (commit) for (const tx of o.txs) tx.finish();
    else for (let i = o.txs.length - 1; i >= 0; i--) o.txs[i].rollback();
  }

  indexKey(f: FieldMeta, v: unknown): string { return f.caseSensitive ? String(v) : String(v).toLowerCase(); }

  indexGet(obj: ObjectMeta, f: FieldMeta, v: unknown): Set<string> | undefined {
    const hit = this.indexes.get(`${obj.name}.${f.name.toLowerCase()}`)?.get(this.indexKey(f, v));
    return typeof hit === 'string' ? new Set([hit]) : hit;
  }

  indexSet(obj: ObjectMeta, rec: Rec, add: boolean): void {
    for (const f of obj.fields) {
      if (!(f.unique || f.externalId)) continue;
      const v = rec[f.name];
      if (v == null) continue;
      const idx = this.indexes.get(`${obj.name}.${f.name.toLowerCase()}`)!;
      const k = this.indexKey(f, v);
      const id = rec.Id as string;
      const s = idx.get(k);
      // One id is held as the string itself: a Set per value would cost more than the record.
      if (add) {
        if (s === undefined) idx.set(k, id);
        else if (typeof s === 'string') { if (s !== id) idx.set(k, new Set([s, id])); }
        else s.add(id);
      } else if (s !== undefined) {
        if (typeof s === 'string') { if (s === id) idx.delete(k); }
        else { s.delete(id); if (s.size === 1) idx.set(k, s.values().next().value as string); else if (s.size === 0) idx.delete(k); }
      }
    }
  }

  /** Bulk-loads records without events (seeding, state files). */
  load(objName: string, recs: Rec[]): void {
    const obj = this.object(objName);
    if (!obj) return;
    const t = this.table(obj);
    for (const r of recs) {
      t.set(r.Id as string, r);
      if (!r.IsDeleted) this.indexSet(obj, r, true);
    }
  }

  snapshot(): { seq: number; commitNumber: number; tables: Record<string, Rec[]> } {
    const tables: Record<string, Rec[]> = {};
    for (const [name, t] of this.tables) tables[name] = [...t.values()];
    return { seq: this.seq, commitNumber: this.commitNumber, tables };
  }

  restore(s: { seq: number; commitNumber: number; tables: Record<string, Rec[]> }): void {
    this.reset();
    for (const t of this.tables.values()) t.clear();
    for (const [name, recs] of Object.entries(s.tables)) this.load(name, recs);
    this.seq = Math.max(this.seq, s.seq);
    this.commitNumber = s.commitNumber;
    const u = this.object('User');
    if (u) { const first = this.table(u).keys().next(); if (!first.done) this.defaultUserId = first.value; }
  }
}

class Tx {
  undo: Undo[] = [];
  events: ChangeEvent[] = [];
  key = randomUUID();
  now: string;
  nowMs: number;
  after: Array<() => void> = [];
  counts: OrgStats = { created: 0, updated: 0, deleted: 0, undeleted: 0 };

  constructor(private org: Org, private ctx: DmlContext) {
    this.nowMs = Math.floor(Date.now() / 1000) * 1000;
    this.now = formatDateTime(this.nowMs);
  }

  run(op: DmlOp): SaveResult {
    try {
      switch (op.kind) {
        case 'insert': return this.insert(op.object, op.values);
        case 'update': return this.update(op.object, op.id, op.values, false);
        case 'upsert': return this.upsert(op.object, op.extField, op.extValue, op.values);
        case 'delete': return this.remove(op.object, op.id);
        case 'undelete': return this.undelete(op.object, op.id);
      }
    } catch (e) {
      if (e instanceof RecordFailure) return { id: e.id, success: false, errors: e.errors, httpStatus: e.httpStatus, multiple: e.multiple, restCode: e.restCode };
      throw e;
    }
  }

  private objectOf(name: string | undefined): ObjectMeta {
    const o = name ? this.org.object(name) : undefined;
    if (!o) throw new RecordFailure([err('INVALID_TYPE', `sObject type '${name}' is not supported.`)], 404);
    return o;
  }

  private lockCheck(id: string | undefined): void {
    if (this.org.lockFailures > 0) {
      this.org.lockFailures--;
      throw new RecordFailure([err('UNABLE_TO_LOCK_ROW', `unable to obtain exclusive access to this record or 1 records: ${id ?? ''}`)], 400, id);
    }
  }

  /** Turns input keys into field values; errors for unknown / read-only fields and bad values. */
  private prepare(obj: ObjectMeta, values: Rec, mode: 'insert' | 'update', skipField?: string): Rec {
    const out: Rec = {};
    for (const [k, raw] of Object.entries(values)) {
      if (k === 'attributes') continue;
      let f = obj.fieldsByLower.get(k.toLowerCase());
      let v: unknown = raw;
      if (!f) {
        // Relationship by external id: {"Account": {"External_Id__c": "X"}} or CSV "Account.External_Id__c".
        const dot = k.indexOf('.');
        const relName = dot > 0 ? k.slice(0, dot) : k;
        const rel = obj.relationships.get(relName.toLowerCase());
        if (rel && (dot > 0 || (raw && typeof raw === 'object'))) {
          const extName = dot > 0 ? k.slice(dot + 1) : Object.keys(raw as Rec).find((x) => x !== 'attributes');
          const extVal = dot > 0 ? raw : (raw as Rec)[extName ?? ''];
          f = rel;
          v = this.resolveRelationship(rel, extName ?? '', extVal, k);
        } else {
          throw new RecordFailure([err('INVALID_FIELD', `No such column '${k}' on sobject of type ${obj.name}`, [k])]);
        }
      }
      if (f.name === 'Id' || (skipField && f.name.toLowerCase() === skipField.toLowerCase() && mode === 'update')) {
        if (f.name === 'Id') continue;
      }
      if (this.ctx.csv && v === '') continue; // Bulk: empty cell leaves the value unchanged
      if (this.ctx.csv && v === '#N/A') v = null;
      if ((mode === 'insert' && !f.createable) || (mode === 'update' && !f.updateable)) {
        throw new RecordFailure([err('INVALID_FIELD_FOR_INSERT_UPDATE', `Unable to create/update fields: ${f.name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`, [f.name])]);
      }
      const c = coerce(f, v, !!this.ctx.csv);
      if (!c.ok) throw new RecordFailure([c.error]);
      out[f.name] = c.value;
    }
    return out;
  }

  private resolveRelationship(rel: FieldMeta, extName: string, extVal: unknown, key: string): string | null {
    if (extVal == null || extVal === '' || extVal === '#N/A') return null;
    for (const target of rel.referenceTo) {
      const t = this.org.object(target);
      const ef = t?.fieldsByLower.get(extName.toLowerCase());
      if (!t || !ef) continue;
      if (!(ef.externalId || ef.name === 'Id')) break;
      if (ef.name === 'Id') return normalizeId(extVal) ?? null;
      const ids = [...(this.org.indexGet(t, ef, extVal) ?? [])];
      if (ids.length === 1) return ids[0];
      if (ids.length > 1) throw new RecordFailure([err('DUPLICATE_EXTERNAL_ID', `${ef.label}: more than 1 record found for external id field: ${ids.join(', ')}`, [key])]);
      throw new RecordFailure([err('INVALID_FIELD', `Foreign key external ID: ${String(extVal)} not found for field ${ef.name} in entity ${t.name}`, [key])]);
    }
    throw new RecordFailure([err('INVALID_FIELD', `No such column '${key}' on sobject of type ${rel.name}`, [key])]);
  }

  private checkRecord(obj: ObjectMeta, rec: Rec, old: Rec | undefined): void {
    // Required fields
    const missing = obj.fields.filter((f) => !f.nillable && f.type !== 'boolean' && !f.calculated && !f.system && (f.createable || f.updateable) && (rec[f.name] == null || rec[f.name] === ''));
    if (missing.length) throw new RecordFailure([err('REQUIRED_FIELD_MISSING', `Required fields are missing: [${missing.map((f) => f.name).join(', ')}]`, missing.map((f) => f.name))]);
    // References
    for (const f of obj.fields) {
      if (f.type !== 'reference' || f.calculated) continue;
      const v = rec[f.name] as string | null | undefined;
      if (v == null || (old && old[f.name] === v)) continue;
      const hit = this.org.find(v);
      if (!hit || !f.referenceTo.some((t) => t.toLowerCase() === hit.obj.name.toLowerCase()) ) {
        if (hit && f.referenceTo.includes('Group')) continue;
        const sameType = f.referenceTo.some((t) => this.org.object(t)?.keyPrefix === v.slice(0, 3));
        throw new RecordFailure([sameType
          ? err('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id', [f.name])
          : err('FIELD_INTEGRITY_EXCEPTION', `${f.label}: id value of incorrect type: ${v}`, [f.name])]);
      }
      if (hit.rec.IsDeleted) throw new RecordFailure([err('ENTITY_IS_DELETED', 'entity is deleted', [f.name])]);
    }
    // Validation rules
    const get = (n: string) => this.org.getPath(obj, rec, n);
    const oldGet = old ? (n: string) => this.org.getPath(obj, old, n) : undefined;
    const failures: FieldError[] = [];
    for (const r of obj.validationRules) {
      if (evalCondition(r.errorCondition, get, oldGet))
        failures.push(err('FIELD_CUSTOM_VALIDATION_EXCEPTION', r.errorMessage, r.errorDisplayField ? [r.errorDisplayField] : []));
    }
    if (failures.length) throw new RecordFailure(failures);
    // Unique / external id
    for (const f of obj.fields) {
      if (!(f.unique || f.externalId) || !f.unique) continue;
      const v = rec[f.name];
      if (v == null) continue;
      const ids = this.org.indexGet(obj, f, v);
      if (ids) for (const other of ids) if (other !== rec.Id)
        throw new RecordFailure([err('DUPLICATE_VALUE', `duplicate value found: ${f.name} duplicates value on record with id: ${other}`, [])]);
    }
    // Duplicate rules
    for (const d of obj.duplicateRules) {
      if (d.fields.some((n) => rec[n] == null)) continue;
      for (const other of this.org.table(obj).values()) {
        if (other.Id === rec.Id || other.IsDeleted) continue;
        if (d.fields.every((n) => String(other[n] ?? '').toLowerCase() === String(rec[n]).toLowerCase()))
          throw new RecordFailure([err('DUPLICATES_DETECTED', d.errorMessage ?? 'Use one of these records?', [])]);
      }
    }
  }

  private applyFlows(obj: ObjectMeta, rec: Rec, old: Rec | undefined, timing: 'before' | 'after'): Rec {
    const changes: Rec = {};
    for (const fl of obj.flows) {
      if ((fl.timing ?? 'before') !== timing || !fl.on.includes(old ? 'update' : 'insert')) continue;
      const get = (n: string) => (n in changes ? changes[n] : this.org.getPath(obj, rec, n));
      if (fl.condition && !evalCondition(fl.condition, get, old ? (n) => this.org.getPath(obj, old, n) : undefined)) continue;
      for (const [field, expr] of Object.entries(fl.set)) {
        const f = obj.fieldsByLower.get(field.toLowerCase());
        if (!f) continue;
        const c = coerce(f, evalFormula(expr, get), false);
        if (c.ok) changes[f.name] = c.value;
        else {
          // Flow faults surface like Salesforce's flow errors.
          throw new RecordFailure([err('CANNOT_EXECUTE_FLOW_TRIGGER', `We can't save this record because the “${fl.name}” process failed. ${c.error.message}`, [])]);
        }
      }
    }
    return changes;
  }

  private put(obj: ObjectMeta, id: string, rec: Rec, before: Rec | undefined): void {
    const t = this.org.table(obj);
    this.undo.push({ table: t, id, before, obj });
    if (before && !before.IsDeleted) this.org.indexSet(obj, before, false);
    t.set(id, rec);
    if (!rec.IsDeleted) this.org.indexSet(obj, rec, true);
  }

  /** `before`: an UPDATE's record before it, whose large text fields may then go as diffs (textdiff.ts). */
  private event(obj: ObjectMeta, changeType: ChangeEvent['changeType'], id: string, fields: Rec, changed: string[], nulled: string[], before?: Rec): void {
    if (!obj.cdc) return;
    const diffFields: string[] = [];
    if (before) {
      for (const f of obj.fields) {
        if (f.type !== 'textarea' || !(f.name in fields)) continue;
        const d = largeTextDiff(before[f.name], fields[f.name]);
        if (d === undefined) continue;
        fields[f.name] = d;
        diffFields.push(f.name);
      }
    }
    this.events.push({
      entityName: obj.name, changeType, recordIds: [id], changedFields: changed, nulledFields: nulled, diffFields,
      changeOrigin: this.ctx.origin, transactionKey: this.key, sequenceNumber: 0, commitTimestamp: 0, commitNumber: 0,
      commitUser: this.ctx.userId, fields,
    });
  }

  private eventFields(obj: ObjectMeta, rec: Rec, only?: Set<string>): Rec {
    const out: Rec = {};
    for (const f of obj.fields) {
      if (f.calculated || f.name === 'IsDeleted' || f.name === 'SystemModstamp' || f.name === 'Id') continue;
      if (only && !only.has(f.name)) continue;
      const v = rec[f.name];
      if (!only && v == null) continue;
      out[f.name] = v ?? null;
    }
    return out;
  }

  insert(objName: string, values: Rec, preset?: Rec): SaveResult {
    const obj = this.objectOf(objName);
    const idv = values.Id ?? values.id;
    if (idv != null && idv !== '') {
      throw new RecordFailure([err('INVALID_FIELD_FOR_INSERT_UPDATE', 'cannot specify Id in an insert call', ['Id'])]);
    }
    const input = { ...this.prepare(obj, values, 'insert'), ...(preset ?? {}) };
    const id = makeId(obj.keyPrefix, this.org.nextSeq());
    this.lockCheck(undefined);
    const rec: Rec = {};
    for (const f of obj.fields) if (!f.calculated && f.defaultValue != null) rec[f.name] = f.defaultValue;
    Object.assign(rec, input);
    rec.Id = id;
    if (obj.fieldsByLower.has('isdeleted')) rec.IsDeleted = false;
    if (obj.hasOwner && rec.OwnerId == null) rec.OwnerId = this.ctx.userId;
    rec.CreatedDate = this.now; rec.CreatedById = this.ctx.userId;
    rec.LastModifiedDate = this.now; rec.LastModifiedById = this.ctx.userId; rec.SystemModstamp = this.now;
    Object.assign(rec, this.applyFlows(obj, rec, undefined, 'before'));
    this.checkRecord(obj, rec, undefined);
    this.put(obj, id, rec, undefined);
    this.counts.created++;
    this.event(obj, 'CREATE', id, this.eventFields(obj, rec), [], []);
    this.afterSave(obj, rec, undefined);
    return { id, success: true, errors: [] };
  }

  private afterSave(obj: ObjectMeta, rec: Rec, old: Rec | undefined): void {
    if (!obj.flows.some((f) => f.timing === 'after')) return;
    const changes = this.applyFlows(obj, rec, old, 'after');
    const changed = Object.keys(changes).filter((k) => rec[k] !== changes[k]);
    if (changed.length === 0) return;
    const next: Rec = { ...rec, ...changes, SystemModstamp: this.now, LastModifiedDate: this.now };
    this.checkRecord(obj, next, rec);
    this.put(obj, rec.Id as string, next, rec);
    this.counts.updated++;
    const nulled = changed.filter((k) => next[k] == null);
    this.event(obj, 'UPDATE', rec.Id as string, this.eventFields(obj, next, new Set([...changed, 'LastModifiedDate'])), [...changed, 'LastModifiedDate'], nulled, rec);
  }

  private live(obj: ObjectMeta | undefined, rawId: unknown): { obj: ObjectMeta; id: string; rec: Rec } {
    const id = normalizeId(rawId);
    if (!id) throw new RecordFailure([err('MALFORMED_ID', `${obj?.label ?? 'Record'} ID: id value of incorrect type: ${String(rawId)}`, ['Id'])], 400);
    const actual = this.org.objectForId(id);
    if (!actual || (obj && actual !== obj)) throw new RecordFailure([err(obj ? 'MALFORMED_ID' : 'INVALID_CROSS_REFERENCE_KEY', obj ? `${obj.label} ID: id value of incorrect type: ${String(rawId)}` : 'invalid cross reference id', obj ? ['Id'] : [])], obj ? 400 : 404);
    const rec = this.org.table(actual).get(id);
    if (!rec) throw new RecordFailure([err('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id', [])], 404, undefined, 'NOT_FOUND');
    if (rec.IsDeleted) throw new RecordFailure([err('ENTITY_IS_DELETED', 'entity is deleted', [])], 404, id);
    return { obj: actual, id, rec };
  }

  update(objName: string | undefined, rawId: unknown, values: Rec, fromUpsert: boolean, skipField?: string): SaveResult {
    const { obj, id, rec: old } = this.live(objName ? this.objectOf(objName) : undefined, rawId);
    const input = this.prepare(obj, values, 'update', skipField);
    this.lockCheck(id);
    const rec: Rec = { ...old, ...input };
    Object.assign(rec, this.applyFlows(obj, rec, old, 'before'));
    this.checkRecord(obj, rec, old);
    rec.LastModifiedDate = this.now; rec.LastModifiedById = this.ctx.userId; rec.SystemModstamp = this.now;
    const changed = obj.fields.filter((f) => !f.calculated && !f.system && !sameValue(old[f.name], rec[f.name])).map((f) => f.name);
    if (old.LastModifiedById !== rec.LastModifiedById) changed.push('LastModifiedById');
    changed.push('LastModifiedDate');
    this.put(obj, id, rec, old);
    this.counts.updated++;
    const nulled = changed.filter((k) => rec[k] == null);
    this.event(obj, 'UPDATE', id, this.eventFields(obj, rec, new Set(changed)), changed, nulled, old);
    this.afterSave(obj, rec, old);
    return fromUpsert ? { id, success: true, errors: [], created: false } : { id, success: true, errors: [] };
  }

  upsert(objName: string, extField: string, extValue: unknown, values: Rec): SaveResult {
    const obj = this.objectOf(objName);
    const f = obj.fieldsByLower.get(extField.toLowerCase());
    if (!f || !(f.externalId || f.name === 'Id'))
      throw new RecordFailure([err('NOT_FOUND', `Provided external ID field does not exist or is not accessible: ${extField}`)], 404);
    const body: Rec = { ...values };
    let key = extValue;
    const bodyKey = Object.keys(body).find((k) => k.toLowerCase() === f.name.toLowerCase());
    if (key === undefined) { key = bodyKey ? body[bodyKey] : undefined; }
    else if (bodyKey && f.name !== 'Id') {
      // Salesforce rejects the external id in both the URL and the body only when they differ.
      if (String(body[bodyKey]) !== String(key)) throw new RecordFailure([err('INVALID_FIELD', `The value of the external ID field in the body (${String(body[bodyKey])}) doesn't match the value in the URL (${String(key)})`, [f.name])]);
    }
    if (bodyKey && f.name === 'Id') delete body[bodyKey];
    if (key == null || key === '') {
      if (f.name === 'Id') return { ...this.insert(obj.name, body), created: true };
      throw new RecordFailure([err('REQUIRED_FIELD_MISSING', `Required fields are missing: [${f.name}]`, [f.name])]);
    }
    if (f.name === 'Id') {
      const id = normalizeId(key);
      if (!id) throw new RecordFailure([err('MALFORMED_ID', `${obj.label} ID: id value of incorrect type: ${String(key)}`, ['Id'])]);
      return this.update(obj.name, id, body, true);
    }
    const c = coerce(f, key, !!this.ctx.csv);
    if (!c.ok) throw new RecordFailure([c.error]);
    const ids = [...(this.org.indexGet(obj, f, c.value) ?? [])].filter((i) => !this.org.table(obj).get(i)?.IsDeleted);
    if (ids.length > 1) throw new RecordFailure([err('DUPLICATE_EXTERNAL_ID', `${f.label}: more than 1 record found for external id field: ${ids.join(', ')}`, [f.name])], 300, undefined, undefined, ids);
    if (ids.length === 1) {
      if (bodyKey) delete body[bodyKey];
      return this.update(obj.name, ids[0], body, true, f.name);
    }
    if (bodyKey) delete body[bodyKey];
    const r = this.insert(obj.name, body, { [f.name]: c.value });
    return { ...r, created: true };
  }

  remove(objName: string | undefined, rawId: unknown): SaveResult {
    const { obj, id, rec: old } = this.live(objName ? this.objectOf(objName) : undefined, rawId);
    if (!obj.fieldsByLower.has('isdeleted')) throw new RecordFailure([err('DELETE_FAILED', 'Your attempt to delete this record failed.', [])]);
    this.lockCheck(id);
    const rec: Rec = { ...old, IsDeleted: true, SystemModstamp: this.now, LastModifiedDate: this.now, LastModifiedById: this.ctx.userId };
    this.put(obj, id, rec, old);
    this.counts.deleted++;
    this.event(obj, 'DELETE', id, {}, [], []);
    return { id, success: true, errors: [] };
  }

  undelete(objName: string | undefined, rawId: unknown): SaveResult {
    const id = normalizeId(rawId);
    if (!id) throw new RecordFailure([err('MALFORMED_ID', `malformed id ${String(rawId)}`, [])]);
    const hit = this.org.find(id);
    if (!hit || (objName && hit.obj.name.toLowerCase() !== objName.toLowerCase())) throw new RecordFailure([err('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id', [])], 404);
    if (!hit.rec.IsDeleted) throw new RecordFailure([err('UNDELETE_FAILED', 'Entity is not in the recycle bin', [])]);
    const rec: Rec = { ...hit.rec, IsDeleted: false, SystemModstamp: this.now, LastModifiedDate: this.now, LastModifiedById: this.ctx.userId };
    this.checkRecord(hit.obj, rec, hit.rec);
    this.put(hit.obj, id, rec, hit.rec);
    this.counts.undeleted++;
    this.event(hit.obj, 'UNDELETE', id, this.eventFields(hit.obj, rec), [], []);
    return { id, success: true, errors: [] };
  }

  rollback(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const u = this.undo[i];
      const cur = u.table.get(u.id);
      if (cur && !cur.IsDeleted) this.org.indexSet(u.obj, cur, false);
      if (u.before) { u.table.set(u.id, u.before); if (!u.before.IsDeleted) this.org.indexSet(u.obj, u.before, true); }
      else u.table.delete(u.id);
    }
    this.undo = [];
    this.events = [];
  }

  commit(): void {
    if (this.org.outer) { this.org.outer.txs.push(this); return; }
    this.finish();
  }

  finish(): void {
    const s = this.org.stats;
    s.created += this.counts.created; s.updated += this.counts.updated; s.deleted += this.counts.deleted; s.undeleted += this.counts.undeleted;
    if (this.events.length === 0) return;
    const commitNumber = this.org.nextCommitNumber();
    const events = this.org.mergeEvents ? mergeEvents(this.events) : this.events;
    events.forEach((e, i) => { e.sequenceNumber = i + 1; e.commitTimestamp = this.nowMs; e.commitNumber = commitNumber; });
    this.org.emit(events);
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  return (a ?? null) === (b ?? null);
}

/** Salesforce folds identical changes to several records of one transaction into one event with several recordIds. */
function mergeEvents(events: ChangeEvent[]): ChangeEvent[] {
  const out: ChangeEvent[] = [];
  const byKey = new Map<string, ChangeEvent>();
  for (const e of events) {
    if (e.changeType !== 'UPDATE' && e.changeType !== 'DELETE') { out.push(e); byKey.clear(); continue; }
    const k = `${e.entityName}|${e.changeType}|${JSON.stringify(e.fields)}|${e.changedFields.join(',')}`;
    const prev = byKey.get(k);
    if (prev && prev === out[out.length - 1]) { prev.recordIds.push(...e.recordIds); continue; }
    byKey.clear();
    byKey.set(k, e);
    out.push(e);
  }
  return out;
}

export class RecordFailure extends Error {
  constructor(public errors: FieldError[], public httpStatus = 400, public id?: string, public restCode?: string, public multiple?: string[]) {
    super(errors[0]?.message);
  }
}
