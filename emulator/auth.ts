// OAuth 2.0 token service: password, refresh_token, client_credentials, authorization_code and JWT bearer grants.
import { createHmac, createVerify, randomBytes } from 'node:crypto';
import type { Org } from './org.js';

export interface Session { token: string; userId: string; issuedAt: number; expiresAt: number; revoked: boolean; clientId: string }

export type TokenResult = { status: number; body: Record<string, unknown> };

export class Auth {
  sessions = new Map<string, Session>();
  refreshTokens = new Map<string, { userId: string; clientId: string; revoked: boolean }>();
  codes = new Map<string, { userId: string; redirectUri?: string; expiresAt: number }>();
  tokenTtlMs = 2 * 3600_000;
  tokensIssued = 0;

  constructor(private org: Org, public clientId: string, public clientSecret: string, public jwtPublicKey?: string) {}

  private orgId15(): string { return this.org.orgId.slice(0, 15); }

  private newToken(): string { return `${this.orgId15()}!${randomBytes(48).toString('base64url')}`; }

  check(token: string | undefined): Session | undefined {
    if (!token) return undefined;
    const s = this.sessions.get(token);
    if (!s || s.revoked || Date.now() >= s.expiresAt) return undefined;
    return s;
  }

  expireAll(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (!s.revoked && s.expiresAt > Date.now()) { s.expiresAt = 0; n++; }
    return n;
  }

  /** Mints a refresh token for a user (what the web-server flow yields), for tests and tools. */
  mintRefreshToken(userId = this.org.defaultUserId): string {
    const rt = `5Aep861${randomBytes(40).toString('base64url')}`;
    this.refreshTokens.set(rt, { userId, clientId: this.clientId, revoked: false });
    return rt;
  }

  authorizeCode(clientId: string | null, redirectUri: string | null): { code?: string; error?: string } {
    if (clientId !== this.clientId) return { error: 'invalid_client_id' };
    const code = `aPrx${randomBytes(24).toString('base64url')}`;
    this.codes.set(code, { userId: this.org.defaultUserId, redirectUri: redirectUri ?? undefined, expiresAt: Date.now() + 15 * 60_000 });
    return { code };
  }

  revoke(token: string): boolean {
    const s = this.sessions.get(token);
    if (s) { s.revoked = true; return true; }
    const r = this.refreshTokens.get(token);
    if (r) { r.revoked = true; for (const x of this.sessions.values()) if (x.userId === r.userId) x.revoked = true; return true; }
    return false;
  }

  /** The user these credentials sign in (password grant and SOAP login alike), or undefined. */
  verifyPassword(username: string, password: string): string | undefined {
    const u = this.org.userByUsername(username);
    const pw = (this.org.def.users ?? []).find((x) => x.username.toLowerCase() === username.toLowerCase())?.password ?? 'emulator-password';
    return u && password === pw ? (u.Id as string) : undefined;
  }

  /** A new session for the user (what every grant and SOAP login hand out). */
  openSession(userId: string): Session {
    const now = Date.now();
    const s: Session = { token: this.newToken(), userId, issuedAt: now, expiresAt: now + this.tokenTtlMs, revoked: false, clientId: this.clientId };
    this.sessions.set(s.token, s);
    this.tokensIssued++;
    return s;
  }

  private issue(userId: string, baseUrl: string, withRefresh: boolean): TokenResult {
    const { token, issuedAt: now } = this.openSession(userId);
    const id = `${baseUrl}/id/${this.org.orgId}/${userId}`;
    const issuedAt = String(now);
    const signature = createHmac('sha256', this.clientSecret).update(id + issuedAt).digest('base64');
    const body: Record<string, unknown> = { access_token: token };
    if (withRefresh) body.refresh_token = this.mintRefreshToken(userId);
    Object.assign(body, { signature, scope: withRefresh ? 'refresh_token api full' : 'api full', instance_url: baseUrl, id, token_type: 'Bearer', issued_at: issuedAt });
    return { status: 200, body };
  }

