// The one door to Salesforce. Every HTTP call the sidecar makes (REST, collections, composite, Bulk 2.0,
// OAuth) passes through here so it is counted in the API-call ledger (hc.api_calls) with the org's own
// usage figure from `Sforce-Limit-Info`, and carries `Sforce-Call-Options: client=hcsync` so that the
// Change Data Capture echo of our own writes can be recognised (changeOrigin).
import { AsyncLocalStorage } from 'node:async_hooks';
import { createSign } from 'node:crypto';
import jsforce, { type Connection } from 'jsforce';
import type pg from 'pg';
import type { SalesforceConfig } from '../config.js';
import type { Logger } from '../log.js';
import { signInError, type SignInError } from './errors.js';
import { recordApiCalls, recordDeliveries } from '../db/hc/ledger.js';

export const CLIENT_NAME = 'hcsync';

export interface ApiCall {
  kind: string;
  method: string;
  path: string;
  status: number;
  durationMs: number;
  apiUsed?: number;
  apiLimit?: number;
  /** The mapping whose work made the call (withMapping), for its sf_max_daily_api_calls. */
  mappingId?: number;
}

const callScope = new AsyncLocalStorage<{ mappingId: number }>();

/**
 * Runs `fn` with every Salesforce call it makes (awaited or not) counted in the ledger against the
 * mapping: a mapping's own calls of the day are what its sf_max_daily_api_calls limits.
 */
export function withMapping<T>(mappingId: number, fn: () => Promise<T>): Promise<T> {
  return callScope.run({ mappingId }, fn);
}

/** What kind of call a request is, in the terms Salesforce's limits use. */
export function callKind(method: string, url: string): string {
  const path = url.replace(/^https?:\/\/[^/]+/, '').split('?')[0];
  if (path.startsWith('/services/oauth2/')) return 'oauth';
  if (/\/jobs\/ingest/.test(path)) return 'bulk2_ingest';
  if (/\/jobs\/query/.test(path)) return 'bulk2_query';
  if (/\/composite\/sobjects/.test(path)) return 'collections';
  if (/\/composite(\/|$)/.test(path)) return 'composite';
  if (/\/query(All)?(\/|$)/.test(path)) return 'query';
  if (/\/describe$/.test(path) || /\/sobjects\/?$/.test(path)) return 'describe';
  if (/\/sobjects\/[^/]+\/(updated|deleted)\//.test(path)) return 'replication';
  if (/\/limits\/?$/.test(path)) return 'limits';
  if (/\/sobjects\//.test(path)) return 'rest';
  return method === 'GET' ? 'other_read' : 'other_write';
}

interface HttpRequestLike { method: string; url: string }
interface HttpResponseLike { statusCode: number; headers: Record<string, string | undefined> }
interface TransportLike {
  httpRequest(req: HttpRequestLike, opts?: unknown): Promise<HttpResponseLike> & { stream(): unknown };
}

/**
 * Buffers ledger rows and writes them in one INSERT every half second (or every 200 calls): one row per
 * Salesforce call without a database round trip in the call's path. A crash loses at most that buffer
 * of ledger rows, never sync state.
 */
export class Ledger {
  private buf: (ApiCall & { at: Date })[] = [];
  /** Change events delivered since the last flush, by "transport channel". */
  private deliveries = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  readonly totals = new Map<string, number>();
  /** Change events delivered to this process since it started, by "transport channel" (for /metrics). */
  readonly received = new Map<string, number>();
  lastUsage?: { used: number; limit: number };

  constructor(private readonly pool: pg.Pool | undefined, private readonly connectionId: number | undefined) {}

  record(call: ApiCall): void {
    this.totals.set(call.kind, (this.totals.get(call.kind) ?? 0) + 1);
    if (call.apiUsed !== undefined && call.apiLimit !== undefined) this.lastUsage = { used: call.apiUsed, limit: call.apiLimit };
    if (!this.pool) return;
    this.buf.push({ ...call, at: new Date() });
    if (this.buf.length >= 200) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), 500);
  }

  /** Change events a stream delivered: counted in hc.event_deliveries with the next flush. */
  delivered(transport: 'pubsub' | 'cometd', channel: string, n: number): void {
    const k = `${transport} ${channel}`;
    this.received.set(k, (this.received.get(k) ?? 0) + n);
    if (!this.pool || this.connectionId === undefined) return;
    this.deliveries.set(k, (this.deliveries.get(k) ?? 0) + n);
    this.timer ??= setTimeout(() => void this.flush(), 500);
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const rows = this.buf.splice(0);
    const deliveries = [...this.deliveries].map(([k, n]) => ({ transport: k.split(' ')[0], channel: k.slice(k.indexOf(' ') + 1), n }));
    this.deliveries.clear();
    if (deliveries.length && this.pool) {
      await recordDeliveries(this.pool, this.connectionId, deliveries).catch(() => {});
    }
    if (!rows.length || !this.pool) return;
    await recordApiCalls(this.pool, rows.map((r) => ({
      at: r.at, connection_id: this.connectionId, mapping_id: r.mappingId ?? null, kind: r.kind, method: r.method, path: r.path.slice(0, 500),
      status: r.status, duration_ms: Math.round(r.durationMs), api_usage_used: r.apiUsed ?? null, api_usage_limit: r.apiLimit ?? null,
    }))).catch(() => {
      // The ledger must never stop the sync; the in-memory totals still feed /metrics.
    });
  }
}

