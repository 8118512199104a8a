// The reader and the writer together, with CDC on: what the change events of Salesforce (the echoes of
// our own writes among them) may and may not do to rows the application is writing.
//   never older      under a burst of application writes from many connections, with the reader behind,
//                    no row ever shows a value older than the one the application last committed to it
//                    (the echo of an earlier write of ours, arriving after a later one was sent, must not
//                    bring it back);
//   rejected write   a row whose change Salesforce refused keeps reading FAILED (with its error) when
//                    Salesforce then changes the record: it never reads SYNCED while it differs.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import jsforce from 'jsforce';
import pg from 'pg';
import type { Service } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { setup, until, queueEmpty, otherUser, type Harness } from '../outbound/harness.js';
import { replayNumber } from '../support/sidecar.js';

let h: Harness;
let reader: Service;
/** Someone else in Salesforce (not marked client=hcsync). */
let other: jsforce.Connection;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged' });
  reader = await startInbound(h.ctx);
  await h.startWriter({ maxBackoffMs: 300 });
  // Synced and subscribed: the catch-up re-read after the subscription holds has run (last_poll_at), so
  // every later change arrives as an event.
  await until(async () => {
    const m = (await h.db.query(`select state, last_poll_at from hc._mappings`)).rows[0];
    return m?.state === 'DATA_SYNCED' && m.last_poll_at;
  }, 'mapping synced and subscribed', 90_000);
  other = await otherUser(h.emu);
}, 120_000);
beforeEach(() => h.emu.clearFaults());
afterAll(async () => {
  await reader?.stop();
  await h?.close();
});

const rowById = async (id: number) => (await h.db.query('select * from salesforce.account where id = $1', [id])).rows[0];
/** Waits until the reader has applied every change event Salesforce has published so far. */
async function readerCaughtUp(): Promise<void> {
  const last = Math.max(-1, ...h.emu.events().filter((e) => e.entity === 'Account').map((e) => e.replayId));
  await until(async () => {
    const r = await h.db.query(`select replay_id from hc.sync_positions`);
    return r.rows.some((x) => replayNumber(x.replay_id) >= last);
  }, `reader applied events up to ${last}`, 120_000);
}

describe('change events and application writes', () => {
  it('a rejected write: when Salesforce then changes the record, the row keeps reading FAILED with its error', async () => {
    const id = (await h.db.query(`insert into salesforce.account (name) values ('Refused') returning id`)).rows[0].id as number;
    const sfid = (await until(async () => (await queueEmpty(h.db)) && (await rowById(id))?.sfid, 'created', 60_000)) as string;
    await readerCaughtUp();
    // Salesforce refuses it (validation rule Account_Employees_Not_Negative).
    await h.db.query(`update salesforce.account set numberofemployees = -5 where id = $1`, [id]);
    await until(async () => (await rowById(id))._hc_lastop === 'FAILED', 'write refused', 60_000);
    const before = h.emu.records('Account').find((r) => r.Id === sfid)!;
    expect(before.NumberOfEmployees).not.toBe(-5);
    // Then someone changes another field of the record in Salesforce.
    await other.sobject('Account').update({ Id: sfid, Phone: '555-0101' });
    await readerCaughtUp();
    const r = await rowById(id);
    expect(r.phone).toBe('555-0101'); // the change arrived
    // Postgres still holds the refused value, which Salesforce does not have: the row must not read SYNCED.
    expect(r.numberofemployees).toBe(-5);
    expect(r._hc_lastop).toBe('FAILED');
    expect(r._hc_err).toMatch(/negative/i);
  }, 240_000);

  it('a burst from 20 connections: no row ever shows a value older than the application last committed', async () => {
    const ROWS = 200;
    const ROUNDS = Number(process.env.HCSYNC_SLOW ? 30 : 15);
    const CONNS = 20;
    await h.db.query(`insert into salesforce.account (name, numberofemployees) select 'Older ' || g, 0 from generate_series(1, ${ROWS}) g`);
    await until(async () => (await queueEmpty(h.db)) &&
      (await h.db.query(`select count(*)::int n from salesforce.account where name like 'Older %' and sfid is not null`)).rows[0].n === ROWS,
    'rows created', 120_000);
    await readerCaughtUp();
    const ids = (await h.db.query(`select id from salesforce.account where name like 'Older %' order by id`)).rows.map((r) => r.id as number);
    // The value each row was last committed with (every row belongs to one connection, values only grow).
    const committed = new Map<number, number>(ids.map((id) => [id, 0]));
    let done = false;
    const older: string[] = [];
    let checks = 0;
    // A reader of the application: every row, over and over, against what was committed before it looked.
    const checker = (async () => {
      while (!done) {
        const floor = new Map(committed);
        const rows = (await h.db.query(`select id, numberofemployees n from salesforce.account where id = any($1)`, [ids])).rows;
        for (const r of rows) {
          if (r.n < floor.get(r.id)!) older.push(`row ${r.id} showed ${r.n} after ${floor.get(r.id)} was committed`);
        }
        checks++;
      }
    })();
    // The reader falls behind (here: it is down while the burst is written and sent, as a restart or a
    // slow batch would make it), so the echoes of earlier rounds arrive after later rounds were sent.
    await reader.stop();
    try {
      // Connections of their own (the test pool is smaller than 20).
      const clients = await Promise.all(Array.from({ length: CONNS }, async () => {
        const c = new pg.Client({ connectionString: h.db.url });
        await c.connect();
        return c;
      }));
      try {
        await Promise.all(clients.map(async (c, k) => {
          const mine = ids.filter((_, i) => i % CONNS === k);
          for (let round = 1; round <= ROUNDS; round++) {
            for (const id of mine) {
              await c.query(`update salesforce.account set numberofemployees = $1 where id = $2`, [round, id]);
              committed.set(id, round);
            }
          }
        }));
      } finally {
        await Promise.all(clients.map((c) => c.end()));
      }
      await until(() => queueEmpty(h.db), 'burst sent', 180_000);
      reader = await startInbound(h.ctx);
      await readerCaughtUp();
      // Re-reads the reader decided on (records it could not tell apart from its own echo) land too.
      await until(async () => (await h.db.query(`select count(*)::int n from salesforce.account where id = any($1) and numberofemployees = $2`, [ids, ROUNDS])).rows[0].n === ROWS,
        'every row final', 60_000);
    } finally {
      done = true;
      await checker;
      console.log(`${ROWS * ROUNDS} updates from ${CONNS} connections; ${checks} full reads; ${older.length} older values seen`, older.slice(0, 3));
    }
    expect(checks).toBeGreaterThan(5);
    expect(older.slice(0, 5)).toEqual([]);
    expect(h.emu.records('Account').filter((r) => String(r.Name).startsWith('Older ') && r.NumberOfEmployees === ROUNDS)).toHaveLength(ROWS);
  }, 400_000);
});
