// The LISTEN session survives its connection being killed and the database refusing connections for
// longer than pg-listen's default 3 s give-up (the library it replaced): it keeps trying, reconnects,
// runs the catch-up callback, and delivers nudges again.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { listen, type Listener } from '../../sidecar/db/notifier.js';
import type { Logger } from '../../sidecar/log.js';
import { until } from './wait.js';

let db: TestDb;
let l: Listener | undefined;

beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await l?.close();
  await db?.drop();
});

it('reconnects after its backend is terminated, catches up, and hears the quoted channel again', async () => {
  const got: string[] = [];
  let connects = 0;
  // Failed attempts to listen again, as logged: the positive signal that it keeps trying.
  const refused: number[] = [];
  const log = {
    warn: (o: unknown, msg?: string) => {
      if (msg === 'cannot listen to the database yet: retrying') refused.push(Date.now());
    },
    info: () => {},
    error: () => {},
  } as unknown as Logger;
  l = await listen(db.url, ['salesforce.hc_trigger_log'], (ch, payload) => got.push(`${ch}:${payload}`), {
    log,
    onConnect: () => connects++,
    heartbeatMs: 200,
    maxBackoffMs: 200,
    application_name: 'hcsync listen test',
  });
  expect(connects).toBe(1);
  await db.query(`select pg_notify('salesforce.hc_trigger_log', 'ping')`);
  await until(async () => got.length === 1, 'first nudge');

  // An outage longer than pg-listen's default 3 s give-up: the database refuses connections for 4 s.
  const admin = await import('pg').then((m) => new m.default.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') }));
  await admin.connect();
  try {
    await admin.query(`alter database "${db.name}" allow_connections false`);
    await db.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'hcsync listen test'`);
    // Still trying after 4 s of refusals (pg-listen had given up after 3 s).
    await until(async () => refused.length >= 2 && refused[refused.length - 1] - refused[0] >= 4000, 'attempts refused for 4 s', 20_000);
    expect(connects).toBe(1);
    await admin.query(`alter database "${db.name}" allow_connections true`);
  } finally {
    await admin.end();
  }
  await until(async () => connects === 2, 'reconnect after the outage');
  await db.query(`select pg_notify('salesforce.hc_trigger_log', 'ping')`);
  await until(async () => got.length === 2, 'nudge after reconnect');
  expect(got).toEqual(['salesforce.hc_trigger_log:ping', 'salesforce.hc_trigger_log:ping']);
});

it('one session serves every subscriber: each hears its channels, each gets null after a reconnect, an unsubscribed channel is dropped', async () => {
  const { createListener } = await import('../../sidecar/db/notifier.js');
  const n = await createListener(db.url, { heartbeatMs: 200, maxBackoffMs: 200, application_name: 'hcsync shared listen test' });
  try {
    const a: (string | null)[] = [];
    const b: (string | null)[] = [];
    const c: (string | null)[] = [];
    await n.subscribe('hc_control', (p) => a.push(p));
    await n.subscribe('hc_control', (p) => b.push(p));
    const off = await n.subscribe('salesforce.hc_trigger_log', (p) => c.push(p));
    // Each subscriber's first call is the catch-up: its LISTEN is in place, re-read.
    expect([a, b, c]).toEqual([[null], [null], [null]]);
    const sessions = async () =>
      (await db.query(`select pid, query from pg_stat_activity where application_name = 'hcsync shared listen test'`)).rows;
    expect((await sessions()).map((s) => s.pid)).toEqual([n.pid()]);

    await db.query(`select pg_notify('hc_control', 'salesforce'), pg_notify('salesforce.hc_trigger_log', 'ping')`);
    await until(async () => a.length === 2 && b.length === 2 && c.length === 2, 'both channels heard');
    expect([a[1], b[1], c[1]]).toEqual(['salesforce', 'salesforce', 'ping']);

    const before = n.pid();
    await db.query('select pg_terminate_backend($1)', [before]);
    await until(async () => a.length === 3 && b.length === 3 && c.length === 3, 'catch-up after the reconnect');
    expect([a[2], b[2], c[2]]).toEqual([null, null, null]);
    expect(n.pid()).not.toBe(before);
    // The heartbeat re-issues LISTEN: the session's last statement says what it is.
    await until(async () => (await sessions()).some((s) => /^LISTEN /.test(s.query)), 'LISTEN as the last statement');

    off();
    await until(async () => !(await sessions()).some((s) => /hc_trigger_log/.test(s.query)), 'the channel no longer listened to');
    await db.query(`select pg_notify('salesforce.hc_trigger_log', 'ping'), pg_notify('hc_control', '')`);
    await until(async () => a.length === 4, 'hc_control still heard');
    expect(c).toHaveLength(3);
  } finally {
    await n.close();
  }
});
