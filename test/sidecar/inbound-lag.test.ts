// hcsync_inbound_lag_seconds on a mapping fed by change events: it says how long ago the mapping last
// heard from Salesforce, a poll or a batch of events applied. It used to count from the last poll only,
// so on a CDC mapping (never polled while events arrive) it climbed for ever while every change arrived
// within a second.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../dashboard/harness.js';
import { login } from '../emulator/helpers.js';
import { until } from '../support/until.js';

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard();
}, 240_000);
afterAll(async () => {
  await d?.stop();
});

const lag = async (): Promise<number> => {
  const text = await (await fetch(`${d.base}/metrics`)).text();
  const m = /^hcsync_inbound_lag_seconds\{[^}]*object="Account"[^}]*\} ([\d.e+-]+)$/m.exec(text);
  if (!m) throw new Error(`no hcsync_inbound_lag_seconds for Account in:\n${text}`);
  return Number(m[1]);
};

describe('hcsync_inbound_lag_seconds', () => {
  it('stays under two seconds on a CDC mapping while its events keep arriving, long after the last poll', async () => {
    const sf = await login(d.emu);
    const ids = d.emu.records('Account').map((r) => r.Id as string);
    // The stream is up once a change made in Salesforce arrives.
    await sf.sobject('Account').update({ Id: ids[0], Name: 'Lag 0' });
    await until(async () => (await d.db.query(`select 1 from salesforce.account where name = 'Lag 0'`)).rowCount, 'the first change event applied', 60_000, 100)
      .catch((e) => { throw new Error(`${e.message}\n${d.sidecar.output().slice(-3000)}`); });
    const started = Date.now();
    let n = 0;
    // Six seconds of changes in Salesforce, one every 300 ms; each reaches Postgres through the stream.
    while (Date.now() - started < 6_000) {
      n++;
      await sf.sobject('Account').update({ Id: ids[n % ids.length], Name: `Lag ${n}` });
      await new Promise((r) => setTimeout(r, 300));
    }
    await until(async () => (await d.db.query(`select 1 from salesforce.account where name = $1`, [`Lag ${n}`])).rowCount, 'the last change applied', 30_000, 100);
    const value = await lag();
    // The mapping has not been polled for all that time (a poll would also reset the figure).
    const sincePoll = Number((await d.db.query(`select extract(epoch from now() - last_poll_at) as s from hc._mappings where object_name = 'Account'`)).rows[0].s ?? Infinity);
    expect(sincePoll).toBeGreaterThan(5);
    expect(value).toBeLessThan(2);
    expect(value).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
