// One LISTEN session per sidecar process: the writer, the inbound reader, the connection supervisor and
// the dashboard's live updates all subscribe on it. Terminating that session (a Postgres restart, a
// failover, an over-eager idle reaper) brings one new session back, and every service hears its nudges
// again: each is checked by something only a nudge does within the time allowed (the safety-net timers
// are set far longer than the waits).
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { withDatabase } from '../support/global-setup.js';
import { setup, until, type Harness } from '../inbound/harness.js';
import type { SidecarProcess } from '../support/sidecar.js';

let h: Harness;
let p: SidecarProcess;

const alive = () => p.child.exitCode === null && p.child.signalCode === null;

/** Sessions of the test database, other than ours, whose last statement was LISTEN. */
async function listeners(): Promise<{ pid: number; application_name: string; query: string }[]> {
  return (
    await h.db.query(
      `select pid, application_name, query from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and query ~* '^\\s*listen\\s'
        order by pid`,
    )
  ).rows;
}

/** Each service's nudge, checked well inside the safety-net timers (all 120 s here). */
async function everyServiceHearsItsNudges(tag: string): Promise<void> {
  // The writer: <schema>.hc_trigger_log.
  const id = (await h.db.query(`insert into salesforce.account (name) values ($1) returning id`, [`Nudged ${tag}`])).rows[0].id;
  // Sent: the sfid is written back (_hc_lastop reads INSERTED, or SYNCED once a re-read touched the row).
  await until(async () => (await h.db.query('select sfid from salesforce.account where id = $1', [id])).rows[0].sfid, `writer nudged (${tag})`, 15_000);
  // The inbound reader: hc_control (a poll request is taken at once).
  await h.db.query(`select hc.poll_now('Account')`);
  await until(async () => (await h.db.query(`select requested from hc._mappings where object_name = 'Account'`)).rows[0].requested === null, `inbound nudged (${tag})`, 15_000);
  // The connection supervisor: hc_control (RECOVERY goes IDLE once Salesforce answers).
  await h.db.query('select hc.recover()');
  await until(async () => (await h.db.query('select state from hc.connections')).rows[0].state === 'IDLE', `connection supervisor nudged (${tag})`, 15_000);
}

beforeAll(async () => {
  h = await setup({ seed: { Account: 5 } });
  p = h.spawn({
    HC_LOG_LEVEL: 'info',
    // Far beyond this file's waits: only nudges can make the services act in time.
    HC_INBOUND_RECONCILE_MS: '120000',
    HC_CONNECTION_CHECK_MS: '120000',
  });
  await until(() => /hcsync running/.test(p.output()) || !alive(), 'sidecar running', 60_000);
  if (!alive()) throw new Error(`the sidecar exited:\n${p.output().slice(-3000)}`);
  await h.db.query('select hc.create_mapping($1, $2)', ['Account', { access: 'read_write', fields: { Id: {}, Name: {}, SystemModstamp: {}, IsDeleted: {} } }]);
  await until(async () => (await h.db.query(`select state from hc._mappings where object_name = 'Account'`)).rows[0]?.state === 'DATA_SYNCED', 'Account loaded', 60_000);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

it('a running sidecar holds one LISTEN session, and every service hears its nudges through it', async () => {
  const l = await listeners();
  expect(l.map((s) => s.application_name)).toEqual(['hcsync listen']);
  await everyServiceHearsItsNudges('first');
  expect((await listeners()).map((s) => s.pid)).toEqual(l.map((s) => s.pid));
}, 120_000);

it('after pg_terminate_backend of that session: one new session, the process up, every service hears its nudges again', async () => {
  const [before] = await listeners();
  const killed = await h.db.query('select pg_terminate_backend($1) as ok', [before.pid]);
  expect(killed.rows[0].ok).toBe(true);
  await until(async () => {
    const l = await listeners();
    return l.length === 1 && l[0].pid !== before.pid;
  }, 'a new listening session', 30_000);
  expect(alive()).toBe(true);
  await everyServiceHearsItsNudges('after terminate');
  const after = await listeners();
  expect(after).toHaveLength(1);
  expect(after[0].pid).not.toBe(before.pid);
  expect(p.output()).toMatch(/listening session lost: reconnecting/);
}, 120_000);

it('changes made while the session is down are caught up on reconnect (their NOTIFY was lost)', async () => {
  const [before] = await listeners();
  // The database refuses new sessions for a while: the listener cannot come back, and NOTIFYs sent now
  // reach nobody.
  // Our own sessions are opened first: no new one can be while the database refuses them.
  const admin = new pg.Client({ connectionString: withDatabase(h.db.url, 'postgres') });
  const app = new pg.Client({ connectionString: h.db.url });
  await admin.connect();
  await app.connect();
  let id: number;
  try {
    await admin.query(`alter database "${h.db.name}" allow_connections false`);
    await app.query('select pg_terminate_backend($1)', [before.pid]);
    await until(async () => (await app.query(`select count(*)::int n from pg_stat_activity where pid = $1`, [before.pid])).rows[0].n === 0, 'the listening session gone', 10_000);
    id = (await app.query(`insert into salesforce.account (name) values ('Written while deaf') returning id`)).rows[0].id;
    await app.query(`select hc.poll_now('Account')`);
  } finally {
    await admin.query(`alter database "${h.db.name}" allow_connections true`);
    await admin.end();
    await app.end();
  }
  await until(async () => (await listeners()).length === 1, 'listening again', 30_000);
  await until(async () => (await h.db.query('select sfid from salesforce.account where id = $1', [id])).rows[0].sfid, 'the missed change sent', 15_000);
  await until(async () => (await h.db.query(`select requested from hc._mappings where object_name = 'Account'`)).rows[0].requested === null, 'the missed poll request taken', 15_000);
  expect(alive()).toBe(true);
}, 120_000);
