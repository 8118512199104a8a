// Connection-level states only the running sidecar can judge: RECOVERY ends in IDLE once Salesforce
// answers; refused credentials show as UNAUTHORIZED in hc.status, and a restart with good ones clears it.
// Only a definite refusal (invalid_grant, invalid_client) is UNAUTHORIZED: a token endpoint that fails
// for a moment (503) delays the work, and the state belongs to the sidecar that holds the connection.
import { createServer } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import { loadConfig } from '../../sidecar/config.js';
import { createLogger } from '../../sidecar/log.js';
import { startSidecar, type Sidecar } from '../../sidecar/run.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { until } from '../support/until.js';
import { testStreamEnv } from '../support/sidecar.js';

type Emulator = Awaited<ReturnType<typeof startEmulator>>;
let emu: Emulator;
let db: TestDb;
const running: Sidecar[] = [];


const state = async () => (await db.query('select state, state_message from hc.connections')).rows[0];

function env(extra: Record<string, string> = {}) {
  return {
    DATABASE_URL: db.url,
    SF_LOGIN_URL: emu.credentials.loginUrl,
    SF_CLIENT_ID: emu.credentials.clientId,
    SF_CLIENT_SECRET: emu.credentials.clientSecret,
    SF_API_VERSION: '62.0',
    HC_HTTP_PORT: '0',
    HC_CONNECTION_CHECK_MS: '200',
    ...testStreamEnv(emu),
    ...extra,
  };
}

/** The states the connection has passed through, from hc.sync_log. */
const transitions = async () =>
  (await db.query(`select detail->>'to' as "to" from hc.sync_log where event = 'connection_state' order by id`)).rows.map((r) => r.to as string);

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

async function start(extra: Record<string, string>): Promise<Sidecar> {
  const s = await startSidecar(loadConfig(env(extra)), { log: createLogger({ level: 'silent' }) });
  running.push(s);
  return s;
}

beforeAll(async () => {
  emu = await startEmulator({ seed: {} });
  db = await createTestDb();
});

afterAll(async () => {
  for (const s of running) await s.stop().catch(() => {});
  await emu?.stop();
  await db?.drop();
});

test('hc.recover() puts the connection in RECOVERY; the sidecar returns it to IDLE once Salesforce answers', async () => {
  const s = await start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: emu.credentials.password });
  await until(async () => (await state()).state === 'IDLE', 'IDLE after start');
  expect((await db.query('select hc.recover() as r')).rows[0].r).toBe('RECOVERY');
  await until(async () => (await state()).state === 'IDLE', 'IDLE after recover');
  const log = await db.query(
    `select detail->>'from' as "from", detail->>'to' as "to" from hc.sync_log where event = 'connection_state' order by id`,
  );
  expect(log.rows.map((r) => `${r.from}>${r.to}`)).toContain('RECOVERY>IDLE');
  await s.stop();
});

