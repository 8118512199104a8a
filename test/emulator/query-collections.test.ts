import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../emulator/index.js';
import { login, raw, start, VERSION } from './helpers.js';

let emu: Emulator;
beforeAll(async () => { emu = await start({ seed: { Account: 20, Contact: 700 } }); });
afterAll(async () => { await emu?.stop(); });

describe('query', () => {
  it('pages with nextRecordsUrl and batchSize, queryMore follows', async () => {
    const conn = await login(emu);
    const first = await conn.request<any>({ method: 'GET', url: `/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT Id, Name, Account.Name FROM Contact ORDER BY Id')}`, headers: { 'Sforce-Query-Options': 'batchSize=200' } });
    expect(first.totalSize).toBe(700);
    expect(first.done).toBe(false);
    expect(first.records).toHaveLength(200);
    expect(first.nextRecordsUrl).toMatch(new RegExp(`^/services/data/v${VERSION}/query/01g[a-zA-Z0-9]{15}-200$`));
    expect(first.records[0].attributes.type).toBe('Contact');
    expect(first.records[0].Account === null || first.records[0].Account.attributes.type === 'Account').toBe(true);
    let seen = first.records.length;
    let page = first;
    while (!page.done) { page = await conn.queryMore(page.nextRecordsUrl); seen += page.records.length; }
    expect(seen).toBe(700);
    const ids = new Set<string>();
    const all = await conn.query('SELECT Id FROM Contact', { autoFetch: true, maxFetch: 10_000 });
    all.records.forEach((r: any) => ids.add(r.Id));
    expect(ids.size).toBe(700);
  });

  it('filters with typed literals, AND/OR/NOT, IN, LIKE, null, ORDER BY, LIMIT/OFFSET, COUNT()', async () => {
    const conn = await login(emu);
    const acc = await conn.sobject('Account').create({ Name: 'Zeta Filter', NumberOfEmployees: 42, AnnualRevenue: 100 });
    await conn.sobject('Contact').create([{ LastName: 'Filter1', FirstName: 'Ann', AccountId: acc.id }, { LastName: 'Filter2', AccountId: acc.id, Email: 'F2@Example.com' }], { allOrNone: true });
    const now = new Date(Date.now() + 5_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const q = await conn.query<any>(`SELECT Id, LastName, Email, Account.Name FROM Contact WHERE Account.Name = 'zeta filter' AND (LastName LIKE 'Filter%' OR Email != null) AND CreatedDate < ${now} AND NOT LastName IN ('Nobody') ORDER BY LastName DESC LIMIT 5`);
    expect(q.records.map((r) => r.LastName)).toEqual(['Filter2', 'Filter1']);
    expect(q.records[0].Email).toBe('f2@example.com'); // before-save flow lower-cased it
    expect(q.records[0].Account.Name).toBe('Zeta Filter');
    expect(q.records[1].Email).toBeNull();
    const off = await conn.query<any>(`SELECT LastName FROM Contact WHERE AccountId = '${acc.id}' ORDER BY LastName LIMIT 1 OFFSET 1`);
    expect(off.records.map((r) => r.LastName)).toEqual(['Filter2']);
    const cnt = await conn.query(`SELECT COUNT() FROM Contact WHERE AccountId = '${acc.id}'`);
    expect(cnt.totalSize).toBe(2);
    expect(cnt.records).toEqual([]);
    const n = await conn.query<any>(`SELECT Id FROM Account WHERE NumberOfEmployees >= 42 AND NumberOfEmployees < 43 AND Name = 'Zeta Filter'`);
    expect(n.totalSize).toBe(1);
    const today = await conn.query(`SELECT Id FROM Account WHERE CreatedDate = TODAY AND Id = '${acc.id}'`);
    expect(today.totalSize).toBe(1);
    await expect(conn.query(`SELECT Id FROM Account WHERE CreatedDate > '2020-01-01'`)).rejects.toMatchObject({ errorCode: 'INVALID_FIELD' });
    await expect(conn.query(`SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'`)).rejects.toMatchObject({ errorCode: 'MALFORMED_QUERY' });
    const sub = await conn.query<any>(`SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account WHERE Id = '${acc.id}'`);
    expect(sub.records[0].Contacts.records.map((r: any) => r.LastName)).toEqual(['Filter1', 'Filter2']);
  });

  it('Id = and Id IN find their records by Id: in the order they were created, with the other conditions, deleted ones with queryAll only', async () => {
    const conn = await login(emu);
    const all = (await conn.query<any>('SELECT Id, LastName FROM Contact ORDER BY Id', { autoFetch: true, maxFetch: 10_000 })).records;
    // 250 of them, asked for out of order, one twice, one by its 15-character id; and an id no record has
    const picked = all.filter((_, i) => i % 2 === 0).slice(0, 250);
    const asked = [...picked].reverse().map((r) => r.Id as string);
    asked.push(asked[0], asked[1].slice(0, 15), '003000000000000AAA');
    const inList = asked.map((x) => `'${x}'`).join(',');
    const got = (await conn.query<any>(`SELECT Id, LastName FROM Contact WHERE Id IN (${inList})`)).records;
    expect(got.map((r) => r.Id)).toEqual(picked.map((r) => r.Id));
    // the same through an AND, and the same condition on another field finds the same records
    const some = picked.slice(0, 10).map((r) => r.LastName as string);
    const anded = (await conn.query<any>(`SELECT Id FROM Contact WHERE LastName IN (${some.map((x) => `'${x}'`).join(',')}) AND (Id IN (${inList}))`)).records;
    expect(anded.map((r) => r.Id)).toEqual(picked.filter((r) => some.includes(r.LastName)).map((r) => r.Id));
    const scanned = (await conn.query<any>(`SELECT Id FROM Contact WHERE LastName IN (${some.map((x) => `'${x}'`).join(',')})`)).records;
    expect(anded.map((r) => r.Id)).toEqual(scanned.map((r) => r.Id).filter((x: string) => asked.includes(x)));
    expect((await conn.query<any>(`SELECT Id FROM Contact WHERE Id = '${picked[3].Id}'`)).records.map((r) => r.Id)).toEqual([picked[3].Id]);
    expect((await conn.query<any>(`SELECT Id FROM Contact WHERE NOT Id IN (${inList})`)).totalSize).toBe(all.length - picked.length);
    // deleted: not found, but by queryAll
    await conn.sobject('Contact').destroy(picked[5].Id);
    const live = (await conn.query<any>(`SELECT Id FROM Contact WHERE Id IN (${inList})`)).records;
    expect(live.map((r) => r.Id)).toEqual(picked.filter((_, i) => i !== 5).map((r) => r.Id));
    const withDeleted = (await conn.query<any>(`SELECT Id, IsDeleted FROM Contact WHERE Id IN (${inList})`, { scanAll: true })).records;
    expect(withDeleted.map((r) => r.Id)).toEqual(picked.map((r) => r.Id));
    expect(withDeleted[5].IsDeleted).toBe(true);
  });

  it('queryAll returns deleted rows; query does not', async () => {
    const conn = await login(emu);
    const r = await conn.sobject('Contact').create({ LastName: 'Ghost' });
    await conn.sobject('Contact').destroy(r.id!);
    const live = await conn.query(`SELECT Id FROM Contact WHERE LastName = 'Ghost'`);
    expect(live.totalSize).toBe(0);
    const all = await conn.query<any>(`SELECT Id, IsDeleted FROM Contact WHERE LastName = 'Ghost'`, { scanAll: true });
    expect(all.records).toEqual([expect.objectContaining({ Id: r.id, IsDeleted: true })]);
    const raws = await raw(emu, conn.accessToken!, 'GET', `/services/data/v${VERSION}/queryAll?q=${encodeURIComponent("SELECT Id FROM Contact WHERE IsDeleted = true AND LastName = 'Ghost'")}`);
    expect(raws.json().totalSize).toBe(1);
    const und = emu.undelete([r.id!]);
    expect(und[0].success).toBe(true);
    expect((await conn.query(`SELECT Id FROM Contact WHERE LastName = 'Ghost'`)).totalSize).toBe(1);
  });
});

describe('sObject Collections', () => {
  it('creates with partial failure and per-record statusCode errors', async () => {
    const conn = await login(emu);
    const res = await raw(emu, conn.accessToken!, 'POST', `/services/data/v${VERSION}/composite/sobjects`, {
      allOrNone: false,
      records: [{ attributes: { type: 'Account' }, Name: 'Coll A' }, { attributes: { type: 'Account' }, Phone: '1' }, { attributes: { type: 'Contact' }, LastName: 'Coll C' }],
    });
    expect(res.status).toBe(200);
    const body = res.json();
    expect(body[0]).toEqual({ id: expect.stringMatching(/^001/), success: true, errors: [] });
    expect(body[1]).toEqual({ success: false, errors: [{ statusCode: 'REQUIRED_FIELD_MISSING', message: 'Required fields are missing: [Name]', fields: ['Name'] }] });
    expect(body[2].id).toMatch(/^003/);
    // through jsforce
    const j = await conn.sobject('Account').create([{ Name: 'J1' }, { Name: 'INVALID' }], { allOrNone: false });
    expect(j[0].success).toBe(true);
    expect(j[1]).toMatchObject({ success: false, errors: [{ statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Account name INVALID is not allowed.', fields: [] }] });
  });

  it('rolls everything back with allOrNone', async () => {
    const conn = await login(emu);
    const before = emu.records('Account').length;
    const res = await raw(emu, conn.accessToken!, 'POST', `/services/data/v${VERSION}/composite/sobjects`, {
      allOrNone: true, records: [{ attributes: { type: 'Account' }, Name: 'Roll A' }, { attributes: { type: 'Account' }, NumberOfEmployees: -5, Name: 'Roll B' }],
    });
    expect(res.json()).toEqual([
      { success: false, errors: [{ statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK', message: 'Record rolled back because not all records were valid and the request was using AllOrNone header', fields: [] }] },
      { success: false, errors: [{ statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Number of employees cannot be negative.', fields: ['NumberOfEmployees'] }] },
    ]);
    expect(emu.records('Account').length).toBe(before);
  });

  it('updates, upserts and deletes many; rejects more than 200', async () => {
    const conn = await login(emu);
    const created = await conn.sobject('Invoice__c').create([1, 2, 3].map((i) => ({ External_Id__c: `COL-${i}`, Amount__c: i })), { allOrNone: true });
    const ids = created.map((c) => c.id!);
    const upd = await conn.sobject('Invoice__c').update([{ Id: ids[0], Status__c: 'Paid' }, { Id: ids[1], Amount__c: -1 }], { allOrNone: false });
    expect(upd[0].success).toBe(true);
    expect(upd[1]).toMatchObject({ id: ids[1], success: false, errors: [{ statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }] });
    expect(emu.record(ids[0])).toMatchObject({ Status__c: 'Paid', Paid__c: true, Tax__c: 0.2 });
    const ups = await conn.sobject('Invoice__c').upsert([{ External_Id__c: 'COL-1', Amount__c: 10 }, { External_Id__c: 'COL-9', Amount__c: 9 }], 'External_Id__c', { allOrNone: false });
    expect(ups.map((u: any) => u.created)).toEqual([false, true]);
    const bad = await conn.sobject('Invoice__c').update([{ Id: ids[2], Status__c: 'Bogus' }], { allOrNone: false });
    expect(bad[0]).toMatchObject({ success: false, errors: [{ statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', fields: ['Status__c'] }] });
    const del = await conn.sobject('Invoice__c').destroy([ids[2], ids[2]], { allOrNone: false });
    expect(del[0].success).toBe(true);
    expect(del[1]).toMatchObject({ success: false, errors: [{ statusCode: 'ENTITY_IS_DELETED' }] });
    const tooMany = await raw(emu, conn.accessToken!, 'POST', `/services/data/v${VERSION}/composite/sobjects`, { records: Array.from({ length: 201 }, () => ({ attributes: { type: 'Account' }, Name: 'x' })) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json()[0].errorCode).toBe('EXCEEDED_ID_LIMIT');
  });
});

describe('composite', () => {
  it('resolves references and honours If-Unmodified-Since with 412', async () => {
    const conn = await login(emu);
    const acc = await conn.sobject('Account').create({ Name: 'Composite Co' });
    const past = new Date(Date.now() - 3_600_000).toUTCString();
    const res = await conn.requestPost<any>(`/services/data/v${VERSION}/composite`, {
      allOrNone: false,
      compositeRequest: [
        { method: 'POST', url: `/services/data/v${VERSION}/sobjects/Contact`, referenceId: 'newContact', body: { LastName: 'Comp', AccountId: acc.id } },
        { method: 'GET', url: `/services/data/v${VERSION}/sobjects/Contact/@{newContact.id}`, referenceId: 'getContact' },
        { method: 'PATCH', url: `/services/data/v${VERSION}/sobjects/Account/${acc.id}`, referenceId: 'stale', body: { Name: 'Nope' }, httpHeaders: { 'If-Unmodified-Since': past } },
      ],
    });
    const [a, b, c] = res.compositeResponse;
    expect(a).toMatchObject({ httpStatusCode: 201, referenceId: 'newContact', body: { success: true } });
    expect(b).toMatchObject({ httpStatusCode: 200, body: { LastName: 'Comp', AccountId: acc.id } });
    expect(c).toMatchObject({ httpStatusCode: 412, referenceId: 'stale' });
    expect(c.body[0].errorCode).toBe('PRECONDITION_FAILED');
    expect(emu.record(acc.id!)!.Name).toBe('Composite Co');
  });

  it('rolls back every sub-request with allOrNone', async () => {
    const conn = await login(emu);
    const before = emu.records('Account').length;
    const res = await conn.requestPost<any>(`/services/data/v${VERSION}/composite`, {
      allOrNone: true,
      compositeRequest: [
        { method: 'POST', url: `/services/data/v${VERSION}/sobjects/Account`, referenceId: 'ok', body: { Name: 'Halt A' } },
        { method: 'POST', url: `/services/data/v${VERSION}/sobjects/Account`, referenceId: 'bad', body: { Name: 'INVALID' } },
      ],
    });
    expect(res.compositeResponse[0]).toMatchObject({ httpStatusCode: 400, body: [{ errorCode: 'PROCESSING_HALTED' }] });
    expect(res.compositeResponse[1]).toMatchObject({ httpStatusCode: 400, body: [{ errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }] });
    expect(emu.records('Account').length).toBe(before);
    expect(emu.stats().api.byKind.composite).toBeGreaterThanOrEqual(2);
  });
});
