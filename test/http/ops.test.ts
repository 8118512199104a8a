// The operator's view of a running sidecar process: /healthz, /metrics whose numbers move when rows
// sync both ways, graceful SIGTERM (exit 0, no claim left PENDING), and the verbs that need
// Salesforce (run, sf, emulator) through the real binary against the emulator.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import jsforce from 'jsforce';
import { createTestDb, type TestDb } from '../support/db.js';
import { assertFreshBuild, CLI, cli, hcsync } from '../support/cli.js';
import { spawnSidecar, testStreamEnv, type SidecarProcess } from '../support/sidecar.js';
import { until as waitUntil } from '../support/until.js';
import { startEmulator, type Emulator } from '../../emulator/index.js';

let db: TestDb;
let emu: Emulator;
let env: Record<string, string>;
let sidecar: SidecarProcess | undefined;
let base = '';

async function until<T>(what: string, check: () => Promise<T | undefined | null | false>, ms = 90_000): Promise<T> {
  try {
    return (await waitUntil(check, what, ms, 200)) as T;
  } catch (e) {
    throw new Error(`${(e as Error).message}${sidecar ? `\nsidecar output:\n${sidecar.output().slice(-4000)}` : ''}`);
  }
}

async function metrics(): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const m = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
const get = (m: Map<string, number>, name: string, ...labels: string[]) =>
  [...m].find(([k]) => k.startsWith(name + '{') && labels.every((l) => k.includes(l)))?.[1] ?? NaN;

function startSidecarProcess(): Promise<void> {
  sidecar = spawnSidecar(env);
  return until('the sidecar to log its HTTP address', async () => {
    const hit = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"http listening"/.exec(sidecar!.output());
    if (hit) base = hit[1];
    return hit;
  }).then(() => undefined);
}

beforeAll(async () => {
  assertFreshBuild();
  db = await createTestDb();
  emu = await startEmulator({ seed: { Account: 20 } });
  const c = emu.credentials;
  env = {
    DATABASE_URL: db.url,
    SF_LOGIN_URL: c.loginUrl,
    SF_CLIENT_ID: c.clientId,
    SF_CLIENT_SECRET: c.clientSecret,
    SF_USERNAME: c.username,
    SF_PASSWORD: c.password,
    HC_HTTP_PORT: '0',
    HC_LOG_PRETTY: '0',
    HC_LOG_LEVEL: 'info',
    ...testStreamEnv(emu),
  };
  await db.query(`select hc.create_connection('ops', 'salesforce')`);
  await db.query(`select hc.create_mapping('Account', $1::jsonb)`, [
    JSON.stringify({
      access: 'read_write',
      sf_notify_enabled: true,
      fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, CreatedDate: {}, Name: {}, Phone: {}, External_Id__c: {} },
      indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, External_Id__c: { unique: true } },
      upsert_field: 'External_Id__c',
    }),
  ]);
  await startSidecarProcess();
  await until('Account loaded', async () => (await db.query(`select 1 from hc.mappings where state = 'DATA_SYNCED'`)).rowCount);
}, 180_000);

afterAll(async () => {
  await sidecar?.kill9();
  await emu?.stop();
  await db?.drop();
});

