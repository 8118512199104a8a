// Creating, editing and deleting mappings through the API, against a real sidecar, emulator and
// Postgres: the field picker's object list and describe (one Salesforce call each), create (the sidecar
// builds and loads the table), edit, delete; Salesforce row counts (exact below a million rows, the
// org's estimate above, with the calls they cost); an object removed from Salesforce found orphaned and
// removed (its table kept); the write algorithm. Changes are audited with the token's principal; the
// viewer may read but not change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VIEWER, startDashboard, type Dashboard } from '../dashboard/harness.js';
import { until } from '../support/until.js';

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard();
  d.emu.seed({ Contact: 3 });
}, 240_000);
afterAll(async () => {
  await d?.stop();
});

const contactConfig = {
  access: 'read_write',
  fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, CreatedDate: {}, LastName: {}, Email: {}, Phone: {}, External_Id__c: {} },
  indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, External_Id__c: { unique: true } },
  upsert_field: 'External_Id__c',
  sf_notify_enabled: false,
  sf_polling_seconds: 600,
};
const mappingState = async (object: string) =>
  (await d.db.query(`select state from hc.mappings where lower(object_name) = lower($1)`, [object])).rows[0]?.state as string | undefined;

describe('mappings through the API', () => {
  it('the field picker: the org objects, then one object with types, external ids and what is updateable', async () => {
    const objects = await (await d.api('/api/salesforce/objects')).json();
    expect(objects.map((o: { name: string }) => o.name)).toEqual(expect.arrayContaining(['Account', 'Contact', 'Invoice__c']));
    const contact = await (await d.api('/api/salesforce/objects/Contact')).json();
    const byName = Object.fromEntries(contact.fields.map((f: { name: string }) => [f.name, f]));
    expect(byName.External_Id__c).toMatchObject({ type: 'string', externalId: true, unique: true, updateable: true });
    expect(byName.Email_Upper__c).toMatchObject({ calculated: true, updateable: false });
    expect(byName.Birthdate.type).toBe('date');
    expect((await d.api('/api/salesforce/objects/NoSuch__c')).status).toBe(404);
  });

  it('create: the sidecar builds the table and loads it; a second create, or a config SQL refuses, is 400 with a hint', async () => {
    const res = await d.api('/api/mappings', { method: 'POST', json: { object_name: 'Contact', config: contactConfig } });
    expect([res.status, await res.json()]).toEqual([200, expect.objectContaining({ ok: true, action: 'create', object: 'Contact' })]);
    await until(async () => (await mappingState('Contact')) === 'DATA_SYNCED', 'Contact loaded', 60_000, 200);
    expect(Number((await d.db.query(`select count(*) from salesforce.contact`)).rows[0].count)).toBe(3);
    expect((await d.db.query(`select principal from hc.audit_log where action = 'create_mapping' order by id desc limit 1`)).rows[0].principal).toBe('dashboard:admin');

    const again = await d.api('/api/mappings', { method: 'POST', json: { object_name: 'Contact', config: contactConfig } });
    expect(again.status).toBe(400);
    const refused = await d.api('/api/mappings', { method: 'POST', json: { object_name: 'Lead', config: { access: 'sideways', fields: { Id: {}, LastName: {} } } } });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: expect.stringMatching(/access/), hint: expect.any(String) });
    expect(await mappingState('Lead')).toBeUndefined();
    // The viewer may not.
    expect((await d.api('/api/mappings', { method: 'POST', as: VIEWER, json: { object_name: 'Lead', config: {} } })).status).toBe(403);
  }, 120_000);

  it('edit: Phone dropped from the mapping, the column goes, the rows stay', async () => {
    const { Phone: _drop, ...fields } = contactConfig.fields;
    const res = await d.api('/api/mappings/Contact', { method: 'PUT', json: { config: { ...contactConfig, fields } } });
    expect(res.status).toBe(200);
    expect((await d.db.query(`select config->'fields' ? 'Phone' as has from hc._mappings where object_name = 'Contact'`)).rows[0].has).toBe(false);
    await until(async () => (await mappingState('Contact')) === 'DATA_SYNCED', 'Contact synced again', 60_000, 200);
    expect(Number((await d.db.query(`select count(*) from salesforce.contact`)).rows[0].count)).toBe(3);
    expect((await d.api('/api/mappings/Contact', { method: 'PUT', as: VIEWER, json: { config: contactConfig } })).status).toBe(403);
  }, 120_000);

  it("Salesforce row counts: exact below a million rows (two calls), the org's estimate above (one call)", async () => {
    expect(await (await d.api('/api/mappings/Account/salesforce-count')).json()).toEqual({ object_name: 'Account', count: 5, estimate: false, calls: 2 });
    d.emu.setRecordCountEstimate('Account', 2_400_000);
    expect(await (await d.api('/api/mappings/Account/salesforce-count')).json()).toEqual({ object_name: 'Account', count: 2_400_000, estimate: true, calls: 1 });
    d.emu.setRecordCountEstimate('Account', undefined);
    expect((await d.api('/api/mappings/Nope/salesforce-count')).status).toBe(400);
  });

  it('the write algorithm: set, audited, validated', async () => {
    expect((await d.api('/api/connection/write-algorithm', { method: 'POST', json: { algorithm: 'merged' } })).status).toBe(200);
    expect((await (await d.api('/api/connection')).json()).write_algorithm).toBe('merged');
    expect((await d.api('/api/connection/write-algorithm', { method: 'POST', json: { algorithm: 'fast' } })).status).toBe(400);
    expect((await d.api('/api/connection/write-algorithm', { method: 'POST', as: VIEWER, json: { algorithm: 'ordered' } })).status).toBe(403);
    expect((await d.api('/api/connection/write-algorithm', { method: 'POST', json: { algorithm: 'ordered' } })).status).toBe(200);
    const audit = (await d.db.query(`select principal, detail from hc.audit_log where action = 'set_write_algorithm' order by id`)).rows;
    expect(audit.map((a) => [a.principal, a.detail.to])).toEqual([['dashboard:admin', 'merged'], ['dashboard:admin', 'ordered']]);
  });

  it('an object removed from Salesforce: the check marks its mapping orphaned (a notification too); remove keeps the table', async () => {
    expect(await (await d.api('/api/orphans')).json()).toEqual([]);
    d.emu.removeObject('Contact');
    const check = await (await d.api('/api/orphans/check', { method: 'POST' })).json();
    expect(check).toEqual({ ok: true, checked: 2, orphaned: ['Contact'] });
    expect((await d.db.query(`select principal, detail from hc.audit_log where action = 'check_orphans' order by id desc limit 1`)).rows[0])
      .toEqual({ principal: 'dashboard:admin', detail: { checked: 2, orphaned: ['Contact'] } });
    expect(await mappingState('Contact')).toBe('SYNC_REMOVED');
    const orphans = await (await d.api('/api/orphans')).json();
    expect(orphans).toEqual([expect.objectContaining({ object_name: 'Contact', state: 'SYNC_REMOVED' })]);
    expect((await d.db.query(`select kind from hc.notifications where object_name = 'Contact'`)).rows).toEqual([{ kind: 'mapping_error' }]);
    // Account is no orphan and cannot be removed as one.
    expect((await d.api('/api/orphans/Account/remove', { method: 'POST' })).status).toBe(400);
    expect((await d.api('/api/orphans/Contact/remove', { method: 'POST', as: VIEWER })).status).toBe(403);
    expect((await d.api('/api/orphans/Contact/remove', { method: 'POST' })).status).toBe(200);
    expect(await mappingState('Contact')).toBeUndefined();
    expect(Number((await d.db.query(`select count(*) from salesforce.contact`)).rows[0].count)).toBe(3);
    expect((await d.db.query(`select principal, detail->>'drop_table' as dropped from hc.audit_log where action = 'delete_mapping' order by id desc limit 1`)).rows[0])
      .toEqual({ principal: 'dashboard:admin', dropped: 'false' });
  }, 60_000);

  it('delete: the mapping and its table go', async () => {
    await d.api('/api/mappings', { method: 'POST', json: { object_name: 'Lead', config: { access: 'read_only', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, LastName: {} } } } });
    await until(async () => (await mappingState('Lead')) === 'DATA_SYNCED', 'Lead loaded', 60_000, 200);
    expect((await d.api('/api/mappings/Lead', { method: 'DELETE', as: VIEWER })).status).toBe(403);
    const res = await d.api('/api/mappings/Lead', { method: 'DELETE' });
    expect(await res.json()).toEqual({ ok: true, action: 'delete', object: 'Lead', table_kept: false });
    expect(await mappingState('Lead')).toBeUndefined();
    expect((await d.db.query(`select to_regclass('salesforce.lead') as t`)).rows[0].t).toBeNull();
  }, 120_000);

  it('the OpenAPI document has the endpoints added for notifications, the explorer, mappings and settings, with their methods', async () => {
    const doc = await (await d.api('/api/openapi.json')).json();
    const want: Array<[string, string]> = [
      ['/api/notifications', 'get'], ['/api/explorer/{object}', 'get'], ['/api/explorer/{object}/{id}', 'get'], ['/api/explorer/{object}/{id}/salesforce', 'get'],
      ['/api/salesforce/objects', 'get'], ['/api/salesforce/objects/{object}', 'get'], ['/api/mappings', 'post'], ['/api/mappings/{object}', 'put'],
      ['/api/mappings/{object}', 'delete'], ['/api/mappings/{object}/salesforce-count', 'get'], ['/api/orphans', 'get'], ['/api/orphans/check', 'post'],
      ['/api/orphans/{object}/remove', 'post'], ['/api/connection/write-algorithm', 'post'],
    ];
    for (const [path, method] of want) expect([path, method, Boolean(doc.paths[path]?.[method]?.summary)]).toEqual([path, method, true]);
  });
});
