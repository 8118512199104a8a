// The writer's Salesforce side: sends claimed ops as sObject Collections calls (200 records per call,
// allOrNone=false so a bad row fails alone) and turns every answer into a per-op outcome. It decides
// nothing about state; SQL does (hc.outbound_complete).
import type { Connection } from 'jsforce';
import { sendBulk, type BulkKind } from './bulk.js';

export type Action = 'insert' | 'update' | 'delete';

export interface Op {
  op_id: number;
  log_ids: number[];
  mapping_id: number;
  object: string;
  table: string;
  record_id: number;
  action: Action;
  sfid: string | null;
  body: Record<string, unknown>;
  upsert_field: string | null;
  upsert_value: string | null;
  /** Creates of this record that may have landed without their answer reaching us (insert, or the delete
   * of a row deleted meanwhile): the lost-create lookup runs first. */
  attempts: { log_id: number; started_at: string; sent: Record<string, unknown>; upsert_field: string | null }[];
  /** Set when a lost create was found in Salesforce: the op is sent as an update of that record. */
  adopted?: boolean;
}

export interface Outcome {
  op_id: number;
  action: Action;
  outcome: 'ok' | 'failed' | 'retry';
  sfid?: string;
  error?: string;
}

export const BATCH = 200;

/** Errors that say "try again later", never "this row is wrong". */
const TRANSIENT_CODES = new Set([
  'UNABLE_TO_LOCK_ROW', 'REQUEST_LIMIT_EXCEEDED', 'SERVER_UNAVAILABLE', 'INVALID_SESSION_ID', 'UNKNOWN_EXCEPTION',
  'INTERNAL_ERROR', 'REQUEST_RUNNING_TOO_LONG', 'QUERY_TIMEOUT', 'API_CURRENTLY_DISABLED', 'TIMEOUT',
]);
const TRANSIENT_NET = /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|ENOTFOUND|ENETUNREACH|EHOSTDOWN|UND_ERR|socket hang up|fetch failed|terminated|aborted|network|timed out/i;

export function isTransient(err: unknown): boolean {
  const e = err as { errorCode?: string; name?: string; message?: string; code?: string; statusCode?: number };
  const code = e?.errorCode ?? e?.name ?? '';
  if (TRANSIENT_CODES.has(code)) return true;
  if (/^ERROR_HTTP_(5\d\d|429|420|401)$/.test(code)) return true;
  if (typeof e?.statusCode === 'number' && (e.statusCode >= 500 || e.statusCode === 429)) return true;
  return TRANSIENT_NET.test(`${e?.code ?? ''} ${e?.message ?? ''} ${code}`);
}

