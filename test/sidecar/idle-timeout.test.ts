// A database with idle_session_timeout (a DBA's setting, PostgreSQL 14+) ends every session that waits
// idle longer than that. The sidecar's pooled sessions come and go with it; the sessions that hold its
// locks (the inbound leader's, the writer's claimer) must not: losing them would hand the lead and the
// claimed writes around every few seconds. The sync keeps working in both directions.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mapAccountWithWitness, setup, until, type Harness } from '../inbound/harness.js';
import type { SidecarProcess } from '../support/sidecar.js';

let h: Harness;
let p: SidecarProcess;
const alive = () => p.child.exitCode === null && p.child.signalCode === null;

beforeAll(async () => {
  h = await setup({ seed: { Account: 5 } });
  await h.db.query(`alter database "${h.db.name}" set idle_session_timeout = '1500ms'`);
  p = h.spawn({ HC_LOG_LEVEL: 'info' });
  await until(() => /hcsync running/.test(p.output()), 'sidecar running', 60_000);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

it('with idle_session_timeout the lock sessions stay, the process stays up, and changes flow both ways', async () => {
  const ids = await mapAccountWithWitness(h, ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees']);
  const leader = (await h.db.query('select pid, epoch from hc.inbound_leaders')).rows[0];
  // Several timeouts' worth of quiet.
  await new Promise((r) => setTimeout(r, 5000));
  await h.sf.conn.sobject('Account').update({ Id: ids[0], NumberOfEmployees: 77 });
  await until(async () => (await h.db.query('select 1 from public.applied where n = 77')).rows.length > 0, 'the Salesforce change applied');
  await h.db.query(`insert into salesforce.account (name) values ('Idle 1'), ('Idle 2')`);
  await until(async () => (await h.db.query(`select count(sfid)::int n from salesforce.account where name like 'Idle %'`)).rows[0].n === 2, 'the writes sent');
  expect(alive()).toBe(true);
  // The same leadership and one writer registration all along.
  expect((await h.db.query('select pid, epoch from hc.inbound_leaders')).rows[0]).toEqual(leader);
  expect(p.output().match(/writer claimers registered/g)).toHaveLength(1);
  expect(p.output()).not.toMatch(/inbound leadership lost/);
}, 180_000);
