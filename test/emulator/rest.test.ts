import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../emulator/index.js';
import { checksum, normalizeId } from '../../emulator/index.js';
import { login, raw, start, VERSION } from './helpers.js';

let emu: Emulator;
beforeAll(async () => { emu = await start({ seed: { Account: 30, Contact: 450 } }); });
afterAll(async () => { await emu?.stop(); });

describe('ids', () => {
  it('computes the checksum of real ids', () => {
    expect(checksum('001RM000004UF9s')).toBe('YAG');
    expect(normalizeId('0018a00001rBqb8')).toBe('0018a00001rBqb8AAC');
    expect(normalizeId('0018a00001rBqb8AAD')).toBeUndefined();
  });
});

describe('REST', () => {
  it('lists versions and resources', async () => {
    const r = await fetch(emu.url + '/services/data/');
    expect(r.headers.get('content-type')).toBe('application/json;charset=UTF-8');
    const list = (await r.json()) as Array<{ version: string; url: string }>;
    expect(list.map((v) => v.version)).toContain('59.0');
    expect(list.find((v) => v.version === VERSION)?.url).toBe(`/services/data/v${VERSION}`);
  });

  it('describes globally and per object', async () => {
    const conn = await login(emu);
    const g = await conn.describeGlobal();
    expect(g.sobjects.map((s) => s.name)).toEqual(expect.arrayContaining(['Account', 'Contact', 'Lead', 'Opportunity', 'Case', 'User', 'Invoice__c']));
    const d = await conn.sobject('Contact').describe();
    expect(d.keyPrefix).toBe('003');
    const ext = d.fields.find((f) => f.name === 'External_Id__c')!;
    expect(ext).toMatchObject({ externalId: true, idLookup: true, unique: true, type: 'string', length: 255, byteLength: 765, custom: true });
    const id = d.fields.find((f) => f.name === 'Id')!;
    expect(id).toMatchObject({ type: 'id', soapType: 'tns:ID', createable: false, nillable: false, length: 18 });
    const acc = d.fields.find((f) => f.name === 'AccountId')!;
    expect(acc).toMatchObject({ type: 'reference', referenceTo: ['Account'], relationshipName: 'Account' });
    expect(d.fields.find((f) => f.name === 'Name')).toMatchObject({ calculated: true, createable: false });
    expect(d.fields.find((f) => f.name === 'IsDeleted')).toBeTruthy();
    const inv = await conn.sobject('Invoice__c').describe();
    expect(inv.custom).toBe(true);
    expect(inv.fields.find((f) => f.name === 'Tax__c')).toMatchObject({ calculated: true, calculatedFormula: 'ROUND(Amount__c * 0.2, 2)' });
  });

  it('creates, retrieves, updates and deletes with system fields maintained', async () => {
    const conn = await login(emu);
    const r = await conn.sobject('Account').create({ Name: 'Crud Co', NumberOfEmployees: 5 });
    expect(r.success).toBe(true);
    expect(r.id).toMatch(/^001[a-zA-Z0-9]{15}$/);
    expect(normalizeId(r.id!.slice(0, 15))).toBe(r.id);
    const rec = (await conn.sobject('Account').retrieve(r.id!)) as Record<string, any>;
    expect(rec.attributes).toEqual({ type: 'Account', url: `/services/data/v${VERSION}/sobjects/Account/${r.id}` });
    expect(rec.Name).toBe('Crud Co');
    expect(rec.IsDeleted).toBe(false);
    expect(rec.CreatedDate).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$/);
    expect(rec.SystemModstamp).toBe(rec.CreatedDate);
    expect(rec.OwnerId).toBe(conn.userInfo!.id);
    expect(rec.Phone).toBeNull();
    const u = await conn.sobject('Account').update({ Id: r.id!, Phone: '555' });
    expect(u).toMatchObject({ id: r.id, success: true });
    const after = (await conn.sobject('Account').retrieve(r.id!)) as Record<string, any>;
    expect(after.Phone).toBe('555');
    expect(after.LastModifiedDate >= rec.LastModifiedDate).toBe(true);
    // after-save flow stamped Last_Touched__c because Phone changed
    expect(after.Last_Touched__c).toMatch(/\+0000$/);
    await conn.sobject('Account').destroy(r.id!);
    const gone = await raw(emu, conn.accessToken!, 'GET', `/services/data/v${VERSION}/sobjects/Account/${r.id}`);
    expect(gone.status).toBe(404);
    expect(gone.json()).toEqual([{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }].map(({ errorCode, message }) => ({ message, errorCode })));
    const upd = await raw(emu, conn.accessToken!, 'PATCH', `/services/data/v${VERSION}/sobjects/Account/${r.id}`, { Name: 'x' });
    expect(upd.status).toBe(404);
  });

  it('upserts by external id: 201 created, then 200 updated', async () => {
    const conn = await login(emu);
    const a = await conn.sobject('Contact').upsert({ LastName: 'Upsert', External_Id__c: 'UP-1' }, 'External_Id__c');
    expect(a).toMatchObject({ success: true, created: true });
    const b = await conn.sobject('Contact').upsert({ LastName: 'Upsert2', External_Id__c: 'UP-1' }, 'External_Id__c');
    expect(b).toMatchObject({ success: true, created: false, id: (a as any).id });
    const direct = await raw(emu, conn.accessToken!, 'PATCH', `/services/data/v${VERSION}/sobjects/Contact/External_Id__c/UP-1`, { Title: 'Boss' });
    expect(direct.status).toBe(200);
    expect(direct.json()).toEqual({ id: (a as any).id, success: true, errors: [], created: false });
    const bad = await raw(emu, conn.accessToken!, 'PATCH', `/services/data/v${VERSION}/sobjects/Contact/LastName/x`, { Title: 'Boss' });
    expect(bad.status).toBe(404);
    expect(bad.json()[0].errorCode).toBe('NOT_FOUND');
  });

  it('sends error bodies shaped like Salesforce', async () => {
    const conn = await login(emu);
    const t = conn.accessToken!;
    const base = `/services/data/v${VERSION}/sobjects`;
    const req = await raw(emu, t, 'POST', `${base}/Contact`, { FirstName: 'NoLast' });
    expect(req.status).toBe(400);
    expect(req.headers.get('content-type')).toBe('application/json;charset=UTF-8');
    expect(req.text).toBe('[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]');
    const long = await raw(emu, t, 'POST', `${base}/Account`, { Name: 'x'.repeat(256) });
    expect(long.json()).toEqual([{ message: `Account Name: data value too large: ${'x'.repeat(100)}... (max length=255)`.replace('Account Name', 'Name'), errorCode: 'STRING_TOO_LONG', fields: ['Name'] }]);
    const unknown = await raw(emu, t, 'POST', `${base}/Account`, { Name: 'a', Foo__c: 1 });
    expect(unknown.json()).toEqual([{ message: "No such column 'Foo__c' on sobject of type Account", errorCode: 'INVALID_FIELD', fields: ['Foo__c'] }]);
    const rule = await raw(emu, t, 'POST', `${base}/Account`, { Name: 'Neg', NumberOfEmployees: -1 });
    expect(rule.text).toBe('[{"message":"Number of employees cannot be negative.","errorCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","fields":["NumberOfEmployees"]}]');
    await raw(emu, t, 'POST', `${base}/Contact`, { LastName: 'D', External_Id__c: 'DUP-1' });
    const dup = await raw(emu, t, 'POST', `${base}/Contact`, { LastName: 'D', External_Id__c: 'dup-1' });
    expect(dup.json()[0]).toMatchObject({ errorCode: 'DUPLICATE_VALUE' });
    expect(dup.json()[0].message).toMatch(/^duplicate value found: External_Id__c duplicates value on record with id: 003/);
    const xref = await raw(emu, t, 'POST', `${base}/Contact`, { LastName: 'X', AccountId: '001000000000000AAA' });
    expect(xref.json()).toEqual([{ message: 'invalid cross reference id', errorCode: 'INVALID_CROSS_REFERENCE_KEY', fields: ['AccountId'] }]);
    const ro = await raw(emu, t, 'POST', `${base}/Account`, { Name: 'a', CreatedDate: '2020-01-01T00:00:00Z' });
    expect(ro.json()[0]).toMatchObject({ errorCode: 'INVALID_FIELD_FOR_INSERT_UPDATE', fields: ['CreatedDate'] });
    const type = await raw(emu, t, 'GET', `/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT Id FROM Nope')}`);
    expect(type.status).toBe(400);
    expect(type.json()[0].errorCode).toBe('INVALID_TYPE');
    expect(Object.keys(type.json()[0])).toEqual(['message', 'errorCode']);
    const mal = await raw(emu, t, 'GET', `/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT Id FROM')}`);
    expect(mal.json()[0].errorCode).toBe('MALFORMED_QUERY');
    const field = await raw(emu, t, 'GET', `/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT Nope FROM Account')}`);
    expect(field.json()[0].errorCode).toBe('INVALID_FIELD');
    const unauth = await raw(emu, 'bogus', 'GET', `/services/data/v${VERSION}/limits`);
    expect(unauth.status).toBe(401);
    expect(unauth.text).toBe('[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]');
    const badJson = await raw(emu, t, 'POST', `${base}/Account`, '{bad');
    expect(badJson.json()[0].errorCode).toBe('JSON_PARSER_ERROR');
    // jsforce surfaces the code and message
    await expect(conn.sobject('Account').create({ Name: 'INVALID' })).rejects.toMatchObject({ errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Account name INVALID is not allowed.' });
  });

  it('puts Sforce-Limit-Info on every response and counts calls', async () => {
    const conn = await login(emu);
    const before = emu.stats().api.used;
    await conn.limits();
    expect(conn.limitInfo?.apiUsage?.used).toBe(before + 1);
    const r = await raw(emu, conn.accessToken!, 'GET', `/services/data/v${VERSION}/sobjects/Nope/describe`);
    expect(r.status).toBe(404);
    expect(r.headers.get('sforce-limit-info')).toMatch(/^api-usage=\d+\/\d+$/);
    const lim = await conn.limits();
    expect(lim.DailyApiRequests.Max).toBe(emu.stats().api.limit);
    expect(emu.stats().api.byKind.limits).toBeGreaterThanOrEqual(2);
  });

  it('serves getUpdated and getDeleted', async () => {
    const conn = await login(emu);
    const start = new Date(Date.now() - 120_000);
    const r = await conn.sobject('Account').create({ Name: 'Repl' });
    await conn.sobject('Account').destroy(r.id!);
    const end = new Date(Date.now() + 120_000);
    const upd = await conn.sobject('Account').updated(start, end);
    expect(upd.latestDateCovered).toMatch(/\+0000$/);
    const del = await conn.sobject('Account').deleted(start, end);
    expect(del.deletedRecords.map((d) => d.id)).toContain(r.id);
    expect(del.earliestDateAvailable).toBeTruthy();
  });
});
