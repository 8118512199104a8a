// The lost-create lookup's find is kept (hc.outbound_found). Found by the 30-minute soak (seed 20261202,
// duplicated a-p1772): a create landed but its answer was lost; the next round's lookup found the record
// and sent the application's newer values to it as that create's update, whose answer was lost too. The
// round after looked the record up again, and it no longer held the values the create had sent (our
// own update had changed them), so the lookup missed it and the record was created a second time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup, until, queueEmpty, type Harness } from './harness.js';

let h: Harness;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged' });
  await h.startWriter({ callTimeoutMs: 2000, maxBackoffMs: 300 });
});
afterAll(async () => {
  await h?.close();
});

/** The next collections call lands but its answer is lost; every later one fails until cleared. */
function loseAnswerThenHold(): void {
  h.emu.injectFault({ kind: 'collections', action: 'drop-response', remaining: 1 });
  h.emu.injectFault({ kind: 'collections', status: 503, remaining: -1 });
}

describe('a create found by the lost-create lookup', { timeout: 120_000 }, () => {
  it('is taken as found in later rounds, even once our own update to it changed what it holds: never created twice', async () => {
    const name = `Found ${Date.now()}`;
    loseAnswerThenHold();
    const id = (await h.db.query(
      `insert into salesforce.account (name, phone, accountnumber, numberofemployees) values ($1, '111', 'A-1', 5) returning id`, [name],
    )).rows[0].id as number;
    const rec = await until(() => h.emu.records('Account').find((r) => r.Name === name), 'the create landed', 30_000);
    // The application changes most of what the create sent, while Salesforce is away.
    await h.db.query(`update salesforce.account set phone = '222', accountnumber = 'A-2', numberofemployees = 6 where id = $1`, [id]);
    // Salesforce is back for one call, whose answer is lost again: the lookup finds the record and the
    // newer values go to it as the create's update.
    h.emu.clearFaults();
    loseAnswerThenHold();
    await until(() => h.emu.records('Account').find((r) => r.Id === rec.Id && r.Phone === '222'), 'the update landed on the found record', 30_000);
    h.emu.clearFaults();
    const row = await until(async () => {
      const r = (await h.db.query(`select sfid, _hc_lastop from salesforce.account where id = $1`, [id])).rows[0];
      return r?.sfid && r._hc_lastop !== 'PENDING' && (await queueEmpty(h.db)) && r;
    }, 'row written back', 60_000);
    expect(h.emu.records('Account').filter((r) => r.Name === name)).toHaveLength(1);
    expect(row.sfid).toBe(rec.Id);
    expect(h.emu.records('Account').find((r) => r.Id === rec.Id)).toMatchObject({ Phone: '222', AccountNumber: 'A-2', NumberOfEmployees: 6 });
  });
});
