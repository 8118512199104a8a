// The official Salesforce CLI (`sf`, npm @salesforce/cli), unmodified, against the emulator over HTTPS. Only
// configuration differs from a real org: a temporary HOME, the emulator's certificate in NODE_EXTRA_CA_CERTS,
// and telemetry and update checks off.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../emulator/index.js';
import { start } from './helpers.js';

const SF = resolve('node_modules/@salesforce/cli/bin/run.js');
const TIMEOUT = 180_000;

let emu: Emulator;
let dir: string;
let env: NodeJS.ProcessEnv;

interface SfResult<T> { status: number; result: T; warnings?: string[]; message?: string; name?: string }

/** Runs `sf <args>`; with --json the parsed envelope. */
function sf(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, ['--no-deprecation', SF, ...args], { env: { ...env, ...extraEnv }, cwd: dir, maxBuffer: 64 * 1024 * 1024, timeout: TIMEOUT },
      (err, stdout, stderr) => res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function sfJson<T>(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<SfResult<T>> {
  const r = await sf([...args, '--json'], extraEnv);
  let parsed: SfResult<T>;
  try { parsed = JSON.parse(r.stdout) as SfResult<T>; } catch { throw new Error(`sf ${args.join(' ')}: no JSON (exit ${r.code})\n${r.stdout}\n${r.stderr}`); }
  if (parsed.status !== 0) throw new Error(`sf ${args.join(' ')} failed: ${JSON.stringify(parsed)}`);
  return parsed;
}

beforeAll(async () => {
  emu = await start({ httpsPort: 0, seed: { Account: 6, Contact: 4 } });
  dir = mkdtempSync(join(tmpdir(), 'hcsync-sf-cli-'));
  const certFile = join(dir, 'emulator.pem');
  writeFileSync(certFile, emu.certificate!);
  env = {
    PATH: [dirname(process.execPath), resolve('node_modules/.bin'), process.env.PATH ?? ''].join(delimiter),
    HOME: dir, XDG_CONFIG_HOME: join(dir, '.config'), XDG_CACHE_HOME: join(dir, '.cache'), XDG_DATA_HOME: join(dir, '.local/share'),
    NODE_EXTRA_CA_CERTS: certFile,
    SF_DISABLE_TELEMETRY: 'true', SF_AUTOUPDATE_DISABLE: 'true', SF_SKIP_NEW_VERSION_CHECK: 'true', SF_USE_PROGRESS_BAR: 'false',
    SF_DISABLE_AUTOUPDATE: 'true', SFDX_DISABLE_TELEMETRY: 'true', NO_COLOR: '1',
  };
  // Sign in the way a CI job does with a token it already holds: client credentials, then `org login access-token`.
  const c = emu.credentials;
  const tok = (await (await fetch(`${emu.url}/services/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret }) })).json()) as { access_token: string };
  const login = await sfJson<{ username: string; orgId: string; instanceUrl: string }>(
    ['org', 'login', 'access-token', '--instance-url', emu.httpsUrl!, '--no-prompt', '--alias', 'emu'], { SF_ACCESS_TOKEN: tok.access_token });
  expect(login.result).toMatchObject({ username: c.username, instanceUrl: `${emu.httpsUrl}/` });
  expect(login.result.orgId).toMatch(/^00D\w{15}$/);
}, TIMEOUT);

afterAll(async () => {
  await emu?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('sf CLI against the emulator', () => {
  it('org display: connected, on the newest API version', async () => {
    const r = await sfJson<{ connectedStatus: string; instanceUrl: string; apiVersion: string; username: string }>(['org', 'display', '-o', 'emu']);
    expect(r.result).toMatchObject({ connectedStatus: 'Connected', instanceUrl: `${emu.httpsUrl}/`, username: emu.credentials.username });
    const versions = (await (await fetch(`${emu.url}/services/data`)).json()) as Array<{ version: string }>;
    expect(r.result.apiVersion).toBe(versions.at(-1)!.version);
  }, TIMEOUT);

  it('data query: records as JSON, and the table built from the column metadata', async () => {
    const soql = 'SELECT Id, Name, Owner.Name FROM Account ORDER BY Name';
    const r = await sfJson<{ totalSize: number; records: Array<{ Id: string; Name: string; Owner: { Name: string } }> }>(['data', 'query', '-o', 'emu', '-q', soql]);
    const expected = emu.records('Account').map((a) => String(a.Name)).sort();
    expect(r.result.totalSize).toBe(expected.length);
    expect(r.result.records.map((x) => x.Name)).toEqual(expected);
    expect(r.result.records[0].Owner.Name).toBe('Ada Admin');
    const table = await sf(['data', 'query', '-o', 'emu', '-q', soql]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/OWNER\.NAME/);
    expect(table.stdout).toContain(expected[0]);
    expect(table.stdout).toContain(`Total number of records retrieved: ${expected.length}.`);
  }, TIMEOUT);

  it('data create, update and delete record', async () => {
    const created = await sfJson<{ id: string; success: boolean }>(['data', 'create', 'record', '-o', 'emu', '-s', 'Account', '-v', "Name='Cli Co' NumberOfEmployees=4"]);
    const id = created.result.id;
    expect(emu.record(id)).toMatchObject({ Name: 'Cli Co', NumberOfEmployees: 4 });
    await sfJson(['data', 'update', 'record', '-o', 'emu', '-s', 'Account', '-i', id, '-v', "Phone='555-0100'"]);
    expect(emu.record(id)?.Phone).toBe('555-0100');
    // By a where clause: the CLI finds the record with a query first.
    await sfJson(['data', 'update', 'record', '-o', 'emu', '-s', 'Account', '-w', "Name='Cli Co'", '-v', "Phone='555-0101'"]);
    expect(emu.record(id)?.Phone).toBe('555-0101');
    await sfJson(['data', 'delete', 'record', '-o', 'emu', '-s', 'Account', '-w', "Name='Cli Co'"]);
    expect(emu.record(id)?.IsDeleted).toBe(true);
    // A refused write comes back as the CLI's error with Salesforce's message.
    const refused = await sf(['data', 'create', 'record', '-o', 'emu', '-s', 'Account', '-v', "Name='INVALID'", '--json']);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toContain('Account name INVALID is not allowed.');
  }, TIMEOUT);

  it('data export bulk and data import bulk (Bulk API 2.0)', async () => {
    const file = join(dir, 'accounts.csv');
    const out = await sfJson<{ totalSize: number; filePath: string }>(['data', 'export', 'bulk', '-o', 'emu', '-q', 'SELECT Id, Name FROM Account', '--output-file', file, '--wait', '5']);
    const live = emu.records('Account');
    expect(out.result.totalSize).toBe(live.length);
    const lines = readFileSync(file, 'utf8').trim().split(/\r?\n/);
    expect(lines[0]).toBe('"Id","Name"');
    expect(lines.slice(1).map((l) => l.split(',')[0].replace(/"/g, '')).sort()).toEqual(live.map((a) => String(a.Id)).sort());

    const csv = join(dir, 'contacts.csv');
    writeFileSync(csv, 'LastName,Email,External_Id__c\nImported One,ONE@EXAMPLE.COM,SFCLI-1\nImported Two,two@example.com,SFCLI-2\n');
    const imp = await sfJson<{ jobId: string; processedRecords: number; successfulRecords: number; failedRecords: number }>(
      ['data', 'import', 'bulk', '-o', 'emu', '-s', 'Contact', '--file', csv, '--wait', '5']);
    expect(imp.result).toMatchObject({ processedRecords: 2, successfulRecords: 2, failedRecords: 0 });
    expect(imp.result.jobId).toMatch(/^750\w{15}$/);
    const one = emu.records('Contact').find((c) => c.External_Id__c === 'SFCLI-1');
    expect(one).toMatchObject({ LastName: 'Imported One', Email: 'one@example.com' });
  }, TIMEOUT);

  it('sobject describe', async () => {
    const r = await sfJson<{ name: string; keyPrefix: string; custom: boolean; fields: Array<{ name: string; calculated: boolean; calculatedFormula: string | null }> }>(
      ['sobject', 'describe', '-o', 'emu', '-s', 'Invoice__c']);
    expect(r.result).toMatchObject({ name: 'Invoice__c', keyPrefix: 'a0I', custom: true });
    expect(r.result.fields.find((f) => f.name === 'Tax__c')).toMatchObject({ calculated: true, calculatedFormula: 'ROUND(Amount__c * 0.2, 2)' });
  }, TIMEOUT);

  it('limits api display shows the org\'s daily API allowance and use', async () => {
    emu.setDailyApiLimit(50_000, 1_234);
    const r = await sfJson<Array<{ name: string; max: number; remaining: number }>>(['limits', 'api', 'display', '-o', 'emu']);
    const daily = r.result.find((l) => l.name === 'DailyApiRequests')!;
    expect(daily.max).toBe(50_000);
    // The limits call itself is counted before the answer.
    expect(daily.remaining).toBeLessThanOrEqual(50_000 - 1_234 - 1);
    expect(daily.remaining).toBeGreaterThan(50_000 - 1_234 - 20);
  }, TIMEOUT);
});
