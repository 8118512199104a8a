// The Sync Explorer's API against a real sidecar, emulator and Postgres: rows by sync state and by
// search in id, sfid, _hc_err and name; one row whole; and the same record read from Salesforce on
// demand, one API call per lookup (hc.api_calls), with the fields that differ marked. Reading the rows
// costs no call at all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VIEWER, startDashboard, type Dashboard } from '../dashboard/harness.js';
import { until } from '../support/until.js';
import { login } from '../emulator/helpers.js';
import { withoutChangeEvents } from '../inbound/harness.js';

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard();
}, 240_000);
afterAll(async () => {
  await d?.stop();
});

/** Record reads (GET /sobjects/Account/<id>) in the ledger. */
const calls = async () => Number((await d.db.query(`select count(*) from hc.api_calls where method = 'GET' and path ~ '/sobjects/Account/[0-9A-Za-z]{15,18}'`)).rows[0].count);
const json = async (path: string) => {
  const res = await d.api(path);
  expect([path, res.status]).toEqual([path, 200]);
  return res.json();
};

describe('the Sync Explorer API', () => {
  it('filters by sync state and searches id, sfid, _hc_err and name, reading no Salesforce', async () => {
    // One row Salesforce's validation rule refuses (Name INVALID): FAILED with its error.
    const { rows: [bad] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'exp-1') returning id`);
    await until(async () => (await d.db.query(`select 1 from salesforce.account where id = $1 and _hc_lastop = 'FAILED'`, [bad.id])).rowCount, 'the failed row', 60_000, 200);
    await until(async () => (await d.db.query(`select 1 from hc.api_calls`)).rowCount, 'the ledger flushed', 10_000, 100);
    const before = await calls();

    const all = await json('/api/explorer/Account');
    expect(all.length).toBe(6);
    expect(all[0]).toMatchObject({ id: bad.id, name: 'INVALID', _hc_lastop: 'FAILED', sfid: null });
    expect(all[0]._hc_err).toMatch(/not allowed/);
    expect(Object.keys(all[0]).sort()).toEqual(['_hc_err', '_hc_lastop', 'id', 'name', 'sfid', 'systemmodstamp']);

    expect((await json('/api/explorer/Account?state=FAILED')).map((r: { id: number }) => r.id)).toEqual([bad.id]);
    expect((await json('/api/explorer/Account?state=SYNCED')).length).toBe(5);
    expect((await json(`/api/explorer/Account?q=${bad.id}`)).map((r: { id: number }) => r.id)).toEqual([bad.id]);
    expect((await json('/api/explorer/Account?q=not%20allowed')).map((r: { id: number }) => r.id)).toEqual([bad.id]);
    const synced = all.find((r: { sfid: string | null }) => r.sfid);
    expect((await json(`/api/explorer/Account?q=${synced.sfid.toLowerCase()}`)).map((r: { id: number }) => r.id)).toEqual([synced.id]);
    expect((await json(`/api/explorer/Account?q=${encodeURIComponent(synced.name.toUpperCase())}`)).map((r: { id: number }) => r.id)).toContain(synced.id);
    // LIKE's wildcards are searched for, not used.
    expect(await json('/api/explorer/Account?q=%25')).toEqual([]);
    expect((await d.api('/api/explorer/Account?limit=0')).status).toBe(400);
    expect((await d.api('/api/explorer/Nope')).status).toBe(400);
    // The viewer reads it; no token gets 401.
    expect((await d.api('/api/explorer/Account', { as: VIEWER })).status).toBe(200);
    expect((await d.api('/api/explorer/Account', { as: null })).status).toBe(401);
    expect(await calls()).toBe(before);
  }, 120_000);

  it('one row beside its Salesforce record: one call per lookup, a field changed in Salesforce without a change event is marked', async () => {
    const { rows: [row] } = await d.db.query(`select id, sfid, name, phone from salesforce.account where sfid is not null order by id limit 1`);
    const rec = await json(`/api/explorer/Account/${row.id}`);
    expect(rec.row).toMatchObject({ id: row.id, sfid: row.sfid, name: row.name });
    expect(rec.fields.map((f: { field_name: string }) => f.field_name)).toEqual(expect.arrayContaining(['Name', 'Phone', 'External_Id__c', 'SystemModstamp']));

    await until(async () => (await d.db.query(`select 1 from hc.api_calls`)).rowCount, 'the ledger', 10_000, 100);
    let before = await calls();
    const same = await json(`/api/explorer/Account/${row.id}/salesforce`);
    expect(same.sfid).toBe(row.sfid);
    expect(same.fields.filter((f: { differs: boolean }) => f.differs)).toEqual([]);
    expect(same.fields.find((f: { field_name: string }) => f.field_name === 'Name')).toMatchObject({ postgres: row.name, salesforce: row.name, differs: false });
    await until(async () => (await calls()) === before + 1, 'one call in the ledger', 10_000, 100);

    // Salesforce changes with no change event (as if it were lost): Postgres keeps the old value. A
    // background re-read (the stream resubscribing on a loaded machine) may bring it in first; then the
    // two rightly agree and the check runs again with a new value.
    const sf = await login(d.emu);
    let checked = false;
    for (let attempt = 1; attempt <= 3 && !checked; attempt++) {
      const value = `555-000${attempt}`;
      await withoutChangeEvents(d.emu, () => sf.sobject('Account').update({ Id: row.sfid, Phone: value }));
      before = await calls();
      const differs = await json(`/api/explorer/Account/${row.id}/salesforce`);
      await until(async () => (await calls()) === before + 1, 'one more call', 10_000, 100);
      if (differs.fields.find((f: { field_name: string }) => f.field_name === 'Phone').postgres === value) continue;
      checked = true;
      // The update moved SystemModstamp in Salesforce too.
      expect(differs.fields.filter((f: { differs: boolean }) => f.differs).map((f: { field_name: string }) => f.field_name)).toEqual(['Phone', 'SystemModstamp']);
      expect(differs.fields.find((f: { field_name: string }) => f.field_name === 'Phone')).toMatchObject({ salesforce: value, differs: true });
    }
    expect(checked).toBe(true);

    // A row not yet in Salesforce cannot be looked up: 400, no call.
    const { rows: [unsent] } = await d.db.query(`select id from salesforce.account where sfid is null limit 1`);
    const res = await d.api(`/api/explorer/Account/${unsent.id}/salesforce`);
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/no sfid yet/);
    expect((await d.api(`/api/explorer/Account/999999`)).status).toBe(400);
  }, 120_000);
});
