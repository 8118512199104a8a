// Documented behaviour of real orgs that clients other than jsforce rely on.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import jsforce from 'jsforce';
import type { Emulator } from '../../emulator/index.js';
import { until } from '../support/until.js';
import { login, raw, start, VERSION } from './helpers.js';

let emu: Emulator;
let token: string;
beforeAll(async () => {
  emu = await start({ seed: { Account: 5, Contact: 10 } });
  token = (await login(emu)).accessToken!;
});
afterAll(async () => { await emu?.stop(); });

describe('API versions', () => {
  it('lists every version from v31.0 to the newest, and each one serves the REST API', async () => {
    const list = (await (await fetch(emu.url + '/services/data')).json()) as Array<{ label: string; version: string; url: string }>;
    const versions = list.map((v) => Number(v.version));
    expect(versions[0]).toBe(31);
    expect(versions).toEqual(Array.from({ length: versions.length }, (_, i) => 31 + i));
    expect(versions.at(-1)).toBeGreaterThanOrEqual(64);
    expect(list.find((v) => v.version === '38.0')?.label).toBe("Winter '17");
    expect(list.find((v) => v.version === '51.0')).toEqual({ label: "Spring '21", url: '/services/data/v51.0', version: '51.0' });
    for (const v of ['31.0', '38.0', '51.0', list.at(-1)!.version]) {
      const r = await raw(emu, token, 'GET', `/services/data/v${v}/query?q=${encodeURIComponent('SELECT Username FROM User')}`);
      expect(r.status, v).toBe(200);
      expect(r.json().records[0].attributes.url).toMatch(new RegExp(`^/services/data/v${v}/sobjects/User/005`));
    }
    expect((await raw(emu, token, 'GET', '/services/data/v30.0/limits')).status).toBe(404);
  });

  it('jsforce on its default version works', async () => {
    const conn = await login(emu, { version: undefined });
    expect((await conn.query('SELECT Id FROM Account')).totalSize).toBe(5);
  });
});

