// Two sidecar processes against one database: only the inbound leader loads, subscribes and applies;
// the other stands by. kill -9 of the leader in the middle of a stream of changes: the standby takes
// over from the committed replay id, and every change event is applied exactly once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup, until, type Harness, mapAccountWithWitness } from './harness.js';
import { streamSubscribes, type SidecarProcess } from '../support/sidecar.js';

let h: Harness;
let a: SidecarProcess;
let b: SidecarProcess;
let c: SidecarProcess;
let ids: string[];
const fields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees'];
const LEADS = /inbound leader of this connection/;
let env: Record<string, string>;

async function inSync(): Promise<boolean> {
  const sf = (await h.sf.conn.query<{ Id: string; NumberOfEmployees: number | null }>('SELECT Id, NumberOfEmployees FROM Account', { autoFetch: true })).records;
  const pg = new Map((await h.db.query('select sfid, numberofemployees from salesforce.account')).rows.map((r) => [r.sfid, r]));
  return sf.length === pg.size && sf.every((r) => pg.get(r.Id)?.numberofemployees === (r.NumberOfEmployees ?? null));
}

const leaderPid = async () => (await h.db.query('select pid from hc.inbound_leaders')).rows[0]?.pid as number | null;

beforeAll(async () => {
  h = await setup({ seed: { Account: 20 } });
  env = { HC_LOG_LEVEL: 'info', HC_INBOUND_STANDBY_MS: '500' };
  a = h.spawn(env);
  await until(async () => LEADS.test(a.output()), 'first sidecar leads', 60_000);
  b = h.spawn(env);
  await until(async () => /standing by/.test(b.output()), 'second sidecar stands by', 60_000);
  ids = await mapAccountWithWitness(h, fields);
}, 180_000);
afterAll(async () => {
  await a?.kill9();
  await b?.kill9();
  await c?.kill9();
  await h?.close();
});

describe('two sidecars, one connection', () => {
  it('only the leader loads and subscribes; the standby does no inbound work', async () => {
    expect(LEADS.test(b.output())).toBe(false);
    expect((await h.db.query(`select count(*)::int n from hc.sync_log where event = 'load'`)).rows[0].n).toBe(1);
    expect(streamSubscribes(h.emu)).toBe(1);
    expect(await leaderPid()).toBeTruthy();
    // A change arrives once, through the leader.
    await h.sf.conn.sobject('Account').update({ Id: ids[0], NumberOfEmployees: 123 });
    await until(async () => (await h.db.query('select count(*)::int n from public.applied where n = 123')).rows[0].n === 1, 'change applied');
  });

  it('kill -9 of the leader mid-stream: the standby takes over, nothing lost, nothing applied twice', async () => {
    const before = await leaderPid();
    const stream = (async () => {
      for (let i = 0; i < 60; i++) {
        await h.sf.conn.sobject('Account').update({ Id: ids[i % ids.length], NumberOfEmployees: 1000 + i });
        await new Promise((r) => setTimeout(r, 20)); // a steady stream, still going when the leader dies
      }
    })();
    await until(async () => (await h.db.query('select count(*)::int n from public.applied where n >= 1000')).rows[0].n >= 10, 'some events applied');
    await a.kill9();
    const appliedBeforeKill = (await h.db.query('select count(*)::int n from public.applied where n >= 1000')).rows[0].n;
    await stream;
    await until(async () => LEADS.test(b.output()), 'standby takes the lead', 30_000);
    const after = await until(leaderPid, 'a new leader session');
    expect(after).not.toBe(before);
    await until(inSync, 'table in sync under the new leader', 90_000);
    const dup = await h.db.query('select sfid, n, count(*)::int c from public.applied where n >= 1000 group by 1, 2 having count(*) > 1');
    expect(dup.rows).toEqual([]);
    expect((await h.db.query('select count(*)::int c from public.applied where n >= 1000')).rows[0].c).toBe(60);
    expect(appliedBeforeKill).toBeLessThan(60);
    console.log(`leader killed after ${appliedBeforeKill} of 60 change events; the standby applied the rest`);
    // The new leader did not load again: it resumed from the positions in the database.
    expect((await h.db.query(`select count(*)::int n from hc.sync_log where event = 'load'`)).rows[0].n).toBe(1);
  });

  it("a leader whose lock session is cut stops and stands by; the lead moves on and nothing is applied twice", async () => {
    c = h.spawn(env);
    await until(async () => /standing by/.test(c.output()), 'third sidecar stands by', 60_000);
    const before = (await h.db.query('select pid, epoch from hc.inbound_leaders')).rows[0];
    await h.db.query('delete from public.applied');
    const stream = (async () => {
      for (let i = 0; i < 40; i++) await h.sf.conn.sobject('Account').update({ Id: ids[i % ids.length], NumberOfEmployees: 3000 + i });
    })();
    await until(async () => (await h.db.query('select count(*)::int n from public.applied where n >= 3000')).rows[0].n >= 5, 'some events applied');
    // The leader process lives on, but its lock session is gone (a network cut, an idle-session timeout).
    await h.db.query('select pg_terminate_backend($1)', [before.pid]);
    await stream;
    await until(async () => /inbound leadership lost/.test(b.output()), 'the old leader notices');
    // A different session holds the lock (the terminated one keeps it until it has exited) and its
    // take-over committed a new epoch (the lock is visible a moment before that commit).
    const after = await until(async () => (await h.db.query('select pid, epoch from hc.inbound_leaders where pid is not null and pid <> $1 and epoch > $2', [before.pid, before.epoch])).rows[0], 'a new leadership');
    expect(Number(after.epoch)).toBeGreaterThan(Number(before.epoch));
    await until(inSync, 'table in sync under the new leadership', 90_000);
    const dup = await h.db.query('select sfid, n, count(*)::int c from public.applied where n >= 3000 group by 1, 2 having count(*) > 1');
    expect(dup.rows).toEqual([]);
    expect((await h.db.query('select count(*)::int c from public.applied where n >= 3000')).rows[0].c).toBe(40);
  });
});
