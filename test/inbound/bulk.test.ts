// A 100k-row object loads through Bulk API 2.0 (paged by locator, COPY into staging) with bounded
// sidecar memory: the sidecar runs as a process and its peak RSS (VmHWM) is read from /proc.
// It takes well under a minute, so it is part of the default suite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driftSweep } from '../../sidecar/sync/inbound/drift.js';
import { mappingState, setup, until, withoutChangeEvents, type Harness } from './harness.js';

const ROWS = 100_000;
let h: Harness;

beforeAll(async () => {
  h = await setup({ seed: { Account: ROWS, Contact: 12_000 } });
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
    // Stopped, so that its catch-up re-read cannot repair the next test's missed changes first.
    await proc.stop();
  }, 900_000);

  it('the daily id reconciliation of a large object lists ids through one Bulk 2.0 query', async () => {
    const ctx = await h.context();
    const m = (await h.db.query(`select id, object_name, table_name, config, state, requested from hc._mappings where object_name = 'Account'`)).rows[0];
    const victim = (await h.db.query(`select sfid from salesforce.account where systemmodstamp < now() - interval '10 minutes' limit 1`)).rows[0].sfid;
    const made = await withoutChangeEvents(h.emu, async () => {
      const c = (await h.sf.conn.sobject('Account').create({ Name: 'Missed Bulk Create' })) as { id: string };
      await h.sf.conn.sobject('Account').destroy(victim);
      return c.id;
    });
    await h.db.query(`update hc.sync_positions set reconciled_at = now() - interval '25 hours' where mapping_id = $1`, [m.id]);
    const used = h.emu.stats().api.used;
    const r = await driftSweep(ctx, m);
    const calls = h.emu.stats().api.used - used;
    expect(r).toMatchObject({ sf: ROWS, pg: ROWS, reconciled: true, repaired: 2 });
    expect((await h.db.query('select name from salesforce.account where sfid = $1', [made])).rows[0]?.name).toBe('Missed Bulk Create');
    expect((await h.db.query('select count(*)::int n from salesforce.account where sfid = $1', [victim])).rows[0].n).toBe(0);
    expect((await h.db.query('select count(*)::int n from salesforce.account')).rows[0].n).toBe(ROWS);
    // COUNT(), the query job (create, status until complete, one results page of 100k ids), one re-read.
    expect(calls).toBeLessThanOrEqual(10);
    console.log(`id reconciliation of ${ROWS} rows: ${calls} API calls`);
  }, 120_000);

  it('a table far behind Salesforce is repaired by one Bulk 2.0 read, not by thousands of re-reads by Id', async () => {
    const ctx = await h.context();
    const m = (await h.db.query(`select id, object_name, table_name, config, state, requested from hc._mappings where object_name = 'Account'`)).rows[0];
    // As after a restored backup: 20,000 rows lost (deleted by a sync session: nothing is captured).
    await ctx.db.query('delete from salesforce.account where sfid in (select sfid from salesforce.account order by sfid limit 20000)');
    const used = h.emu.stats().api.used;
    const r = await driftSweep(ctx, m);
    const calls = h.emu.stats().api.used - used;
    expect(r).toMatchObject({ sf: ROWS, pg: ROWS - 20_000, reconciled: true });
    expect((await h.db.query('select count(*)::int n from salesforce.account')).rows[0].n).toBe(ROWS);
    expect(calls).toBeLessThan(30); // by Id it would be 100 queries
    expect((await h.db.query(`select count(*)::int n from salesforce._trigger_log`)).rows[0].n).toBe(0);
    console.log(`20,000 missing rows repaired with ${calls} API calls`);
  }, 120_000);

  it('hc.abort stops a Bulk 2.0 load before it reads results, and tells Salesforce to stop the job', async () => {
    const inbound = await h.startInbound();
    h.emu.setLatency(600); // every call slowed: the abort lands while the job is being driven
    try {
      await h.db.query('select hc.create_mapping($1, $2)', ['Contact', { access: 'read_only', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, LastName: {} } }]);
      await until(async () => (await mappingState(h.db, 'Contact')).state === 'POLLING_SF_BULK', 'Contact load through Bulk 2.0 started');
      await h.db.query(`select hc.abort('Contact')`);
      await until(async () => (await mappingState(h.db, 'Contact')).state === 'ABORTED', 'Contact ABORTED');
    } finally {
      h.emu.setLatency(0);
    }
    expect((await h.db.query('select count(*)::int n from salesforce.contact')).rows[0].n).toBeLessThan(12_000);
    // The load stopped spending API calls: no result page of its job was read. (The job itself is told
    // to stop too, best effort: the emulator, like Salesforce, refuses that once the job is complete.)
    await until(async () => (await h.db.query(`select count(*)::int n from hc.api_calls where method = 'PATCH' and path like '%/jobs/query/%'`)).rows[0].n === 1, 'the job abort in the ledger', 10_000);
    const job = (await h.db.query(`select path from hc.api_calls where method = 'PATCH' and path like '%/jobs/query/%'`)).rows[0].path as string;
    const jobId = job.split('/').at(-1);
    expect((await h.db.query(`select count(*)::int n from hc.api_calls where path like $1`, [`%/jobs/query/${jobId}/results%`])).rows[0].n).toBe(0);
    await inbound.stop();
  }, 120_000);
});
