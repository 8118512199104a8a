// The drift sweep: the safety net under polling and CDC. It compares Salesforce's row count with the
// table's; only when they differ does it list ids (and SystemModstamps) to find what is missing, extra
// or stale, and repairs exactly that. At rest it costs one SELECT COUNT() per mapping per sweep.
import type { SyncContext } from '../../context.js';
import { countRecords, mergeRows, restQuery, type MappingRow } from './rows.js';
import { soqlFields } from './load.js';

export const DRIFT_INTERVAL_MS = Number(process.env.HC_DRIFT_SECONDS ?? 3600) * 1000;

export async function driftSweep(ctx: SyncContext, m: MappingRow): Promise<{ sf: number; pg: number; repaired: number }> {
  const log = ctx.log.child({ mapping: m.object_name });
  const tbl = `"${ctx.connection.schema}"."${m.table_name}"`;
  const sfCount = await countRecords(ctx.sf, m.object_name);
  const pgCount = Number((await ctx.db.query(`select count(*) n from ${tbl} where sfid is not null`)).rows[0].n);
  if (sfCount === pgCount) {
    log.debug({ sf: sfCount, pg: pgCount }, 'drift sweep: counts match');
    return { sf: sfCount, pg: pgCount, repaired: 0 };
  }
  log.warn({ sf: sfCount, pg: pgCount }, 'drift sweep: counts differ, comparing ids');
  const client = await ctx.db.connect();
  let repaired = 0;
  try {
    await client.query('create temp table if not exists hc_drift_ids (sfid text primary key, smod timestamp) on commit preserve rows');
    await client.query('truncate hc_drift_ids');
    for await (const page of restQuery(ctx.sf, `SELECT Id, SystemModstamp FROM ${m.object_name}`)) {
      await client.query(
        `insert into hc_drift_ids select x."Id", (x."SystemModstamp")::timestamptz at time zone 'UTC' from jsonb_to_recordset($1) as x("Id" text, "SystemModstamp" text) on conflict do nothing`,
        [JSON.stringify(page.records)],
      );
    }
    // In the table but gone from Salesforce.
    const extra = await client.query(`select array_agg(t.sfid) ids from ${tbl} t where t.sfid is not null and not exists (select 1 from hc_drift_ids d where d.sfid = t.sfid)`);
    const gone: string[] = extra.rows[0].ids ?? [];
    if (gone.length) {
      const r = await client.query('select hc.inbound_delete($1, $2, $3) n', [m.id, gone, 'drift']);
      repaired += r.rows[0].n;
    }
    // Missing from the table, or older there than in Salesforce.
    const stale = await client.query(
      `select array_agg(d.sfid) ids from hc_drift_ids d left join ${tbl} t on t.sfid = d.sfid where t.sfid is null or t.systemmodstamp is null or t.systemmodstamp < d.smod`,
    );
    const ids: string[] = stale.rows[0].ids ?? [];
    await client.query('drop table hc_drift_ids');
    const fields = await soqlFields(ctx, m.id);
    for (let i = 0; i < ids.length; i += 200) {
      const chunk = ids.slice(i, i + 200);
      for await (const page of restQuery(ctx.sf, `SELECT ${fields.join(', ')} FROM ${m.object_name} WHERE Id IN (${chunk.map((x) => `'${x}'`).join(',')})`)) {
        const r = await mergeRows(ctx.db, m.id, fields, page.records, 'drift');
        repaired += r.applied;
      }
    }
    await ctx.db.query(
      `insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message, detail) values ($1, $2, 'inbound', 'warn', 'drift', $3, $4)`,
      [ctx.connection.id, m.id, `drift sweep repaired ${repaired} rows of ${m.table_name} (Salesforce ${sfCount}, table ${pgCount})`, { sf: sfCount, pg: pgCount, removed: gone.length, refetched: ids.length }],
    );
    log.warn({ removed: gone.length, refetched: ids.length }, 'drift sweep repaired the table');
  } finally {
    client.release();
  }
  return { sf: sfCount, pg: pgCount, repaired };
}