describe('HTTP behaviour', () => {
  it('unknown routes answer NOT_FOUND in Salesforce\'s shape', async () => {
    for (const [method, path] of [['GET', '/nothing/here'], ['GET', '/services/data/v62.0/nothing'], ['PUT', '/services/oauth2/token'], ['GET', '/services/apexrest/x']]) {
      const r = await raw(emu, token, method, path);
      expect(r.status, path).toBe(404);
      expect(r.headers.get('content-type')).toBe('application/json;charset=UTF-8');
      expect(r.json(), path).toEqual([{ message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' }]);
    }
  });

  it('the identity URL in the resource list is absolute and answers', async () => {
    const res = (await raw(emu, token, 'GET', `/services/data/v${VERSION}/`)).json() as Record<string, string>;
    expect(res.identity).toMatch(new RegExp(`^${emu.url}/id/00D\\w{15}/005\\w{15}$`));
    const id = await fetch(res.identity, { headers: { Authorization: `Bearer ${token}` } });
    expect(id.status).toBe(200);
    expect(((await id.json()) as { username: string }).username).toBe(emu.credentials.username);
  });

  it('every resource the version lists answers a GET', async () => {
    const res = (await raw(emu, token, 'GET', `/services/data/v${VERSION}/`)).json() as Record<string, string>;
    for (const [name, url] of Object.entries(res)) {
      const r = name === 'identity' ? await fetch(url, { headers: { Authorization: `Bearer ${token}` } }) : await fetch(emu.url + url, { headers: { Authorization: `Bearer ${token}` } });
      const body = await r.text();
      if (name === 'query' || name === 'queryAll') {
        expect(r.status, name).toBe(400);
        expect(JSON.parse(body)).toEqual([{ message: 'A query string has to be specified', errorCode: 'MALFORMED_QUERY' }]);
      } else {
        expect(r.status, `${name}: ${body}`).toBe(200);
      }
    }
    const composite = (await raw(emu, token, 'GET', `/services/data/v${VERSION}/composite`)).json();
    expect(composite).toEqual({ tree: `/services/data/v${VERSION}/composite/tree`, batch: `/services/data/v${VERSION}/composite/batch`, sobjects: `/services/data/v${VERSION}/composite/sobjects` });
  });

  it('what docs/EMULATOR.md lists as not emulated (Bulk API 1.0, Metadata, Tooling, SOSL) answers NOT_FOUND and is not advertised', async () => {
    const res = (await raw(emu, token, 'GET', `/services/data/v${VERSION}/`)).json() as Record<string, string>;
    expect(Object.keys(res).sort()).toEqual(['composite', 'identity', 'jobs', 'limits', 'query', 'queryAll', 'recent', 'sobjects']);
    const xml = { 'Content-Type': 'text/xml', SOAPAction: '""' };
    for (const [method, path, body, headers] of [
      ['POST', `/services/async/${VERSION}/job`, '<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload"><operation>insert</operation><object>Account</object></jobInfo>', { 'Content-Type': 'application/xml' }],
      ['GET', `/services/async/${VERSION}/job/750000000000001AAA`, undefined, {}],
      ['POST', `/services/Soap/m/${VERSION}`, '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><describeMetadata/></env:Body></env:Envelope>', xml],
      ['GET', `/services/data/v${VERSION}/tooling/query?q=${encodeURIComponent('SELECT Id FROM ApexClass')}`, undefined, {}],
      ['POST', `/services/Soap/T/${VERSION}`, '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><query/></env:Body></env:Envelope>', xml],
      ['GET', `/services/data/v${VERSION}/search?q=${encodeURIComponent('FIND {Acme}')}`, undefined, {}],
    ] as Array<[string, string, string | undefined, Record<string, string>]>) {
      const r = await raw(emu, token, method, path, body, headers);
      expect([method, path, r.status]).toEqual([method, path, 404]);
      expect(r.json(), path).toEqual([{ message: 'The requested resource does not exist', errorCode: 'NOT_FOUND' }]);
    }
    // Of Tooling, only the event channels and their members are served: which objects a custom channel carries.
    emu.defineChannel('Fidelity__chn', ['Account', 'Contact']);
    const tooling = async (soql: string) => (await raw(emu, token, 'GET', `/services/data/v${VERSION}/tooling/query?q=${encodeURIComponent(soql)}`)).json() as { records: Record<string, unknown>[] };
    const [ch] = (await tooling("SELECT Id, DeveloperName FROM PlatformEventChannel WHERE DeveloperName = 'Fidelity'")).records;
    expect(ch).toMatchObject({ DeveloperName: 'Fidelity', attributes: { type: 'PlatformEventChannel' } });
    const members = (await tooling('SELECT EventChannel, SelectedEntity FROM PlatformEventChannelMember')).records.filter((m) => m.EventChannel === ch.Id);
    expect(members.map((m) => m.SelectedEntity).sort()).toEqual(['AccountChangeEvent', 'ContactChangeEvent']);
  });
});

describe('SOQL', () => {
  it('keywords are case-insensitive everywhere', async () => {
    const conn = await login(emu);
    await conn.sobject('Account').create({ Name: 'Lowercase Keywords Ltd', NumberOfEmployees: 7 });
    const q = "select id, name from account where name like 'lowercase%' and numberofemployees in (7, 8) and (not name = 'x') and name != null order by name desc nulls last limit 5 offset 0";
    const r = await conn.query<{ Name: string }>(q);
    expect(r.records.map((x) => x.Name)).toEqual(['Lowercase Keywords Ltd']);
    expect((await conn.query("select count() from account where name not in ('a') and isdeleted = false")).totalSize).toBe(6);
    expect((await conn.query("select id from account where createddate = today and name like '%keywords%'")).totalSize).toBe(1);
    expect((await conn.query("select id from account where name like 'lowercase%' or name like 'nothing%'")).totalSize).toBe(1);
    expect((await conn.query<{ n: number }>("select count(id) n from account where name like 'lowercase%'")).records[0].n).toBe(1);
    // Bulk 2.0 query jobs read SOQL the same way.
    const job = await raw(emu, token, 'POST', `/services/data/v${VERSION}/jobs/query`, { operation: 'query', query: "select name from account where name like 'lowercase%'" });
    expect(job.status).toBe(200);
    const id = job.json().id as string;
    await until(async () => (await raw(emu, token, 'GET', `/services/data/v${VERSION}/jobs/query/${id}`)).json().state === 'JobComplete', 'query job', 10_000, 25);
    expect((await raw(emu, token, 'GET', `/services/data/v${VERSION}/jobs/query/${id}/results`)).text.trim()).toBe('"Name"\n"Lowercase Keywords Ltd"');
  });

  it('query?columns=true answers column metadata and no rows', async () => {
    const q = 'SELECT Id, Name, NumberOfEmployees, Owner.Name, (SELECT LastName FROM Contacts) FROM Account';
    const r = await raw(emu, token, 'GET', `/services/data/v${VERSION}/query?q=${encodeURIComponent(q)}&columns=true`);
    expect(r.status).toBe(200);
    const b = r.json();
    expect(b).toMatchObject({ entityName: 'Account', groupBy: false, idSelected: true, keyPrefix: '001' });
    expect(b.records).toBeUndefined();
    const cols = b.columnMetadata as Array<Record<string, any>>;
    expect(cols.map((c) => c.columnName)).toEqual(['Id', 'Name', 'NumberOfEmployees', 'Owner', 'Contacts']);
    expect(cols[0]).toEqual({ aggregate: false, apexType: 'Id', booleanType: false, columnName: 'Id', custom: false, displayName: 'Id', foreignKeyName: null, insertable: false, joinColumns: [], numberType: false, textType: false, updatable: false });
    expect(cols[2]).toMatchObject({ apexType: 'Integer', numberType: true, insertable: true, updatable: true });
    expect(cols[3]).toMatchObject({ aggregate: false, apexType: null, columnName: 'Owner', displayName: 'Owner' });
    expect(cols[3].joinColumns).toEqual([expect.objectContaining({ columnName: 'Name', displayName: 'Owner.Name', apexType: 'String', textType: true })]);
    expect(cols[4]).toMatchObject({ aggregate: true, columnName: 'Contacts', displayName: 'Contacts' });
    expect(cols[4].joinColumns).toEqual([expect.objectContaining({ columnName: 'LastName', displayName: 'LastName' })]);
    const agg = (await raw(emu, token, 'GET', `/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT COUNT(Id), MAX(Name) top FROM Account')}&columns=true`)).json();
    expect(agg.columnMetadata).toEqual([
      expect.objectContaining({ aggregate: true, columnName: 'expr0', displayName: 'COUNT(Id)', apexType: 'Integer' }),
      expect.objectContaining({ aggregate: true, columnName: 'top', displayName: 'MAX(Name)', apexType: 'String' }),
    ]);
    expect(agg.idSelected).toBe(false);
  });
});

describe('sObject Tree', () => {
  it('creates parents with children in one call and answers every referenceId', async () => {
    const before = emu.stats().api.used;
    const r = await raw(emu, token, 'POST', `/services/data/v${VERSION}/composite/tree/Account`, {
      records: [
        { attributes: { type: 'Account', referenceId: 'acc1' }, Name: 'Tree One', Contacts: { records: [
          { attributes: { type: 'Contact', referenceId: 'con1' }, LastName: 'Leaf', Email: 'LEAF@EXAMPLE.COM' },
          { attributes: { type: 'Contact', referenceId: 'con2' }, LastName: 'Twig' }] } },
        { attributes: { type: 'Account', referenceId: 'acc2' }, Name: 'Tree Two' },
      ],
    });
    expect(r.status).toBe(201);
    const b = r.json() as { hasErrors: boolean; results: Array<{ referenceId: string; id: string }> };
    expect(b.hasErrors).toBe(false);
    expect(b.results.map((x) => x.referenceId)).toEqual(['acc1', 'con1', 'con2', 'acc2']);
    const ids = Object.fromEntries(b.results.map((x) => [x.referenceId, x.id]));
    expect(emu.record(ids.con1)).toMatchObject({ AccountId: ids.acc1, LastName: 'Leaf', Email: 'leaf@example.com' });
    expect(emu.record(ids.con2)).toMatchObject({ AccountId: ids.acc1 });
    expect(emu.record(ids.acc2)).toMatchObject({ Name: 'Tree Two' });
    expect(emu.stats().api.used).toBe(before + 1);
  });

  it('is all or nothing: one invalid child writes nothing and is named by its referenceId', async () => {
    const accounts = emu.records('Account').length;
    const r = await raw(emu, token, 'POST', `/services/data/v${VERSION}/composite/tree/Account`, {
      records: [{ attributes: { type: 'Account', referenceId: 'ok1' }, Name: 'Tree Three', Contacts: { records: [
        { attributes: { type: 'Contact', referenceId: 'bad1' }, LastName: 'Bad', Email: 'not-an-email' }] } }],
    });
    expect(r.status).toBe(400);
    const b = r.json();
    expect(b.hasErrors).toBe(true);
    expect(b.results).toEqual([{ referenceId: 'bad1', errors: [expect.objectContaining({ statusCode: 'INVALID_EMAIL_ADDRESS', fields: ['Email'] })] }]);
    expect(emu.records('Account').length).toBe(accounts);
    expect(emu.records('Account').some((a) => a.Name === 'Tree Three')).toBe(false);
    const dup = await raw(emu, token, 'POST', `/services/data/v${VERSION}/composite/tree/Account`, {
      records: [{ attributes: { type: 'Account', referenceId: 'x' }, Name: 'A' }, { attributes: { type: 'Account', referenceId: 'x' }, Name: 'B' }],
    });
    expect(dup.status).toBe(400);
    expect(dup.json()[0]).toMatchObject({ errorCode: 'INVALID_INPUT' });
    const wrongType = await raw(emu, token, 'POST', `/services/data/v${VERSION}/composite/tree/Account`, { records: [{ attributes: { type: 'Contact', referenceId: 'y' }, LastName: 'A' }] });
    expect(wrongType.status).toBe(400);
  });

  it('jsforce drives it through conn.request', async () => {
    const conn = await login(emu);
    const r = await conn.request<{ hasErrors: boolean; results: Array<{ id: string }> }>({
      method: 'POST', url: `/services/data/v${VERSION}/composite/tree/Invoice__c`, headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ records: [{ attributes: { type: 'Invoice__c', referenceId: 'inv' }, External_Id__c: 'TREE-1', Amount__c: 10 }] }),
    });
    expect(r.hasErrors).toBe(false);
    expect(emu.record(r.results[0].id)).toMatchObject({ External_Id__c: 'TREE-1', Tax__c: 2 });
  });
});

/** A request over TLS that trusts only the given certificate. */
function tlsRequest(url: string, ca: string | undefined, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request(url, { method: init.method ?? 'GET', headers: init.headers, ca }, (res) => {
      let text = '';
      res.on('data', (d) => { text += String(d); });
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('HTTPS', () => {
  it('serves the same org over TLS with a certificate made at start; what it hands out stays on https', async () => {
    const e = await start({ httpsPort: 0, seed: { Account: 2 } });
    try {
      expect(e.httpsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(e.certificate).toMatch(/^-----BEGIN CERTIFICATE-----/);
      // Without trusting the certificate the handshake is refused.
      await expect(tlsRequest(`${e.httpsUrl}/services/data`, undefined)).rejects.toThrow(/self[- ]signed/i);
      const c = e.credentials;
      const tok = await tlsRequest(`${e.httpsUrl}/services/oauth2/token`, e.certificate, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret }).toString() });
      expect(tok.status).toBe(200);
      const t = JSON.parse(tok.text);
      expect(t.instance_url).toBe(e.httpsUrl);
      expect(t.id).toMatch(new RegExp(`^${e.httpsUrl}/id/`));
      const q = await tlsRequest(`${e.httpsUrl}/services/data/v${VERSION}/query?q=${encodeURIComponent('SELECT Id FROM Account')}`, e.certificate, { headers: { Authorization: `Bearer ${t.access_token}` } });
      expect(JSON.parse(q.text).totalSize).toBe(2);
      const res = JSON.parse((await tlsRequest(`${e.httpsUrl}/services/data/v${VERSION}/`, e.certificate, { headers: { Authorization: `Bearer ${t.access_token}` } })).text);
      expect(res.identity).toMatch(new RegExp(`^${e.httpsUrl}/id/`));
      // SOAP login over TLS hands out an https serverUrl.
      const soap = await tlsRequest(`${e.httpsUrl}/services/Soap/u/58.0`, e.certificate, { method: 'POST', headers: { 'content-type': 'text/xml', SOAPAction: '""' },
        body: `<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Body><login xmlns="urn:partner.soap.sforce.com"><username>${c.username}</username><password>${c.password}</password></login></se:Body></se:Envelope>` });
      expect(soap.status).toBe(200);
      expect(/<serverUrl>([^<]+)</.exec(soap.text)?.[1]).toMatch(new RegExp(`^${e.httpsUrl}/services/Soap/u/58.0/00D`));
      // The plain listener still answers with its own URLs.
      const plain = (await (await fetch(`${e.url}/services/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret }) })).json()) as { instance_url: string };
      expect(plain.instance_url).toBe(e.url);
    } finally {
      await e.stop();
    }
  });

  it('repeated slashes in a path are ignored, as orgs do (an instance URL ending in / joined with /services/data)', async () => {
    const r = await fetch(`${emu.url}//services/data`);
    expect(r.status).toBe(200);
    const q = await raw(emu, token, 'GET', `//services/data/v${VERSION}//limits`);
    expect(q.status).toBe(200);
  });
});

describe('SOAP login', () => {
  const envelope = (inner: string, header = '') => `<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Header>${header}</env:Header><env:Body>${inner}</env:Body></env:Envelope>`;
  const post = (path: string, body: string) => fetch(emu.url + path, { method: 'POST', headers: { 'Content-Type': 'text/xml', SOAPAction: '""' }, body });

  it('jsforce signs in through SOAP without an OAuth client id, and the session works over REST', async () => {
    const c = emu.credentials;
    const conn = new jsforce.Connection({ loginUrl: c.loginUrl, version: '58.0' });
    const info = await conn.login(c.username, c.password);
    expect(info.id).toMatch(/^005\w{15}$/);
    expect(info.organizationId).toMatch(/^00D\w{15}$/);
    expect(conn.instanceUrl).toBe(emu.url);
    expect(conn.accessToken).toMatch(/^00D\w{12}!/);
    expect((await conn.query('SELECT Id FROM Account')).totalSize).toBeGreaterThan(0);
    await conn.logout();
    const after = await raw(emu, conn.accessToken ?? '', 'GET', `/services/data/v58.0/limits`);
    expect(after.status).toBe(401);
  });

  it('login() answers sessionId, serverUrl and userInfo as the partner API does', async () => {
    const c = emu.credentials;
    const r = await post(`/services/Soap/u/${VERSION}`, envelope(`<n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>${c.username}</n1:username><n1:password>${c.password}</n1:password></n1:login>`));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/xml;charset=UTF-8');
    const xml = await r.text();
    const get = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
    expect(xml).toContain('<loginResponse><result>');
    expect(get('serverUrl')).toMatch(new RegExp(`^${emu.url}/services/Soap/u/${VERSION}/00D\\w{15}$`));
    expect(get('metadataServerUrl')).toMatch(new RegExp(`^${emu.url}/services/Soap/m/${VERSION}/00D\\w{15}$`));
    expect(get('passwordExpired')).toBe('false');
    expect(get('userName')).toBe(c.username);
    expect(get('userFullName')).toBe('Ada Admin');
    expect(get('sessionSecondsValid')).toBe('7200');
    const rest = await raw(emu, get('sessionId')!, 'GET', `/services/data/v${VERSION}/sobjects`);
    expect(rest.status).toBe(200);
  });

  it('bad credentials, a version without login() and other operations are SOAP faults', async () => {
    const c = emu.credentials;
    const bad = await post(`/services/Soap/u/${VERSION}`, envelope(`<login xmlns="urn:partner.soap.sforce.com"><username>${c.username}</username><password>wrong</password></login>`));
    expect(bad.status).toBe(500);
    const badXml = await bad.text();
    expect(badXml).toContain('<faultcode>sf:INVALID_LOGIN</faultcode>');
    expect(badXml).toContain('<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring>');
    expect(badXml).toContain('<sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>');
    const conn = new jsforce.Connection({ loginUrl: c.loginUrl, version: '58.0' });
    await expect(conn.login(c.username, 'wrong')).rejects.toThrow('INVALID_LOGIN: Invalid username, password, security token; or user locked out.');
    const v65 = await post('/services/Soap/u/65.0', envelope(`<login xmlns="urn:partner.soap.sforce.com"><username>${c.username}</username><password>${c.password}</password></login>`));
    expect(v65.status).toBe(500);
    expect(await v65.text()).toContain('<faultcode>sf:INVALID_OPERATION</faultcode>');
    const other = await post(`/services/Soap/u/${VERSION}`, envelope('<query xmlns="urn:partner.soap.sforce.com"><queryString>SELECT Id FROM Account</queryString></query>'));
    expect(other.status).toBe(500);
    expect(await other.text()).toContain('No operation available for request {urn:partner.soap.sforce.com}query');
  });
});
