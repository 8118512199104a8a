// The four ways to sign in to Salesforce, with `hcsync sf` (run in the test's process) against the
// emulator: username-password, refresh token, client credentials and JWT bearer. Each is chosen by the
// variables given (or SF_AUTH); what is missing or malformed is named with the fix (exit 2); a refused
// sign-in is a configuration problem too (exit 2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDb, type TestDb } from '../support/db.js';
import { cli } from '../support/cli.js';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { tempDir } from '../support/tmp.js';

let db: TestDb;
let emu: Emulator;
const dir = tempDir('auth');
const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const keyFile = join(dir, 'server.key');

beforeAll(async () => {
  db = await createTestDb();
  emu = await startEmulator({ jwtPublicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString() });
  writeFileSync(keyFile, pem);
  chmodSync(keyFile, 0o600);
});
afterAll(async () => {
  await emu?.stop();
  await db?.drop();
});

const limits = async (env: Record<string, string>) => {
  const r = await cli(['sf', 'GET', '/limits'], { DATABASE_URL: db.url, SF_LOGIN_URL: emu.credentials.loginUrl, ...env });
  return { ...r, max: r.code === 0 ? JSON.parse(r.stdout).DailyApiRequests?.Max : undefined };
};

describe('Salesforce sign-in', () => {
  it('username-password, refresh token, client credentials and JWT bearer each work', async () => {
    const c = emu.credentials;
    const app = { SF_CLIENT_ID: c.clientId, SF_CLIENT_SECRET: c.clientSecret };
    expect(await limits({ ...app, SF_USERNAME: c.username, SF_PASSWORD: c.password })).toMatchObject({ code: 0, max: 1_000_000 });
    expect(await limits({ ...app, SF_REFRESH_TOKEN: emu.mintRefreshToken() })).toMatchObject({ code: 0, max: 1_000_000 });
    expect(await limits(app)).toMatchObject({ code: 0, max: 1_000_000 });
    expect(await limits({ SF_CLIENT_ID: c.clientId, SF_USERNAME: c.username, SF_PRIVATE_KEY_FILE: keyFile })).toMatchObject({ code: 0, max: 1_000_000 });
    expect(await limits({ SF_CLIENT_ID: c.clientId, SF_USERNAME: c.username, SF_PRIVATE_KEY: pem, SF_AUTH: 'jwt' })).toMatchObject({ code: 0 });
    const oauthCalls = (await db.query(`select count(*)::int n from hc.api_calls where kind = 'oauth'`)).rows[0].n;
    expect(oauthCalls).toBe(0); // no connection row yet: nothing is attributed, nothing is stored
  });

  it('a key the connected app does not know is refused by Salesforce (exit 2)', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const r = await limits({ SF_CLIENT_ID: emu.credentials.clientId, SF_USERNAME: emu.credentials.username, SF_PRIVATE_KEY: other });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid assertion|invalid_grant/);
    expect(r.stderr).not.toContain('PRIVATE KEY');
  });

  it('missing or malformed settings name the variable and the fix (exit 2)', async () => {
    const noUser = await limits({ SF_CLIENT_ID: 'x', SF_PRIVATE_KEY_FILE: keyFile });
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toContain('SF_USERNAME is not set: jwt authentication needs SF_CLIENT_ID, SF_USERNAME, SF_PRIVATE_KEY (or SF_PRIVATE_KEY_FILE)');
    const noFile = await limits({ SF_CLIENT_ID: 'x', SF_USERNAME: 'u', SF_PRIVATE_KEY_FILE: join(dir, 'missing.key') });
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain(`SF_PRIVATE_KEY_FILE=${join(dir, 'missing.key')} cannot be read`);
    const notPem = await limits({ SF_CLIENT_ID: 'x', SF_USERNAME: 'u', SF_PRIVATE_KEY: 'hunter2' });
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toContain('SF_PRIVATE_KEY: not a PEM private key');
    expect(notPem.stderr).not.toContain('hunter2');
    const badAuth = await limits({ SF_AUTH: 'saml' });
    expect(badAuth.code).toBe(2);
    expect(badAuth.stderr).toContain('SF_AUTH must be password, refresh_token, client_credentials or jwt');
    const noSecret = await limits({ SF_CLIENT_ID: 'x', SF_USERNAME: 'u', SF_PASSWORD: 'p' });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('SF_CLIENT_SECRET is not set: password authentication needs');
  });

  it('HC_CONFIG_FILE supplies the same variables; the environment wins; a broken file is named', async () => {
    const c = emu.credentials;
    const file = join(dir, 'hcsync.json');
    writeFileSync(file, JSON.stringify({ SF_CLIENT_ID: c.clientId, SF_CLIENT_SECRET: c.clientSecret, SF_USERNAME: c.username, SF_PASSWORD: 'wrong' }));
    expect(await limits({ HC_CONFIG_FILE: file, SF_PASSWORD: c.password })).toMatchObject({ code: 0, max: 1_000_000 });
    const refused = await limits({ HC_CONFIG_FILE: file });
    expect(refused.code).toBe(2);
    expect(refused.stderr).not.toContain(c.clientSecret);
    writeFileSync(file, '{"SF_CLIENT_ID": ');
    const broken = await limits({ HC_CONFIG_FILE: file });
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain(`HC_CONFIG_FILE=${file} is not valid JSON`);
  });
});
