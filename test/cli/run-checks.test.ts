// `hcsync run` finds what would stop it before it does any work: a taken HTTP port (found only after the
// tables had loaded, leaving loading states behind) and an API version the org does not serve (which
// started "healthy" and then failed every write). Both are configuration: exit 2, the fix named.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { createTestDb, type TestDb } from '../support/db.js';
import { assertFreshBuild, hcsync } from '../support/cli.js';
import { startEmulator, type Emulator } from '../../emulator/index.js';

let db: TestDb;
let emu: Emulator;
let env: Record<string, string>;

beforeAll(async () => {
  assertFreshBuild();
  db = await createTestDb();
  emu = await startEmulator({});
  const c = emu.credentials;
  env = { DATABASE_URL: db.url, SF_LOGIN_URL: c.loginUrl, SF_CLIENT_ID: c.clientId, SF_CLIENT_SECRET: c.clientSecret };
});
afterAll(async () => {
  await emu?.stop();
  await db?.drop();
});

describe('hcsync run refuses at once what would fail later', () => {
  it('a taken HTTP port: exit 2 naming HC_HTTP_PORT, before any migration or sign-in', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const port = (holder.address() as net.AddressInfo).port;
    const before = emu.stats().notCounted.oauth;
    try {
      const r = await hcsync(['run'], { ...env, HC_HTTP_PORT: String(port) });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`HC_HTTP_PORT ${port} on 127.0.0.1 is taken`);
      expect(r.stderr).toContain('set HC_HTTP_PORT to a free port');
    } finally {
      holder.close();
    }
    expect(emu.stats().notCounted.oauth).toBe(before); // no sign-in, no work
    expect((await db.query('select count(*)::int as n from hc.connections')).rows[0].n).toBe(0);
  });

  it('an API version the org does not serve: exit 2 naming SF_API_VERSION and what the org serves', async () => {
    const r = await hcsync(['run'], { ...env, HC_HTTP_PORT: '0', SF_API_VERSION: '99.0' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SF_API_VERSION 99\.0 is not served by this org \(it serves 31\.0–\d+\.0\): set SF_API_VERSION to one of them, e\.g\. \d+\.0/);
  });
});
