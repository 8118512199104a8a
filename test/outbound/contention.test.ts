// The writer and the reader on the same rows at the same time: with CDC on, the reader applies the
// echoes of our own writes (hc.inbound_merge) while the writer records the next batch's results
// (hc.outbound_complete). Both lock mapped rows; taken in different orders they deadlocked, and a
// write-back that waited on the reader's transaction stalled the writer. A burst of single-row updates,
// each row changed several times so echoes and write-backs meet on the same rows, must drain with
// nothing left PENDING and in about one collections call per 200 changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { setup, until, queueEmpty, type Harness } from './harness.js';
import { replayNumber } from '../support/sidecar.js';
import { deadlockReports } from '../support/db.js';

const ROWS = Number(process.env.HCSYNC_SLOW ? 2000 : 1000);
const ROUNDS = 3;

let h: Harness;
let reader: Service;
let writer: Service;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged' });
  reader = await startInbound(h.ctx);
  writer = await h.startWriter();
  await until(async () => (await h.db.query(`select state from hc._mappings`)).rows[0].state === 'DATA_SYNCED', 'mapping synced');
  await h.db.query(`insert into salesforce.account (name) select 'Burst ' || g from generate_series(1, ${ROWS}) g`);
  await until(async () => (await queueEmpty(h.db)) &&
    (await h.db.query(`select count(*)::int n from salesforce.account where sfid is not null`)).rows[0].n === ROWS,
  'rows created', 120_000);
  await readerCaughtUp();
}, 420_000);
/** Waits until the reader has applied every change event Salesforce has published so far. */
async function readerCaughtUp(): Promise<void> {
  const last = Math.max(-1, ...h.emu.events().filter((e) => e.entity === 'Account').map((e) => e.replayId));
  await until(async () => {
    const r = await h.db.query(`select replay_id from hc.sync_positions`);
    return r.rows.some((x) => replayNumber(x.replay_id) >= last);
  // (A wait, not a speed check: in the full suite, with every file's servers on two cores, 1,500 events
  // once took longer than 120 s.)
  }, `reader applied events up to ${last}`, 300_000);
}

afterAll(async () => {
  await reader?.stop();
  await h?.close();
});

describe('writer and reader on the same rows', () => {
  it(`a burst of ${ROWS * ROUNDS} single-row updates (each row ${ROUNDS} times) drains with CDC on: no deadlock, nothing stranded, ~1 call per 200`, async () => {
    const ids = (await h.db.query(`select id from salesforce.account order by id`)).rows.map((r) => r.id as number);
    const before = h.emu.stats().api.byKind.collections ?? 0;
    const t0 = Date.now();
    // Four application sessions, each its own stream of autocommitted updates: the writer sends while
    // changes keep arriving, and the echoes of one round meet the write-back of the next.
    const clients = await Promise.all([0, 1, 2, 3].map(() => h.db.pool.connect()));
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        // Each round in an order of its own, so no two rounds lock rows in the same sequence.
        const order = shuffled(ids, round);
        // Single-row updates, committed 20 at a time (one round trip each): a burst as fast as an
        // application produces it, not a trickle paced by this test's own round trips (the writer sends a
        // trickle as it comes, by design, and then spends more calls).
        await Promise.all(clients.map(async (c, k) => {
          const mine = order.filter((_, i) => i % clients.length === k);
          for (let i = 0; i < mine.length; i += 20) {
            // (In id order, as hcsync locks rows: an application taking them in another order can
            // deadlock with anyone; hcsync then retries, but this test asserts there is none.)
            const stmts = mine.slice(i, i + 20).sort((a, b) => a - b).map((id) => `update salesforce.account set numberofemployees = ${round} where id = ${Number(id)};`);
            await c.query(`begin; ${stmts.join(' ')} commit;`);
          }
        }));
      }
    } finally {
      for (const c of clients) c.release();
    }
    await until(() => queueEmpty(h.db), 'burst drained', 120_000);
    await h.db.query('select pg_stat_force_next_flush()').catch(() => {});
    const deadlocks = (await h.db.query(`select deadlocks::int n from pg_stat_database where datname = current_database()`)).rows[0].n;
    const used = (h.emu.stats().api.byKind.collections ?? 0) - before;
    console.log(`${ROWS * ROUNDS} updates with CDC on: ${used} collections calls, drained in ${Date.now() - t0} ms, ${deadlocks} deadlocks`);
    const states = (await h.db.query(
      `select state, count(*)::int n from (select state from salesforce._trigger_log union all
                                            select state from salesforce._trigger_log_archive) x group by state order by state`,
    )).rows;
    expect(states.filter((s) => !['SUCCESS', 'MERGED'].includes(s.state))).toEqual([]);
    expect(h.emu.records('Account').filter((r) => r.NumberOfEmployees === ROUNDS)).toHaveLength(ROWS);
    expect(deadlocks, deadlockReports(h.db.name)).toBe(0);
    expect(used).toBeLessThanOrEqual(Math.ceil((ROWS * ROUNDS) / 200) + 10);
    // The reader's view agrees once it has applied the last echoes.
    await until(async () => (await h.db.query(
      `select count(*)::int n from salesforce.account where numberofemployees = ${ROUNDS}`)).rows[0].n === ROWS, 'local rows final (the echoes never overwrite a newer local value)');
  }, 240_000);
});

