// Initial load and reload of one mapping. SELECT COUNT() decides the API, as Heroku Connect does: REST
// query pages up to 10,000 rows, Bulk API 2.0 above. Pages go straight to SQL (JSON rows, or CSV streamed
// into COPY into a staging table as it arrives) and are merged set-based; no Bulk page is held whole.
import type { SyncContext } from '../../context.js';
import { bulkQuery } from '../../salesforce/bulk.js';
import { CsvStage, countRecords, mergeRows, restQuery, type MappingRow, type MergeResult } from './rows.js';
import { beginReload, finishReload, logLoadComplete, markReconciled, noteProgress, noteReloadSeen, noteReloadSeenStaged, nudgeControl, setMappingState, setWatermarks, soqlFields as inboundSoqlFields } from '../../db/hc/inbound.js';

/** HC's large_query_threshold: above it a load goes through Bulk 2.0. */
export const BULK_THRESHOLD = 10_000;
/** Re-read this far before the load's start on the first poll/CDC catch-up: changes made during the load. */
export const OVERLAP_MS = 60_000;

export class Aborted extends Error {
  constructor() {
    super('aborted by request');
  }
}

/**
 * The pages of `pages` until `signal` aborts: an abort ends the wait for a page at once (throws Aborted)
 * instead of after it arrives; the request in flight finishes unheard.
 */
async function* untilAborted<T>(pages: AsyncGenerator<T>, signal: AbortSignal): AsyncGenerator<T> {
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(new Aborted());
    signal.addEventListener('abort', () => reject(new Aborted()), { once: true });
  });
  aborted.catch(() => {});
  for (;;) {
    const next = pages.next();
    next.catch(() => {});
    const r = await Promise.race([next, aborted]);
    if (r.done) return;
    yield r.value;
  }
}

export async function soqlFields(ctx: SyncContext, mappingId: number): Promise<string[]> {
  return inboundSoqlFields(ctx.db, mappingId);
}

export async function loadMapping(ctx: SyncContext, m: MappingRow, opts: { reload: boolean; signal: AbortSignal }): Promise<void> {
  const log = ctx.log.child({ mapping: m.object_name });
  const started = new Date();
  const fields = await soqlFields(ctx, m.id);
  const total = await countRecords(ctx.sf, m.object_name);
  const bulk = total > BULK_THRESHOLD;
  if (opts.reload) {
    // The rows stay (and keep their ids) while the reload reads: each page refreshes them in place, and
    // rows Salesforce no longer has are removed only when every record has been read.
    await setMappingState(ctx.db, m.id, 'RELOAD_TABLE', `reloading ${total} rows`);
    await beginReload(ctx.db, m.id);
    log.info({ table: m.table_name }, `RELOAD TABLE ${m.table_name}: reading every record again into the table`);
  } else {
    await setMappingState(ctx.db, m.id, bulk ? 'POLLING_SF_BULK' : 'POLLING_SF_CHANGES', `loading ${total} rows`);
  }
  log.info({ total, api: bulk ? 'bulk2' : 'rest' }, `loading table ${m.table_name} via ${bulk ? 'Bulk API 2.0' : 'REST query'}`);

  const soql = `SELECT ${fields.join(', ')} FROM ${m.object_name}`;
  const sum: MergeResult = { applied: 0, deleted: 0, failed: 0, conflicts: 0, skipped_deleted: 0 };
  let rows = 0;
  const report = async () => {
    const secs = (Date.now() - started.getTime()) / 1000;
    const rate = secs > 0 ? Math.round(rows / secs) : 0;
    const eta = rate > 0 ? Math.max(0, Math.round((total - rows) / rate)) : null;
    const progress = { phase: opts.reload ? 'reload' : 'load', api: bulk ? 'bulk2' : 'rest', rows, total, rate_per_s: rate, eta_s: eta, failed: sum.failed, started_at: started.toISOString() };
    await noteProgress(ctx.db, m.id, progress);
    log.info(progress, `load ${m.table_name}: ${rows}/${total} rows, ${rate}/s${eta !== null ? `, ETA ${eta}s` : ''}`);
  };
  const add = (r: MergeResult) => {
    for (const k of Object.keys(sum) as (keyof MergeResult)[]) sum[k] += r[k] ?? 0;
  };

  if (bulk) {
    // Pages are read HC_BULK_PAGES_IN_FLIGHT at a time, each COPYed and merged on a session (and staging
    // table) of its own: the records of two pages are different records, so their merges never meet.
    const inFlight = ctx.config.inbound.bulkPagesInFlight;
    const stages: CsvStage[] = [];
    try {
      for (let k = 0; k < inFlight; k++) stages.push(await CsvStage.open(ctx.db, m.id, fields));
      const free = [...stages];
      await bulkQuery(ctx.sf, soql, { pageSize: ctx.config.inbound.bulkPageSize, inFlight, signal: opts.signal }, async (csv, page) => {
        const stage = free.pop()!;
        try {
          if (opts.signal.aborted) throw new Aborted();
          const t = performance.now();
          const r = await stage.apply(csv, 'load', opts.reload ? (c, staged) => noteReloadSeenStaged(c, m.id, staged) : undefined);
          add(r);
          rows += r.rows;
          // Where a load's time goes: reading the page into COPY (as fast as Salesforce sends it), then the merge.
          log.debug({ page, records: r.rows, applyMs: Math.round(performance.now() - t) }, 'load page');
          await report();
        } finally {
          free.push(stage);
        }
      });
    } finally {
      for (const stage of stages) await stage.close();
    }
  } else {
    for await (const page of untilAborted(restQuery(ctx.sf, soql), opts.signal)) {
      if (opts.signal.aborted) throw new Aborted();
      add(await mergeRows(ctx.db, m.id, fields, page.records, 'load'));
      // Noted after the page is merged: a crash in between reads the page again on the next attempt.
      if (opts.reload) await noteReloadSeen(ctx.db, m.id, page.records.map((r) => String(r.Id)));
      rows += page.records.length;
      await report();
    }
  }
  if (opts.signal.aborted) throw new Aborted();
  let removed = 0;
  if (opts.reload) {
    removed = await finishReload(ctx.db, m.id, new Date(started.getTime() - OVERLAP_MS));
    if (removed) log.info({ removed }, `RELOAD ${m.table_name}: removed ${removed} rows Salesforce no longer has`);
  }
  // The first catch-up (CDC subscription without a replay id, or the first poll) re-reads from here.
  await setWatermarks(ctx.db, m.id, new Date(started.getTime() - OVERLAP_MS));
  // Every record was just read: the daily id reconciliation of the drift sweep counts from here.
  await markReconciled(ctx.db, m.id, started);
  await logLoadComplete(
    ctx.db, ctx.connection.id, m.id, opts.reload ? 'reload' : 'load',
    `${opts.reload ? 'RELOAD' : 'LOAD'} COMPLETE ${m.table_name}: ${sum.applied} rows, ${sum.failed} failed${removed ? `, ${removed} removed` : ''}`,
    { ...sum, removed, rows, total, api: bulk ? 'bulk2' : 'rest', seconds: (Date.now() - started.getTime()) / 1000 },
  );
  await setMappingState(ctx.db, m.id, 'DATA_SYNCED', null);
  // The writer held this table's local changes while it loaded: they go now, not at its next sweep.
  await nudgeControl(ctx.db, ctx.connection.schema);
  log.info({ ...sum, rows, seconds: (Date.now() - started.getTime()) / 1000 }, `${opts.reload ? 'RELOAD' : 'LOAD'} COMPLETE ${m.table_name}`);
}
