// Bulk API 2.0: ingest jobs (CSV in, result CSVs out) and query jobs (paged, streamed CSV results).
import { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse/sync';
import type { Org, Rec, DmlOp } from './org.js';
import type { Plan, Soql } from './soql.js';
import { SoqlError } from './soql.js';
import { makeId } from './ids.js';
import { formatDateTime } from './values.js';
import { type ApiRequest, type ApiResponse, sfError, origin, parseJsonBody, JsonBodyError } from './api.js';

type IngestState = 'Open' | 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted';
const DELIMS: Record<string, string> = { COMMA: ',', TAB: '\t', SEMICOLON: ';', PIPE: '|', BACKQUOTE: '`', CARET: '^' };

interface IngestJob {
  id: string; object: string; operation: string; externalIdFieldName?: string; state: IngestState;
  createdById: string; createdDate: string; systemModstamp: string; apiVersion: number; lineEnding: 'LF' | 'CRLF'; columnDelimiter: string;
  client?: string; uploads: string[]; header: string[]; /** Result rows as CSV lines, rendered once: a row kept as an array of cells cost three times its text. */
  successful: string[]; failed: string[]; unprocessed: string[][];
  processed: number; failedCount: number; errorMessage?: string; started?: number; finished?: number;
}

interface QueryJob {
  id: string; query: string; operation: 'query' | 'queryAll'; state: 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted';
  createdById: string; createdDate: string; systemModstamp: string; apiVersion: number; lineEnding: 'LF' | 'CRLF'; columnDelimiter: string;
  plan: Plan; rows?: Rec[]; processed: number; errorMessage?: string; started?: number; finished?: number;
}

export interface BulkStats { ingestJobs: number; queryJobs: number; recordsIngested: number; queryRowsServed: number }

const q = (s: string) => '"' + s.replace(/"/g, '""') + '"';

export class BulkApi {
  private ingest = new Map<string, IngestJob>();
  private queries = new Map<string, QueryJob>();
  private seq = 0;
  /** Rows per results page when the client gives no maxRecords. */
  defaultPageSize = 100_000;
  /** Records per internal batch (each one transaction), as Salesforce splits ingest data. */
  chunkSize = 10_000;
  stats: BulkStats = { ingestJobs: 0, queryJobs: 0, recordsIngested: 0, queryRowsServed: 0 };

  constructor(private org: Org, private soql: Soql) {}

  reset(): void { this.ingest.clear(); this.queries.clear(); }

  handle(req: ApiRequest): ApiResponse | Promise<ApiResponse> {
    try {
      const p = req.path.split('/').filter(Boolean); // jobs, ingest|query, id?, sub?
      if (p[1] === 'ingest') return this.ingestRoute(req, p.slice(2));
      if (p[1] === 'query') return this.queryRoute(req, p.slice(2));
      if (p.length === 1 && req.method === 'GET') {
        const b = `/services/data/v${req.version}/jobs`;
        return { status: 200, body: { ingest: `${b}/ingest`, query: `${b}/query` } };
      }
      return sfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    } catch (e) {
      if (e instanceof JsonBodyError) return sfError(400, 'JSON_PARSER_ERROR', e.message);
      throw e;
    }
  }

  private newId(prefix: string): string { return makeId(prefix, ++this.seq); }

  private info(j: IngestJob) {
    const base = {
      id: j.id, operation: j.operation, object: j.object, createdById: j.createdById, createdDate: j.createdDate, systemModstamp: j.systemModstamp,
      state: j.state, ...(j.externalIdFieldName ? { externalIdFieldName: j.externalIdFieldName } : {}), concurrencyMode: 'Parallel', contentType: 'CSV',
      apiVersion: j.apiVersion, contentUrl: `services/data/v${j.apiVersion.toFixed(1)}/jobs/ingest/${j.id}/batches`, lineEnding: j.lineEnding, columnDelimiter: j.columnDelimiter,
    };
    return { ...base, jobType: 'V2Ingest', numberRecordsProcessed: j.processed, numberRecordsFailed: j.failedCount, retries: 0,
      totalProcessingTime: j.finished && j.started ? j.finished - j.started : 0, apiActiveProcessingTime: 0, apexProcessingTime: 0,
      ...(j.errorMessage ? { errorMessage: j.errorMessage } : {}) };
  }

  private qinfo(j: QueryJob) {
    return { id: j.id, operation: j.operation, object: j.plan.obj.name, createdById: j.createdById, createdDate: j.createdDate, systemModstamp: j.systemModstamp,
      state: j.state, concurrencyMode: 'Parallel', contentType: 'CSV', apiVersion: j.apiVersion, jobType: 'V2Query', lineEnding: j.lineEnding, columnDelimiter: j.columnDelimiter,
      numberRecordsProcessed: j.processed, retries: 0, totalProcessingTime: j.finished && j.started ? j.finished - j.started : 0,
      ...(j.errorMessage ? { errorMessage: j.errorMessage } : {}) };
  }

  private ingestRoute(req: ApiRequest, p: string[]): ApiResponse {
    const m = req.method;
    if (p.length === 0) {
      if (m === 'GET') return { status: 200, body: { done: true, records: [...this.ingest.values()].map((j) => { const { numberRecordsFailed: _a, numberRecordsProcessed: _b, ...rest } = this.info(j); return rest; }), nextRecordsUrl: null } };
      if (m !== 'POST') return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are GET,POST`);
      const b = parseJsonBody(req.body) as Record<string, string> | undefined;
      if (!b || typeof b !== 'object') return sfError(400, 'INVALIDJOB', 'Invalid job: request body is required');
      const op = b.operation;
      if (!['insert', 'update', 'upsert', 'delete', 'hardDelete'].includes(op)) return sfError(400, 'INVALIDJOB', `InvalidJob : Invalid operation: ${String(op)}`);
      const obj = b.object ? this.org.object(b.object) : undefined;
      if (!obj) return sfError(400, 'INVALIDJOB', `InvalidJob : Invalid object: ${String(b.object)}`);
      if (op === 'upsert') {
        const f = b.externalIdFieldName ? obj.fieldsByLower.get(b.externalIdFieldName.toLowerCase()) : undefined;
        if (!f || !(f.externalId || f.name === 'Id')) return sfError(400, 'INVALIDJOB', `InvalidJob : Field name provided, ${String(b.externalIdFieldName)} does not match an External ID, Salesforce Id, or indexed field for ${obj.name}`);
      }
      if (b.contentType && b.contentType !== 'CSV') return sfError(400, 'INVALIDJOB', `InvalidJob : Invalid contentType: ${b.contentType}`);
      const delim = b.columnDelimiter ?? 'COMMA';
      if (!DELIMS[delim]) return sfError(400, 'INVALIDJOB', `InvalidJob : Invalid columnDelimiter: ${delim}`);
      const le = b.lineEnding ?? 'LF';
      if (le !== 'LF' && le !== 'CRLF') return sfError(400, 'INVALIDJOB', `InvalidJob : Invalid lineEnding: ${le}`);
      const now = formatDateTime(Date.now());
      const j: IngestJob = { id: this.newId('750'), object: obj.name, operation: op, externalIdFieldName: op === 'upsert' ? b.externalIdFieldName : undefined, state: 'Open',
        createdById: req.userId, createdDate: now, systemModstamp: now, apiVersion: Number(req.version), lineEnding: le, columnDelimiter: delim, client: req.client,
        uploads: [], header: [], successful: [], failed: [], unprocessed: [], processed: 0, failedCount: 0 };
      this.ingest.set(j.id, j);
      this.stats.ingestJobs++;
      return { status: 200, body: this.info(j) };
    }
    const j = this.ingest.get(p[0]);
    if (!j) return sfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    if (p.length === 1) {
      if (m === 'GET') return { status: 200, body: this.info(j) };
      if (m === 'DELETE') {
        if (!['UploadComplete', 'JobComplete', 'Aborted', 'Failed'].includes(j.state)) return sfError(400, 'INVALIDJOBSTATE', `Deleting a job in state ${j.state} is not allowed`);
        this.ingest.delete(j.id);
        return { status: 204 };
      }
      if (m === 'PATCH') {
        const b = parseJsonBody(req.body) as { state?: string } | undefined;
        if (b?.state === 'UploadComplete') {
          if (j.state !== 'Open') return sfError(409, 'INVALIDJOBSTATE', `Job ${j.id} is not in state Open (current state: ${j.state})`);
          j.state = 'UploadComplete'; j.systemModstamp = formatDateTime(Date.now());
          const body = this.info(j);
          setImmediate(() => this.process(j));
          return { status: 200, body };
        }
        if (b?.state === 'Aborted') {
          if (['JobComplete', 'Failed', 'Aborted'].includes(j.state)) return sfError(409, 'INVALIDJOBSTATE', `Job ${j.id} is in a terminal state (${j.state})`);
          j.state = 'Aborted'; j.systemModstamp = formatDateTime(Date.now());
          return { status: 200, body: this.info(j) };
        }
        return sfError(400, 'INVALIDJOBSTATE', `Invalid state: ${String(b?.state)}`);
      }
      return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are GET,PATCH,DELETE`);
    }
    const sub = p[1];
    if (sub === 'batches' && m === 'PUT') {
      if (j.state !== 'Open') return sfError(409, 'INVALIDJOBSTATE', `Job ${j.id} is not in state Open (current state: ${j.state})`);
      const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (ct !== 'text/csv') return sfError(400, 'INVALIDCONTENTTYPE', `Content-Type ${ct || '(none)'} is not supported; use text/csv`);
      const total = j.uploads.reduce((n, s) => n + s.length, 0) + (req.body?.length ?? 0);
      if (total > 150 * 1024 * 1024) return sfError(400, 'EXCEEDED_QUOTA', 'Upload data exceeds 150 MB');
      j.uploads.push(req.body ?? '');
      return { status: 201 };
    }
    if (m !== 'GET') return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are GET`);
    const csv = (rows: string[][], cols: string[]) => [cols.map(q).join(','), ...rows.map((r) => r.map(q).join(','))].join('\n') + '\n';
    const lines = (rows: string[], cols: string[]) => [cols.map(q).join(','), ...rows].join('\n') + '\n';
    if (sub === 'successfulResults') return { status: 200, contentType: 'text/csv', raw: lines(j.successful, ['sf__Id', 'sf__Created', ...j.header]) };
    if (sub === 'failedResults') return { status: 200, contentType: 'text/csv', raw: lines(j.failed, ['sf__Id', 'sf__Error', ...j.header]) };
    if (sub === 'unprocessedrecords') {
      let rows = j.unprocessed;
      if (j.state === 'Aborted' && j.processed === 0 && j.uploads.length) { try { const { header, rows: r } = this.parseUpload(j); if (!j.header.length) j.header = header; rows = r; } catch { rows = []; } }
      return { status: 200, contentType: 'text/csv', raw: csv(rows, j.header) };
    }
    return sfError(404, 'NOT_FOUND', 'The requested resource does not exist');
  }

  private parseUpload(j: IngestJob): { header: string[]; rows: string[][] } {
    const data = j.uploads.join('');
    if (j.lineEnding === 'LF' && data.includes('\r\n')) throw new Error(`ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF`);
    const all = parseCsv(data, { delimiter: DELIMS[j.columnDelimiter], relax_column_count: false, skip_empty_lines: true, bom: true }) as string[][];
    if (all.length === 0) return { header: [], rows: [] };
    return { header: all[0], rows: all.slice(1) };
  }

  private process(j: IngestJob): void {
    if (j.state !== 'UploadComplete') return;
    j.state = 'InProgress';
    j.started = Date.now();
    let header: string[], rows: string[][];
    try {
      ({ header, rows } = this.parseUpload(j));
    } catch (e) {
      j.state = 'Failed'; j.errorMessage = e instanceof Error && e.message.startsWith('ClientInputError') ? e.message : `InvalidBatch : Failed to parse CSV: ${(e as Error).message}`;
      j.finished = Date.now();
      return;
    }
    j.header = header;
    const obj = this.org.object(j.object)!;
    const unknown = header.filter((h) => { const k = h.split('.')[0].toLowerCase(); return !obj.fieldsByLower.has(h.toLowerCase()) && !obj.relationships.has(k); });
    if (unknown.length) {
      j.state = 'Failed'; j.errorMessage = `InvalidBatch : Field name not found : ${unknown[0]}`; j.finished = Date.now();
      j.unprocessed = rows;
      return;
    }
    const idCol = header.findIndex((h) => h.toLowerCase() === 'id');
    if ((j.operation === 'update' || j.operation === 'delete' || j.operation === 'hardDelete') && idCol < 0) {
      j.state = 'Failed'; j.errorMessage = 'InvalidBatch : Field name not found : Id'; j.finished = Date.now(); j.unprocessed = rows;
      return;
    }
    const ctx = { userId: j.createdById, origin: origin('bulkapi', j.apiVersion.toFixed(1), j.client), allOrNone: false, csv: true };
    let i = 0;
    const step = () => {
      if (j.state === 'Aborted') { j.unprocessed = rows.slice(i); j.finished = Date.now(); return; }
      const chunk = rows.slice(i, i + this.chunkSize);
      const ops: DmlOp[] = chunk.map((r) => {
        const values: Rec = {};
        header.forEach((h, k) => { if (k !== idCol || j.operation === 'upsert') values[h] = r[k] ?? ''; });
        switch (j.operation) {
          case 'insert': return { kind: 'insert', object: obj.name, values };
          case 'update': return { kind: 'update', object: obj.name, id: r[idCol], values };
          case 'upsert': return { kind: 'upsert', object: obj.name, extField: j.externalIdFieldName!, values };
          default: return { kind: 'delete', object: obj.name, id: r[idCol] };
        }
      });
      const res = this.org.dml(ops, ctx);
      res.forEach((r, k) => {
        const row = chunk[k];
        if (r.success) j.successful.push([r.id ?? '', String(j.operation === 'insert' ? true : j.operation === 'upsert' ? !!r.created : false), ...row].map(q).join(','));
        else {
          const e = r.errors[0];
          const id = j.operation === 'insert' ? '' : (r.id ?? (idCol >= 0 ? row[idCol] : ''));
          j.failed.push([id, `${e.statusCode}:${e.message}:${e.fields.join(',')} --`, ...row].map(q).join(','));
          j.failedCount++;
        }
        j.processed++;
      });
      this.stats.recordsIngested += chunk.length;
      i += chunk.length;
      if (i < rows.length) setImmediate(step);
      else { j.state = 'JobComplete'; j.finished = Date.now(); j.systemModstamp = formatDateTime(Date.now()); j.uploads = []; }
    };
    step();
  }

  // ------------------------------------------------------------ query jobs

  private queryRoute(req: ApiRequest, p: string[]): ApiResponse {
    const m = req.method;
    if (p.length === 0) {
      if (m === 'GET') return { status: 200, body: { done: true, records: [...this.queries.values()].map((j) => this.qinfo(j)), nextRecordsUrl: null } };
      if (m !== 'POST') return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are GET,POST`);
      const b = parseJsonBody(req.body) as Record<string, string> | undefined;
      if (!b || !b.query) return sfError(400, 'INVALIDJOB', 'InvalidJob : query is required');
      const op = b.operation ?? 'query';
      if (op !== 'query' && op !== 'queryAll') return sfError(400, 'INVALIDJOB', `InvalidJob : Invalid operation: ${op}`);
      let plan: Plan;
      try { plan = this.soql.plan(b.query); } catch (e) {
        if (e instanceof SoqlError) return sfError(400, e.errorCode, e.message);
        throw e;
      }
      if (plan.subs.length || plan.count !== 'none' || plan.offset !== undefined)
        return sfError(400, 'API_ERROR', 'The query uses a feature Bulk API 2.0 does not support (sub-queries, aggregate functions, COUNT() or OFFSET).');
      const now = formatDateTime(Date.now());
      const j: QueryJob = { id: this.newId('750'), query: b.query, operation: op, state: 'UploadComplete', createdById: req.userId, createdDate: now, systemModstamp: now,
        apiVersion: Number(req.version), lineEnding: (b.lineEnding as 'LF' | 'CRLF') ?? 'LF', columnDelimiter: b.columnDelimiter ?? 'COMMA', plan, processed: 0 };
      if (!DELIMS[j.columnDelimiter]) return sfError(400, 'INVALIDJOB', `InvalidJob : Invalid columnDelimiter: ${j.columnDelimiter}`);
      this.queries.set(j.id, j);
      this.stats.queryJobs++;
      const body = this.qinfo(j);
      setImmediate(() => {
        if (j.state !== 'UploadComplete') return;
        j.state = 'InProgress'; j.started = Date.now();
        setImmediate(() => {
          if (j.state !== 'InProgress') return;
          // Snapshot: references to immutable record versions, rendered page by page later.
          j.rows = this.soql.run(j.plan, j.operation === 'queryAll').rows;
          j.processed = j.rows.length;
          j.state = 'JobComplete'; j.finished = Date.now(); j.systemModstamp = formatDateTime(Date.now());
        });
      });
      return { status: 200, body };
    }
    const j = this.queries.get(p[0]);
    if (!j) return sfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    if (p.length === 1) {
      if (m === 'GET') return { status: 200, body: this.qinfo(j) };
      if (m === 'DELETE') {
        if (!['JobComplete', 'Aborted', 'Failed'].includes(j.state)) return sfError(400, 'INVALIDJOBSTATE', `Deleting a job in state ${j.state} is not allowed`);
        this.queries.delete(j.id); return { status: 204 };
      }
      if (m === 'PATCH') {
        const b = parseJsonBody(req.body) as { state?: string } | undefined;
        if (b?.state !== 'Aborted') return sfError(400, 'INVALIDJOBSTATE', `Invalid state: ${String(b?.state)}`);
        if (['JobComplete', 'Failed', 'Aborted'].includes(j.state)) return sfError(409, 'INVALIDJOBSTATE', `Job ${j.id} is in a terminal state (${j.state})`);
        j.state = 'Aborted'; return { status: 200, body: this.qinfo(j) };
      }
      return sfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${m}' not allowed. Allowed are GET,PATCH,DELETE`);
    }
    if (p[1] !== 'results' || m !== 'GET') return sfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    if (j.state !== 'JobComplete' || !j.rows) return sfError(412, 'JOB_NOT_COMPLETE', `Job ${j.id} is not complete (current state: ${j.state})`);
    if (req.version !== j.apiVersion.toFixed(1)) return sfError(409, 'INVALIDJOBSTATE', `Results must be requested with the API version that created the job (${j.apiVersion.toFixed(1)})`);
    const locator = req.query.get('locator');
    let start = 0;
    if (locator) {
      const n = Number(Buffer.from(locator, 'base64url').toString());
      if (!Number.isInteger(n) || n <= 0 || n > j.rows.length) return sfError(400, 'INVALIDLOCATOR', `Invalid locator: ${locator}`);
      start = n;
    }
    const maxParam = req.query.get('maxRecords');
    let max = this.defaultPageSize;
    if (maxParam !== null) {
      max = Number(maxParam);
      if (!Number.isInteger(max) || max <= 0) return sfError(400, 'INVALIDMAXRECORDS', `Invalid maxRecords: ${maxParam}`);
    }
    const end = Math.min(j.rows.length, start + max);
    const nextLocator = end < j.rows.length ? Buffer.from(String(end)).toString('base64url') : 'null';
    this.stats.queryRowsServed += end - start;
    return {
      status: 200, contentType: 'text/csv',
      headers: { 'Sforce-Locator': nextLocator, 'Sforce-NumberOfRecords': String(end - start) },
      raw: Readable.from(this.renderCsv(j, start, end)),
    };
  }

  /** Renders a results page lazily, a few thousand rows per chunk, so memory stays bounded. */
  private *renderCsv(j: QueryJob, start: number, end: number): Generator<string> {
    const d = DELIMS[j.columnDelimiter];
    const nl = j.lineEnding === 'CRLF' ? '\r\n' : '\n';
    yield j.plan.columns.map((c) => q(c.header)).join(d) + nl;
    const rows = j.rows!;
    let buf = '';
    for (let i = start; i < end; i++) {
      const cells = this.soql.csvRow(j.plan, rows[i]);
      for (let k = 0; k < cells.length; k++) {
        if (k) buf += d;
        const v = cells[k];
        if (v !== '') buf += q(v);
      }
      buf += nl;
      if (buf.length > 256 * 1024) { yield buf; buf = ''; }
    }
    if (buf) yield buf;
  }
}