/** A fixed permutation per seed (deterministic, so a failure can be replayed). */
function shuffled<T>(xs: T[], seed: number): T[] {
  const a = [...xs];
  let s = seed * 2654435761 % 4294967296;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1664525 + 1013904223) % 4294967296;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

describe('a deadlock while recording results', () => {
  it('the writer, chosen as the victim, records the same results again: nothing re-sent, nothing FAILED', async () => {
    const [a, b] = (await h.db.query(`insert into salesforce.account (name) values ('Lock A'), ('Lock B') returning id`)).rows.map((r) => r.id as number);
    await until(async () => (await queueEmpty(h.db)) &&
      (await h.db.query(`select count(*)::int n from salesforce.account where id in ($1, $2) and sfid is not null`, [a, b])).rows[0].n === 2, 'created');
    await readerCaughtUp();
    // This case is the writer against the application alone: with the reader applying the echo, the
    // writer could be found waiting on the reader's lock instead, and no deadlock would follow.
    await reader.stop();
    reader = { stop: async () => {} };
    // One lane: with several, two claims made at the same moment can split the two entries between them
    // (each skips what the other has locked), and two completions of one row each cannot deadlock (seen
    // under load: the deadlock never came).
    await writer.stop();
    writer = await h.startWriter({ concurrency: 1 });
    const app = await h.db.pool.connect();
    try {
      // The application's session waits longer before checking for deadlocks, so the writer is the victim.
      await app.query(`set deadlock_timeout = '20s'`);
      const calls = h.emu.stats().api.byKind.collections ?? 0;
      h.emu.injectFault({ kind: 'collections', action: 'delay', delayMs: 1000, remaining: 1 });
      await h.db.query(`update salesforce.account set accountnumber = 'deadlock' where id in ($1, $2)`, [a, b]);
      // While the update is on its way, the application locks B...
      await new Promise((r) => setTimeout(r, 300));
      await app.query('begin');
      await app.query(`update salesforce.account set phone = '1' where id = $1`, [b]);
      // ...the writer's hc.outbound_complete locks A (id order) and waits for B...
      await until(async () => (await h.db.query(`select count(*)::int n from pg_stat_activity
        where wait_event_type = 'Lock' and query like '%outbound_complete%'`)).rows[0].n === 1, 'writer waiting for the row lock');
      // ...and the application now wants A: a deadlock, which the writer detects first.
      await app.query(`update salesforce.account set phone = '2' where id = $1`, [a]);
      await app.query('commit');
      await until(() => queueEmpty(h.db), 'drained');
      // The interleaving really happened. The victim's session reports the deadlock to pg_stat_database
      // when it next flushes its statistics (up to ~10 s later when idle), not at once: wait for it.
      const deadlocks = await until(async () =>
        (await h.db.query(`select deadlocks::int n from pg_stat_database where datname = current_database()`)).rows[0].n, 'the deadlock counted', 30_000);
      expect(deadlocks).toBeGreaterThanOrEqual(1);
      // One call for the update, one for the application's phone change: the update was not sent twice.
      expect((h.emu.stats().api.byKind.collections ?? 0) - calls).toBe(2);
      const failed = await h.db.query(`select count(*)::int n from (select state from salesforce._trigger_log union all
                                         select state from salesforce._trigger_log_archive) x where state = 'FAILED'`);
      expect(failed.rows[0].n).toBe(0);
      const recs = h.emu.records('Account').filter((r) => r.Name === 'Lock A' || r.Name === 'Lock B');
      expect(recs.map((r) => `${r.AccountNumber}/${r.Phone}`).sort()).toEqual(['deadlock/1', 'deadlock/2']);
    } finally {
      await app.query('rollback').catch(() => {});
      app.release();
    }
  }, 60_000);
});
