// Connection-level states only the running sidecar can judge: RECOVERY ends in IDLE once Salesforce
// answers; refused credentials show as UNAUTHORIZED in hc.status, and a restart with good ones clears it.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import { loadConfig } from '../../sidecar/config.js';
import { createLogger } from '../../sidecar/log.js';
import { startSidecar, type Sidecar } from '../../sidecar/run.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { until } from '../support/until.js';

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
    ...extra,
  };
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

  await start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: emu.credentials.password });
  await until(async () => (await state()).state === 'IDLE', 'IDLE after a start with good credentials');
});

test('a sign-in refused at start stops hcsync and leaves UNAUTHORIZED in hc.status', async () => {
  await expect(start({ SF_USERNAME: emu.credentials.username, SF_PASSWORD: 'wrong' })).rejects.toThrow();
  const r = await state();
  expect(r.state).toBe('UNAUTHORIZED');
  expect(r.state_message).toMatch(/Fix the SF_\* settings/);
});
