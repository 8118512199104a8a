// A 100k-row object loads through Bulk API 2.0 (paged by locator, COPY into staging) with bounded
// sidecar memory: the sidecar runs as a process and its peak RSS (VmHWM) is read from /proc.
// It takes well under a minute, so it is part of the default suite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mappingState, setup, until, type Harness } from './harness.js';

const ROWS = 100_000;
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
    // One result page per 10,000 rows, read by locator (the ledger is written within a second).
    const pages = await until(async () => {
      const n = (await h.db.query(`select count(*)::int n from hc.api_calls where kind = 'bulk2_query' and path like '%/results%' and status = 200`)).rows[0].n;
      return n === Math.ceil(ROWS / 10_000) ? n : 0;
    }, 'result pages in the ledger', 10_000);
    expect(pages).toBe(10);
    expect((await h.db.query(`select count(*)::int n from hc.api_calls where path like '%locator=%'`)).rows[0].n).toBe(9);
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
