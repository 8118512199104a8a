// Refused Salesforce credentials are a configuration problem: exit 2, as the README's exit codes say
// for every setting, both for `hcsync run` (which also shows UNAUTHORIZED in hc.status) and for a verb
// that signs in (`hcsync sf`). A database verb that the SQL API refuses stays exit 1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { assertFreshBuild, cli, hcsync } from '../support/cli.js';
import { startEmulator, type Emulator } from '../../emulator/index.js';

let db: TestDb;
let emu: Emulator;
beforeAll(async () => {
  assertFreshBuild();
  db = await createTestDb();
  emu = await startEmulator();
});
afterAll(async () => {
  await emu?.stop();
  await db?.drop();
});

const env = (password: string) => ({
  DATABASE_URL: db.url, SF_LOGIN_URL: emu.credentials.loginUrl, SF_CLIENT_ID: emu.credentials.clientId,
  SF_CLIENT_SECRET: emu.credentials.clientSecret, SF_USERNAME: emu.credentials.username, SF_PASSWORD: password,
  HC_HTTP_PORT: '0', HC_LOG_PRETTY: '0',
});

describe('sign-in refused', () => {
  it('hcsync run exits 2 naming the fix, and the connection shows UNAUTHORIZED', async () => {
    const r = await hcsync(['run'], env('wrong-password'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid_grant/);
    expect(r.stderr).toContain('fix the SF_* settings');
    expect(r.stderr).not.toContain('wrong-password');
    expect((await db.query(`select state from hc.connections`)).rows[0].state).toBe('UNAUTHORIZED');
  }, 90_000);

  it('hcsync sf exits 2 too; the right password exits 0; a refused SQL call stays 1', async () => {
    const bad = await cli(['sf', 'GET', '/limits'], env('wrong-password'));
    expect([bad.code, /invalid_grant/.test(bad.stderr)]).toEqual([2, true]);
    expect((await cli(['sf', 'GET', '/limits'], env(emu.credentials.password))).code).toBe(0);
    expect((await cli(['mapping:reload', 'NoSuchObject'], { DATABASE_URL: db.url })).code).toBe(1);
  }, 90_000);
});
