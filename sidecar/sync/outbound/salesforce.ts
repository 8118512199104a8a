// The writer's Salesforce side: sends claimed ops as sObject Collections calls (200 records per call,
// allOrNone=false so a bad row fails alone) or, for large ordered batches, as Bulk 2.0 ingest jobs, and
// turns every answer into a per-op outcome. It decides nothing about state; SQL does
// (hc.outbound_complete). The calls themselves are sidecar/salesforce's (collections.ts, ingest.ts), and
// so is what an error means (errors.ts).
import { save, type SaveKind, type SaveResult } from '../../salesforce/collections.js';
import { errorText, isAlreadyDeleted, isRetryCode, isTransient } from '../../salesforce/errors.js';
import { ingest, isJobTimeout, type IngestKind } from '../../salesforce/ingest.js';
import type { Sf } from '../../salesforce/client.js';

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
  attempts: { log_id: number; started_at: string; sent: Record<string, unknown>; upsert_field: string | null; found_sfid?: string | null }[];
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

type Kind = SaveKind;

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

/** The records of a collections call: an update's carry the Id, an upsert's the external id value. */
function records(kind: Kind, extId: string | null, ops: Op[]): Record<string, unknown>[] {
  if (kind === 'delete') return ops.map((o) => ({ Id: o.sfid! }));
  if (kind === 'update') return ops.map((o) => ({ ...o.body, Id: o.sfid! }));
  if (kind === 'upsert') return ops.map((o) => ({ ...o.body, [extId!]: o.upsert_value }));
  return ops.map((o) => ({ ...o.body }));
}

function call(sf: Sf, kind: Kind, object: string, extId: string | null, ops: Op[], timeoutMs: number, inflight?: InFlight): Promise<SaveResult[]> {
  return save(sf, kind, object, records(kind, extId, ops), { extId, timeoutMs, onTimeout: (p) => inflight?.add(ops, p) });
}

export type BulkKind = IngestKind;

export interface BulkOutcome {
  /** Ops Bulk applied. */
  done: Outcome[];
  /** Ops Bulk failed or did not process: to be sent through collections. */
  rest: Op[];
}

/**
 * Sends ops (all of one object and kind) as one Bulk 2.0 ingest job and waits for it. Only operations
 * whose results carry a key of ours go this way: update and delete (the Id) and upsert (the external id).
 * A create without an external id has no such key (results are not in input order), so it stays on
 * collections with its lost-create lookup. A transient failure of the job as a whole turns every op into
 * `retry` (updates, upserts and deletes are safe to send again); any other failure hands them all to
 * collections, as do the rows Bulk failed or did not process: collections gives each its own outcome (a
 * validation failure fails that row alone, exactly as without Bulk).
 */
export async function sendBulk(sf: Sf, kind: BulkKind, object: string, extId: string | null, ops: Op[],
                               opts: { pollMs?: number; /** Job wait (default 10 min: ingest jobs may queue). */ timeoutMs?: number } = {}): Promise<BulkOutcome> {
  const key = (o: Op) => (kind === 'upsert' ? String(o.upsert_value) : o.sfid!);
  const byKey = new Map(ops.map((o) => [key(o), o]));
  const keyColumn = kind === 'upsert' ? extId! : 'Id';
  // The key column is a string, as before: a null external id value went as 'null', not as #N/A.
  const rows = kind === 'delete' ? ops.map((o) => ({ Id: o.sfid! }))
    : ops.map((o) => (kind === 'update' ? { ...o.body, Id: o.sfid! } : { ...o.body, [extId!]: String(o.upsert_value) }));
  let res;
  try {
    res = await ingest(sf, kind, object, rows, { extId, pollMs: opts.pollMs, timeoutMs: opts.timeoutMs });
  } catch (err) {
    if (isTransient(err) || isJobTimeout(err)) {
      return { done: ops.map((o) => ({ op_id: o.op_id, action: o.adopted ? 'insert' : o.action, outcome: 'retry', error: `Bulk job: ${(err as Error).message}` })), rest: [] };
    }
    return { done: [], rest: ops };
  }
  const done: Outcome[] = [];
  for (const r of res.successfulResults) {
    const o = byKey.get(String(kind === 'delete' || kind === 'update' ? r.sf__Id ?? r.Id : r[keyColumn]));
    if (!o) continue;
    byKey.delete(key(o));
    done.push({ op_id: o.op_id, action: o.adopted ? 'insert' : o.action, outcome: 'ok', sfid: String(r.sf__Id ?? o.sfid) });
  }
  // Everything else (failed, unprocessed, or not reported at all) goes through collections.
  return { done, rest: [...byKey.values()] };
}

