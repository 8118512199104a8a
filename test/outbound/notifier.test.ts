// The LISTEN helper survives its connection being killed and the database refusing connections for
// longer than pg-listen's default 3 s give-up: it reconnects, runs the catch-up callback, and delivers
// nudges again.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { listen, type Listener } from '../../sidecar/db/notifier.js';
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
  l = await listen(db.url, ['salesforce.hc_trigger_log'], (ch, payload) => got.push(`${ch}:${payload}`), {
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
    await new Promise((r) => setTimeout(r, 4000));
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
