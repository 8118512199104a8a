// kill -9 of the sidecar at random points of an outbound run: afterwards Salesforce holds every row
// exactly once (with and without an upsert field) and nothing stays PENDING.
// Default: 2,000 rows, 5 kill points per variant. HCSYNC_SLOW=1: 10,000 rows, 20 kill points.
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { setup, spawnSidecar, queueEmpty, until, type Harness } from './harness.js';

const SLOW = process.env.HCSYNC_SLOW === '1';
const ROWS = SLOW ? 10_000 : 2_000;
const KILLS = SLOW ? 20 : 5;

let h: Harness | undefined;
let child: ChildProcess | undefined;

afterEach(async () => {
  child?.kill('SIGKILL');
  await h?.close();
  h = undefined;
});

const processed = async (db: Harness['db']) =>
  (await db.query(`select (select count(*) from salesforce._trigger_log where state in ('SUCCESS', 'FAILED', 'MERGED'))
                        + (select count(*) from salesforce._trigger_log_archive) as n`)).rows[0].n as number;

describe.each([
  { upsert: false, label: 'without upsert field (recorded attempts, lost creates adopted)' },
  { upsert: true, label: 'with upsert field' },
])('kill -9 during a run, $label', ({ upsert }) => {
  it(`${ROWS} rows, ${KILLS} kill points: each row exactly once in Salesforce, nothing left PENDING`, async () => {
    h = await setup({ algorithm: 'ordered', upsert });
    // Both algorithms are exercised: half the kill points under each.
    await h.db.query(
      `insert into salesforce.account (name, external_id__c) select 'Kill ' || g, case when $1 then 'ext-' || g end from generate_series(1, $2) g`,
      [upsert, ROWS],
    );
    let survived = 0;
    for (let k = 0; k < KILLS; k++) {
      if (k === Math.floor(KILLS / 2)) await h.db.query(`select hc.set_write_algorithm('merged')`);
      child = spawnSidecar(h.env);
      // Kill at a random moment while work is claimed (entries PENDING, calls in flight or results
      // being written), or once the queue is empty.
      const busy = await until(async () => {
        const r = await h!.db.query(`select count(*) filter (where state = 'PENDING')::int p, count(*) filter (where state in ('NEW', 'PENDING'))::int q from salesforce._trigger_log`);
        return r.rows[0].p > 0 || r.rows[0].q === 0 ? r.rows[0] : null;
      }, 'work claimed', 120_000);
      await new Promise((r) => setTimeout(r, Math.random() * 400));
      const done = busy.p > 0;
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
      child = undefined;
      if (done) survived++;
      if (await queueEmpty(h.db)) break;
    }
    child = spawnSidecar(h.env);
    await until(() => queueEmpty(h!.db), 'queue drained after the kills', 300_000);
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
    child = undefined;
    console.log(`kill test (${upsert ? 'upsert' : 'attempts'}): ${survived} kill points survived`);

    const recs = await h.sfRecords(`SELECT Id, Name FROM Account WHERE Name LIKE 'Kill %'`);
    const names = new Map<string, number>();
    for (const r of recs) names.set(String(r.Name), (names.get(String(r.Name)) ?? 0) + 1);
    const dupes = [...names].filter(([, n]) => n > 1);
    expect(dupes).toEqual([]);
    expect(names.size).toBe(ROWS);
    // The application's rows (ids 1..ROWS; rows the inbound side may add are not ours to count).
    const rows = (await h.db.query(`select count(sfid)::int n, count(distinct sfid)::int s from salesforce.account where id <= $1`, [ROWS])).rows[0];
    expect(rows).toEqual({ n: ROWS, s: ROWS });
    const pending = (await h.db.query(`select count(*)::int n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n;
    expect(pending).toBe(0);
    expect(survived).toBeGreaterThan(0);
  }, SLOW ? 1_800_000 : 600_000);
});