export function errorText(code: string | undefined, message: string | undefined, fields?: string[]): string {
  const f = fields?.length ? ` (fields: ${fields.join(', ')})` : '';
  return `${code ?? 'UNKNOWN_ERROR'}: ${message ?? 'no message'}${f}`;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => {
      t = setTimeout(() => rej(Object.assign(new Error(`Salesforce call timed out after ${ms} ms`), { errorCode: 'TIMEOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

interface SaveResult {
  id?: string;
  success: boolean;
  errors?: { statusCode?: string; errorCode?: string; message?: string; fields?: string[] }[];
}

type Kind = 'create' | 'upsert' | 'update' | 'delete';

function kindOf(op: Op): Kind {
  if (op.action === 'delete') return 'delete';
  if (op.action === 'update' || op.adopted) return 'update';
  return op.upsert_field ? 'upsert' : 'create';
}

/** Ops grouped into calls: same object and kind, at most BATCH each, in the order of their first op. */
export function plan(ops: Op[]): { kind: Kind; object: string; extId: string | null; ops: Op[] }[] {
  const groups = new Map<string, { kind: Kind; object: string; extId: string | null; ops: Op[] }>();
  for (const op of [...ops].sort((a, b) => a.op_id - b.op_id)) {
    const kind = kindOf(op);
    const extId = kind === 'upsert' ? op.upsert_field : null;
    const key = `${kind}|${op.object}|${extId ?? ''}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { kind, object: op.object, extId, ops: [] }));
    g.ops.push(op);
  }
  const calls: { kind: Kind; object: string; extId: string | null; ops: Op[] }[] = [];
  for (const g of groups.values()) {
    for (let i = 0; i < g.ops.length; i += BATCH) calls.push({ ...g, ops: g.ops.slice(i, i + BATCH) });
  }
  return calls;
}

/**
 * Calls our timeout gave up on, by record ("table:record_id"), until they settle. jsforce offers no way
 * to abort a call (its own fetch timeout is 30 minutes and not settable per call), and aborting would not
 * stop Salesforce anyway: a call still running there may yet create or change the record. So its records
 * are held back (outcome retry, nothing sent) until the call settles (its outcome is then visible in
 * Salesforce and the lost-create lookup sees a create) or until `holdMs` has passed (Salesforce ends a
 * request after 10 minutes; the default hold is 5 call timeouts).
 */
export class InFlight {
  private calls = new Map<string, { since: number; done: Promise<unknown> }>();
  constructor(private holdMs: number) {}
  static key(o: Op): string {
    return `${o.table}:${o.record_id}`;
  }
  add(ops: Op[], p: Promise<unknown>): void {
    const since = Date.now();
    const done = p.then(() => undefined, () => undefined);
    for (const o of ops) {
      const k = InFlight.key(o);
      const entry = { since, done };
      this.calls.set(k, entry);
      void done.then(() => {
        if (this.calls.get(k) === entry) this.calls.delete(k);
      });
    }
  }
  /** True while an earlier call for this record may still be running in Salesforce. */
  holds(o: Op): boolean {
    const e = this.calls.get(InFlight.key(o));
    if (!e) return false;
    if (Date.now() - e.since < this.holdMs) return true;
    this.calls.delete(InFlight.key(o));
    return false;
  }
}

async function call(conn: Connection, kind: Kind, object: string, extId: string | null, ops: Op[], timeoutMs: number, inflight?: InFlight): Promise<SaveResult[]> {
  const so = conn.sobject(object);
  const opts = { allOrNone: false } as const;
  let p: Promise<unknown>;
  if (kind === 'delete') p = so.destroy(ops.map((o) => o.sfid!), opts);
  else if (kind === 'update') p = so.update(ops.map((o) => ({ ...o.body, Id: o.sfid! })), opts);
  else if (kind === 'upsert') p = so.upsert(ops.map((o) => ({ ...o.body, [extId!]: o.upsert_value })), extId!, opts);
  else p = so.create(ops.map((o) => ({ ...o.body })), opts);
  let res: SaveResult[] | SaveResult;
  try {
    res = (await withTimeout(p, timeoutMs)) as SaveResult[] | SaveResult;
  } catch (err) {
    if ((err as { errorCode?: string }).errorCode === 'TIMEOUT') inflight?.add(ops, p);
    throw err;
  }
  return Array.isArray(res) ? res : [res];
}

/**
 * Sends ops; returns one outcome per op. A call that fails as a whole with a transient error turns
 * its ops and every op not yet sent into `retry` (Salesforce is unwell: stop hammering it).
 */
export async function send(conn: Connection, ops: Op[], opts: {
  timeoutMs?: number; inflight?: InFlight; beforeCreate?: (ops: Op[]) => Promise<void>;
  /** Updates, upserts or deletes of one object numbering at least this go as one Bulk 2.0 ingest job. */
  bulkThreshold?: number; bulkPollMs?: number;
} = {}): Promise<Outcome[]> {
  const out: Outcome[] = [];
  // A record whose earlier call may still be running in Salesforce waits: sent again now, a create could
  // be made twice (the lookup cannot see a create that has not happened yet) and an update could be
  // overwritten by the older call landing late.
  const held = opts.inflight ? ops.filter((o) => opts.inflight!.holds(o)) : [];
  for (const o of held) {
    out.push({ op_id: o.op_id, action: o.adopted ? 'insert' : o.action, outcome: 'retry', error: 'an earlier call for this record timed out and may still complete in Salesforce: waiting for it' });
  }
  let todo = held.length ? ops.filter((o) => !held.includes(o)) : ops;
  // The delete of a row whose create was in doubt, and the lost-create lookup found no record: the create
  // never landed, nothing to delete.
  const nothing = todo.filter((o) => o.action === 'delete' && !o.sfid);
  for (const o of nothing) out.push({ op_id: o.op_id, action: 'delete', outcome: 'ok' });
  if (nothing.length) todo = todo.filter((o) => !nothing.includes(o));
  if (opts.bulkThreshold) {
    const groups = new Map<string, Op[]>();
    for (const o of todo) {
      const k = kindOf(o);
      if (k === 'create') continue;
      const key = `${k}|${o.object}|${k === 'upsert' ? o.upsert_field : ''}`;
      groups.set(key, [...(groups.get(key) ?? []), o]);
    }
    for (const [key, g] of groups) {
      if (g.length < opts.bulkThreshold) continue;
      const [k, object, extId] = key.split('|');
      if (k === 'upsert' && opts.beforeCreate) await opts.beforeCreate(g);
      const r = await sendBulk(conn, k as BulkKind, object, extId || null, g, { pollMs: opts.bulkPollMs });
      out.push(...r.done);
      const sent = new Set(r.done.map((o) => o.op_id));
      todo = todo.filter((o) => !sent.has(o.op_id));
    }
  }
  const calls = plan(todo);
  let down: unknown;
  for (const c of calls) {
    const resultAction = (o: Op): Action => (o.adopted ? 'insert' : o.action);
    if (down) {
      for (const o of c.ops) out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: String((down as Error).message) });
      continue;
    }
    try {
      if ((c.kind === 'create' || c.kind === 'upsert') && opts.beforeCreate) await opts.beforeCreate(c.ops);
      const res = await call(conn, c.kind, c.object, c.extId, c.ops, opts.timeoutMs ?? 120_000, opts.inflight);
      c.ops.forEach((o, i) => {
        const r = res[i];
        if (!r) {
          out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: 'no result for this record' });
        } else if (r.success) {
          out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'ok', sfid: r.id ?? o.sfid ?? undefined });
        } else {
          const e = r.errors?.[0] ?? {};
          const code = e.statusCode ?? e.errorCode;
          if (c.kind === 'delete' && (code === 'ENTITY_IS_DELETED' || code === 'NOT_FOUND')) {
            out.push({ op_id: o.op_id, action: 'delete', outcome: 'ok', sfid: o.sfid ?? undefined });
          } else if (code && TRANSIENT_CODES.has(code)) {
            out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: errorText(code, e.message, e.fields) });
          } else {
            out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'failed', error: errorText(code, e.message, e.fields) });
          }
        }
      });
    } catch (err) {
      const e = err as { errorCode?: string; name?: string; message?: string; data?: { fields?: string[] } };
      if (isTransient(err)) {
        down = err;
        for (const o of c.ops) out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: String(e.message) });
      } else {
        // The whole call was refused for a reason that is not the rows' (e.g. an unknown field):
        // every row of the call carries the message.
        for (const o of c.ops) {
          out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'failed', error: errorText(e.errorCode ?? e.name, e.message, e.data?.fields) });
        }
      }
    }
  }
  return out;
}

export { withTimeout };
