// One Bulk API 2.0 update job in the org, as a nightly job of someone else's would run it: every record of
// `ids` gets the same value in `field`. Salesforce (and the emulator) applies the upload in internal batches,
// each one transaction, and folds the identical changes of one transaction into change events with many
// recordIds. Returns when the job was submitted (UploadComplete acknowledged: from then on the org works on
// it) and when its JobComplete was first seen (polled every `pollMs`).
import type { Connection } from 'jsforce';
import { now, sleep } from './bench.js';

interface JobInfo { id: string; state: string; numberRecordsProcessed?: number; numberRecordsFailed?: number; errorMessage?: string }

export interface BulkUpdateResult {
  jobId: string;
  /** Wall-clock ms (bench.ts now()) when UploadComplete was acknowledged. */
  submittedAt: number;
  /** Wall-clock ms when JobComplete was first seen. */
  completedAt: number;
  processed: number;
  failed: number;
}

/** CSV text: one header, then one line per record (values must not need quoting beyond what is done here). */
function csv(field: string, ids: readonly string[], value: string): string {
  const v = /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
  const lines = new Array<string>(ids.length + 1);
  lines[0] = `Id,${field}`;
  for (let i = 0; i < ids.length; i++) lines[i + 1] = `${ids[i]},${v}`;
  return lines.join('\n') + '\n';
}

async function ok<T>(res: Response, what: string): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : {}) as T;
}

/**
 * Starts the job and returns once it is submitted: `done` resolves when it has completed. The caller times
 * from `submittedAt` (the org has the whole change in hand) to whatever it waits for.
 */
export async function startBulkUpdate(
  conn: Connection,
  object: string,
  field: string,
  ids: readonly string[],
  value: string,
  opts: { pollMs?: number; timeoutMs?: number } = {},
): Promise<{ jobId: string; submittedAt: number; done: Promise<BulkUpdateResult> }> {
  const base = `${conn.instanceUrl}/services/data/v${conn.version}/jobs/ingest`;
  const headers = { Authorization: `Bearer ${conn.accessToken}` };
  const body = csv(field, ids, value);
  const job = await ok<JobInfo>(
    await fetch(base, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ object, operation: 'update', contentType: 'CSV', lineEnding: 'LF' }),
    }),
    'create update job',
  );
  await ok(await fetch(`${base}/${job.id}/batches`, { method: 'PUT', headers: { ...headers, 'Content-Type': 'text/csv' }, body }), 'upload update data');
  await ok(
    await fetch(`${base}/${job.id}`, { method: 'PATCH', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ state: 'UploadComplete' }) }),
    'close update job',
  );
  const submittedAt = now();
  const pollMs = opts.pollMs ?? 50;
  const deadline = submittedAt + (opts.timeoutMs ?? 600_000);
  const done = (async (): Promise<BulkUpdateResult> => {
    for (;;) {
      const info = await ok<JobInfo>(await fetch(`${base}/${job.id}`, { headers }), `update job ${job.id}`);
      if (info.state === 'JobComplete') {
        const completedAt = now();
        await fetch(`${base}/${job.id}`, { method: 'DELETE', headers }).catch(() => {});
        return { jobId: job.id, submittedAt, completedAt, processed: info.numberRecordsProcessed ?? 0, failed: info.numberRecordsFailed ?? 0 };
      }
      if (info.state === 'Failed' || info.state === 'Aborted') throw new Error(`update job ${job.id} ${info.state}: ${info.errorMessage ?? ''}`);
      if (now() > deadline) throw new Error(`update job ${job.id} still ${info.state} after ${Math.round((now() - submittedAt) / 1000)} s`);
      await sleep(pollMs);
    }
  })();
  done.catch(() => {});
  return { jobId: job.id, submittedAt, done };
}
