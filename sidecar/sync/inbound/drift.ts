// The drift sweep: the safety net under polling and CDC. Every sweep (HC_DRIFT_SECONDS, hourly) compares
// Salesforce's row count with the table's: one SELECT COUNT(). A missed create and a missed delete cancel
// out in a count, so once a day (HC_RECONCILE_SECONDS), and at once whenever the counts differ, the sweep
// lists every record's Id and SystemModstamp (REST pages up to 10,000 rows, one Bulk 2.0 query above),
// COPYs the list into a temp table and lets hc.inbound_reconcile compare it with the table: rows
// Salesforce no longer has are removed there, and the ids it returns (missing, stale, or too recent to
// judge) are re-read by Id here. Nothing but that list and those rows is read.
import type pg from 'pg';
import type { SyncContext } from '../../context.js';
import { bulkQuery } from '../../salesforce/bulk.js';
import { CsvStage, countRecords, mergeRows, restQuery, type MappingRow } from './rows.js';
import { BULK_THRESHOLD, soqlFields } from './load.js';
import { budgetAllows } from '../budget.js';
import {
  closeCsvIdListing, countSyncedRows, deleteRecords, dropIdListing, indexIdListing, listCsvIds, listIds, logDriftRepair, markDriftChecked,
  openCsvIdListing, openIdListing, reconcileIdListing, reconciledAt, type ReconcileResult,
} from '../../db/hc/inbound.js';

/** Rows per Bulk 2.0 result page of the id listing (two short columns: ~5 MB a page). */
const LISTING_PAGE_SIZE = 100_000;

export interface DriftResult {
  sf: number;
  pg: number;
  /** True when the ids were compared (counts differed, or the daily reconciliation was due). */
  reconciled: boolean;
  repaired: number;
}

export async function driftSweep(ctx: SyncContext, m: MappingRow, opts: { reconcile?: boolean } = {}): Promise<DriftResult> {
  const log = ctx.log.child({ mapping: m.object_name });
  const sfCount = await countRecords(ctx.sf, m.object_name);
  const pgCount = await countSyncedRows(ctx.db, ctx.connection.schema, m.table_name);
  const last = await reconciledAt(ctx.db, m.id);
  let due = opts.reconcile || !last || Date.now() - last.getTime() >= ctx.config.inbound.reconcileIntervalMs;
  // The id-by-id comparison is background work too: the API budget may stretch the daily one, and holds
  // even a repair (counts differ) back while the org's allowance is nearly spent.
  if (!opts.reconcile && (due || sfCount !== pgCount)) {
    const go = await budgetAllows(ctx, m, 'reconcile', sfCount === pgCount ? ctx.config.inbound.reconcileIntervalMs : undefined);
    if (!go) {
      log.info({ sf: sfCount, pg: pgCount }, 'drift sweep: the comparison waits for the API budget');
      await markDriftChecked(ctx.db, m.id);
      return { sf: sfCount, pg: pgCount, reconciled: false, repaired: 0 };
    }
  }
  if (sfCount === pgCount && !due) {
    await markDriftChecked(ctx.db, m.id);
    log.debug({ sf: sfCount, pg: pgCount }, 'drift sweep: counts match');
    return { sf: sfCount, pg: pgCount, reconciled: false, repaired: 0 };
  }
  if (sfCount !== pgCount) log.warn({ sf: sfCount, pg: pgCount }, 'drift sweep: counts differ, comparing ids');
  else log.info({ rows: sfCount }, 'drift sweep: periodic id reconciliation');

  const listedAt = new Date();
  const client = await ctx.db.connect();
  let result: ReconcileResult;
  try {
    await openIdListing(client);
    if (sfCount > BULK_THRESHOLD) await listByBulk(ctx, client, m.object_name);
    else await listByRest(ctx, client, m.object_name);
    await indexIdListing(client);
    result = await reconcileIdListing(client, m.id, listedAt);
    await dropIdListing(client);
  } finally {
    client.release();
  }

  // Re-read by Id what the comparison could not settle alone. queryAll (when IsDeleted is mapped) shows
  // a record deleted since the listing; one not returned at all is gone.
  let repaired = result.removed;
  const fields = await soqlFields(ctx, m.id);
  let byId = result.reread;
  if (result.missing + result.stale > BULK_THRESHOLD) {
    // Far apart (a long outage, a restored backup): 200 ids per call would cost hundreds of calls, one
    // Bulk 2.0 read of the whole object costs a few. Full-row merges never overwrite a newer row.
    log.warn({ missing: result.missing, stale: result.stale }, 'drift sweep: many rows differ, re-reading the whole object through Bulk 2.0');
    const stage = await CsvStage.open(ctx.db, m.id, fields);
    try {
      await bulkQuery(ctx.sf, `SELECT ${fields.join(', ')} FROM ${m.object_name}`, { pageSize: ctx.config.inbound.bulkPageSize }, async (csv) => {
        repaired += (await stage.apply(csv, 'drift')).applied;
      });
    } finally {
      await stage.close();
    }
    byId = byId.slice(result.missing + result.stale); // the 'check' ids (see hc.inbound_reconcile's order)
  }
  for (let i = 0; i < byId.length; i += 200) {
    const chunk = byId.slice(i, i + 200);
    const seen = new Set<string>();
    const soql = `SELECT ${fields.join(', ')} FROM ${m.object_name} WHERE Id IN (${chunk.map((x) => `'${x}'`).join(',')})`;
    for await (const page of restQuery(ctx.sf, soql, { scanAll: fields.includes('IsDeleted') })) {
      for (const r of page.records) seen.add(String(r.Id));
      const r = await mergeRows(ctx.db, m.id, fields, page.records, 'drift');
      repaired += r.applied + r.deleted;
    }
    const gone = chunk.filter((id) => !seen.has(id));
    if (gone.length) repaired += await deleteRecords(ctx.db, m.id, gone, 'drift');
  }
  const detail = { sf: sfCount, pg: pgCount, removed: result.removed, missing: result.missing, stale: result.stale, rechecked: result.check, repaired };
  if (repaired || result.reread.length) {
    await logDriftRepair(ctx.db, ctx.connection.id, m.id, `drift sweep repaired ${repaired} rows of ${m.table_name} (Salesforce ${sfCount}, table ${pgCount})`, detail);
    log.warn(detail, 'drift sweep repaired the table');
  } else log.info(detail, 'drift sweep: ids reconciled, nothing to repair');
  await markDriftChecked(ctx.db, m.id);
  return { sf: sfCount, pg: pgCount, reconciled: true, repaired };
}

async function listByRest(ctx: SyncContext, client: pg.PoolClient, objectName: string): Promise<void> {
  for await (const page of restQuery(ctx.sf, `SELECT Id, SystemModstamp FROM ${objectName}`)) {
    await listIds(client, JSON.stringify(page.records));
  }
}

/** Bulk 2.0 CSV pages COPYed straight into the listing (Postgres parses the CSV and the timestamps). */
async function listByBulk(ctx: SyncContext, client: pg.PoolClient, objectName: string): Promise<void> {
  await openCsvIdListing(client);
  await bulkQuery(ctx.sf, `SELECT Id, SystemModstamp FROM ${objectName}`, { pageSize: LISTING_PAGE_SIZE }, (csv) => listCsvIds(client, csv));
  await closeCsvIdListing(client);
}
