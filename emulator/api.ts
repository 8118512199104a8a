// REST API: /services/data/vXX.X/... handled independently of the HTTP server, so /composite can call it in-process.
import type { Readable } from 'node:stream';
import type { Org, Rec, SaveResult, DmlOp } from './org.js';
import { Soql, SoqlError, type Plan } from './soql.js';
import { describe, describeGlobal } from './describe.js';
import { makeId, normalizeId } from './ids.js';
import { formatDateTime, parseDateTime } from './values.js';

/**
 * Every version a real org serves: v31.0 (Summer '14) to v68.0 (Winter '27). Clients default to old ones (the
 * `sf` CLI looks users up on v51.0, some libraries use v38.0), so all of them answer. Three releases a year:
 * Summer, Winter (named after the next year), Spring.
 */
export const VERSIONS: Array<{ label: string; version: string }> = Array.from({ length: 68 - 31 + 1 }, (_, k) => ({
  label: `${['Summer', 'Winter', 'Spring'][k % 3]} '${14 + Math.floor((k + 2) / 3)}`,
  version: `${31 + k}.0`,
}));
export const VERSION_SET = new Set(VERSIONS.map((v) => v.version));

export interface ApiRequest {
  method: string;
  /** Path below /services/data/vXX.X, e.g. /sobjects/Account */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | undefined>;
  body?: string;
  version: string;
  userId: string;
  client?: string;
  /** Set for sub-requests of /composite */
  inComposite?: boolean;
  /** The absolute base URL the client reached (http or https listener). */
  baseUrl?: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
  raw?: string | Readable;
  contentType?: string;
  headers?: Record<string, string>;
}

export type CallKind = 'versions' | 'resources' | 'describeGlobal' | 'describe' | 'sobject' | 'query' | 'queryMore' | 'limits'
  | 'updated' | 'deleted' | 'collections' | 'composite' | 'compositeBatch' | 'bulk2Ingest' | 'bulk2Query' | 'other';

export const JSON_TYPE = 'application/json;charset=UTF-8';

export function sfError(status: number, errorCode: string, message: string, fields?: string[]): ApiResponse {
  return { status, body: [fields ? { message, errorCode, fields } : { message, errorCode }] };
}

export const notFound = () => sfError(404, 'NOT_FOUND', 'The requested resource does not exist');

export function parseCallOptions(h: string | undefined): string | undefined {
  if (!h) return undefined;
  for (const part of h.split(',')) {
    const [k, ...v] = part.trim().split('=');
    if (k.trim() === 'client') return v.join('=').trim();
  }
  return undefined;
}

export function origin(api: 'rest' | 'bulkapi', version: string, client?: string): string {
  return `com/salesforce/api/${api}/${version}` + (client ? `;client=${client}` : '');
}

interface Cursor { plan: Plan; rows: Rec[]; total: number; batch: number; version: string; touched: number }

export interface Limits { dailyApiRequests: number; used: number }

export class JsonBodyError extends Error {}

export function parseJsonBody(body: string | undefined): unknown {
  if (body === undefined || body === '') return undefined;
  try { return JSON.parse(body); } catch (e) {
    throw new JsonBodyError(`Unexpected character ('${body.trim()[0] ?? ''}' (code ${body.trim().charCodeAt(0) || 0})): was expecting double-quote to start field name at [line:1, column:2]`);
  }
}

export class RestApi {
  soql: Soql;
  private cursors = new Map<string, Cursor>();
  private cursorSeq = 0;

  constructor(private org: Org, private limits: Limits) {
    this.soql = new Soql(org);
  }

  kindOf(method: string, path: string): CallKind {
    const p = path.split('/').filter(Boolean);
    if (p.length === 0) return 'resources';
    switch (p[0]) {
      case 'sobjects':
        if (p.length === 1) return 'describeGlobal';
        if (p.length === 2 && method === 'GET') return 'describe';
        if (p[2] === 'describe') return 'describe';
        if (p[2] === 'updated') return 'updated';
        if (p[2] === 'deleted') return 'deleted';
        return 'sobject';
      case 'query': case 'queryAll': return p.length > 1 ? 'queryMore' : 'query';
      case 'limits': return 'limits';
      case 'composite': return p[1] === 'sobjects' ? 'collections' : p[1] === 'batch' ? 'compositeBatch' : 'composite';
      case 'jobs': return p[1] === 'query' ? 'bulk2Query' : 'bulk2Ingest';
    }
    return 'other';
  }

  private ctx(req: ApiRequest) {
    return { userId: req.userId, origin: origin('rest', req.version, req.client) };
  }

  private json(req: ApiRequest): unknown { return parseJsonBody(req.body); }

