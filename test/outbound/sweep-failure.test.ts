// The writer looks, when it registers, for entries an earlier writer left PENDING with no claim
// (hc.outbound_sweep_unclaimed). That look is not needed to send: when it fails, the writer registers
// anyway and sends, and the failure is logged.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { setup, until, type Harness } from './harness.js';

let h: Harness;

beforeAll(async () => {
  h = await setup();
  // Every call of the sweep fails.
  await h.db.query(`alter function hc.outbound_sweep_unclaimed(integer) rename to outbound_sweep_unclaimed_gone`);
});
afterAll(async () => {
  await h?.db.query(`alter function hc.outbound_sweep_unclaimed_gone(integer) rename to outbound_sweep_unclaimed`).catch(() => {});
  await h?.close();
});

it('a sweep that fails does not keep the writer from registering and sending', async () => {
  await h.startWriter();
  const id = (await h.db.query(`insert into salesforce.account (name) values ('Swept or not') returning id`)).rows[0].id;
  const row = await until(async () => {
    const r = (await h.db.query('select sfid, _hc_lastop from salesforce.account where id = $1', [id])).rows[0];
    return r._hc_lastop === 'INSERTED' && r;
  }, 'insert written back', 30_000);
  expect(row.sfid).toMatch(/^001/);
}, 60_000);
