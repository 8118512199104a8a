import { generateKeyPairSync, createSign } from 'node:crypto';
import jsforce from 'jsforce';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../emulator/index.js';
import { defaultOrg } from '../../emulator/index.js';
import { login, raw, start, VERSION } from './helpers.js';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
let emu: Emulator;
beforeAll(async () => { emu = await start({ org: defaultOrg, jwtPublicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() }); });
afterAll(async () => { await emu?.stop(); });

function jwt(claims: Record<string, unknown>): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg: 'RS256' })}.${enc(claims)}`;
  return `${head}.${createSign('RSA-SHA256').update(head).sign(privateKey).toString('base64url')}`;
}

describe('OAuth', () => {
  it('password grant: token response as orgs send it', async () => {
    const c = emu.credentials;
    const res = await fetch(`${c.loginUrl}/services/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', client_id: c.clientId, client_secret: c.clientSecret, username: c.username, password: c.password }) });
    const body = (await res.json()) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(['access_token', 'id', 'instance_url', 'issued_at', 'scope', 'signature', 'token_type'].sort());
    expect(body.access_token).toMatch(/^00D[a-zA-Z0-9]{12}!/);
    expect(body.id).toMatch(new RegExp(`/id/00D[a-zA-Z0-9]{15}/005[a-zA-Z0-9]{15}$`));
    expect(body.instance_url).toBe(emu.url);
    const conn = await login(emu);
    expect(conn.userInfo?.organizationId).toMatch(/^00D/);
    const bad = new jsforce.Connection({ loginUrl: c.loginUrl, version: VERSION, oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret } });
    await expect(bad.login(c.username, 'wrong')).rejects.toMatchObject({ name: 'invalid_grant', message: 'authentication failure' });
  });

  it('client_credentials grant', async () => {
    const c = emu.credentials;
    const conn = new jsforce.Connection({ loginUrl: c.loginUrl, version: VERSION, oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret } });
    const info = await conn.authorize({ grant_type: 'client_credentials' });
    expect(info.id).toMatch(/^005/);
    expect(conn.refreshToken).toBeUndefined();
    expect((await conn.query('SELECT Id FROM User')).totalSize).toBeGreaterThan(0);
  });

  it('JWT bearer grant verifies the signature', async () => {
    const c = emu.credentials;
    const conn = new jsforce.Connection({ loginUrl: c.loginUrl, version: VERSION, oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret } });
    const claims = { iss: c.clientId, sub: c.username, aud: c.loginUrl, exp: Math.floor(Date.now() / 1000) + 300 };
    await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: jwt(claims) });
    expect((await conn.identity()).username).toBe(c.username);
    const forged = jwt(claims).replace(/\.[^.]+$/, '.AAAA');
    await expect(conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: forged })).rejects.toMatchObject({ name: 'invalid_grant' });
  });

  it('authorization code and refresh_token grants; jsforce refreshes an expired token and retries', async () => {
    const c = emu.credentials;
    const redirectUri = 'http://localhost/callback';
    const auth = await fetch(`${c.loginUrl}/services/oauth2/authorize?response_type=code&client_id=${c.clientId}&redirect_uri=${encodeURIComponent(redirectUri)}`, { redirect: 'manual' });
    expect(auth.status).toBe(302);
    const code = new URL(auth.headers.get('location')!).searchParams.get('code')!;
    const conn = new jsforce.Connection({ loginUrl: c.loginUrl, version: VERSION, oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret, redirectUri } });
    await conn.authorize(code);
    expect(conn.refreshToken).toBeTruthy();
    const first = conn.accessToken;
    let refreshed = 0;
    conn.on('refresh', () => { refreshed++; });
    expect(emu.expireTokens()).toBeGreaterThan(0);
    const r = await conn.query('SELECT Id FROM User');
    expect(r.totalSize).toBeGreaterThan(0);
    expect(refreshed).toBe(1);
    expect(conn.accessToken).not.toBe(first);
    // a bare connection holding only a refresh token works too
    const only = new jsforce.Connection({ instanceUrl: emu.url, version: VERSION, oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret }, refreshToken: emu.mintRefreshToken(), accessToken: 'expired' });
    expect((await only.query('SELECT COUNT() FROM User')).totalSize).toBeGreaterThan(0);
  });

  it('a password-grant session is re-established by jsforce after expiry', async () => {
    const conn = await login(emu);
    const first = conn.accessToken;
    emu.expireTokens();
    await conn.sobject('Account').create({ Name: 'After expiry' });
    expect(conn.accessToken).not.toBe(first);
  });
});

describe('limits and faults', () => {
  it('answers REQUEST_LIMIT_EXCEEDED once the daily limit is reached', async () => {
    const conn = await login(emu);
    const used = emu.stats().api.used;
    emu.setDailyApiLimit(used + 1);
    await conn.limits();
    const r = await raw(emu, conn.accessToken!, 'GET', `/services/data/v${VERSION}/limits`);
    expect(r.status).toBe(403);
    expect(r.text).toBe('[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]');
    expect(r.headers.get('sforce-limit-info')).toBe(`api-usage=${used + 1}/${used + 1}`);
    await expect(conn.sobject('Account').create({ Name: 'x' })).rejects.toMatchObject({ errorCode: 'REQUEST_LIMIT_EXCEEDED' });
    emu.setDailyApiLimit(1_000_000);
  });

  it('injects errors, lock failures and hangs over the admin API', async () => {
    const conn = await login(emu);
    const add = await fetch(`${emu.url}/__emulator/faults`, { method: 'POST', body: JSON.stringify({ kind: 'collections', status: 500, errorCode: 'UNKNOWN_EXCEPTION', message: 'boom' }) });
    expect(add.status).toBe(201);
    await expect(conn.sobject('Account').create([{ Name: 'a' }, { Name: 'b' }])).rejects.toMatchObject({ errorCode: 'UNKNOWN_EXCEPTION', message: 'boom' });
    // The faulted call must not have written anything: only the second call's 'a' exists.
    expect(emu.records('Account').filter((r: any) => r.Name === 'a')).toHaveLength(0);
    const ok = await conn.sobject('Account').create([{ Name: 'a' }, { Name: 'b' }]);
    expect(ok.every((x) => x.success)).toBe(true);
    expect(emu.records('Account').filter((r: any) => r.Name === 'a')).toHaveLength(1);
    await fetch(`${emu.url}/__emulator/faults`, { method: 'POST', body: JSON.stringify({ lockRows: 1 }) });
    const locked = await conn.sobject('Account').create([{ Name: 'L1' }, { Name: 'L2' }], { allOrNone: false });
    expect(locked[0]).toMatchObject({ success: false, errors: [{ statusCode: 'UNABLE_TO_LOCK_ROW' }] });
    expect(locked[1].success).toBe(true);
    emu.injectFault({ action: 'hang', kind: 'limits' });
    const ctl = new AbortController();
    const hung = fetch(`${emu.url}/services/data/v${VERSION}/limits`, { headers: { Authorization: `Bearer ${conn.accessToken}` }, signal: ctl.signal }).then(() => 'answered', () => 'aborted');
    const race = await Promise.race([hung, new Promise((r) => setTimeout(() => r('pending'), 300))]);
    expect(race).toBe('pending');
    ctl.abort();
    const stats = (await (await fetch(`${emu.url}/__emulator/stats`)).json()) as any;
    expect(stats.api.byKind.collections).toBeGreaterThanOrEqual(3);
    expect(stats.notCounted.oauth).toBeGreaterThan(0);
    expect(stats.records.created).toBeGreaterThan(0);
  });
});
