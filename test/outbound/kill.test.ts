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
    // The rows arrive in one wave per kill point, so every sidecar started has work to be killed in.
    // Both algorithms are exercised: half the kill points under each.
    const wave = Math.ceil(ROWS / KILLS);
    let landed = 0;
    for (let k = 0; k < KILLS; k++) {
      if (k === Math.floor(KILLS / 2)) await h.db.query(`select hc.set_write_algorithm('merged')`);
      await h.db.query(
        `insert into salesforce.account (name, external_id__c)
         select 'Kill ' || g, case when $1 then 'ext-' || g end from generate_series($2::int, $3::int) g`,
        [upsert, k * wave + 1, Math.min(ROWS, (k + 1) * wave)],
      );
      child = spawnSidecar(h.env);
      // Kill at a random moment while this sidecar holds claimed work (entries PENDING under a live
      // writer: calls in flight or results being written), or once the queue is empty. Entries a
      // killed writer left PENDING do not count: they are the next writer's to take over.
      const busy = await until(async () => {
        const r = await h!.db.query(`select (select count(*) from hc._outbound_claims k where hc._outbound_claimer_alive(k.claimer))::int p,
                                            (select count(*) from salesforce._trigger_log where state in ('NEW', 'PENDING'))::int q`);
        return r.rows[0].p > 0 || r.rows[0].q === 0 ? r.rows[0] : null;
      }, 'work claimed', 120_000);
      await new Promise((r) => setTimeout(r, Math.random() * 400));
      const done = busy.p > 0;
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
      child = undefined;
      if (done) landed++;
    }
    child = spawnSidecar(h.env);
    await until(() => queueEmpty(h!.db), 'queue drained after the kills', 300_000);
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
    child = undefined;
    console.log(`kill test (${upsert ? 'upsert' : 'attempts'}): ${ROWS} rows, ${landed} of ${KILLS} kills landed while work was claimed`);

    const recs = await h.sfRecords(`SELECT Id, Name FROM Account WHERE Name LIKE 'Kill %'`);
    const names = new Map<string, number>();
    for (const r of recs) names.set(String(r.Name), (names.get(String(r.Name)) ?? 0) + 1);
    const dupes = [...names].filter(([, n]) => n > 1);
    expect(dupes).toEqual([]);
    expect(names.size).toBe(ROWS);
    // One row per record in Postgres too: the application's rows hold the sfids, and no second row
    // (the read side's copy of a record we created) is left behind.
    const rows = (await h.db.query(`select count(*)::int r, count(sfid)::int n, count(distinct sfid)::int s from salesforce.account where name like 'Kill %'`)).rows[0];
    expect(rows).toEqual({ r: ROWS, n: ROWS, s: ROWS });
    const pending = (await h.db.query(`select count(*)::int n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n;
    expect(pending).toBe(0);
    expect(landed).toBeGreaterThan(0);
  }, SLOW ? 1_800_000 : 600_000);
});
