// The writer under Salesforce faults injected through the emulator: 5xx, a call that never answers,
// a dropped socket, UNABLE_TO_LOCK_ROW, REQUEST_LIMIT_EXCEEDED and expired tokens delay rows but never
// lose them, never mark them FAILED and never create a record twice; the same writer recovers on its
// own (no restart). An injected error, hang or reset does not perform the write it interrupts; the
// hard case, a write that happened and whose answer was lost (drop-response), is here too and in
// outcome.test.ts: creates are found again by the lost-create lookup instead of being made twice.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { setup, until, queueEmpty, type Harness } from './harness.js';

let h: Harness;
let batch = 0;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged' });
  // A short call timeout so a call that never answers is given up quickly (the default is 2 minutes).
  await h.startWriter({ callTimeoutMs: 1500, maxBackoffMs: 300 });
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => {
  h.emu.clearFaults();
  batch++;
});

const failedEntries = async () =>
  (await h.db.query(`select count(*)::int n from (select state from salesforce._trigger_log union all
                                                 select state from salesforce._trigger_log_archive) l where state = 'FAILED'`)).rows[0].n;

/** Inserts n rows named for this test, waits until every one is written back, checks each exists once. */
async function insertAndDrain(n: number, label: string): Promise<void> {
  const prefix = `F${batch} ${label}`;
  await h.db.query(`insert into salesforce.account (name) select $1 || ' ' || g from generate_series(1, $2) g`, [prefix, n]);
  await until(async () => {
    const r = await h.db.query(`select count(*) filter (where _hc_lastop = 'INSERTED')::int ok from salesforce.account where name like $1`, [`${prefix} %`]);
    return r.rows[0].ok === n;
  }, `${label}: rows written back`, 60_000);
  const recs = await h.sfRecords(`SELECT Name FROM Account WHERE Name LIKE '${prefix} %'`);
  expect(recs).toHaveLength(n);
  expect(new Set(recs.map((r) => r.Name)).size).toBe(n);
  expect(await failedEntries()).toBe(0);
}

const collectionsCalls = () => h.emu.stats().api.byKind.collections ?? 0;

describe('outbound writer under Salesforce faults', () => {
  it('HTTP 503 and 500 on collections calls: retried, nothing lost or FAILED', async () => {
    h.emu.injectFault({ kind: 'collections', status: 503, remaining: 2 });
    h.emu.injectFault({ kind: 'collections', status: 500, errorCode: 'UNKNOWN_EXCEPTION', message: 'An unexpected error occurred', remaining: 1 });
    const before = collectionsCalls();
    await insertAndDrain(30, '5xx');
    // The failed calls happened (the faults were consumed), and the rows went after them.
    expect(collectionsCalls() - before).toBeGreaterThanOrEqual(4);
  });

  it('a call that never answers times out and is retried; a dropped socket likewise, before or after the write; each record created once', async () => {
    h.emu.injectFault({ kind: 'collections', action: 'hang', remaining: 1 });
    await insertAndDrain(20, 'hang');
    h.emu.injectFault({ kind: 'collections', action: 'reset', remaining: 1 });
    await insertAndDrain(20, 'reset');
    h.emu.injectFault({ kind: 'collections', action: 'drop-response', remaining: 1 });
    await insertAndDrain(20, 'written, answer lost');
  });

  it('UNABLE_TO_LOCK_ROW per record: those records are retried, the others go at once', async () => {
    h.emu.failNextLocks(7);
    await insertAndDrain(25, 'lock');
  });

  it('REQUEST_LIMIT_EXCEEDED: rows wait (NEW, not FAILED) until the allowance is back', async () => {
    const { used } = h.emu.stats().api;
    h.emu.setDailyApiLimit(used, used);
    await h.db.query(`insert into salesforce.account (name) values ('Over limit 1'), ('Over limit 2')`);
    // The writer keeps trying and backs off; the rows stay queued.
    await until(async () => h.emu.stats().notCounted.rejected >= 2, 'calls refused over the limit');
    const r = (await h.db.query(`select count(*)::int n from salesforce.account where name like 'Over limit %' and sfid is null and _hc_lastop = 'PENDING'`)).rows[0];
    expect(r.n).toBe(2);
    expect(await failedEntries()).toBe(0);
    h.emu.setDailyApiLimit(1_000_000);
    await until(() => queueEmpty(h.db), 'drained once the allowance is back');
    const rows = (await h.db.query(`select _hc_lastop from salesforce.account where name like 'Over limit %'`)).rows;
    expect(rows.map((x) => x._hc_lastop)).toEqual(['INSERTED', 'INSERTED']);
    expect(await h.sfRecords(`SELECT Id FROM Account WHERE Name LIKE 'Over limit %'`)).toHaveLength(2);
  });

  it('expired access tokens: the session is renewed and the rows go', async () => {
    h.emu.expireTokens();
    await insertAndDrain(10, 'token');
    // Updates and deletes too, after another expiry.
    h.emu.expireTokens();
    await h.db.query(`update salesforce.account set accountnumber = 'after expiry' where name like $1`, [`F${batch} token %`]);
    await until(() => queueEmpty(h.db), 'updates drained');
    const recs = await h.sfRecords(`SELECT AccountNumber FROM Account WHERE Name LIKE 'F${batch} token %'`);
    expect(recs.map((r) => r.AccountNumber)).toEqual(Array(10).fill('after expiry'));
    expect(await failedEntries()).toBe(0);
  });
});