function instrument(transport: TransportLike, ledger: Ledger): void {
  if (typeof transport?.httpRequest !== 'function') {
    throw new Error('jsforce transport changed shape: the API-call ledger cannot attach (check the jsforce version)');
  }
  const original = transport.httpRequest.bind(transport);
  transport.httpRequest = (req, opts) => {
    const started = performance.now();
    const call = {
      kind: callKind(req.method, req.url),
      method: req.method,
      path: req.url.replace(/^https?:\/\/[^/]+/, ''),
      mappingId: callScope.getStore()?.mappingId,
    };
    const p = original(req, opts);
    p.then(
      (res) => {
        const info = /api-usage=(\d+)\/(\d+)/.exec(res?.headers?.['sforce-limit-info'] ?? '');
        ledger.record({
          ...call,
          status: res?.statusCode ?? 0,
          durationMs: performance.now() - started,
          apiUsed: info ? Number(info[1]) : undefined,
          apiLimit: info ? Number(info[2]) : undefined,
        });
      },
      () => ledger.record({ ...call, status: 0, durationMs: performance.now() - started }),
    );
    return p;
  };
}

interface RefreshDelegateLike {
  refresh(since: number): Promise<void>;
  waitRefresh(): Promise<void> | undefined;
  _refreshFn: (conn: unknown, cb: (err?: unknown, ...rest: unknown[]) => void) => unknown;
  __hcsync?: true;
}

/**
 * jsforce turns a failed refresh into a plain Error("Unable to refresh session due to: ...") and loses
 * what the token endpoint said. Every refresh delegate the connection gets (a password session's own
 * refresh replaces it on each sign-in) is wrapped so that the failure is a SignInError: refused or
 * transient, with the endpoint's error; refusals are also told to `onRefused`.
 */
function guardRefresh(conn: Connection, onRefused: (err: SignInError) => void): void {
  const guard = (d: RefreshDelegateLike | undefined) => {
    if (!d || d.__hcsync) return d;
    d.__hcsync = true;
    let last: unknown;
    const fn = d._refreshFn;
    d._refreshFn = (c, cb) => fn(c, (err, ...rest) => {
      last = err;
      cb(err, ...rest);
    });
    const fail = (err: unknown): never => {
      const e = signInError(last ?? err, 'refreshing the Salesforce session');
      if (e.refused) onRefused(e);
      throw e;
    };
    const refresh = d.refresh.bind(d);
    const waitRefresh = d.waitRefresh.bind(d);
    d.refresh = async (since) => {
      last = undefined;
      await refresh(since).catch(fail);
    };
    d.waitRefresh = async () => {
      await Promise.resolve(waitRefresh()).catch(fail);
    };
    return d;
  };
  const c = conn as unknown as { _refreshDelegate?: RefreshDelegateLike };
  let current = guard(c._refreshDelegate);
  Object.defineProperty(c, '_refreshDelegate', {
    configurable: true,
    get: () => current,
    set: (d: RefreshDelegateLike | undefined) => {
      current = guard(d);
    },
  });
}