/**
 * Bounds the Salesforce calls in flight, across all of the writer's lanes: a collections call or a
 * whole Bulk 2.0 job takes one slot for as long as it runs.
 */
export class Limiter {
  private active = 0;
  private waiting: (() => void)[] = [];
  constructor(readonly max: number) {}
  get inFlight(): number {
    return this.active;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active < this.max) this.active++;
    else await new Promise<void>((r) => this.waiting.push(r)); // the slot is handed over as it is
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/** What the writer is doing with Salesforce right now, for the stop's log lines. */
export interface Activity {
  calls: Map<number, string>;
  seq: number;
}

function track<T>(activity: Activity | undefined, what: string, p: () => Promise<T>): Promise<T> {
  if (!activity) return p();
  const id = ++activity.seq;
  activity.calls.set(id, what);
  return p().finally(() => activity.calls.delete(id));
}

/**
 * Sends ops; returns one outcome per op sent. A call that fails as a whole with a transient error turns
 * its ops and every op not yet sent into `retry` (Salesforce is unwell: stop hammering it).
 *
 * Concurrency: large groups go first, as Bulk 2.0 jobs side by side; then the collections calls, group
 * by group (one object and operation each, in the order of their first op), the calls of a group side by
 * side. A claim holds at most one op per record, so calls in flight together never touch one record.
 * `limiter` bounds the calls in flight (shared with the writer's other lanes).
 *
 * `stopping`: once it says true no further call starts. The ops not sent get no outcome: they are still
 * claimed, and the writer's stop gives them back to the queue.
 */
export async function send(sf: Sf, ops: Op[], opts: {
  timeoutMs?: number; inflight?: InFlight; beforeCreate?: (ops: Op[]) => Promise<void>;
  /** Updates, upserts or deletes of one object numbering at least this go as one Bulk 2.0 ingest job. */
  bulkThreshold?: number; bulkPollMs?: number;
  limiter?: Limiter; stopping?: () => boolean; activity?: Activity;
} = {}): Promise<Outcome[]> {
  const out: Outcome[] = [];
  const limiter = opts.limiter ?? new Limiter(1);
  const stopping = opts.stopping ?? (() => false);
  // A record whose earlier call may still be running in Salesforce waits: sent again now, a create could
  // be made twice (the lookup cannot see a create that has not happened yet) and an update could be
  // overwritten by the older call landing late.
  const held = ops.filter((o) => opts.inflight?.holds(o));
  for (const o of held) {
    out.push({ op_id: o.op_id, action: o.adopted ? 'insert' : o.action, outcome: 'retry',
      error: 'an earlier call for this record timed out and may still complete in Salesforce: waiting for it' });
  }
  let todo = held.length ? ops.filter((o) => !held.includes(o)) : ops;
  // The delete of a row whose create was in doubt, and the lost-create lookup found no record: the create
  // never landed, nothing to delete.
  const nothing = todo.filter((o) => o.action === 'delete' && !o.sfid);
  for (const o of nothing) out.push({ op_id: o.op_id, action: 'delete', outcome: 'ok' });
  if (nothing.length) todo = todo.filter((o) => !nothing.includes(o));
  const unsent = new Set<number>();
  const settled = new Set<number>();
  if (opts.bulkThreshold) {
    const groups = new Map<string, Op[]>();
    for (const o of todo) {
      const k = kindOf(o);
      if (k === 'create') continue;
      const key = `${k}|${o.object}|${k === 'upsert' ? o.upsert_field : ''}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(o);
    }
    const jobs = [...groups].filter(([, g]) => g.length >= opts.bulkThreshold!);
    await Promise.all(jobs.map(([key, g]) => limiter.run(async () => {
      if (stopping()) {
        for (const o of g) unsent.add(o.op_id);
        return;
      }
      const [k, object, extId] = key.split('|');
      if (k === 'upsert' && opts.beforeCreate) await opts.beforeCreate(g);
      const r = await track(opts.activity, `Bulk 2.0 ${k} job of ${g.length} ${object} records`,
        () => sendBulk(sf, k as BulkKind, object, extId || null, g, { pollMs: opts.bulkPollMs }));
      out.push(...r.done);
      for (const o of r.done) settled.add(o.op_id);
    })));
    // What Bulk settled is done; what it failed or did not process goes through collections below.
    if (settled.size || unsent.size) todo = todo.filter((o) => !settled.has(o.op_id) && !unsent.has(o.op_id));
  }
  const calls = plan(todo);
  let down: unknown;
  const resultAction = (o: Op): Action => (o.adopted ? 'insert' : o.action);
  const one = async (c: (typeof calls)[number]): Promise<void> => {
    if (down) {
      for (const o of c.ops) out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: String((down as Error).message) });
      return;
    }
    if (stopping()) {
      for (const o of c.ops) unsent.add(o.op_id);
      return;
    }
    // Recording the attempt before a create is the database's work, not Salesforce's answer about these
    // rows: when it fails (a terminated session, a restart, a lock timeout) nothing was sent, and the
    // rows are tried again, never marked FAILED with the database's message.
    if ((c.kind === 'create' || c.kind === 'upsert') && opts.beforeCreate) {
      try {
        await opts.beforeCreate(c.ops);
      } catch (err) {
        for (const o of c.ops) out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: `recording the create before sending it failed: ${(err as Error).message}` });
        return;
      }
    }
    try {
      const res = await track(opts.activity, `${c.kind} of ${c.ops.length} ${c.object} records`,
        () => call(sf, c.kind, c.object, c.extId, c.ops, opts.timeoutMs ?? 120_000, opts.inflight));
      c.ops.forEach((o, i) => {
        const r = res[i];
        if (!r) {
          out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: 'no result for this record' });
        } else if (r.success) {
          out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'ok', sfid: r.id ?? o.sfid ?? undefined });
        } else {
          const e = r.errors?.[0] ?? {};
          const code = e.statusCode ?? e.errorCode;
          if (c.kind === 'delete' && isAlreadyDeleted(code)) {
            out.push({ op_id: o.op_id, action: 'delete', outcome: 'ok', sfid: o.sfid ?? undefined });
          } else if (isRetryCode(code)) {
            out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: errorText(code, e.message, e.fields) });
          } else {
            // (An adopted create's record exists, or existed: the failure keeps its Id, hc._complete_write_back.)
            out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'failed', sfid: o.sfid ?? undefined, error: errorText(code, e.message, e.fields) });
          }
        }
      });
    } catch (err) {
      const e = err as { errorCode?: string; name?: string; message?: string; data?: { fields?: string[] } };
      if (isTransient(err)) {
        down ??= err;
        for (const o of c.ops) out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'retry', error: String(e.message) });
      } else {
        // The whole call was refused for a reason that is not the rows' (e.g. an unknown field):
        // every row of the call carries the message.
        for (const o of c.ops) {
          out.push({ op_id: o.op_id, action: resultAction(o), outcome: 'failed', sfid: o.sfid ?? undefined, error: errorText(e.errorCode ?? e.name, e.message, e.data?.fields) });
        }
      }
    }
  };
  // Group by group; within a group, its calls side by side.
  for (let i = 0; i < calls.length; ) {
    let j = i + 1;
    while (j < calls.length && calls[j].kind === calls[i].kind && calls[j].object === calls[i].object && calls[j].extId === calls[i].extId) j++;
    await Promise.all(calls.slice(i, j).map((c) => limiter.run(() => one(c))));
    i = j;
  }
  return out;
}
