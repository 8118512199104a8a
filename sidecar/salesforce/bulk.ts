// Bulk API 2.0 query jobs, driven by hand: create the job, wait for JobComplete, then read the result one
// page at a time with maxRecords + Sforce-Locator. jsforce's bulk2.query helper is not used: with more
// than one result page it pipes every page into one CSV parser and crashes (reference salesforce-api.md
// §4.2). Each page is handed over as CSV text (header row on every page) and dropped before the next
// one is fetched, so memory is bounded by the page size, never by the result.
import HttpApiModule from 'jsforce/lib/http-api.js';
import type { SalesforceClient } from './client.js';

// The CommonJS default export, as ESM sees it.
const HttpApi = ((HttpApiModule as unknown as { default?: unknown }).default ?? HttpApiModule) as new (
  conn: unknown,
  options: unknown,
) => {
  on(event: 'response', cb: (res: { headers: Record<string, string | undefined> }) => void): void;
  request(req: { method: string; url: string; headers?: Record<string, string> }): Promise<unknown>;
};

export interface BulkPage {
  csv: string;
  records: number;
}

export interface BulkQueryOptions {
  scanAll?: boolean;
  pageSize?: number;
  pollMs?: number;
  signal?: AbortSignal;
}

interface JobInfo { id: string; state: string; errorMessage?: string; numberRecordsProcessed?: number }

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

export async function* bulkQuery(sf: SalesforceClient, soql: string, opts: BulkQueryOptions = {}): AsyncGenerator<BulkPage> {
  const base = `${sf.basePath}/jobs/query`;
  const job = (await sf.conn.request({
    method: 'POST',
    url: base,
    body: JSON.stringify({ operation: opts.scanAll ? 'queryAll' : 'query', query: soql, contentType: 'CSV', lineEnding: 'LF', columnDelimiter: 'COMMA' }),
    headers: { 'Content-Type': 'application/json; charset=utf-8' },
  })) as JobInfo;
  let finished = false;
  try {
    let pollMs = opts.pollMs ?? 250;
    for (;;) {
      if (opts.signal?.aborted) throw new Error('aborted');
      const info = (await sf.conn.request(`${base}/${job.id}`)) as JobInfo;
      if (info.state === 'JobComplete') break;
      if (info.state === 'Failed' || info.state === 'Aborted') {
        finished = true;
        throw new Error(`Bulk 2.0 query job ${job.id} ended ${info.state}${info.errorMessage ? `: ${info.errorMessage}` : ''}`);
      }
      await sleep(pollMs, opts.signal);
      pollMs = Math.min(pollMs * 2, 5000);
    }
    let locator: string | undefined;
    for (;;) {
      if (opts.signal?.aborted) throw new Error('aborted');
      const q = new URLSearchParams({ maxRecords: String(opts.pageSize ?? 50_000) });
      if (locator) q.set('locator', locator);
      const api = new HttpApi(sf.conn, { responseType: 'text/plain' });
      let headers: Record<string, string | undefined> = {};
      api.on('response', (res) => { headers = res.headers ?? {}; });
      const csv = String((await api.request({ method: 'GET', url: `${sf.conn.instanceUrl}${base}/${job.id}/results?${q}`, headers: { Accept: 'text/csv' } })) ?? '');
      const next = headers['sforce-locator'];
      const records = Number(headers['sforce-numberofrecords'] ?? NaN);
      yield { csv, records: Number.isFinite(records) ? records : Math.max(0, csv.split('\n').filter(Boolean).length - 1) };
      if (!next || next === 'null') break;
      if (next === locator) throw new Error(`Bulk 2.0 query job ${job.id} returned the same locator twice (${next}): stopping rather than looping`);
      locator = next;
    }
    finished = true;
  } finally {
    if (!finished) {
      // Aborted or failed midway: stop the job so it does not keep the org busy (best effort).
      await sf.conn
        .request({ method: 'PATCH', url: `${base}/${job.id}`, body: JSON.stringify({ state: 'Aborted' }), headers: { 'Content-Type': 'application/json' } })
        .catch(() => {});
    }
  }
}