describe('a running sidecar', () => {
  it('/healthz answers ok with the connection state; unknown paths are 404', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', connection: 'ops' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    // Secrets never reach the log (the start line logs the whole configuration, masked).
    expect(sidecar!.output()).toContain('"msg":"hcsync starting"');
    expect(sidecar!.output()).not.toContain(emu.credentials.password);
    expect(sidecar!.output()).not.toContain(emu.credentials.clientSecret);
  });

  it('/metrics: rows synced inbound and outbound, pending and errored writes, API calls and usage move as rows sync', async () => {
    const m0 = await metrics();
    expect(get(m0, 'hcsync_rows_synced', 'direction="inbound"')).toBe(20);
    expect(get(m0, 'hcsync_table_rows', 'object="Account"', 'lastop="SYNCED"')).toBe(20);
    expect(get(m0, 'hcsync_mapping_state', 'object="Account"', 'state="DATA_SYNCED"')).toBe(1);
    expect(get(m0, 'hcsync_pending_writes', 'connection="ops"')).toBe(0);
    const out0 = get(m0, 'hcsync_rows_synced', 'direction="outbound"');

    // Postgres → Salesforce: three rows, one of which Salesforce rejects (validation rule).
    await db.query(`insert into salesforce.account (name, external_id__c) values ('Metrics A', 'm-a'), ('Metrics B', 'm-b'), ('INVALID', 'm-bad')`);
    await until('writes done', async () => (await db.query(`select 1 from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rowCount === 0);
    const m1 = await until('outbound counted', async () => {
      const m = await metrics();
      return get(m, 'hcsync_rows_synced', 'direction="outbound"') === out0 + 2 ? m : undefined;
    });
    expect(get(m1, 'hcsync_errored_writes', 'connection="ops"')).toBe(1);
    expect(get(m1, 'hcsync_trigger_log_rows', 'state="FAILED"')).toBe(1);

    // Salesforce → Postgres: two records created through the API arrive and are counted.
    const conn = new jsforce.Connection({ loginUrl: emu.credentials.loginUrl, version: '62.0', oauth2: { ...emu.credentials, redirectUri: 'http://localhost/cb' } });
    await conn.login(emu.credentials.username, emu.credentials.password);
    await conn.sobject('Account').create([{ Name: 'From SF 1' }, { Name: 'From SF 2' }]);
    const inbound1 = get(m1, 'hcsync_rows_synced', 'direction="inbound"');
    await until('inbound counted', async () => get(await metrics(), 'hcsync_rows_synced', 'direction="inbound"') >= inbound1 + 2);

    // The ledger: calls by kind over 24 h, and the org's own usage figure from Sforce-Limit-Info.
    const m2 = await until('ledger flushed', async () => {
      const m = await metrics();
      return get(m, 'hcsync_api_calls_24h', 'kind="collections"') > 0 ? m : undefined;
    });
    expect(get(m2, 'hcsync_api_usage_limit', 'connection="ops"')).toBe(1_000_000);
    expect(get(m2, 'hcsync_api_usage_remaining', 'connection="ops"')).toBeLessThan(1_000_000);
    expect(get(m2, 'hcsync_api_calls_process', 'kind="collections"')).toBeGreaterThan(0);
    expect(get(m2, 'hcsync_outbound_lag_seconds', 'connection="ops"')).toBe(0);
  });

  it('mapping:create --wait and mapping:reload --wait follow the load until DATA_SYNCED', async () => {
    const create = await cli(['mapping:create', 'Contact', '--fields', 'LastName,Email', '--wait'], { DATABASE_URL: db.url });
    expect(create.stderr).toBe('');
    expect(create.code).toBe(0);
    expect(create.stdout.trim().split('\n').at(-1)).toMatch(/^Contact DATA_SYNCED \(\d+ rows\)$/);
    // A reload is refused while local writes wait (earlier tests wrote rows): let the writer drain.
    await until('Account writes sent', async () => (await db.query(`select pending_writes::int as n from hc.mappings where object_name = 'Account'`)).rows[0]?.n === 0);
    // Slow Salesforce down so the reload outlasts --wait's once-a-second look and its progress shows.
    emu.setLatency(400);
    const reload = await cli(['mapping:reload', 'Account', '--wait'], { DATABASE_URL: db.url }).finally(() => emu.setLatency(0));
    expect(reload.stderr).toBe('');
    expect(reload.code).toBe(0);
    const lines = reload.stdout.trim().split('\n');
    expect(lines[0]).toBe('Account: reload requested');
    expect(lines.at(-1)).toMatch(/^Account DATA_SYNCED \(2\d rows\)$/);
    expect(lines.length).toBeGreaterThan(2); // the request and the load were seen on the way
  });

  it('/healthz is 503 with the reason while the connection is in an error state', async () => {
    await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'test: something broke')`);
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'error', state: 'SYSTEM_ERROR', message: 'test: something broke' });
    // (hcsync recover is tested in test/cli; here the state is put back as the sync itself would.)
    await db.query(`select hc.set_connection_state('IDLE')`);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('SIGTERM: the sidecar finishes or releases its work and exits 0; nothing stays PENDING', async () => {
    await db.query(`insert into salesforce.account (name) select 'Term ' || g from generate_series(1, 300) g`);
    await until('work claimed', async () => (await db.query(`select 1 from salesforce._trigger_log where state = 'PENDING' limit 1`)).rowCount || (await db.query(`select 1 from salesforce._trigger_log where state = 'NEW' limit 1`)).rowCount === 0);
    const child = sidecar!.child;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 60_000))]);
    if (code !== 0) throw new Error(`after SIGTERM: ${String(code)}\n${sidecar!.output().slice(-3000)}`);
    expect(sidecar!.output()).toContain('"msg":"hcsync stopped"');
    const pending = await db.query(`select count(*)::int n from salesforce._trigger_log where state = 'PENDING'`);
    expect(pending.rows[0].n).toBe(0);
    // Started again, it serves /healthz at once (draining the rest is the writer's own tests' business).
    await startSidecarProcess();
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  }, 180_000);
});