test('a revoked refresh token shows as UNAUTHORIZED with the fix; starting with good credentials clears it', async () => {
  const refreshToken = emu.mintRefreshToken();
  const s = await start({ SF_REFRESH_TOKEN: refreshToken });
  await until(async () => (await state()).state === 'IDLE', 'IDLE');
  // Revoke the refresh token, then expire the access token: the next call's refresh is refused.
  const revoke = await fetch(`${emu.url}/services/oauth2/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: refreshToken }),
  });
  expect(revoke.status).toBe(200);
  emu.expireTokens();
  await expect(s.ctx.sf.conn.request(`${s.ctx.sf.basePath}/limits`)).rejects.toThrow();
  const bad = await until(async () => {
    const r = await state();
    return r.state === 'UNAUTHORIZED' && r;
  }, 'UNAUTHORIZED');
  expect(bad.state_message).toMatch(/fix the SF_\* credentials/);
  await s.stop();

  const good = await start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: emu.credentials.password });
  await until(async () => (await state()).state === 'IDLE', 'IDLE after a start with good credentials');
  await good.stop();
});

test('a sign-in refused at start stops hcsync and leaves UNAUTHORIZED in hc.status', async () => {
  await expect(start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: 'wrong' })).rejects.toThrow();
  const r = await state();
  expect(r.state).toBe('UNAUTHORIZED');
  expect(r.state_message).toMatch(/Fix the SF_\* settings/);
});

test('a token endpoint that answers 503 once during a refresh: the write waits and lands, the connection never reads UNAUTHORIZED', async () => {
  const s = await start({ SF_REFRESH_TOKEN: emu.mintRefreshToken() });
  await until(async () => (await state()).state === 'IDLE', 'IDLE');
  await db.query('select hc.create_mapping($1, $2)', ['Account', { access: 'read_write', fields: { Id: {}, Name: {}, SystemModstamp: {}, IsDeleted: {} } }]);
  await until(async () => (await db.query(`select state from hc._mappings where object_name = 'Account'`)).rows[0]?.state === 'DATA_SYNCED', 'Account mapped');
  const seen = (await transitions()).length;
  // The session expires; the refresh that follows meets a 503 from the token endpoint, once.
  emu.expireTokens();
  emu.injectFault({ kind: 'oauth', status: 503 });
  await db.query(`insert into salesforce.account (name) values ('After a 503')`);
  const row = await until(async () => {
    const r = (await db.query(`select sfid, _hc_lastop, _hc_err from salesforce.account where name = 'After a 503'`)).rows[0];
    return r && r._hc_lastop !== 'PENDING' && r;
  }, 'the write done');
  expect(row._hc_err).toBeNull();
  expect(['INSERTED', 'SYNCED']).toContain(row._hc_lastop);
  expect(row.sfid).toBeTruthy();
  expect(emu.server.faults).toEqual([]); // the 503 was served
  expect((await transitions()).slice(seen)).not.toContain('UNAUTHORIZED');
  expect((await state()).state).toBe('IDLE');
  await db.query(`select hc.delete_mapping('Account')`);
  await s.stop();
});

test('a token endpoint that answers 503 at start: hcsync keeps trying and starts', async () => {
  const seen = (await transitions()).length;
  emu.injectFault({ kind: 'oauth', status: 503, remaining: 2 });
  const s = await start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: emu.credentials.password });
  expect(emu.server.faults).toEqual([]);
  await until(async () => (await state()).state === 'IDLE', 'IDLE');
  expect((await transitions()).slice(seen)).not.toContain('UNAUTHORIZED');
  await s.stop();
});

test('a misconfigured second sidecar on the same connection leaves the state the healthy one reports alone', async () => {
  const port = await freePort();
  const healthy = await start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: emu.credentials.password, HC_HTTP_PORT: String(port) });
  await until(async () => (await state()).state === 'IDLE', 'IDLE');
  const seen = (await transitions()).length;
  await expect(start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: 'wrong' })).rejects.toThrow(/authentication failure/);
  expect((await transitions()).slice(seen)).toEqual([]);
  expect((await state()).state).toBe('IDLE');
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  expect(health.status).toBe(200);
  // The healthy one still syncs.
  await expect(healthy.ctx.sf.conn.request(`${healthy.ctx.sf.basePath}/limits`)).resolves.toBeTruthy();
  await healthy.stop();
});

test('a standby sidecar whose session refresh is refused at run time leaves the state alone; the one holding the connection keeps it IDLE', async () => {
  const healthy = await start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: emu.credentials.password });
  await until(async () => (await state()).state === 'IDLE', 'IDLE');
  const refreshToken = emu.mintRefreshToken();
  const standby = await start({ SF_REFRESH_TOKEN: refreshToken });
  const seen = (await transitions()).length;
  // The standby's refresh token is revoked, then every session expires: the standby's refresh is
  // refused (invalid_grant), the healthy sidecar signs in again.
  await fetch(`${emu.url}/services/oauth2/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: refreshToken }),
  });
  emu.expireTokens();
  await expect(standby.ctx.sf.conn.request(`${standby.ctx.sf.basePath}/limits`)).rejects.toThrow(/invalid_grant/);
  await expect(healthy.ctx.sf.conn.request(`${healthy.ctx.sf.basePath}/limits`)).resolves.toBeTruthy();
  await db.query('select hc.recover()'); // a check by the holder: still IDLE afterwards
  await until(async () => (await state()).state === 'IDLE', 'IDLE after the check');
  expect((await transitions()).slice(seen).filter((t) => t === 'UNAUTHORIZED')).toEqual([]);
  await standby.stop();
  await healthy.stop();
});
