// The sidecar's sessions are terminated again and again while it starts (pg_terminate_backend, as a
// Postgres restart or failover would): the start is made again and the process runs, instead of exiting
// 1 with "terminating connection due to administrator command" (the soak's one sidecar crash).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { setup, until, type Harness } from '../inbound/harness.js';

let h: Harness;

beforeAll(async () => {
  h = await setup({ seed: { Account: 20 } });
}, 120_000);

afterAll(async () => {
  await h?.close();
});

it('sessions terminated during the start: the sidecar starts again and runs', async () => {
  let stop = false;
  let terminated = 0;
  // Terminate every hcsync session as soon as it appears, for the first 4 s of the start (each call to
  // Salesforce slowed, so the start spans the storm).
  h.emu.setLatency(100);
  const storm = (async () => {
    // (4 s from the process's first session: on a busy machine Node alone can take seconds to start)
    let end = Date.now() + 60_000;
    while (!stop && Date.now() < end) {
      const r = await h.db.query(
        `select count(*) filter (where pg_terminate_backend(pid))::int n from pg_stat_activity
          where datname = current_database() and application_name like 'hcsync%' and pid <> pg_backend_pid()`,
      );
      if (terminated === 0 && r.rows[0].n > 0) end = Date.now() + 4000;
      terminated += r.rows[0].n;
    }
  })();
  const p = h.spawn({ HC_LOG_LEVEL: 'info' });
  try {
    await storm;
    h.emu.setLatency(0);
    expect(terminated).toBeGreaterThan(0);
    await until(() => /hcsync running/.test(p.output()) || p.child.exitCode !== null, 'sidecar running or gone', 90_000);
    expect(p.child.exitCode, p.output().slice(-2000)).toBeNull();
    expect(p.output()).not.toMatch(/Unhandled 'error' event|uncaughtException/);
  } finally {
    stop = true;
    await p.stop();
  }
}, 180_000);
