// A create whose answer was lost (it landed in Salesforce, we never heard) is sent again only for what
// Salesforce does not hold yet. Found by the soak (seed 20261202, lost 12): the create of an upsert
// mapping was re-sent whole, as an upsert with the values the application had inserted, after another
// user had changed the record in Salesforce; the older values overwrote the newer ones, and came back to
// Postgres as the settled values.
//   upsert      the record is found by its external id, created by us since the attempt: it is adopted,
//               and only the fields the application changed since the attempt are sent;
//   no upsert   the same once the lost-create lookup has found the record;
//   later edit  a field the application changed after the lost create still reaches Salesforce.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { setup, until, queueEmpty, type Harness } from './harness.js';

let h: Harness;
let n = 0;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged', upsert: true });
  await h.startWriter({ callTimeoutMs: 2000, maxBackoffMs: 300 });
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => {
  h.emu.clearFaults();
  n++;
});

/** Makes the next collections call land but lose its answer, and every later one fail, until `release`. */
function loseAnswerThenHold(): void {
  h.emu.injectFault({ kind: 'collections', action: 'drop-response', remaining: 1 });
  h.emu.injectFault({ kind: 'collections', status: 503, remaining: -1 });
}

/** Another Salesforce user's change (a single-record call, not collections: not faulted). */
async function otherUserUpdates(id: string, values: Record<string, unknown>): Promise<void> {
  await h.ctx.sf.conn.sobject('Account').update({ Id: id, ...values });
}

async function settled(id: number): Promise<{ sfid: string; _hc_lastop: string }> {
  return until(async () => {
    const r = (await h.db.query(`select sfid, _hc_lastop from salesforce.account where id = $1`, [id])).rows[0];
    return r?.sfid && r._hc_lastop !== 'PENDING' && (await queueEmpty(h.db)) && r;
  }, 'row written back', 60_000);
}

describe('a create whose answer was lost is not sent again over newer Salesforce values', { timeout: 120_000 }, () => {
  it('upsert mapping: another user changes the record before the retry; their value stays', async () => {
    const ext = `LA-${n}-${Date.now()}`;
    loseAnswerThenHold();
    const id = (await h.db.query(`insert into salesforce.account (name, phone, external_id__c) values ($1, '111', $2) returning id`, [`App ${n}`, ext])).rows[0].id as number;
    // The create landed (its answer did not reach us).
    const rec = await until(() => h.emu.records('Account').find((r) => r.External_Id__c === ext), 'the create landed', 30_000);
    await otherUserUpdates(String(rec.Id), { Name: `Theirs ${n}`, Phone: '222' });
    h.emu.clearFaults();
    const row = await settled(id);
    expect(row.sfid).toBe(rec.Id);
    expect(row._hc_lastop).not.toBe('FAILED');
    const now = h.emu.records('Account').filter((r) => r.External_Id__c === ext);
    expect(now).toHaveLength(1);
    expect(now[0].Name).toBe(`Theirs ${n}`);
    expect(now[0].Phone).toBe('222');
  });

  it('upsert mapping: a field the application changed after the lost create is still sent', async () => {
    const ext = `LB-${n}-${Date.now()}`;
    loseAnswerThenHold();
    const id = (await h.db.query(`insert into salesforce.account (name, phone, external_id__c) values ($1, '111', $2) returning id`, [`App ${n}`, ext])).rows[0].id as number;
    const rec = await until(() => h.emu.records('Account').find((r) => r.External_Id__c === ext), 'the create landed', 30_000);
    await otherUserUpdates(String(rec.Id), { Name: `Theirs ${n}` });
    await h.db.query(`update salesforce.account set phone = '333' where id = $1`, [id]);
    h.emu.clearFaults();
    await settled(id);
    const now = h.emu.records('Account').filter((r) => r.External_Id__c === ext);
    expect(now).toHaveLength(1);
    expect(now[0].Name).toBe(`Theirs ${n}`); // not sent again
    expect(now[0].Phone).toBe('333'); // the application's later change arrived
  });

  it('upsert mapping: a record that existed before the attempt is upserted again (the answer cannot tell whether it landed)', async () => {
    const ext = `LC-${n}-${Date.now()}`;
    const pre = (await h.ctx.sf.conn.sobject('Account').create({ Name: `Before ${n}`, External_Id__c: ext })) as { id: string };
    // Created minutes "before" the attempt: the lookup must not take it for our create.
    const r = h.emu.server.org.table(h.emu.server.org.object('Account')!).get(pre.id)!;
    r.CreatedDate = new Date(Date.now() - 3_600_000).toISOString();
    loseAnswerThenHold();
    const id = (await h.db.query(`insert into salesforce.account (name, external_id__c) values ($1, $2) returning id`, [`App ${n}`, ext])).rows[0].id as number;
    await until(() => h.emu.records('Account').find((x) => x.External_Id__c === ext && x.Name === `App ${n}`), 'the upsert landed', 30_000);
    h.emu.clearFaults();
    const row = await settled(id);
    expect(row.sfid).toBe(pre.id);
    const now = h.emu.records('Account').filter((x) => x.External_Id__c === ext);
    expect(now).toHaveLength(1);
    expect(now[0].Name).toBe(`App ${n}`);
  });
});
