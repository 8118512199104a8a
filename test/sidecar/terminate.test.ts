// The sidecar's database sessions are terminated under it (pg_terminate_backend, as a Postgres restart,
// a failover or idle_session_timeout would) while it works: during a Bulk 2.0 load (the staging
// session is held across the Salesforce calls that fetch the pages), during the drift sweep's id
// listing (held the same way), and while the writer sends. The process stays up and the work completes.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { setup, until, type Harness } from '../inbound/harness.js';
import type { SidecarProcess } from '../support/sidecar.js';

// Above the Bulk threshold (10,000): the load reads through Bulk 2.0 into a staging table.
const ROWS = 10_050;
// The drift sweep's interval: a sweep that failed must run again long before the next one is due.
const DRIFT_SECONDS = 45;

let h: Harness;
let p: SidecarProcess;

const alive = () => p.child.exitCode === null && p.child.signalCode === null;
const crashed = () => /Unhandled 'error' event|uncaughtException/.test(p.output());

/** Terminates every session of the sidecar with this application_name; how many there were. */
async function terminate(app: string): Promise<number> {
  const r = await h.db.query(
    `select count(*) filter (where pg_terminate_backend(pid))::int n from pg_stat_activity
      where datname = current_database() and application_name = $1 and pid <> pg_backend_pid()`,
    [app],
  );
  return r.rows[0].n;
}

beforeAll(async () => {
  h = await setup({ seed: { Account: ROWS } });
  p = h.spawn({
    HC_LOG_LEVEL: 'info',
    HC_BULK_PAGE_SIZE: '1000',
    HC_DRIFT_SECONDS: String(DRIFT_SECONDS),
    HC_RECONCILE_SECONDS: '0', // every sweep lists the ids (the held session)
    HC_INBOUND_STANDBY_MS: '500',
  });
  await until(() => /hcsync running/.test(p.output()), 'sidecar running', 60_000).catch((e) => {
    throw new Error(`${(e as Error).message}\n${p.output().slice(-3000)}`);
  });
}, 120_000);

afterAll(async () => {
  await h?.close();
});

it('a terminated staging session during a Bulk load: the process stays up and the load completes', async () => {
  // Every Salesforce call takes a while, so the staging session waits between pages.
  h.emu.setLatency(150);
  await h.db.query('select hc.create_mapping($1, $2)', ['Account', { access: 'read_write', fields: { Id: {}, Name: {}, SystemModstamp: {}, IsDeleted: {} } }]);
  await until(async () => {
    const r = await h.db.query(`select state, (progress->>'rows')::int rows from hc._mappings where object_name = 'Account'`);
    return r.rows[0]?.state === 'POLLING_SF_BULK' && r.rows[0].rows > 0 && r.rows[0].rows < ROWS;
  }, 'the Bulk load under way', 120_000, 10);
  expect(await terminate('hcsync sync')).toBeGreaterThan(0);
  await until(async () => (await h.db.query(`select state from hc._mappings where object_name = 'Account'`)).rows[0].state === 'DATA_SYNCED' || !alive(), 'load done', 180_000);
  expect(crashed()).toBe(false);
  expect(alive()).toBe(true);
  expect((await h.db.query('select count(*)::int n, count(distinct sfid)::int d from salesforce.account')).rows[0]).toEqual({ n: ROWS, d: ROWS });
}, 300_000);

it('a terminated session during the drift sweep\'s id listing: the process stays up and the sweep runs again at once', async () => {
  h.emu.setLatency(300);
  // The listing session is the one whose last statement made the listing table.
  await until(async () => {
    const r = await h.db.query(`select 1 from pg_stat_activity where datname = current_database() and application_name = 'hcsync sync' and query ilike '%hc_drift%'`);
    return r.rows.length > 0 || !alive();
  }, 'the drift sweep listing ids', (DRIFT_SECONDS + 60) * 1000, 10);
  const cut = new Date();
  expect(await terminate('hcsync sync')).toBeGreaterThan(0);
  // The next sweep would be due DRIFT_SECONDS later; the failed one runs again after a short backoff.
  await until(async () => {
    const r = await h.db.query(`select drift_checked_at from hc.sync_positions p join hc._mappings m on m.id = p.mapping_id where m.object_name = 'Account'`);
    return (r.rows[0]?.drift_checked_at && r.rows[0].drift_checked_at > cut) || !alive();
  }, 'the sweep done again', (DRIFT_SECONDS - 15) * 1000);
  expect(crashed()).toBe(false);
  expect(alive()).toBe(true);
}, 300_000);

it('every session of the sidecar terminated in turn while the writer sends: the process stays up and each row lands once', async () => {
  h.emu.setLatency(200);
  const apps = ['hcsync sync', 'hcsync writer', 'hcsync inbound leader', 'hcsync writer listen', 'hcsync inbound listen', 'hcsync connection'];
  for (const [i, app] of apps.entries()) {
    // A wave of application writes, then the session cut while the writer holds some of them.
    await h.db.query(`insert into salesforce.account (name) select 'Cut ' || g from generate_series($1::int, $2::int) g`, [i * 50 + 1, i * 50 + 50]);
    await until(async () => (await h.db.query('select count(*)::int n from hc._outbound_claims')).rows[0].n > 0 || !alive(), 'writes in flight', 60_000, 10);
    await terminate(app);
  }
  h.emu.setLatency(0);
  await until(async () => (await h.db.query(`select count(*)::int n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n === 0 || !alive(), 'writes done', 120_000);
  expect(crashed()).toBe(false);
  expect(alive()).toBe(true);
  const outcomes = await h.db.query(`select state, count(*)::int n, min(sf_message) m from (select state, sf_message from salesforce._trigger_log
                                     union all select state, sf_message from salesforce._trigger_log_archive) x group by state order by state`);
  expect(outcomes.rows.filter((r) => r.state !== 'SUCCESS' && r.state !== 'MERGED')).toEqual([]);
  const names = new Map<string, number>();
  for (const r of h.emu.records('Account')) if (String(r.Name).startsWith('Cut ')) names.set(String(r.Name), (names.get(String(r.Name)) ?? 0) + 1);
  expect(names.size).toBe(300);
  expect([...names].filter(([, n]) => n > 1)).toEqual([]);
  const rows = (await h.db.query(`select count(*)::int n, count(sfid)::int s from salesforce.account where name like 'Cut %'`)).rows[0];
  expect(rows).toEqual({ n: 300, s: 300 });
}, 300_000);
