import { execFileSync, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../emulator/index.js';
import { loadConfig } from '../../sidecar/config.js';
import { login, raw, start, VERSION, waitFor } from './helpers.js';

let emu: Emulator;
beforeAll(async () => { emu = await start({ seed: { Account: 50, Contact: 2500 } }); });
afterAll(async () => { await emu?.stop(); });

describe('Bulk API 2.0', () => {
  it('ingests with jsforce: successful and failed rows with sf__ columns', async () => {
    const conn = await login(emu);
    const res = await conn.bulk2.loadAndWaitForResults({
      object: 'Account', operation: 'insert', pollInterval: 50, pollTimeout: 20_000,
      input: [{ Name: 'Bulk A', NumberOfEmployees: 3 }, { Name: 'Bulk B', NumberOfEmployees: -1 }, { Name: null, NumberOfEmployees: 2 }, { Name: 'Bulk D', NumberOfEmployees: 'abc' }] as any,
    });
    expect(res.successfulResults).toHaveLength(1);
    expect(res.successfulResults[0]).toMatchObject({ sf__Created: 'true', Name: 'Bulk A' });
    expect(res.successfulResults[0].sf__Id).toMatch(/^001[a-zA-Z0-9]{15}$/);
    const errs = res.failedResults.map((r: any) => r.sf__Error).sort();
    expect(errs).toEqual([
      'FIELD_CUSTOM_VALIDATION_EXCEPTION:Number of employees cannot be negative.:NumberOfEmployees --',
      'INVALID_TYPE_ON_FIELD_IN_RECORD:Employees: value not of required type: abc:NumberOfEmployees --',
      'REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --',
    ].sort());
    expect(res.failedResults.every((r: any) => r.sf__Id === '')).toBe(true);
    expect(res.unprocessedRecords).toHaveLength(0);
    // upsert with #N/A (null) vs empty (unchanged)
    const ext = await conn.bulk2.loadAndWaitForResults({ object: 'Contact', operation: 'upsert', externalIdFieldName: 'External_Id__c', pollInterval: 50, pollTimeout: 20_000,
      input: [{ External_Id__c: 'CON-000001', Title: null, Phone: '999', LastName: '' }, { External_Id__c: 'BULK-NEW', LastName: 'New', Phone: '1' }] as any });
    expect(ext.failedResults).toEqual([]);
    expect(ext.successfulResults.map((r: any) => r.sf__Created).sort()).toEqual(['false', 'true']);
    const c1 = emu.records('Contact').find((r) => r.External_Id__c === 'CON-000001')!;
    expect(c1.Title).toBeNull();
    expect(c1.Phone).toBe('999');
    expect(c1.LastName).toBeTruthy();
  });

  it('drives an ingest job by hand: states, CSV upload, results', async () => {
    const conn = await login(emu);
    const base = `/services/data/v${VERSION}/jobs/ingest`;
    const job = await conn.request<any>({ method: 'POST', url: base, body: JSON.stringify({ object: 'Invoice__c', operation: 'insert' }), headers: { 'Content-Type': 'application/json; charset=utf-8' } });
    expect(job).toMatchObject({ state: 'Open', object: 'Invoice__c', operation: 'insert', contentType: 'CSV', lineEnding: 'LF', columnDelimiter: 'COMMA' });
    const put = await raw(emu, conn.accessToken!, 'PUT', `${base}/${job.id}/batches`, 'External_Id__c,Amount__c,Status__c\nBJ-1,10,Draft\nBJ-2,-3,Draft\nBJ-3,7,Nope\n', { 'Content-Type': 'text/csv' });
    expect(put.status).toBe(201);
    const early = await raw(emu, conn.accessToken!, 'GET', `/services/data/v${VERSION}/jobs/query/${job.id}/results`);
    expect(early.status).toBe(404);
    await conn.request({ method: 'PATCH', url: `${base}/${job.id}`, body: JSON.stringify({ state: 'UploadComplete' }), headers: { 'Content-Type': 'application/json' } });
    const again = await raw(emu, conn.accessToken!, 'PUT', `${base}/${job.id}/batches`, 'External_Id__c\nX\n', { 'Content-Type': 'text/csv' });
    expect(again.status).toBe(409);
    const done = await waitFor(async () => { const j = await conn.request<any>(`${base}/${job.id}`); return j.state === 'JobComplete' ? j : undefined; }, 'job complete');
    expect(done).toMatchObject({ numberRecordsProcessed: 3, numberRecordsFailed: 2, jobType: 'V2Ingest' });
    const ok = await raw(emu, conn.accessToken!, 'GET', `${base}/${job.id}/successfulResults`);
    expect(ok.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(ok.text.split('\n')[0]).toBe('"sf__Id","sf__Created","External_Id__c","Amount__c","Status__c"');
    const failed = await raw(emu, conn.accessToken!, 'GET', `${base}/${job.id}/failedResults`);
    expect(failed.text).toContain('"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:Status: bad value for restricted picklist field: Nope:Status__c --"');
  });

  it('pages query results with Sforce-Locator and maxRecords, last page says null', async () => {
    const conn = await login(emu);
    const job = await conn.request<any>({ method: 'POST', url: `/services/data/v${VERSION}/jobs/query`, body: JSON.stringify({ operation: 'query', query: 'SELECT Id, LastName, Account.Name, CreatedDate FROM Contact' }), headers: { 'Content-Type': 'application/json' } });
    expect(job.state).toBe('UploadComplete');
    await waitFor(async () => (await conn.request<any>(`/services/data/v${VERSION}/jobs/query/${job.id}`)).state === 'JobComplete', 'query job');
    const total = emu.records('Contact').length;
    let locator: string | null = '';
    let rows = 0, pages = 0;
    const seen = new Set<string>();
    while (locator !== 'null') {
      const r = await raw(emu, conn.accessToken!, 'GET', `/services/data/v${VERSION}/jobs/query/${job.id}/results?maxRecords=1000${locator ? `&locator=${locator}` : ''}`, undefined, { Accept: 'text/csv' });
      expect(r.status).toBe(200);
      locator = r.headers.get('sforce-locator');
      const lines = r.text.trim().split('\n');
      expect(lines[0]).toBe('"Id","LastName","Account.Name","CreatedDate"');
      expect(Number(r.headers.get('sforce-numberofrecords'))).toBe(lines.length - 1);
      for (const l of lines.slice(1)) seen.add(l.slice(1, 19));
      expect(lines[1]).toMatch(/^"003[a-zA-Z0-9]{15}","[^"]+",("[^"]*")?,"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z"$/);
      rows += lines.length - 1;
      pages++;
    }
    expect(pages).toBe(Math.ceil(total / 1000));
    expect(rows).toBe(total);
    expect(seen.size).toBe(total);
    // jsforce's helper is fine when the results fit one page
    const small = await conn.bulk2.query(`SELECT Id, Name FROM Account WHERE Name LIKE 'Bulk%'`, { pollInterval: 50, pollTimeout: 20_000 });
    const got: any[] = [];
    for await (const rec of small) got.push(rec);
    expect(got.map((r) => r.Name)).toContain('Bulk A');
    const st = emu.stats();
    expect(st.api.byKind.bulk2Query).toBeGreaterThanOrEqual(pages + 2);
    expect(st.bulk.queryJobs).toBeGreaterThanOrEqual(2);
  });
});

describe('CLI', () => {
  // Compile the emulator alone and run its CLI module directly, as `node dist/emulator/cli.js` would.
  const out_dir = resolve('.data/emulator-cli-test');
  beforeAll(() => {
    execFileSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '--outDir', out_dir, '--rootDir', '.', '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
      '--target', 'ES2023', '--skipLibCheck', '--esModuleInterop', '--strict', '--types', 'node', 'emulator/cli.ts'], { stdio: 'inherit' });
  });

  /** Starts the compiled CLI, waits for its export lines, and hands them over; stops it afterwards. */
  async function withCli(args: string[], fn: (vars: Record<string, string>) => Promise<void>) {
    const child = spawn(process.execPath, [resolve(out_dir, 'emulator/cli.js'), '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += String(d); });
    try {
      await waitFor(() => out.includes('SF_PASSWORD=') && (!args.includes('--https-port') || out.includes('NODE_EXTRA_CA_CERTS=')), 'export lines', 30_000);
      await fn(Object.fromEntries([...out.matchAll(/^export ([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]])));
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }

  it('prints the export lines and serves until killed', async () => {
    await withCli(['--seed', 'Account=3'], async (vars) => {
      expect(Object.keys(vars)).toEqual(['SF_LOGIN_URL', 'SF_CLIENT_ID', 'SF_CLIENT_SECRET', 'SF_AUTH', 'SF_USERNAME', 'SF_PASSWORD', 'SF_PUBSUB_ENDPOINT', 'NODE_EXTRA_CA_CERTS']);
      expect(vars.SF_PUBSUB_ENDPOINT).toMatch(/^127\.0\.0\.1:\d+$/);
      // hcsync, given these lines, signs in by client credentials, not by the username-password flow Salesforce retires.
      expect(vars.SF_AUTH).toBe('client_credentials');
      expect(loadConfig({ DATABASE_URL: 'postgres://localhost/x', ...vars }).salesforce.auth).toBe('client_credentials');
      const cc = await fetch(`${vars.SF_LOGIN_URL}/services/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: vars.SF_CLIENT_ID, client_secret: vars.SF_CLIENT_SECRET }) });
      expect(cc.status).toBe(200);
      const tok = await fetch(`${vars.SF_LOGIN_URL}/services/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', client_id: vars.SF_CLIENT_ID, client_secret: vars.SF_CLIENT_SECRET, username: vars.SF_USERNAME, password: vars.SF_PASSWORD }) });
      expect(tok.status).toBe(200);
      const stats = (await (await fetch(`${vars.SF_LOGIN_URL}/__emulator/stats`)).json()) as any;
      expect(stats.counts.Account).toBe(3);
    });
  });

  it('--https-port prints the HTTPS URL and the certificate file that makes Node clients trust it', async () => {
    await withCli(['--https-port', '0'], async (vars) => {
      expect(Object.keys(vars)).toEqual(['SF_LOGIN_URL', 'SF_CLIENT_ID', 'SF_CLIENT_SECRET', 'SF_AUTH', 'SF_USERNAME', 'SF_PASSWORD', 'SF_HTTPS_URL', 'SF_PUBSUB_ENDPOINT', 'NODE_EXTRA_CA_CERTS']);
      expect(vars.SF_HTTPS_URL).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      // A fresh Node process with only NODE_EXTRA_CA_CERTS set trusts the emulator.
      const script = `fetch(process.argv[1] + '/services/data').then(async (r) => { console.log(r.status, (await r.json()).length); }, (e) => { console.log('refused', e.cause?.code); })`;
      const trusted = execFileSync(process.execPath, ['-e', script, vars.SF_HTTPS_URL], { env: { ...process.env, NODE_EXTRA_CA_CERTS: vars.NODE_EXTRA_CA_CERTS } }).toString().trim();
      expect(trusted).toMatch(/^200 \d+$/);
      const untrusted = execFileSync(process.execPath, ['-e', script, vars.SF_HTTPS_URL], { env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } }).toString().trim();
      expect(untrusted).toMatch(/^refused /);
    });
  });
});
