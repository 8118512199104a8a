// Bulk API 2.0 ingest: one job for many records of one object, CSV in (csv-stringify), the job's state
// polled, then the successful / failed / unprocessed result sets read back. Results are not in input
// order: the caller matches them by a key of its own (the Id, or the external id of an upsert).
import { stringify } from 'csv-stringify/sync';
import { connectionOf, type Sf } from './client.js';

export type IngestKind = 'update' | 'upsert' | 'delete';

/** A body value as a Bulk 2.0 CSV cell: null clears the field (#N/A); a blank cell would leave it alone. */
function cell(v: unknown): string {
  if (v === null) return '#N/A';
  if (v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/**
 * One CSV row per record; relationship references ({"Account": {"Ext__c": v}}) become "Account.Ext__c".
 * A delete's records carry only their Id.
 */
export function toCsv(records: Record<string, unknown>[]): string {
  const rows = records.map((rec) => {
    const r: Record<string, string> = {};
    for (const [k, v] of Object.entries(rec)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) r[`${k}.${k2}`] = cell(v2);
      } else {
        r[k] = cell(v);
      }
    }
    return r;
  });
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return stringify(rows.map((r) => columns.map((c) => r[c] ?? '')), { header: true, columns });
}

export interface IngestResults {
  successfulResults: Record<string, unknown>[];
  failedResults: Record<string, unknown>[];
  unprocessedRecords: Record<string, unknown>[] | string;
}

/** jsforce's error when a job did not finish within the wait. */
export function isJobTimeout(err: unknown): boolean {
  return (err as Error | undefined)?.name === 'JobPollingTimeoutError';
}

/**
 * Runs one ingest job and waits for it (default 10 min: ingest jobs may queue). Driven step by step
 * rather than by bulk2.loadAndWaitForResults, which leaves a job it stopped waiting for running: records
 * sent again meanwhile could then be overwritten by the job's older values. A job that fails or is not
 * finished in time is aborted, so nothing of it lands later (and it does not count against the org's
 * job limits); the error is thrown (isJobTimeout tells the wait's end).
 */
export async function ingest(
  sf: Sf,
  kind: IngestKind,
  object: string,
  records: Record<string, unknown>[],
  opts: { extId?: string | null; pollMs?: number; timeoutMs?: number } = {},
): Promise<IngestResults> {
  const job = connectionOf(sf).bulk2.createJob({ object, operation: kind, ...(kind === 'upsert' ? { externalIdFieldName: opts.extId! } : {}), lineEnding: 'LF' });
  try {
    await job.open();
    await job.uploadData(toCsv(records));
    await job.close();
    try {
      await job.poll(opts.pollMs ?? 500, opts.timeoutMs ?? 600_000);
    } catch (err) {
      // Not finished in time: stop it, so nothing of it lands after the rows are sent again.
      if (isJobTimeout(err)) await job.abort().catch(() => {});
      throw err;
    }
    return (await job.getAllResults()) as IngestResults;
  } catch (err) {
    // A job left open or queued would hold its rows (and count against the org's job limits).
    if (!isJobTimeout(err) && job.id) void job.abort().catch(() => {});
    throw err;
  }
}
