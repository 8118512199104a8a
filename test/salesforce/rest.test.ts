// The Salesforce module's REST operations against the emulator over HTTP: what other modules did with the
// raw jsforce connection (describe, limits, versions, identity, query pages and counts, records by id) and
// the writer's lost-create lookups. Each is counted in the client's ledger like any other call.
import jsforce from 'jsforce';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';
import { save } from '../../sidecar/salesforce/collections.js';
import {
  apiVersions, count, describe as describeObject, describeGlobal, identity, limits, organizationId, queryPages, recordCounts, recordsCreatedSince, recordsWithValues, request,
  restPath, retrieve, retrieveByIds, userId,
} from '../../sidecar/salesforce/rest.js';

type Emulator = Awaited<ReturnType<typeof startEmulator>>;
let emu: Emulator;
let sf: SalesforceClient;
const ids: string[] = [];
const started = Date.now();

beforeAll(async () => {
  emu = await startEmulator({});
  const c = emu.credentials;
  sf = await SalesforceClient.connect({ loginUrl: c.loginUrl, apiVersion: '62.0', auth: 'password', clientId: c.clientId, clientSecret: c.clientSecret, username: c.username, password: c.password });
  const res = await save(sf, 'create', 'Account', Array.from({ length: 5 }, (_, i) => ({ Name: `Rest ${i}`, External_Id__c: `R-${i}` })), { timeoutMs: 10_000 });
  ids.push(...res.map((r) => r.id!));
});
afterAll(async () => {
  await sf?.close();
  await emu?.stop();
});

describe('REST operations', () => {
  it('describe, the global describe, limits, record counts, versions', async () => {
    const d = await describeObject<{ name: string; fields: { name: string }[] }>(sf, 'Account');
    expect(d.name).toBe('Account');
    expect(d.fields.map((f) => f.name)).toContain('External_Id__c');
    expect((await describeGlobal(sf)).sobjects.map((o) => o.name)).toContain('Account');
    expect((await limits(sf)).DailyApiRequests.Max).toBeGreaterThan(0);
    expect((await recordCounts(sf, ['Account'])).sObjects?.find((o) => o.name === 'Account')?.count).toBeGreaterThanOrEqual(5);
    expect(await apiVersions(sf)).toContain('62.0');
    expect(await apiVersions(sf.conn)).toEqual(await sf.versions());
    expect(sf.ledger.totals.get('describe')).toBeGreaterThanOrEqual(2);
    expect(sf.ledger.totals.get('limits')).toBeGreaterThanOrEqual(1);
  });

  it('identity: the org, the user, the instance', async () => {
    const me = await identity(sf);
    expect(me.organizationId).toBe(sf.organizationId);
    expect(me.userId).toBe(sf.userId);
    expect(me.username).toBe(emu.credentials.username);
    expect(me.instanceUrl).toBe(sf.instanceUrl);
    expect(await organizationId(sf)).toBe(sf.organizationId);
    expect(userId(sf.conn)).toBe(sf.userId);
    // A session that did not learn the org at sign-in asks for it.
    const bare = new jsforce.Connection({ instanceUrl: sf.instanceUrl, accessToken: sf.conn.accessToken!, version: '62.0' });
    expect(await organizationId(bare)).toBe(sf.organizationId);
  });

  it('query pages, a count, records by ids, one record by id', async () => {
    let seen = 0;
    for await (const page of queryPages(sf, "SELECT Id, Name FROM Account WHERE Name LIKE 'Rest %'")) {
      seen += page.records.length;
      expect(page.totalSize).toBe(5);
    }
    expect(seen).toBe(5);
    expect(await count(sf, 'Account', "Name LIKE 'Rest %'")).toBe(5);
    const got: string[] = [];
    for await (const page of retrieveByIds(sf, 'Account', [...ids.slice(0, 3), '001000000000000AAA'], ['Id', 'Name'])) got.push(...page.records.map((r) => String(r.Id)));
    expect(got.sort()).toEqual(ids.slice(0, 3).sort());
    expect((await retrieve(sf, 'Account', ids[0], ['Name'])).Name).toBe('Rest 0');
  });

  it('the lost-create lookups: by external id value, and created since', async () => {
    const byValue = await recordsWithValues(sf, 'Account', 'External_Id__c', ['R-1', "R-'2", 'R-3'], ['Id', 'External_Id__c', 'CreatedDate', 'CreatedById']);
    expect(byValue.map((r) => r.External_Id__c).sort()).toEqual(['R-1', 'R-3']);
    expect(byValue.every((r) => r.CreatedById === sf.userId)).toBe(true);
    const since = await recordsCreatedSince(sf, 'Account', ['Name', 'Id'], started - 60_000, sf.userId);
    expect(since.map((r) => r.Name).filter((n) => String(n).startsWith('Rest '))).toEqual(['Rest 0', 'Rest 1', 'Rest 2', 'Rest 3', 'Rest 4']);
    expect(await recordsCreatedSince(sf, 'Account', ['Name'], Date.now() + 3_600_000)).toEqual([]);
  });

  it('one raw call, under the version or at a full path', async () => {
    expect(restPath(sf, 'limits')).toBe('/services/data/v62.0/limits');
    expect(restPath(sf, '/services/data')).toBe('/services/data');
    const made = (await request(sf, 'POST', '/sobjects/Account', JSON.stringify({ Name: 'Raw' }))) as { id: string; success: boolean };
    expect(made.success).toBe(true);
    await request(sf, 'PATCH', `/sobjects/Account/${made.id}`, JSON.stringify({ Phone: '7' }));
    expect((await request(sf, 'GET', `sobjects/Account/${made.id}`) as { Phone: string }).Phone).toBe('7');
  });
});