export class SalesforceClient {
  /** Told when Salesforce refuses the credentials on a session refresh (the connection supervisor). */
  readonly onRefused: ((err: SignInError) => void)[] = [];

  private constructor(
    readonly conn: Connection,
    readonly ledger: Ledger,
    readonly apiVersion: string,
  ) {
    guardRefresh(conn, (err) => {
      for (const l of this.onRefused) l(err);
    });
  }

  static async connect(
    cfg: SalesforceConfig,
    opts: { log?: Logger; pool?: pg.Pool; connectionId?: number } = {},
  ): Promise<SalesforceClient> {
    const ledger = new Ledger(opts.pool, opts.connectionId);
    const oauth2 = { loginUrl: cfg.loginUrl, clientId: cfg.clientId, clientSecret: cfg.clientSecret, redirectUri: 'http://localhost/callback' };
    const conn = new jsforce.Connection({
      loginUrl: cfg.loginUrl,
      version: cfg.apiVersion,
      oauth2,
      callOptions: { client: CLIENT_NAME },
      refreshToken: cfg.auth === 'refresh_token' ? cfg.refreshToken : undefined,
      // Password, client-credentials and JWT sessions have no refresh token: on expiry, sign in again.
      refreshFn:
        cfg.auth === 'client_credentials' || cfg.auth === 'jwt'
          ? async (c, callback) => {
              try {
                const res = await c.authorize(grant(cfg));
                callback(undefined, c.accessToken ?? undefined, res as never);
              } catch (e) {
                callback(e as Error);
              }
            }
          : undefined,
    });
    const anyConn = conn as unknown as { _transport: TransportLike; oauth2: { _transport: TransportLike } };
    instrument(anyConn._transport, ledger);
    instrument(anyConn.oauth2._transport, ledger);
    try {
      if (cfg.auth === 'password') await conn.login(cfg.username!, cfg.password!);
      else if (cfg.auth === 'client_credentials' || cfg.auth === 'jwt') await conn.authorize(grant(cfg));
      else {
        const res = await conn.oauth2.refreshToken(cfg.refreshToken!);
        conn.accessToken = res.access_token;
        conn.instanceUrl = res.instance_url;
        (conn as unknown as { userInfo: unknown }).userInfo = parseIdUrl(res.id);
      }
    } catch (err) {
      throw signInError(err);
    }
    opts.log?.info({ instanceUrl: conn.instanceUrl, auth: cfg.auth, apiVersion: cfg.apiVersion }, 'signed in to Salesforce');
    return new SalesforceClient(conn, ledger, cfg.apiVersion);
  }

  get organizationId(): string | undefined {
    return this.conn.userInfo?.organizationId;
  }

  /** The integration user's id, when the sign-in told it. */
  get userId(): string | undefined {
    return this.conn.userInfo?.id;
  }

  /** The org's instance, e.g. https://acme.my.salesforce.com ('' before the sign-in). */
  get instanceUrl(): string {
    return this.conn.instanceUrl;
  }

  /** Base path of the pinned API version, e.g. /services/data/v62.0 */
  get basePath(): string {
    return `/services/data/v${this.apiVersion}`;
  }

  /** The API versions the org serves (GET /services/data), e.g. ['31.0', …, '64.0']. */
  async versions(): Promise<string[]> {
    const list = await this.conn.request<{ version: string }[]>({ method: 'GET', url: '/services/data' });
    return (Array.isArray(list) ? list : []).map((v) => v.version);
  }

