// The drift sweep: the safety net under polling and CDC. Every sweep (HC_DRIFT_SECONDS, hourly) compares
// Salesforce's row count with the table's: one SELECT COUNT(). A missed create and a missed delete cancel
// out in a count, so once a day (HC_RECONCILE_SECONDS), and at once whenever the counts differ, the sweep
// lists every record's Id and SystemModstamp (REST pages up to 10,000 rows, one Bulk 2.0 query above),
// COPYs the list into a temp table and lets hc.inbound_reconcile compare it with the table: rows
// Salesforce no longer has are removed there, and the ids it returns (missing, stale, or too recent to
// judge) are re-read by Id here. Nothing but that list and those rows is read.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { SyncContext } from '../../context.js';
import { bulkQuery } from '../../salesforce/bulk.js';
import { CsvStage, countRecords, mergeRows, restQuery, type MappingRow } from './rows.js';
import { BULK_THRESHOLD, soqlFields } from './load.js';

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
  const tbl = `"${ctx.connection.schema}"."${m.table_name}"`;
  const sfCount = await countRecords(ctx.sf, m.object_name);
  const pgCount = Number((await ctx.db.query(`select count(*) n from ${tbl} where sfid is not null`)).rows[0].n);
  const last: Date | null = (await ctx.db.query('select reconciled_at from hc.sync_positions where mapping_id = $1', [m.id])).rows[0]?.reconciled_at ?? null;
  const due = opts.reconcile || !last || Date.now() - last.getTime() >= ctx.config.inbound.reconcileIntervalMs;
  if (sfCount === pgCount && !due) {
    await ctx.db.query('select hc.inbound_drift_checked($1)', [m.id]);
    log.debug({ sf: sfCount, pg: pgCount }, 'drift sweep: counts match');
    return { sf: sfCount, pg: pgCount, reconciled: false, repaired: 0 };
  }
  if (sfCount !== pgCount) log.warn({ sf: sfCount, pg: pgCount }, 'drift sweep: counts differ, comparing ids');
  else log.info({ rows: sfCount }, 'drift sweep: periodic id reconciliation');

  const listedAt = new Date();
  const client = await ctx.db.connect();
  let result: { removed: number; reread: string[]; missing: number; stale: number; check: number };
  try {
    await client.query('create temp table if not exists hc_drift_ids (sfid text, smod timestamp)');
    await client.query('truncate hc_drift_ids');
    if (sfCount > BULK_THRESHOLD) await listByBulk(ctx, client, m.object_name);
    else await listByRest(ctx, client, m.object_name);
    await client.query('create index if not exists hc_drift_ids_sfid on hc_drift_ids (sfid)');
    await client.query('analyze hc_drift_ids');
    result = (await client.query('select hc.inbound_reconcile($1, $2, $3) r', [m.id, 'pg_temp.hc_drift_ids', listedAt])).rows[0].r;
    await client.query('drop table hc_drift_ids');
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
      for await (const page of bulkQuery(ctx.sf, `SELECT ${fields.join(', ')} FROM ${m.object_name}`, { pageSize: ctx.config.inbound.bulkPageSize })) {
        const r = await stage.apply(page.csv, 'drift');
        repaired += r.applied;
      }
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
    if (gone.length) repaired += (await ctx.db.query('select hc.inbound_delete($1, $2, $3) n', [m.id, gone, 'drift'])).rows[0].n;
  }
  const detail = { sf: sfCount, pg: pgCount, removed: result.removed, missing: result.missing, stale: result.stale, rechecked: result.check, repaired };
  if (repaired || result.reread.length) {
    await ctx.db.query(
      `insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail) values ($1, $2, 'inbound', 'warn', 'drift', $3, $4)`,
      [ctx.connection.id, m.id, `drift sweep repaired ${repaired} rows of ${m.table_name} (Salesforce ${sfCount}, table ${pgCount})`, detail],
    );
    log.warn(detail, 'drift sweep repaired the table');
  } else log.info(detail, 'drift sweep: ids reconciled, nothing to repair');
  await ctx.db.query('select hc.inbound_drift_checked($1)', [m.id]);
  return { sf: sfCount, pg: pgCount, reconciled: true, repaired };
}

async function listByRest(ctx: SyncContext, client: pg.PoolClient, objectName: string): Promise<void> {
  for await (const page of restQuery(ctx.sf, `SELECT Id, SystemModstamp FROM ${objectName}`)) {
    await client.query(
      `insert into hc_drift_ids select x."Id", (x."SystemModstamp")::timestamptz at time zone 'UTC' from jsonb_to_recordset($1) as x("Id" text, "SystemModstamp" text)`,
      [JSON.stringify(page.records)],
    );
  }
}

/** Bulk 2.0 CSV pages COPYed straight into the listing (Postgres parses the CSV and the timestamps). */
async function listByBulk(ctx: SyncContext, client: pg.PoolClient, objectName: string): Promise<void> {
  await client.query('create temp table if not exists hc_drift_csv (sfid text, smod text)');
  for await (const page of bulkQuery(ctx.sf, `SELECT Id, SystemModstamp FROM ${objectName}`, { pageSize: LISTING_PAGE_SIZE })) {
    if (page.records === 0) continue;
    await client.query('truncate hc_drift_csv');
    await pipeline(Readable.from([page.csv]), client.query(copyStreams.from('copy hc_drift_csv (sfid, smod) from stdin with (format csv, header true)')));
    await client.query(`insert into hc_drift_ids select sfid, nullif(smod, '')::timestamptz at time zone 'UTC' from hc_drift_csv`);
  }
  await client.query('drop table hc_drift_csv');
}