  async handle(req: ApiRequest): Promise<ApiResponse> {
    try {
      return await this.route(req);
    } catch (e) {
      if (e instanceof SoqlError) return sfError(e.status, e.errorCode, e.message);
      if (e instanceof JsonBodyError) return sfError(400, 'JSON_PARSER_ERROR', e.message);
      throw e;
    }
  }

  private async route(req: ApiRequest): Promise<ApiResponse> {
    const p = req.path.split('/').filter(Boolean).map(decodeURIComponent);
    const m = req.method;
    if (p.length === 0) {
      if (m !== 'GET') return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are GET`);
      return { status: 200, body: this.resources(req.version, req.userId, req.baseUrl) };
    }
    switch (p[0]) {
      case 'sobjects': return this.sobjects(req, p.slice(1));
      case 'query': case 'queryAll': return this.query(req, p[0] === 'queryAll', p[1]);
      case 'limits':
        if (p[1] === 'recordCount' && p.length === 2 && m === 'GET') return this.recordCount(req);
        return { status: 200, body: this.limitsBody() };
      case 'composite':
        if (p[1] === 'sobjects') return this.collections(req, p.slice(2));
        if (p.length === 1 && m === 'POST') return this.composite(req);
        if (p[1] === 'batch' && m === 'POST') return this.compositeBatch(req);
        if (p[1] === 'tree' && p.length === 3) return m === 'POST' ? this.compositeTree(req, p[2]) : sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are POST`);
        if (p.length === 1 && m === 'GET') {
          const b = `/services/data/v${req.version}/composite`;
          return { status: 200, body: { tree: `${b}/tree`, batch: `${b}/batch`, sobjects: `${b}/sobjects` } };
        }
        return notFound();
      case 'recent':
        // Nothing is ever "viewed" in this org.
        if (p.length === 1 && m === 'GET') return { status: 200, body: [] };
        return notFound();
    }
    return notFound();
  }

  /**
   * The version's resource list: only what this org serves, and each entry answers a GET. `identity` is absolute,
   * as real orgs send it (clients follow it as is).
   */
  resources(v: string, userId: string, baseUrl = '') {
    const b = `/services/data/v${v}`;
    return {
      jobs: `${b}/jobs`, query: `${b}/query`, queryAll: `${b}/queryAll`, sobjects: `${b}/sobjects`, limits: `${b}/limits`,
      composite: `${b}/composite`, recent: `${b}/recent`, identity: `${baseUrl}/id/${this.org.orgId}/${userId}`,
    };
  }

  /** GET /limits/recordCount?sObjects=A,B: each object's record count (an estimate in real orgs, here live unless set). */
  recordCount(req: ApiRequest): ApiResponse {
    const wanted = req.query.get('sObjects')?.split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
    const sObjects = [...this.org.meta.objects.values()]
      .filter((o) => !wanted || wanted.includes(o.name.toLowerCase()))
      .map((o) => ({
        count: this.org.recordCountEstimates.get(o.name.toLowerCase()) ?? [...this.org.table(o).values()].filter((r) => !r.IsDeleted).length,
        name: o.name,
      }));
    return { status: 200, body: { sObjects } };
  }

  limitsBody() {
    const d = this.limits;
    const mk = (max: number, rem: number) => ({ Max: max, Remaining: rem });
    return {
      ConcurrentAsyncGetReportInstances: mk(200, 200), ConcurrentSyncReportRuns: mk(20, 20),
      DailyApiRequests: mk(d.dailyApiRequests, Math.max(0, d.dailyApiRequests - d.used)),
      DailyAsyncApexExecutions: mk(250000, 250000), DailyBulkApiBatches: mk(15000, 15000), DailyBulkV2QueryFileStorageMB: mk(1048576, 1048576),
      DailyBulkV2QueryJobs: mk(10000, 10000), DailyDeliveredPlatformEvents: mk(50000, 50000), DailyDurableGenericStreamingApiEvents: mk(1000000, 1000000),
      DailyDurableStreamingApiEvents: mk(1000000, 1000000), DailyGenericStreamingApiEvents: mk(10000, 10000), DataStorageMB: mk(1024, 1024),
      DurableStreamingApiConcurrentClients: mk(2000, 2000), FileStorageMB: mk(1024, 1024), HourlyPublishedPlatformEvents: mk(250000, 250000),
      MonthlyPlatformEventsUsageEntitlement: mk(0, 0), SingleEmailMessage: mk(5000, 5000), StreamingApiConcurrentClients: mk(2000, 2000),
    };
  }

  // ------------------------------------------------------------ sObjects

  private async sobjects(req: ApiRequest, p: string[]): Promise<ApiResponse> {
    const v = req.version;
    if (p.length === 0) return req.method === 'GET' ? { status: 200, body: describeGlobal(this.org.meta, v) } : sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${req.method}' not allowed. Allowed are GET`);
    const obj = this.org.object(p[0]);
    if (!obj) return notFound();
    if (p.length === 1) {
      if (req.method === 'GET') return { status: 200, body: { objectDescribe: describe(this.org.meta.objects.get(obj.name.toLowerCase())!, v), recentItems: [] } };
      if (req.method === 'POST') return this.single(req, { kind: 'insert', object: obj.name, values: this.bodyObject(req) }, 201);
      return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${req.method}' not allowed. Allowed are HEAD,GET,POST`);
    }
    if (p[1] === 'describe' && p.length === 2) return { status: 200, body: describe(obj, v) };
    if ((p[1] === 'updated' || p[1] === 'deleted') && p.length === 2) return this.replication(req, obj.name, p[1]);
    if (p.length === 2) {
      if (p[1].toLowerCase() === 'id' && req.method === 'POST') return this.single(req, { kind: 'insert', object: obj.name, values: this.bodyObject(req) }, 201);
      const id = normalizeId(p[1]);
      const hit = id ? this.org.find(id) : undefined;
      if (!id || !hit || hit.obj !== obj) {
        if (req.method === 'GET' || req.method === 'PATCH' || req.method === 'DELETE') return notFound();
      }
      if (req.method === 'GET') return this.retrieve(req, obj.name, id!);
      const pre = this.precondition(req, hit!.rec);
      if (pre) return pre;
      if (req.method === 'PATCH') return this.single(req, { kind: 'update', object: obj.name, id, values: this.bodyObject(req) }, 204);
      if (req.method === 'DELETE') return this.single(req, { kind: 'delete', object: obj.name, id }, 204);
      return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${req.method}' not allowed. Allowed are HEAD,GET,PATCH,DELETE`);
    }
    if (p.length === 3) {
      const field = obj.fieldsByLower.get(p[1].toLowerCase());
      if (req.method === 'PATCH') {
        const r = this.org.dml([{ kind: 'upsert', object: obj.name, extField: p[1], extValue: p[2], values: this.bodyObject(req) }], { ...this.ctx(req), allOrNone: true })[0];
        if (r.multiple) return { status: 300, body: r.multiple.map((id) => `/services/data/v${v}/sobjects/${obj.name}/${id}`) };
        if (!r.success) return this.failure(r);
        if (req.query.get('updateOnly') === 'true' && r.created) return notFound();
        return { status: r.created ? 201 : 200, body: { id: r.id, success: true, errors: [], created: !!r.created } };
      }
      if (req.method === 'GET' || req.method === 'DELETE') {
        if (!field || !(field.externalId || field.name === 'Id')) return notFound();
        const ids = [...(this.org.indexGet(obj, field, p[2]) ?? [])].filter((i) => !this.org.table(obj).get(i)?.IsDeleted);
        if (ids.length === 0) return notFound();
        if (ids.length > 1) return { status: 300, body: ids.map((id) => `/services/data/v${v}/sobjects/${obj.name}/${id}`) };
        if (req.method === 'GET') return this.retrieve(req, obj.name, ids[0]);
        return this.single(req, { kind: 'delete', object: obj.name, id: ids[0] }, 204);
      }
      return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${req.method}' not allowed. Allowed are GET,PATCH,DELETE`);
    }
    return notFound();
  }

  private precondition(req: ApiRequest, rec: Rec): ApiResponse | undefined {
    const ius = req.headers['if-unmodified-since'];
    if (ius) {
      const t = Date.parse(ius);
      const lm = parseDateTime(String(rec.LastModifiedDate));
      if (!isNaN(t) && lm > t) return sfError(412, 'PRECONDITION_FAILED', 'The requested resource has been modified since the time specified in the If-Unmodified-Since header');
    }
    const ims = req.headers['if-modified-since'];
    if (ims && req.method === 'GET') {
      const t = Date.parse(ims);
      const lm = parseDateTime(String(rec.LastModifiedDate));
      if (!isNaN(t) && lm <= t) return { status: 304 };
    }
    return undefined;
  }

  private bodyObject(req: ApiRequest): Rec {
    const b = this.json(req);
    if (b === undefined) throw new JsonBodyError('No content to map due to end-of-input at [line:1, column:0]');
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw new JsonBodyError(`Cannot deserialize instance of SObject from ${Array.isArray(b) ? 'START_ARRAY' : 'VALUE_STRING'} token`);
    return b as Rec;
  }

  private failure(r: SaveResult): ApiResponse {
    if (r.restCode === 'NOT_FOUND') return notFound();
    return { status: r.httpStatus ?? 400, body: r.errors.map((e) => ({ message: e.message, errorCode: e.statusCode, fields: e.fields })) };
  }

  private single(req: ApiRequest, op: DmlOp, okStatus: number): ApiResponse {
    const r = this.org.dml([op], { ...this.ctx(req), allOrNone: true })[0];
    if (!r.success) return this.failure(r);
    if (okStatus === 204) return { status: 204 };
    return { status: okStatus, body: { id: r.id, success: true, errors: [] } };
  }

  private retrieve(req: ApiRequest, objName: string, id: string): ApiResponse {
    const obj = this.org.object(objName)!;
    const rec = this.org.table(obj).get(id);
    if (!rec || rec.IsDeleted) return notFound();
    const pre = this.precondition(req, rec);
    if (pre) return pre;
    const fieldsParam = req.query.get('fields');
    const out: Rec = { attributes: { type: obj.name, url: `/services/data/v${req.version}/sobjects/${obj.name}/${id}` } };
    if (fieldsParam) {
      for (const name of fieldsParam.split(',').map((s) => s.trim()).filter(Boolean)) {
        const f = obj.fieldsByLower.get(name.toLowerCase());
        if (!f) return sfError(400, 'INVALID_FIELD', `No such column '${name}' on entity '${obj.name}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`);
        out[f.name] = this.org.value(obj, rec, f);
      }
    } else {
      for (const f of obj.fields) out[f.name] = this.org.value(obj, rec, f);
    }
    return { status: 200, body: out };
  }

  private replication(req: ApiRequest, objName: string, kind: 'updated' | 'deleted'): ApiResponse {
    const obj = this.org.object(objName)!;
    const s = req.query.get('start'), e = req.query.get('end');
    if (!s || !e) return sfError(400, 'MALFORMED_QUERY', `${!s ? 'start' : 'end'} parameter is required`);
    const truncMin = (ms: number) => Math.floor(ms / 60_000) * 60_000;
    let start = parseDateTime(s), end = parseDateTime(e);
    if (isNaN(start) || isNaN(end)) return sfError(400, 'INVALID_REPLICATION_DATE', 'Unable to parse the date/time');
    start = truncMin(start); end = truncMin(end);
    const now = Date.now();
    if (start >= end) return sfError(400, 'INVALID_REPLICATION_DATE', 'startDate must chronologically precede endDate by more than one minute');
    if (start < now - 30 * 86_400_000) return sfError(400, 'INVALID_REPLICATION_DATE', 'startDate can not be more than 30 days ago');
    // Covered up to the last whole second (inclusive): a poll starting at latestDateCovered overlaps, never misses.
    const latest = Math.min(end, Math.floor(now / 1000) * 1000);
    const recs = this.org.table(obj);
    if (kind === 'updated') {
      const ids: string[] = [];
      for (const r of recs.values()) {
        if (r.IsDeleted) continue;
        const t = parseDateTime(String(r.SystemModstamp));
        if (t >= start && t <= latest) ids.push(r.Id as string);
      }
      if (ids.length > 600_000) return sfError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. narrow down your time window');
      return { status: 200, body: { ids, latestDateCovered: formatDateTime(latest) } };
    }
    const deletedRecords: Array<{ id: string; deletedDate: string }> = [];
    for (const r of recs.values()) {
      if (!r.IsDeleted) continue;
      const t = parseDateTime(String(r.SystemModstamp));
      if (t >= start && t <= latest) deletedRecords.push({ id: r.Id as string, deletedDate: String(r.SystemModstamp) });
    }
    return { status: 200, body: { deletedRecords, earliestDateAvailable: formatDateTime(truncMin(now - 15 * 86_400_000)), latestDateCovered: formatDateTime(latest) } };
  }

  // ------------------------------------------------------------ query

  private batchSize(req: ApiRequest): number {
    const h = req.headers['sforce-query-options'];
    const m = h ? /batchSize\s*=\s*(\d+)/i.exec(h) : null;
    if (!m) return 2000;
    return Math.min(2000, Math.max(200, Number(m[1])));
  }

  private query(req: ApiRequest, all: boolean, locator?: string): ApiResponse {
    if (req.method !== 'GET') return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${req.method}' not allowed. Allowed are GET,HEAD`);
    if (locator) {
      const m = /^(.+)-(\d+)$/.exec(locator);
      const c = m ? this.cursors.get(m[1]) : undefined;
      if (!m || !c) return sfError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
      c.touched = Date.now();
      return { status: 200, body: this.page(m[1], c, Number(m[2]), req.version) };
    }
    const q = req.query.get('q');
    if (!q) return sfError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    const plan = this.soql.plan(q);
    if (req.query.get('columns') === 'true') return { status: 200, body: this.soql.columnMetadata(plan) };
    const res = this.soql.run(plan, all);
    if (plan.count === 'count()') return { status: 200, body: { totalSize: res.rows.length, done: true, records: [] } };
    if (plan.count === 'aggregate') return { status: 200, body: { totalSize: 1, done: true, records: [this.soql.aggregateRow(plan, res.rows)] } };
    const batch = this.batchSize(req);
    const c: Cursor = { plan, rows: res.rows, total: res.rows.length, batch, version: req.version, touched: Date.now() };
    if (res.rows.length <= batch) return { status: 200, body: this.page('', c, 0, req.version) };
    this.gcCursors();
    const id = makeId('01g', ++this.cursorSeq);
    this.cursors.set(id, c);
    return { status: 200, body: this.page(id, c, 0, req.version) };
  }

  private gcCursors(): void {
    const cutoff = Date.now() - 15 * 60_000;
    for (const [k, c] of this.cursors) if (c.touched < cutoff) this.cursors.delete(k);
    while (this.cursors.size > 2000) this.cursors.delete(this.cursors.keys().next().value as string);
  }

  private page(id: string, c: Cursor, offset: number, version: string) {
    const rows = c.rows.slice(offset, offset + c.batch);
    const next = offset + rows.length;
    const done = next >= c.total;
    if (done && id) this.cursors.delete(id);
    const body: Rec = { totalSize: c.total, done };
    if (!done) body.nextRecordsUrl = `/services/data/v${version}/query/${id}-${next}`;
    body.records = rows.map((r) => this.soql.toJson(c.plan, r, version));
    return body;
  }

  // ------------------------------------------------------------ sObject Collections

  private collections(req: ApiRequest, p: string[]): ApiResponse {
    const ctx = this.ctx(req);
    const m = req.method;
    if (m === 'DELETE' && p.length === 0) {
      const ids = (req.query.get('ids') ?? '').split(',').filter(Boolean);
      if (ids.length === 0) return sfError(400, 'MALFORMED_QUERY', 'ids parameter is required');
      if (ids.length > 200) return sfError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 200 records into this call');
      const allOrNone = req.query.get('allOrNone') === 'true';
      const res = this.org.dml(ids.map((id) => ({ kind: 'delete', id })), { ...ctx, allOrNone });
      return { status: 200, body: res.map((r, i) => this.itemResult(r, ids[i])) };
    }
    if (m === 'POST' && p.length === 1) {
      // retrieve many
      const obj = this.org.object(p[0]);
      if (!obj) return notFound();
      const b = this.json(req) as { ids?: string[]; fields?: string[] } | undefined;
      if (!b?.ids || !b.fields) return sfError(400, 'INVALID_FIELD', 'ids and fields are required');
      const out = [] as unknown[];
      for (const raw of b.ids) {
        const id = normalizeId(raw);
        const rec = id ? this.org.table(obj).get(id) : undefined;
        if (!rec || rec.IsDeleted) { out.push(null); continue; }
        const r: Rec = { attributes: { type: obj.name, url: `/services/data/v${req.version}/sobjects/${obj.name}/${id}` } };
        for (const n of b.fields) { const f = obj.fieldsByLower.get(n.toLowerCase()); if (!f) return sfError(400, 'INVALID_FIELD', `No such column '${n}' on entity '${obj.name}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`); r[f.name] = this.org.value(obj, rec, f); }
        out.push(r);
      }
      return { status: 200, body: out };
    }
    const b = this.json(req) as { allOrNone?: boolean; records?: Rec[] } | undefined;
    if (!b || typeof b !== 'object' || !Array.isArray(b.records)) return sfError(400, 'JSON_PARSER_ERROR', 'Cannot deserialize instance of SObject[] from ' + (b === undefined ? 'end-of-input' : 'START_OBJECT') + ' token');
    if (b.records.length > 200) return sfError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 200 records into this call');
    const allOrNone = b.allOrNone === true;
    const typeOf = (r: Rec) => (r.attributes as { type?: string } | undefined)?.type;
    if (m === 'POST' && p.length === 0) {
      const pre: Array<SaveResult | undefined> = [];
      const ops: DmlOp[] = [];
      for (const r of b.records) {
        const t = typeOf(r);
        if (!t) { pre.push({ success: false, errors: [{ statusCode: 'INVALID_TYPE', message: 'No SObject Type defined in the record', fields: [] }] }); continue; }
        if (r.id != null || r.Id != null) { pre.push({ success: false, errors: [{ statusCode: 'INVALID_FIELD', message: 'Record ID: cannot specify Id in an insert call', fields: ['Id'] }] }); continue; }
        pre.push(undefined);
        ops.push({ kind: 'insert', object: t, values: r });
      }
      return { status: 200, body: this.merge(pre, ops, ctx, allOrNone) };
    }
    if (m === 'PATCH' && p.length === 0) {
      const pre: Array<SaveResult | undefined> = [];
      const ops: DmlOp[] = [];
      for (const r of b.records) {
        const t = typeOf(r);
        const { id, Id, ...values } = r;
        const rid = id ?? Id;
        if (!t) { pre.push({ success: false, errors: [{ statusCode: 'INVALID_TYPE', message: 'No SObject Type defined in the record', fields: [] }] }); continue; }
        if (rid == null) { pre.push({ success: false, errors: [{ statusCode: 'MISSING_ARGUMENT', message: 'Id not specified in an update call', fields: [] }] }); continue; }
        pre.push(undefined);
        ops.push({ kind: 'update', object: t, id: rid, values });
      }
      const res = this.merge(pre, ops, ctx, allOrNone);
      return { status: 200, body: res.map((r, i) => ('id' in r || r.success ? r : { id: normalizeId(b.records![i].id ?? b.records![i].Id) ?? undefined, ...r })) };
    }
    if (m === 'PATCH' && p.length === 2) {
      const obj = this.org.object(p[0]);
      if (!obj) return notFound();
      const ext = obj.fieldsByLower.get(p[1].toLowerCase());
      if (!ext || !(ext.externalId || ext.name === 'Id')) return sfError(404, 'NOT_FOUND', `Provided external ID field does not exist or is not accessible: ${p[1]}`);
      const pre: Array<SaveResult | undefined> = [];
      const ops: DmlOp[] = [];
      for (const r of b.records) {
        const t = typeOf(r);
        if (!t || t.toLowerCase() !== obj.name.toLowerCase()) { pre.push({ success: false, errors: [{ statusCode: 'INVALID_TYPE', message: t ? `Record type ${t} does not match ${obj.name}` : 'No SObject Type defined in the record', fields: [] }] }); continue; }
        pre.push(undefined);
        ops.push({ kind: 'upsert', object: obj.name, extField: ext.name, values: r });
      }
      return { status: 200, body: this.merge(pre, ops, ctx, allOrNone).map((r) => (r.success ? { id: r.id, success: true, errors: [], created: !!r.created } : r)) };
    }
    return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are GET,POST,PATCH,DELETE`);
  }

  private itemResult(r: SaveResult, rawId?: unknown): Rec {
    if (r.success) return r.created === undefined ? { id: r.id, success: true, errors: [] } : { id: r.id, success: true, errors: [], created: r.created };
    const id = r.id ?? (rawId !== undefined ? normalizeId(rawId) : undefined);
    return id ? { id, success: false, errors: r.errors } : { success: false, errors: r.errors };
  }

  /** Runs ops; pre-failed slots are merged back in order. allOrNone covers the pre-failures too. */
  private merge(pre: Array<SaveResult | undefined>, ops: DmlOp[], ctx: { userId: string; origin: string }, allOrNone: boolean): Rec[] {
    const anyPre = pre.some((x) => x);
    let res: SaveResult[];
    if (allOrNone && anyPre) {
      res = ops.map(() => ({ success: false, errors: [{ statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK', message: 'Record rolled back because not all records were valid and the request was using AllOrNone header', fields: [] }] }));
      // still report the record's own errors where it would have failed
      this.org.beginOuter();
      const dry = this.org.dml(ops, { ...ctx, allOrNone: true });
      this.org.endOuter(false);
      dry.forEach((d, i) => { if (!d.success && d.errors[0]?.statusCode !== 'ALL_OR_NONE_OPERATION_ROLLED_BACK') res[i] = d; });
    } else {
      res = this.org.dml(ops, { ...ctx, allOrNone });
    }
    let k = 0;
    return pre.map((x) => this.itemResult(x ?? res[k++]));
  }

  // ------------------------------------------------------------ composite

  private async composite(req: ApiRequest): Promise<ApiResponse> {
    const b = this.json(req) as { allOrNone?: boolean; compositeRequest?: Array<{ method: string; url: string; referenceId: string; body?: unknown; httpHeaders?: Record<string, string> }> } | undefined;
    if (!b || !Array.isArray(b.compositeRequest)) return sfError(400, 'JSON_PARSER_ERROR', 'Cannot deserialize instance of CompositeRequest from end-of-input token');
    const subs = b.compositeRequest;
    if (subs.length > 25) return sfError(400, 'INVALID_BATCH_REQUEST', 'Composite request may contain at most 25 subrequests');
    const refs = new Map<string, unknown>();
    const out: Array<{ body: unknown; httpHeaders: Record<string, string>; httpStatusCode: number; referenceId: string }> = [];
    const allOrNone = b.allOrNone === true;
    const halted = () => [{ errorCode: 'PROCESSING_HALTED', message: 'The transaction was rolled back since another operation in the same transaction failed.' }];
    if (allOrNone) this.org.beginOuter();
    let failed = false;
    for (const s of subs) {
      if (failed && allOrNone) { out.push({ body: halted(), httpHeaders: {}, httpStatusCode: 400, referenceId: s.referenceId }); continue; }
      let unresolved: string | undefined;
      const resolve = (str: string) => str.replace(/@\{([^}]+)\}/g, (all, expr: string) => {
        const v = evalRef(refs, expr);
        if (v === undefined) { unresolved = expr; return all; }
        return String(v);
      });
      const url = resolve(s.url);
      const bodyStr = s.body === undefined ? undefined : resolve(JSON.stringify(s.body));
      if (unresolved) {
        out.push({ body: [{ errorCode: 'PROCESSING_HALTED', message: `Invalid reference specified. No value for ${unresolved} found in ${unresolved.split('.')[0]}. Provided referenceId ('${unresolved.split('.')[0]}') must start with a letter or a number, and it can contain only letters, numbers and underscores ('_').` }], httpHeaders: {}, httpStatusCode: 400, referenceId: s.referenceId });
        failed = true;
        continue;
      }
      const m = /^\/services\/data\/v(\d+\.\d)(\/[^?]*)?(?:\?(.*))?$/.exec(url);
      if (!m) { out.push({ body: [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }], httpHeaders: {}, httpStatusCode: 404, referenceId: s.referenceId }); failed = true; continue; }
      const headers: Record<string, string | undefined> = { ...req.headers };
      delete headers['if-unmodified-since']; delete headers['if-modified-since'];
      for (const [k, v] of Object.entries(s.httpHeaders ?? {})) headers[k.toLowerCase()] = v;
      const r = await this.handle({ ...req, method: s.method.toUpperCase(), path: m[2] ?? '', query: new URLSearchParams(m[3] ?? ''), headers, body: bodyStr, version: m[1], inComposite: true });
      const hh: Record<string, string> = {};
      if (r.status === 201 && r.body && typeof r.body === 'object' && 'id' in (r.body as Rec)) {
        const type = m[2]?.split('/')[2];
        hh.Location = `/services/data/v${m[1]}/sobjects/${type}/${(r.body as Rec).id as string}`;
      }
      out.push({ body: r.body ?? null, httpHeaders: hh, httpStatusCode: r.status, referenceId: s.referenceId });
      if (r.status < 300) refs.set(s.referenceId, r.body);
      else failed = true;
    }
    if (allOrNone) {
      this.org.endOuter(!failed);
      if (failed) for (const o of out) if (o.httpStatusCode < 300) { o.body = halted(); o.httpStatusCode = 400; o.httpHeaders = {}; }
    }
    return { status: 200, body: { compositeResponse: out } };
  }

  /**
   * sObject Tree: POST /composite/tree/{Object} creates records with their children in one all-or-nothing
   * transaction (at most 200 records, 5 levels). 201 with every referenceId's id, or 400 with the failing
   * records' errors and nothing written.
   */
  private compositeTree(req: ApiRequest, objectName: string): ApiResponse {
    const top = this.org.object(objectName);
    if (!top) return notFound();
    const b = this.json(req) as { records?: unknown } | undefined;
    if (!b || !Array.isArray(b.records)) return sfError(400, 'JSON_PARSER_ERROR', 'Cannot deserialize instance of SObjectTreeRequest from end-of-input token');
    type Node = { obj: NonNullable<ReturnType<Org['object']>>; referenceId: string; values: Rec; parentField?: string; parent?: Node; id?: string };
    const nodes: Node[] = [];
    const refs = new Set<string>();
    const bad = (message: string) => sfError(400, 'INVALID_INPUT', message);
    const walk = (records: unknown[], obj: Node['obj'], depth: number, parent?: Node, parentField?: string): ApiResponse | undefined => {
      if (depth > 5) return bad('Exceeded max depth of 5 levels');
      for (const r of records) {
        if (!r || typeof r !== 'object' || Array.isArray(r)) return sfError(400, 'JSON_PARSER_ERROR', 'Cannot deserialize instance of SObject');
        const { attributes, ...rest } = r as Rec & { attributes?: { type?: string; referenceId?: string } };
        const type = attributes?.type;
        if (!type || type.toLowerCase() !== obj.name.toLowerCase()) return sfError(400, 'INVALID_INPUT', `The type ${type ?? ''} doesn't match the sObject type ${obj.name}`);
        const referenceId = attributes?.referenceId;
        if (!referenceId) return bad('Include a reference ID for each record in the request.');
        if (refs.has(referenceId)) return bad(`Duplicate ReferenceId provided in the request: ${referenceId}`);
        refs.add(referenceId);
        const node: Node = { obj, referenceId, values: {}, parent, parentField };
        nodes.push(node);
        if (nodes.length > 200) return bad('Too many records in the request: at most 200 are allowed');
        const children: Array<[Node['obj'], string, unknown[]]> = [];
        for (const [k, v] of Object.entries(rest)) {
          const rel = obj.childRelationships.find((c) => c.relationshipName?.toLowerCase() === k.toLowerCase());
          if (rel && v && typeof v === 'object' && Array.isArray((v as { records?: unknown }).records)) {
            const child = this.org.object(rel.childSObject);
            if (child) { children.push([child, rel.field, (v as { records: unknown[] }).records]); continue; }
          }
          node.values[k] = v;
        }
        for (const [child, field, recs] of children) {
          const err = walk(recs, child, depth + 1, node, field);
          if (err) return err;
        }
      }
      return undefined;
    };
    const err = walk(b.records, top, 1);
    if (err) return err;
    const ctx = this.ctx(req);
    this.org.beginOuter();
    const failures: Array<{ referenceId: string; errors: SaveResult['errors'] }> = [];
    for (const n of nodes) {
      // A child whose parent failed is not attempted (everything rolls back anyway).
      if (n.parent && !n.parent.id) continue;
      const values = n.parent && n.parentField ? { ...n.values, [n.parentField]: n.parent.id } : n.values;
      const r = this.org.dml([{ kind: 'insert', object: n.obj.name, values }], { ...ctx, allOrNone: true })[0];
      if (r.success) n.id = r.id; else failures.push({ referenceId: n.referenceId, errors: r.errors });
    }
    this.org.endOuter(failures.length === 0);
    if (failures.length) return { status: 400, body: { hasErrors: true, results: failures } };
    return { status: 201, body: { hasErrors: false, results: nodes.map((n) => ({ referenceId: n.referenceId, id: n.id })) } };
  }

  private async compositeBatch(req: ApiRequest): Promise<ApiResponse> {
    const b = this.json(req) as { haltOnError?: boolean; batchRequests?: Array<{ method: string; url: string; richInput?: unknown }> } | undefined;
    if (!b || !Array.isArray(b.batchRequests)) return sfError(400, 'JSON_PARSER_ERROR', 'Cannot deserialize instance of BatchRequest from end-of-input token');
    if (b.batchRequests.length > 25) return sfError(400, 'INVALID_BATCH_REQUEST', 'Batch request may contain at most 25 subrequests');
    const results: Array<{ statusCode: number; result: unknown }> = [];
    let hasErrors = false;
    for (const s of b.batchRequests) {
      if (hasErrors && b.haltOnError) { results.push({ statusCode: 412, result: [{ errorCode: 'BATCH_PROCESSING_HALTED', message: 'Batch processing halted per request' }] }); continue; }
      const m = /^\/?(?:services\/data\/)?v(\d+\.\d)(\/[^?]*)?(?:\?(.*))?$/.exec(s.url);
      if (!m) { results.push({ statusCode: 404, result: [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }] }); hasErrors = true; continue; }
      const r = await this.handle({ ...req, method: s.method.toUpperCase(), path: m[2] ?? '', query: new URLSearchParams(m[3] ?? ''), body: s.richInput === undefined ? undefined : JSON.stringify(s.richInput), version: m[1], inComposite: true });
      if (r.status >= 400) hasErrors = true;
      results.push({ statusCode: r.status, result: r.body ?? null });
    }
    return { status: 200, body: { hasErrors, results } };
  }
}

function evalRef(refs: Map<string, unknown>, expr: string): unknown {
  const m = /^([A-Za-z0-9_]+)(.*)$/.exec(expr);
  if (!m || !refs.has(m[1])) return undefined;
  let cur: unknown = refs.get(m[1]);
  const re = /\.([A-Za-z0-9_]+)|\[(\d+)\]/g;
  let t: RegExpExecArray | null;
  while ((t = re.exec(m[2]))) {
    if (cur == null || typeof cur !== 'object') return undefined;
    cur = t[1] !== undefined ? (cur as Rec)[t[1]] : (cur as unknown[])[Number(t[2])];
  }
  return cur;
}
