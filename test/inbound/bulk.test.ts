// A 100k-row object loads through Bulk API 2.0 (paged by locator, COPY into staging) with bounded
// sidecar memory: the sidecar runs as a process and its peak RSS (VmHWM) is read from /proc.
// Slow: runs with HCSYNC_SLOW=1 (the default suite loads 12k rows, still above the Bulk threshold).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mappingState, setup, until, type Harness } from './harness.js';

const ROWS = process.env.HCSYNC_SLOW === '1' ? 100_000 : 12_000;
let h: Harness;

beforeAll(async () => {
  h = await setup({ seed: { Account: ROWS } });
}, 300_000);
afterAll(async () => {
  await h?.close();
});

describe('bulk load', () => {
  it(`loads ${ROWS} rows through Bulk 2.0 pages with bounded memory`, async () => {
    const proc = h.spawn({ HC_BULK_PAGE_SIZE: '10000', HC_LOG_LEVEL: 'info' });
    const fields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'CreatedDate', 'AccountNumber', 'Type', 'Industry', 'Phone', 'AnnualRevenue', 'NumberOfEmployees', 'BillingCity', 'BillingCountry', 'Description'];
    await until(async () => (await h.db.query(`select state from hc.connections`)).rows[0]?.state === 'IDLE', 'sidecar up', 60_000);
    const baseline = proc.peakRssMiB() ?? 0;
    const t0 = Date.now();
    await h.db.query('select hc.create_mapping($1, $2)', ['Account', { access: 'read_only', fields: Object.fromEntries(fields.map((f) => [f, {}])) }]);
    await until(async () => (await mappingState(h.db, 'Account')).state === 'DATA_SYNCED', 'Account DATA_SYNCED', 600_000);
    const seconds = (Date.now() - t0) / 1000;
    const peak = proc.peakRssMiB() ?? 0;
    const n = (await h.db.query('select count(*)::int n from salesforce.account')).rows[0].n;
    expect(n).toBe(ROWS);
    const calls = (await h.db.query(`select kind, count(*)::int n from hc.api_calls group by kind`)).rows;
    const bulkCalls = calls.find((c) => c.kind === 'bulk2_query')?.n ?? 0;
    expect(bulkCalls).toBeGreaterThanOrEqual(3); // create, status, ≥ 2 result pages
    const pages = (await h.db.query(`select count(*)::int n from hc.api_calls where kind = 'bulk2_query' and path like '%/results%'`)).rows[0].n;
    expect(pages).toBe(Math.ceil(ROWS / 10_000));
    const log = await h.db.query(`select detail from hc.sync_log where event = 'load'`);
    expect(log.rows[0].detail).toMatchObject({ api: 'bulk2', failed: 0 });
    const progress = (await h.db.query(`select progress from hc._mappings`)).rows[0].progress;
    expect(progress).toMatchObject({ rows: ROWS, total: ROWS, api: 'bulk2' });
    console.log(`bulk load: ${ROWS} rows in ${seconds.toFixed(1)} s (${Math.round(ROWS / seconds)} rows/s), sidecar peak RSS ${peak.toFixed(0)} MiB (baseline ${baseline.toFixed(0)} MiB)`);
    // Bounded: the peak does not grow with the row count (one 10k-row page at a time).
    expect(peak).toBeLessThan(400);
    await proc.stop();
  }, 900_000);
});