  /**
   * A GET whose body is read as it arrives (a Bulk 2.0 result page: tens of megabytes), where jsforce
   * would buffer it whole. Counted in the ledger like every call; an expired session is refreshed through
   * jsforce's own refresh and the GET sent once more; a connection that failed before any answer (a reset
   * keep-alive socket, a refused connect) is tried again twice, a GET being safe to repeat; any other
   * refusal is an error in the taxonomy's shape (errorCode, statusCode). The caller reads the body or
   * cancels it.
   */
  async getStream(path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    const url = `${this.conn.instanceUrl}${path}`;
    const call = { kind: callKind('GET', url), method: 'GET', path, mappingId: callScope.getStore()?.mappingId };
    let failedConnects = 0;
    let refreshed = false;
    for (;;) {
      const started = performance.now();
      let res: Response;
      try {
        res = await fetch(url, { headers: { ...headers, Authorization: `Bearer ${this.conn.accessToken}`, 'Sforce-Call-Options': `client=${CLIENT_NAME}` }, signal });
      } catch (e) {
        this.ledger.record({ ...call, status: 0, durationMs: performance.now() - started });
        if (!signal?.aborted && ++failedConnects <= 2) {
          await new Promise((r) => setTimeout(r, 250 * failedConnects));
          continue;
        }
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw Object.assign(new Error(`GET ${path}: ${(e as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : ''}`), { code: cause?.code });
      }
      const info = /api-usage=(\d+)\/(\d+)/.exec(res.headers.get('sforce-limit-info') ?? '');
      this.ledger.record({ ...call, status: res.status, durationMs: performance.now() - started, apiUsed: info ? Number(info[1]) : undefined, apiLimit: info ? Number(info[2]) : undefined });
      if (res.ok) return res;
      const text = await res.text().catch(() => '');
      const refresh = (this.conn as unknown as { _refreshDelegate?: RefreshDelegateLike })._refreshDelegate;
      if (res.status === 401 && !refreshed && refresh) {
        refreshed = true;
        await refresh.refresh(Date.now());
        continue;
      }
      let body: { errorCode?: string; message?: string } | undefined;
      try {
        const j = JSON.parse(text) as unknown;
        body = (Array.isArray(j) ? j[0] : j) as typeof body;
      } catch {
        body = undefined;
      }
      const errorCode = body?.errorCode ?? `ERROR_HTTP_${res.status}`;
      throw Object.assign(new Error(`GET ${path}: ${errorCode}: ${body?.message ?? text.slice(0, 300)}`), { errorCode, name: errorCode, statusCode: res.status });
    }
  }

  async close(): Promise<void> {
    await this.ledger.flush();
  }
}

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** The token request of the grants that sign in without a user's password or a refresh token. */
function grant(cfg: SalesforceConfig): { grant_type: string; assertion?: string } {
  return cfg.auth === 'jwt' ? { grant_type: JWT_BEARER, assertion: jwtAssertion(cfg) } : { grant_type: 'client_credentials' };
}

/**
 * Salesforce's OAuth 2.0 JWT bearer assertion: RS256 over {iss: consumer key, sub: username, aud: login
 * URL, exp: three minutes}, signed with the key whose certificate the connected app holds. Made fresh
 * for every sign-in (it expires).
 */
export function jwtAssertion(cfg: SalesforceConfig, now = Date.now()): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({ iss: cfg.clientId, sub: cfg.username, aud: jwtAudience(cfg.loginUrl), exp: Math.floor(now / 1000) + 180 })}`;
  const sig = createSign('RSA-SHA256').update(body).sign(cfg.privateKey!, 'base64url');
  return `${body}.${sig}`;
}

/**
 * Salesforce accepts only its login servers as the audience, whatever URL the token request goes to
 * (a My Domain too): test.salesforce.com for sandboxes, login.salesforce.com otherwise. Other hosts (an
 * Experience Cloud site, the emulator) are their own audience.
 */
function jwtAudience(loginUrl: string): string {
  const host = new URL(loginUrl).hostname;
  if (host === 'test.salesforce.com' || host.endsWith('.sandbox.my.salesforce.com')) return 'https://test.salesforce.com';
  if (host === 'salesforce.com' || host.endsWith('.salesforce.com')) return 'https://login.salesforce.com';
  return loginUrl;
}

function parseIdUrl(url: string | undefined): { id: string; organizationId: string; url: string } | undefined {
  if (!url) return undefined;
  const [organizationId, id] = url.split('/').slice(-2);
  return { id, organizationId, url };
}

/**
 * What the operations of this module take: the client, or the jsforce connection it wraps (for the
 * callers that are still handed the connection; they never call it themselves).
 */
export type Sf = SalesforceClient | Connection;

export function connectionOf(sf: Sf): Connection {
  return sf instanceof SalesforceClient ? sf.conn : sf;
}

/** Base path of the API version `sf` uses, e.g. /services/data/v62.0 */
export function basePathOf(sf: Sf): string {
  return sf instanceof SalesforceClient ? sf.basePath : `/services/data/v${sf.version}`;
}
