// The ordered writer sends a large batch of updates of one object as one Bulk 2.0 ingest job (threshold
// lowered here so the test stays small); a row Bulk rejects is sent again through collections and fails
// alone, with the same per-row result in SQL as without Bulk.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup, until, queueEmpty, type Harness } from './harness.js';

const N = 120;
let h: Harness;

beforeAll(async () => {
  h = await setup({ algorithm: 'ordered' });
  await h.startWriter({ bulkThreshold: 50 });
  await h.db.query(`insert into salesforce.account (name) select 'Bulk ' || g from generate_series(1, ${N}) g`);
  await until(() => queueEmpty(h.db), 'rows created', 60_000);
});
afterAll(async () => {
  await h?.close();
});

describe('Bulk 2.0 ingest for large ordered batches', () => {
  it(`${N} updates go as one ingest job; the row Bulk rejects is retried through collections and fails alone`, async () => {
    const created = h.emu.stats();
    expect(created.bulk.ingestJobs).toBe(0); // the creates (no external id) went through collections
    const collections = created.api.byKind.collections ?? 0;
    await h.db.query(`update salesforce.account set numberofemployees = 42, name = case when name = 'Bulk 7' then 'INVALID' else name end`);
    await until(() => queueEmpty(h.db), 'updates drained', 60_000);
    const after = h.emu.stats();
    expect(after.bulk.ingestJobs).toBe(1);
    expect(after.bulk.recordsIngested).toBeGreaterThanOrEqual(N - 1);
    // Only the rejected row went through collections again (one call).
    expect((after.api.byKind.collections ?? 0) - collections).toBe(1);
    expect(h.emu.records('Account').filter((r) => r.NumberOfEmployees === 42)).toHaveLength(N - 1);
    const rows = (await h.db.query(`select name, _hc_lastop, _hc_err from salesforce.account order by id`)).rows;
    expect(rows.filter((r) => r._hc_lastop === 'UPDATED')).toHaveLength(N - 1);
    const bad = rows.find((r) => r.name === 'INVALID');
    expect(bad._hc_lastop).toBe('FAILED');
    expect(bad._hc_err).toMatch(/FIELD_CUSTOM_VALIDATION_EXCEPTION/);
    const states = (await h.db.query(`select state, count(*)::int n from (select state, action from salesforce._trigger_log
      union all select state, action from salesforce._trigger_log_archive) x where action = 'UPDATE' group by state order by state`)).rows;
    expect(states).toEqual([{ state: 'FAILED', n: 1 }, { state: 'SUCCESS', n: N - 1 }]);
  });

  it('a Bulk job Salesforce refuses for a while (503) delays the rows, then they go by Bulk: none FAILED, none lost', async () => {
    const failedCount = async () => (await h.db.query(`select count(*)::int n from (select state from salesforce._trigger_log
      union all select state from salesforce._trigger_log_archive) x where state = 'FAILED'`)).rows[0].n as number;
    const failedBefore = await failedCount();
    const before = h.emu.stats();
    h.emu.injectFault({ kind: 'bulk2Ingest', status: 503, remaining: 1 });
    await h.db.query(`update salesforce.account set numberofemployees = 43 where name <> 'INVALID'`);
    await until(() => queueEmpty(h.db), 'updates drained', 60_000);
    const after = h.emu.stats();
    expect(after.bulk.ingestJobs - before.bulk.ingestJobs).toBe(1);
    expect(after.api.byKind.collections ?? 0).toBe(before.api.byKind.collections ?? 0);
    expect(h.emu.records('Account').filter((r) => r.NumberOfEmployees === 43)).toHaveLength(N - 1);
    expect(await failedCount()).toBe(failedBefore);
  });
});
