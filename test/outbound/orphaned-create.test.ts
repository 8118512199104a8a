// A create still running in Salesforce when its sidecar dies (kill -9 while the call is in flight) lands
// after the next sidecar has started. Found by the convergence test (seed 7: a slow answer, a kill, the
// record created twice, the second written back and the first read in as a second row). The next
// sidecar's lookup runs before the create has landed and finds nothing; it must not send the create
// again at once, but wait a moment for it (hc._outbound_holds: 4 s after that send) and find it then.
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { setup, spawnSidecar, queueEmpty, until, type Harness } from './harness.js';

let h: Harness | undefined;
let child: ChildProcess | undefined;

afterEach(async () => {
  child?.kill('SIGKILL');
  await h?.close();
  h = undefined;
});

describe.each([
  { upsert: false, label: 'without an upsert field' },
  { upsert: true, label: 'with an upsert field' },
])('a create in flight when its sidecar is killed, $label', ({ upsert }) => {
  it('lands once: the next sidecar waits for it instead of creating it again', async () => {
    h = await setup({ algorithm: 'merged', upsert });
    // The create is held 3 s by Salesforce before it is made.
    h.emu.injectFault({ kind: 'collections', action: 'delay', delayMs: 3000, remaining: 1 });
    await h.db.query(`insert into salesforce.account (name, external_id__c) values ('Orphan', case when $1 then 'orphan-1' end)`, [upsert]);
    child = spawnSidecar(h.env);
    await until(async () => (await h!.db.query(`select count(*)::int n from hc._outbound_attempts`)).rows[0].n > 0, 'the create sent', 60_000);
    const sentAt = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    expect(h.emu.records('Account').filter((r) => r.Name === 'Orphan')).toHaveLength(0); // not landed yet
    child = spawnSidecar(h.env);
    await until(() => queueEmpty(h!.db), 'the create recorded', 120_000);
    // The first call has been made by now (its 3 s are over): had the create been sent again, its
    // record would be the second.
    await until(() => Date.now() > sentAt + 4000 && h!.emu.records('Account').some((r) => r.Name === 'Orphan'), 'the first call made', 30_000);
    const recs = h.emu.records('Account').filter((r) => r.Name === 'Orphan');
    expect(recs).toHaveLength(1);
    const rows = (await h.db.query(`select sfid, _hc_lastop from salesforce.account where name = 'Orphan'`)).rows;
    expect(rows.map((r) => r.sfid)).toEqual([recs[0].Id]);
    // With an upsert field the record's change event may reach the row first (matched by its external
    // id), and the create is then recorded as an update of it.
    // (or SYNCED: the record's change event may be applied after the write-back)
    expect(upsert ? ['INSERTED', 'UPDATED', 'SYNCED'] : ['INSERTED', 'SYNCED']).toContain(rows[0]._hc_lastop);
  }, 180_000);
});

describe('an update in flight when its sidecar is killed', () => {
  it('does not land over a newer value: the next sidecar waits before sending the record again', async () => {
    h = await setup({ algorithm: 'merged' });
    // The late call's echo, 200 arriving while 300 waits, is told apart from a Salesforce edit by the
    // conflict policy only; pg_wins keeps this test about the wait.
    await h.db.query(`update hc._mappings set config = config || '{"conflict_policy": "pg_wins"}'`);
    await h.db.query(`insert into salesforce.account (name, phone) values ('Late', '100')`);
    child = spawnSidecar(h.env);
    await until(async () => (await queueEmpty(h!.db)) && h!.emu.records('Account').some((r) => r.Name === 'Late'), 'created', 60_000);
    // The update is held 3 s by Salesforce before it is made; its sidecar dies meanwhile, and the
    // application writes a newer value.
    h.emu.injectFault({ kind: 'collections', action: 'delay', delayMs: 3000, remaining: 1 });
    await h.db.query(`update salesforce.account set phone = '200' where name = 'Late'`);
    await until(async () => (await h!.db.query(`select count(*)::int n from hc._outbound_claims`)).rows[0].n > 0, 'the update sent', 60_000);
    const sentAt = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    await h.db.query(`update salesforce.account set phone = '300' where name = 'Late'`);
    child = spawnSidecar(h.env);
    await until(() => queueEmpty(h!.db), 'the newer value sent', 120_000);
    // The first call has been made by now (its 3 s are over).
    await until(() => Date.now() > sentAt + 4000, 'the first call made', 30_000);
    expect(h.emu.records('Account').filter((r) => r.Name === 'Late').map((r) => r.Phone)).toEqual(['300']);
  }, 180_000);
});
