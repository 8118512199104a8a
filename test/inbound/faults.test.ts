// The sidecar as a real process under faults: kill -9 in the middle of a stream of changes, a dropped
// streaming session, and a replay id that fell out of the retention window. After each, every change is
// in the table; after kill -9, every change event was applied exactly once (replay id and data commit
// together).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mappingState, setup, until, type Harness, mapAccountWithWitness } from './harness.js';
import { TEST_STREAM, type SidecarProcess } from '../support/sidecar.js';

let h: Harness;
let proc: SidecarProcess;
let ids: string[];
const fields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees'];

async function inSync(): Promise<boolean> {
  const sf = (await h.sf.conn.query<{ Id: string; NumberOfEmployees: number | null; Name: string }>('SELECT Id, Name, NumberOfEmployees FROM Account', { autoFetch: true })).records;
  const pg = new Map((await h.db.query('select sfid, name, numberofemployees from salesforce.account')).rows.map((r) => [r.sfid, r]));
  return sf.length === pg.size && sf.every((r) => pg.get(r.Id)?.numberofemployees === (r.NumberOfEmployees ?? null) && pg.get(r.Id)?.name === r.Name);
}

async function admin(path: string, body: unknown = {}): Promise<unknown> {
  const res = await fetch(`${h.emu.url}/__emulator/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`emulator admin ${path}: ${res.status} ${await res.text()}`);
  return res.json().catch(() => null);
}

beforeAll(async () => {
  h = await setup({ seed: { Account: 20 } });
  proc = h.spawn();
  ids = await mapAccountWithWitness(h, fields);
}, 120_000);
afterAll(async () => {
  await proc?.kill9();
  await h?.close();
});

describe('inbound under faults', () => {
  it('kill -9 mid-stream: no change lost, none applied twice', async () => {
    const updates = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        await h.sf.conn.sobject('Account').update({ Id: ids[i % ids.length], NumberOfEmployees: 1000 + i });
        await new Promise((r) => setTimeout(r, 20)); // a steady stream, still going when the sidecar dies
      }
    };
    // The stream of changes keeps going while the sidecar is killed and is down.
    const stream = updates(0, 60);
    await until(async () => (await h.db.query('select count(*)::int n from public.applied where n >= 1000')).rows[0].n >= 10, 'some events applied');
    await proc.kill9();
    const appliedBeforeKill = (await h.db.query('select count(*)::int n from public.applied where n >= 1000')).rows[0].n;
    await stream;
    proc = h.spawn();
    await until(inSync, 'table in sync after restart', 90_000);
    const dup = await h.db.query('select sfid, n, count(*)::int c from public.applied where n >= 1000 group by 1, 2 having count(*) > 1');
    expect(dup.rows).toEqual([]);
    const applied = await h.db.query('select count(*)::int c from public.applied where n >= 1000');
    expect(applied.rows[0].c).toBe(60); // each of the 60 change events once, none lost
    expect(appliedBeforeKill).toBeLessThan(60); // killed in the middle of the stream
    console.log(`kill -9 after ${appliedBeforeKill} of 60 change events had been applied`);
    const pos = await h.db.query('select replay_channel, replay_id from hc.sync_positions');
    if (TEST_STREAM === 'cometd') {
      expect(pos.rows[0]).toMatchObject({ replay_channel: '/data/AccountChangeEvent' });
      expect(Number(pos.rows[0].replay_id)).toBeGreaterThan(0);
    } else {
      // The shared Pub/Sub stream; the 8-byte replay id as 16 hex digits.
      expect(pos.rows[0]).toMatchObject({ replay_channel: 'pubsub:/data/ChangeEvents', replay_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
      expect(BigInt('0x' + pos.rows[0].replay_id)).toBeGreaterThan(0n);
    }
  });

  it('a dropped streaming session loses nothing', async () => {
    await admin('streaming/drop');
    for (let i = 0; i < 10; i++) await h.sf.conn.sobject('Account').update({ Id: ids[i], NumberOfEmployees: 5000 + i });
    await until(inSync, 'table in sync after the session drop', 90_000);
    expect(proc.output()).toMatch(TEST_STREAM === 'cometd' ? /session was re-established/ : /Pub\/Sub subscription failed: subscribing again from the last replay id/);
    expect((await mappingState(h.db, 'Account')).state).toBe('DATA_SYNCED');
  });

  it('a replay id outside the retention window falls back to a SystemModstamp re-read', async () => {
    await proc.kill9();
    for (let i = 0; i < 10; i++) await h.sf.conn.sobject('Account').update({ Id: ids[i], NumberOfEmployees: 7000 + i });
    const created = (await h.sf.conn.sobject('Account').create({ Name: 'Made while down' })) as { id: string };
    await admin('streaming/retention', { ms: 0 }); // every stored event (and our replay id) is now too old
    proc = h.spawn();
    await until(inSync, 'table in sync after the replay window expired', 90_000);
    expect((await h.db.query('select name from salesforce.account where sfid = $1', [created.id])).rows[0].name).toBe('Made while down');
    expect(proc.output()).toMatch(/outside the retention window/);
  });

  it('the drift sweep keeps its clock in the database: a sidecar started after the interval sweeps at once', async () => {
    await proc.kill9();
    // A row Salesforce never had (written by a sync session: not captured), and the last sweep long ago.
    // Only the sweep can remove it: no event, poll or re-read ever names it.
    const ghost = '001000000000GHSAAA';
    const c = await h.db.pool.connect();
    try {
      await c.query('begin');
      await c.query(`set local xmlbinary = 'hex'`);
      await c.query(`insert into salesforce.account (sfid, name, systemmodstamp) values ($1, 'ghost', '2020-01-01')`, [ghost]);
      await c.query(`update hc.sync_positions set drift_checked_at = now() - interval '2 hours'`);
      await c.query('commit');
    } finally {
      c.release();
    }
    proc = h.spawn();
    await until(async () => (await h.db.query('select count(*)::int n from salesforce.account where sfid = $1', [ghost])).rows[0].n === 0, 'the ghost row removed by the sweep');
    // The sweep records that it ran (after its repairs), so the next one is an interval later.
    await until(async () => (await h.db.query(`select drift_checked_at > now() - interval '1 minute' as fresh from hc.sync_positions`)).rows[0].fresh, 'sweep recorded');
    expect((await h.db.query(`select count(*)::int n from hc.sync_log where event = 'drift'`)).rows[0].n).toBeGreaterThan(0);
  });
});
