// Bulk API 2.0 query jobs, driven by hand: create the job, wait for JobComplete, then read the result one
// page at a time with maxRecords + Sforce-Locator. jsforce's bulk2.query helper is not used: with more
// than one result page it pipes every page into one CSV parser and crashes (reference salesforce-api.md
// §4.2). Each page is handed over as a stream of its CSV (header row on every page), read as it arrives
// and, by the caller, COPYed as it is read: no page is ever held whole, so memory stays flat whatever the
// page size or the result's. A page's answer names the next page (Sforce-Locator) in its headers, before
// its rows, so the next page can be asked for while this one is still read: up to `inFlight` at once.
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import type { SalesforceClient } from './client.js';
import { isTransient } from './errors.js';

export interface BulkQueryOptions {
  scanAll?: boolean;
  pageSize?: number;
  /** Result pages read at once (each by its own `onPage`); 1 reads them one after another, in order. */
  inFlight?: number;
  pollMs?: number;
  signal?: AbortSignal;
}

const bodyOf = (res: Response): Readable => (res.body ? Readable.fromWeb(res.body as ReadableStream<Uint8Array>) : Readable.from([]));

interface JobInfo { id: string; state: string; errorMessage?: string; numberRecordsProcessed?: number }

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

/**
 * Runs the query as a Bulk 2.0 job and hands each result page's CSV stream (header row first) to `onPage`,
 * which must read it whole, in one transaction of its own (a page cut off midway by a transient failure
 * is handed over again, from its first row). At most `inFlight` pages are being read at once; with more
 * than one, pages may finish in any order. Resolves when every page has been handled; the first failure
 * (of a call or of an `onPage`) stops the rest, waits for the pages in hand to settle, aborts the job and
 * is thrown.
 */
export async function bulkQuery(
  sf: SalesforceClient, soql: string, opts: BulkQueryOptions, onPage: (csv: Readable, page: number) => Promise<void>,
): Promise<void> {
  const base = `${sf.basePath}/jobs/query`;
  const job = (await sf.conn.request({
    method: 'POST',
    url: base,
    body: JSON.stringify({ operation: opts.scanAll ? 'queryAll' : 'query', query: soql, contentType: 'CSV', lineEnding: 'LF', columnDelimiter: 'COMMA' }),
    headers: { 'Content-Type': 'application/json; charset=utf-8' },
  })) as JobInfo;
  let finished = false;
  const reading = new Map<Promise<void>, { body: Readable }>();
  let failure: { error: unknown } | undefined;
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
    const inFlight = Math.max(1, opts.inFlight ?? 1);
    let locator: string | undefined;
    for (let page = 0; ; page++) {
      while (reading.size >= inFlight && !failure) await Promise.race(reading.keys());
      if (failure) break;
      if (opts.signal?.aborted) throw new Error('aborted');
      const q = new URLSearchParams({ maxRecords: String(opts.pageSize ?? 50_000) });
      if (locator) q.set('locator', locator);
      const url = `${base}/${job.id}/results?${q}`;
      const read = () => sf.getStream(url, { Accept: 'text/csv' }, opts.signal);
      const res = await read();
      const next = res.headers.get('sforce-locator');
      const current = { body: bodyOf(res) };
      const handled: Promise<void> = (async () => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await onPage(current.body, page);
          } catch (error) {
            // Cut off midway (a reset connection): the handler's transaction is rolled back, and the same
            // page (the same locator) is read again, up to three times in all.
            if (attempt >= 3 || failure || opts.signal?.aborted || !isTransient(error)) throw error;
            if (!current.body.readableEnded) current.body.destroy();
            current.body = bodyOf(await read());
          }
        }
      })()
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => {
          // Not read to its end (the handler failed): the connection is let go.
          if (!current.body.readableEnded) current.body.destroy();
          reading.delete(handled);
        });
      reading.set(handled, current);
      if (!next || next === 'null') break;
      if (next === locator) throw new Error(`Bulk 2.0 query job ${job.id} returned the same locator twice (${next}): stopping rather than looping`);
      locator = next;
    }
    await Promise.all(reading.keys());
    if (failure) throw failure.error;
    finished = true;
  } finally {
    if (!finished) {
      // Failed or aborted midway: the pages in hand are cut and waited for (their handlers hold database
      // sessions), and the job is stopped so it does not keep the org busy (best effort).
      for (const page of reading.values()) page.body.destroy();
      await Promise.allSettled(reading.keys());
      await sf.conn
        .request({ method: 'PATCH', url: `${base}/${job.id}`, body: JSON.stringify({ state: 'Aborted' }), headers: { 'Content-Type': 'application/json' } })
        .catch(() => {});
    }
  }
}
