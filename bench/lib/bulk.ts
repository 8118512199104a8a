// Bulk API 2.0 from the benchmark's side, over plain fetch with the session of a jsforce connection:
// the rawest client there is, so the figures are the emulator's, not a client library's. Used to seed the
// org (ingest) and to measure how fast the emulator serves a query (rows/s, pages).
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import type { Connection } from 'jsforce';
import { sleep } from './bench.js';

function api(conn: Connection): { base: string; headers: Record<string, string> } {
  return {
    base: `${conn.instanceUrl}/services/data/v${conn.version}`,
    headers: { Authorization: `Bearer ${conn.accessToken}` },
  };
}

/**
 * fetch, with the underlying socket error (undici's cause) in the message instead of "fetch failed". A GET
 * is retried twice on a network error: a keep-alive socket the server closed just as the request went out
 * (the emulator's event loop can be busy for seconds with a large job) is the client's to retry.
 */
async function call(url: string, init: RequestInit, what: string): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      if ((init.method ?? 'GET') === 'GET' && attempt < 3) {
        await sleep(100);
        continue;
      }
      throw new Error(`${what}: ${(e as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})`.replace('( ', '(') : ''}`);
    }
  }
}

async function json<T>(res: Response, what: string): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : {}) as T;
}

interface JobInfo { id: string; state: string; numberRecordsProcessed?: number; numberRecordsFailed?: number; errorMessage?: string }

async function waitJob(conn: Connection, kind: 'ingest' | 'query', id: string, timeoutMs: number): Promise<JobInfo> {
  const { base, headers } = api(conn);
  const deadline = Date.now() + timeoutMs;
  let wait = 20;
  for (;;) {
    const info = await json<JobInfo>(await call(`${base}/jobs/${kind}/${id}`, { headers }, `Bulk ${kind} job ${id}`), `Bulk ${kind} job ${id}`);
    if (info.state === 'JobComplete') return info;
    if (info.state === 'Failed' || info.state === 'Aborted') throw new Error(`Bulk ${kind} job ${id} ${info.state}: ${info.errorMessage ?? ''}`);
    if (Date.now() > deadline) throw new Error(`Bulk ${kind} job ${id} still ${info.state} after ${timeoutMs / 1000} s`);
    await sleep(wait);
    wait = Math.min(500, wait * 2);
  }
}

/** Bulk 2.0 insert of CSV files, one job per file (Salesforce's 150 MB per job), one after the other. */
export async function bulkIngest(conn: Connection, object: string, files: string[], timeoutMs = 600_000): Promise<{ processed: number; failed: number; seconds: number }> {
  const t0 = performance.now();
  let processed = 0;
  let failed = 0;
  for (const f of files) {
    const r = await ingestJob(conn, object, f, timeoutMs);
    processed += r.processed;
    failed += r.failed;
  }
  return { processed, failed, seconds: (performance.now() - t0) / 1000 };
}

async function ingestJob(conn: Connection, object: string, file: string, timeoutMs: number): Promise<{ processed: number; failed: number; seconds: number }> {
  const { base, headers } = api(conn);
  const t0 = performance.now();
  const job = await json<JobInfo>(
    await call(`${base}/jobs/ingest`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ object, operation: 'insert', contentType: 'CSV', lineEnding: 'LF' }),
    }, 'create ingest job'),
    'create ingest job',
  );
  await json(
    await call(`${base}/jobs/ingest/${job.id}/batches`, {
      method: 'PUT',
      headers: { ...headers, 'Content-Type': 'text/csv', 'Content-Length': String(statSync(file).size) },
      body: Readable.toWeb(createReadStream(file)) as ReadableStream,
      duplex: 'half',
    } as RequestInit, 'upload ingest data'),
    'upload ingest data',
  );
  await json(
    await call(`${base}/jobs/ingest/${job.id}`, {
      method: 'PATCH',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ state: 'UploadComplete' }),
    }, 'close ingest job'),
    'close ingest job',
  );
  const info = await waitJob(conn, 'ingest', job.id, timeoutMs);
  // Seeding reads only the counts: the job (and the result rows it keeps) goes, as a loader would delete
  // it, so the emulator's memory holds the records and not a copy of every upload.
  await call(`${base}/jobs/ingest/${job.id}`, { method: 'DELETE', headers }, 'delete ingest job').catch(() => {});
  return { processed: info.numberRecordsProcessed ?? 0, failed: info.numberRecordsFailed ?? 0, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Runs a Bulk 2.0 query and reads every result page (Sforce-Locator) as it streams; writes the CSV to
 * `file` (one header) when given. Returns rows, bytes, pages and the seconds from job creation to last byte.
 */
export async function bulkQuery(
  conn: Connection,
  soql: string,
  opts: { file?: string; maxRecords?: number; timeoutMs?: number } = {},
): Promise<{ rows: number; bytes: number; pages: number; seconds: number; firstByteSeconds: number }> {
  const { base, headers } = api(conn);
  const t0 = performance.now();
  const job = await json<JobInfo>(
    await call(`${base}/jobs/query`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ operation: 'query', query: soql }),
    }, 'create query job'),
    'create query job',
  );
  const info = await waitJob(conn, 'query', job.id, opts.timeoutMs ?? 600_000);
  const out = opts.file ? createWriteStream(opts.file) : undefined;
  let locator: string | null = null;
  let bytes = 0;
  let pages = 0;
  let firstByte = 0;
  do {
    const qs = new URLSearchParams();
    if (opts.maxRecords) qs.set('maxRecords', String(opts.maxRecords));
    if (locator) qs.set('locator', locator);
    const res = await call(`${base}/jobs/query/${job.id}/results${qs.size ? `?${qs}` : ''}`, { headers: { ...headers, Accept: 'text/csv' } }, `query results page ${pages + 1}`);
    if (!res.ok || !res.body) throw new Error(`query results page ${pages + 1}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    locator = res.headers.get('sforce-locator');
    if (locator === 'null' || locator === '') locator = null;
    let skipHeader = pages > 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (!firstByte) firstByte = performance.now();
      bytes += chunk.byteLength;
      if (!out) continue;
      let buf = Buffer.from(chunk);
      if (skipHeader) {
        const nl = buf.indexOf(10);
        if (nl < 0) continue;
        buf = buf.subarray(nl + 1);
        skipHeader = false;
      }
      if (!out.write(buf)) await once(out, 'drain');
    }
    pages++;
  } while (locator);
  if (out) {
    out.end();
    await once(out, 'finish');
  }
  return {
    rows: info.numberRecordsProcessed ?? 0,
    bytes,
    pages,
    seconds: (performance.now() - t0) / 1000,
    firstByteSeconds: (firstByte - t0) / 1000,
  };
}