  private fail(error: string, description: string, status = 400): TokenResult { return { status, body: { error, error_description: description } }; }

  token(form: URLSearchParams, baseUrl: string): TokenResult {
    const grant = form.get('grant_type');
    const cid = form.get('client_id');
    const secret = form.get('client_secret');
    const clientOk = () => cid === this.clientId;
    switch (grant) {
      case 'password': {
        if (!clientOk()) return this.fail('invalid_client_id', 'client identifier invalid');
        if (secret !== this.clientSecret) return this.fail('invalid_client', 'invalid client credentials');
        const userId = this.verifyPassword(form.get('username') ?? '', form.get('password') ?? '');
        if (!userId) return this.fail('invalid_grant', 'authentication failure');
        return this.issue(userId, baseUrl, false);
      }
      case 'client_credentials': {
        if (!clientOk()) return this.fail('invalid_client_id', 'client identifier invalid');
        if (secret !== this.clientSecret) return this.fail('invalid_client', 'invalid client credentials');
        return this.issue(this.org.defaultUserId, baseUrl, false);
      }
      case 'refresh_token': {
        if (!clientOk()) return this.fail('invalid_client_id', 'client identifier invalid');
        if (secret !== null && secret !== this.clientSecret) return this.fail('invalid_client', 'invalid client credentials');
        const rt = this.refreshTokens.get(form.get('refresh_token') ?? '');
        if (!rt || rt.revoked) return this.fail('invalid_grant', 'expired access/refresh token');
        return this.issue(rt.userId, baseUrl, false);
      }
      case 'authorization_code': {
        if (!clientOk()) return this.fail('invalid_client_id', 'client identifier invalid');
        if (secret !== this.clientSecret) return this.fail('invalid_client', 'invalid client credentials');
        const c = this.codes.get(form.get('code') ?? '');
        if (!c || c.expiresAt < Date.now()) return this.fail('invalid_grant', 'invalid authorization code');
        if (c.redirectUri && c.redirectUri !== form.get('redirect_uri')) return this.fail('invalid_grant', 'redirect_uri must match configuration');
        this.codes.delete(form.get('code')!);
        return this.issue(c.userId, baseUrl, true);
      }
      case 'urn:ietf:params:oauth:grant-type:jwt-bearer': {
        const a = form.get('assertion') ?? '';
        const parts = a.split('.');
        if (parts.length !== 3) return this.fail('invalid_grant', 'invalid assertion');
        let header: { alg?: string }, claims: { iss?: string; sub?: string; aud?: string; exp?: number };
        try { header = JSON.parse(Buffer.from(parts[0], 'base64url').toString()); claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString()); } catch { return this.fail('invalid_grant', 'invalid assertion'); }
        if (header.alg !== 'RS256') return this.fail('invalid_grant', 'invalid assertion');
        if (!this.jwtPublicKey) return this.fail('invalid_grant', 'invalid assertion');
        const v = createVerify('RSA-SHA256').update(`${parts[0]}.${parts[1]}`);
        if (!v.verify(this.jwtPublicKey, Buffer.from(parts[2], 'base64url'))) return this.fail('invalid_grant', 'invalid assertion');
        if (claims.iss !== this.clientId) return this.fail('invalid_client_id', 'client identifier invalid');
        if (!claims.exp || claims.exp * 1000 < Date.now()) return this.fail('invalid_grant', 'expired authorization code');
        if (!claims.aud || !/^https?:\/\//.test(claims.aud)) return this.fail('invalid_grant', 'audience is invalid');
        const u = this.org.userByUsername(claims.sub ?? '');
        if (!u) return this.fail('invalid_grant', 'user hasn\'t approved this consumer');
        return this.issue(u.Id as string, baseUrl, false);
      }
    }
    return this.fail('unsupported_grant_type', 'grant type not supported');
  }
}