describe('verbs that need Salesforce', () => {
  it('run refuses an incomplete Salesforce configuration, naming the variable (exit 2)', async () => {
    const r = await hcsync(['run'], { DATABASE_URL: db.url, SF_USERNAME: 'someone' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SF_CLIENT_ID is not set: password authentication needs');
    expect(r.stderr).toContain('SF_PASSWORD is not set');
    const port = await hcsync(['run'], { ...env, HC_HTTP_PORT: 'eighty' });
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('HC_HTTP_PORT: HC_HTTP_PORT must be a port number');
  });

  it('sf: one authenticated REST call, counted in the ledger; bad method is a usage error', async () => {
    const before = Number((await db.query('select count(*) from hc.api_calls')).rows[0].count);
    const r = await cli(['sf', 'GET', '/limits'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).DailyApiRequests.Max).toBe(1_000_000);
    const after = Number((await db.query('select count(*) from hc.api_calls')).rows[0].count);
    expect(after).toBeGreaterThan(before);
    const bad = await cli(['sf', 'FETCH', '/limits'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('method FETCH is not one of');
    const badBody = await cli(['sf', 'PATCH', '/sobjects/Account/001000000000000AAA', '{"Phone": '], env);
    expect(badBody.code).toBe(2);
    expect(badBody.stderr).toContain('is not valid JSON');
    const wrongPassword = await cli(['sf', 'GET', '/limits'], { ...env, SF_PASSWORD: 'wrong' });
    expect(wrongPassword.code).toBe(2); // Salesforce refusing the SF_* credentials is configuration (OPERATIONS, exit codes)
    expect(wrongPassword.stderr).toMatch(/authentication failure|INVALID_LOGIN|invalid_grant/i);
  });

  it('diagnose with Salesforce configured checks sign-in, API version and limits', async () => {
    const r = await cli(['diagnose', '--json'], env);
    const out = JSON.parse(r.stdout);
    const rule = (name: string) => out.checks.find((c: { rule: string }) => c.rule === name);
    expect(rule('SIGN_IN').status).toBe('GREEN');
    expect(rule('API_VERSION').status).toBe('GREEN');
    expect(rule('API_LIMITS')).toMatchObject({ status: 'GREEN' });
    expect(r.code).toBe(out.red > 0 ? 3 : 0);
    const old = await cli(['diagnose', '--json'], { ...env, SF_API_VERSION: '20.0' });
    expect(JSON.parse(old.stdout).checks.find((c: { rule: string }) => c.rule === 'API_VERSION').status).toBe('RED');
    expect(old.code).toBe(3);
  });

  it('emulator: hcsync emulator prints the SF_* settings and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'emulator', '--port', '0', '--seed', 'Account=3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await until('emulator settings printed', async () => out.includes('export SF_PASSWORD='));
    const login = /export SF_LOGIN_URL=(\S+)/.exec(out)![1];
    const res = await fetch(`${login}/__emulator/stats`);
    expect(res.status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
