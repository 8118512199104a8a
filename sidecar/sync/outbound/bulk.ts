// Large ordered batches through one Bulk API 2.0 ingest job instead of one collections call per 200
// records: CSV in (csv-stringify), job state polled, then the successful / failed / unprocessed result
// sets read back and matched to ops by key. Only operations whose results carry a key of ours go this way:
// update and delete (the Id) and upsert (the external id). A create without an external id has no such
// key (results are not in input order), so it stays on collections with its lost-create lookup.
// Rows Bulk failed or did not process are handed back and sent through collections, which gives each its
// own outcome (a validation failure fails that row alone, exactly as without Bulk).
import type { Connection } from 'jsforce';
import { stringify } from 'csv-stringify/sync';
import { isTransient, type Op, type Outcome } from './salesforce.js';

export type BulkKind = 'update' | 'upsert' | 'delete';

/** A body value as a Bulk 2.0 CSV cell: null clears the field (#N/A); a blank cell would leave it alone. */
function cell(v: unknown): string {
  if (v === null) return '#N/A';
  if (v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** One CSV row per op; relationship references ({"Account": {"Ext__c": v}}) become "Account.Ext__c". */
export function toCsv(kind: BulkKind, extId: string | null, ops: Op[]): string {
  const rows = ops.map((o) => {
    const r: Record<string, string> = {};
    if (kind === 'delete') {
      r.Id = o.sfid!;
      return r;
    }
    for (const [k, v] of Object.entries(o.body)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) r[`${k}.${k2}`] = cell(v2);
      } else {
        r[k] = cell(v);
      }
    }
    if (kind === 'update') r.Id = o.sfid!;
    else r[extId!] = String(o.upsert_value);
    return r;
  });
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return stringify(rows.map((r) => columns.map((c) => r[c] ?? '')), { header: true, columns });
}

export interface BulkOutcome {
  /** Ops Bulk applied. */
  done: Outcome[];
  /** Ops Bulk failed or did not process: to be sent through collections. */
  rest: Op[];
}

/**
 * Sends ops (all of one object and kind) as one ingest job and waits for it. A transient failure of the
 * job as a whole turns every op into `retry` (updates, upserts and deletes are safe to send again); any
 * other failure hands them all to collections.
 */
export async function sendBulk(conn: Connection, kind: BulkKind, object: string, extId: string | null, ops: Op[],
                               opts: { pollMs?: number; /** Job wait (default 10 min: ingest jobs may queue). */ timeoutMs?: number } = {}): Promise<BulkOutcome> {
  const key = (o: Op) => (kind === 'upsert' ? String(o.upsert_value) : o.sfid!);
  const byKey = new Map(ops.map((o) => [key(o), o]));
  const keyColumn = kind === 'upsert' ? extId! : 'Id';
  // Driven step by step rather than by bulk2.loadAndWaitForResults, which leaves a job it stopped waiting
  // for running: records re-sent meanwhile could then be overwritten by the job's older values.
  const job = conn.bulk2.createJob({ object, operation: kind, ...(kind === 'upsert' ? { externalIdFieldName: extId! } : {}), lineEnding: 'LF' });
  let res;
  try {
    await job.open();
    await job.uploadData(toCsv(kind, extId, ops));
    await job.close();
    try {
      await job.poll(opts.pollMs ?? 500, opts.timeoutMs ?? 600_000);
    } catch (err) {
      // Not finished in time: stop it, so nothing of it lands after the rows are sent again.
      if ((err as Error).name === 'JobPollingTimeoutError') await job.abort().catch(() => {});
      throw err;
    }
    res = await job.getAllResults();
  } catch (err) {
    // A job left open or queued would hold its rows (and count against the org's job limits).
    if ((err as Error).name !== 'JobPollingTimeoutError' && job.id) void job.abort().catch(() => {});
    if (isTransient(err) || (err as Error).name === 'JobPollingTimeoutError') {
      return { done: ops.map((o) => ({ op_id: o.op_id, action: o.adopted ? 'insert' : o.action, outcome: 'retry', error: `Bulk job: ${(err as Error).message}` })), rest: [] };
    }
    return { done: [], rest: ops };
  }
  const done: Outcome[] = [];
  for (const r of res.successfulResults as Record<string, unknown>[]) {
    const o = byKey.get(String(kind === 'delete' || kind === 'update' ? r.sf__Id ?? r.Id : r[keyColumn]));
    if (!o) continue;
    byKey.delete(key(o));
    done.push({ op_id: o.op_id, action: o.adopted ? 'insert' : o.action, outcome: 'ok', sfid: String(r.sf__Id ?? o.sfid) });
  }
  // Everything else (failed, unprocessed, or not reported at all) goes through collections.
  return { done, rest: [...byKey.values()] };
}
