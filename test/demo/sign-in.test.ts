// The demo shows the sign-in Salesforce wants new setups to use: OAuth client credentials (the connected
// app's key and secret, running as its Run As user), not the username-password flow that Salesforce
// retires (Summer '26 for new orgs, 2027-02-20 for the rest). Checked on the settings the demo hands the
// sidecar and the CLI, and by signing in with them against the emulator.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { demoSignIn } from '../../sidecar/demo/index.js';
import { loadConfig } from '../../sidecar/config.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator({});
});
afterAll(async () => {
  await emu?.stop();
});

describe('the demo signs in', () => {
  it('by OAuth client credentials: no username, no password in its settings', async () => {
    const env = demoSignIn(emu.credentials);
    expect(Object.keys(env).sort()).toEqual(['SF_AUTH', 'SF_CLIENT_ID', 'SF_CLIENT_SECRET', 'SF_LOGIN_URL']);
    expect(env.SF_AUTH).toBe('client_credentials');
    const config = loadConfig({ DATABASE_URL: 'postgres://localhost/x', ...env });
    expect(config.salesforce.auth).toBe('client_credentials');
    const sf = await SalesforceClient.connect(config.salesforce);
    try {
      const limits = (await sf.conn.request(`${sf.basePath}/limits`)) as { DailyApiRequests: { Max: number } };
      expect(limits.DailyApiRequests.Max).toBeGreaterThan(0);
      expect(sf.ledger.totals.get('oauth')).toBe(1);
    } finally {
      await sf.close();
    }
  });
});
