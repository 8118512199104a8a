// HTTP front: fastify for REST/Bulk/OAuth/admin, faye for CometD, one port.
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { readFileSync, existsSync, writeFileSync, renameSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Org, type ChangeEvent, type Rec } from './org.js';
import type { OrgDefinition } from './schema.js';
import { defaultOrg } from './orgs/default.js';
import { RestApi, VERSIONS, VERSION_SET, JSON_TYPE, parseCallOptions, sfError, type ApiResponse, type CallKind, type Limits, origin } from './api.js';
import { BulkApi } from './bulk.js';
import { Auth } from './auth.js';
import { CdcBus } from './cdc.js';
import { PubSubServer } from './pubsub/server.js';
import { seedOrg } from './seed.js';
import { makeId, normalizeId } from './ids.js';
import { selfSignedCertificate } from './tls.js';
import { handleSoap, SOAP_TYPE } from './soap.js';
import { toolingQuery } from './tooling.js';

export interface EmulatorOptions {
  port?: number;
  host?: string;
  org?: OrgDefinition | string;
  seed?: Record<string, number>;
  stateFile?: string;
  latencyMs?: number;
  /** Access-token lifetime (default 2 h). */
  tokenTtlMs?: number;
  /** How long CometD holds an idle /meta/connect, seconds (Salesforce: 110). */
  cometdTimeoutSec?: number;
  /** PEM public key that verifies JWT bearer assertions (overrides the org file's jwtPublicKey). */
  jwtPublicKey?: string;
  /** Also serve everything over HTTPS (self-signed certificate made at start) on this port; 0 = any free port. */
  httpsPort?: number;
  /** Port of the Pub/Sub API (TLS gRPC, same self-signed certificate); 0 (default) = any free port, false = none. */
  pubsubPort?: number | false;
  /** Longest a Pub/Sub subscriber waits for a response before an empty keepalive (Salesforce: at most 270 s). */
  pubsubKeepaliveMs?: number;
}

export interface Fault {
  id: number;
  /** Which calls: a kind from stats (e.g. "collections", "query", "bulk2Ingest", "oauth") or "any". */
  kind?: string;
  method?: string;
  /** Substring of the URL path. */
  path?: string;
  /** error: reply with status/errorCode/message. hang: never reply. reset: destroy the socket. delay: wait delayMs then serve.
   * drop-response: serve the call (the write happens), then destroy the socket instead of answering (outcome unknown). */
  action: 'error' | 'hang' | 'reset' | 'delay' | 'drop-response';
  status?: number;
  errorCode?: string;
  message?: string;
  delayMs?: number;
  /** How many matching calls it applies to (default 1; -1 = until cleared). */
  remaining: number;
}

export interface EmulatorStats {
  api: { used: number; limit: number; remaining: number; byKind: Record<string, number> };
  notCounted: { oauth: number; versions: number; streamingHandshakes: number; streamingConnects: number; streamingSubscribes: number; rejected: number };
  records: { created: number; updated: number; deleted: number; undeleted: number };
  bulk: { ingestJobs: number; queryJobs: number; recordsIngested: number; queryRowsServed: number };
  events: { published: number; retained: number };
  pubsub: { subscribes: number; delivered: number; keepalives: number; rejected: number };
  counts: Record<string, number>;
}

type OrgFileDef = OrgDefinition & { jwtPublicKey?: string };

function loadOrg(org: OrgDefinition | string | undefined): OrgFileDef {
  if (!org) return defaultOrg;
  if (typeof org === 'string') return JSON.parse(readFileSync(org, 'utf8')) as OrgFileDef;
  return org as OrgFileDef;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class EmulatorServer {
  org: Org;
  rest: RestApi;
  bulk: BulkApi;
  auth: Auth;
  cdc: CdcBus;
  pubsub: PubSubServer;
  /** host:port of the Pub/Sub API, when it runs. */
  pubsubEndpoint?: string;
  app!: FastifyInstance;
  limits: Limits;
  latencyMs: number;
  faults: Fault[] = [];
  /** Calls served normally whose answer is then lost (fault action drop-response). */
  private dropAfter = new WeakSet<FastifyReply>();
  private faultSeq = 0;
  byKind: Record<string, number> = {};
  notCounted = { oauth: 0, versions: 0, rejected: 0 };
  baseUrl = '';
  /** Set when the HTTPS listener runs. */
  httpsUrl?: string;
  /** PEM certificate of the HTTPS listener (clients trust it by configuration, e.g. NODE_EXTRA_CA_CERTS). */
  certificate?: string;
  private httpsServer?: https.Server;
  private hung = new Set<FastifyReply>();

  constructor(private opts: EmulatorOptions) {
    const def = loadOrg(opts.org);
    this.org = new Org(def);
    this.limits = { dailyApiRequests: def.dailyApiLimit ?? 1_000_000, used: 0 };
    this.rest = new RestApi(this.org, this.limits);
    this.bulk = new BulkApi(this.org, this.rest.soql);
    this.auth = new Auth(this.org, def.clientId ?? 'hcsync-emulator-client-id', def.clientSecret ?? 'hcsync-emulator-client-secret', opts.jwtPublicKey ?? def.jwtPublicKey);
    if (opts.tokenTtlMs) this.auth.tokenTtlMs = opts.tokenTtlMs;
    this.cdc = new CdcBus(this.org, (t) => (this.auth.check(t) ? 'ok' : 'invalid'), opts.cometdTimeoutSec ?? 110);
    for (const [name, objects] of Object.entries(def.channels ?? {})) this.cdc.defineChannel(name, objects);
    this.pubsub = new PubSubServer(this.org, this.cdc, (t) => !!this.auth.check(t), opts.pubsubKeepaliveMs);
    this.latencyMs = opts.latencyMs ?? 0;
    if (opts.stateFile && existsSync(opts.stateFile)) this.org.restore(JSON.parse(readFileSync(opts.stateFile, 'utf8')));
    else if (opts.seed) seedOrg(this.org, opts.seed);
  }

  async listen(): Promise<string> {
    const cdc = this.cdc;
    const self = this;
    let dispatch: http.RequestListener = () => undefined;
    this.app = Fastify({
      logger: false,
      bodyLimit: 200 * 1024 * 1024,
      forceCloseConnections: true,
      keepAliveTimeout: 65_000,
      serverFactory: (handler) => {
        dispatch = (req, res) => {
          // Orgs ignore repeated slashes (`sf` joins an instance URL ending in / with /services/data).
          const url = req.url ?? '/';
          const q = url.indexOf('?');
          const path = q < 0 ? url : url.slice(0, q);
          if (path.includes('//')) req.url = path.replace(/\/{2,}/g, '/') + (q < 0 ? '' : url.slice(q));
          if (req.method === 'POST' && req.url && /^\/cometd\/\d+\.\d(\/|\?|$)/.test(req.url)) {
            const go = () => cdc.handle(req, res);
            if (self.latencyMs > 0) setTimeout(go, self.latencyMs); else go();
            return;
          }
          handler(req, res);
        };
        return http.createServer(dispatch);
      },
    });
    const app = this.app;
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

    app.get('/services/data', (req, reply) => this.versions(reply));
    app.get('/services/data/', (req, reply) => this.versions(reply));
    app.all('/services/data/*', (req, reply) => this.api(req, reply));
    app.post('/services/oauth2/token', (req, reply) => this.token(req, reply));
    app.post('/services/oauth2/revoke', async (req, reply) => {
      this.notCounted.oauth++;
      const form = new URLSearchParams(String(req.body ?? ''));
      const t = form.get('token') ?? new URL(req.url, 'http://x').searchParams.get('token') ?? '';
      if (!this.auth.revoke(t)) return reply.code(400).header('content-type', JSON_TYPE).send(JSON.stringify({ error: 'unsupported_token_type', error_description: 'this token type is not supported' }));
      return reply.code(200).send('');
    });
    app.get('/services/oauth2/authorize', async (req, reply) => {
      const q = new URL(req.url, 'http://x').searchParams;
      const r = this.auth.authorizeCode(q.get('client_id'), q.get('redirect_uri'));
      const redirect = q.get('redirect_uri') ?? `${this.base(req)}/services/oauth2/success`;
      if (r.error) return reply.code(400).header('content-type', JSON_TYPE).send(JSON.stringify({ error: r.error, error_description: 'client identifier invalid' }));
      const u = new URL(redirect);
      u.searchParams.set('code', r.code!);
      if (q.get('state')) u.searchParams.set('state', q.get('state')!);
      return reply.code(302).header('location', u.toString()).send('');
    });
    app.get('/services/oauth2/userinfo', async (req, reply) => {
      const s = this.auth.check(this.bearer(req));
      if (!s) return reply.code(403).header('content-type', 'text/plain').send('Bad_OAuth_Token');
      return reply.header('content-type', JSON_TYPE).send(JSON.stringify(this.identity(this.base(req), s.userId, true)));
    });
    app.get('/id/:org/:user', async (req, reply) => {
      const q = new URL(req.url, 'http://x').searchParams;
      const s = this.auth.check(this.bearer(req) ?? q.get('oauth_token') ?? undefined);
      if (!s) return reply.code(403).header('content-type', 'text/plain').send('Bad_OAuth_Token');
      const { user } = req.params as { user: string };
      return reply.header('content-type', JSON_TYPE).send(JSON.stringify(this.identity(this.base(req), normalizeId(user) ?? s.userId, false)));
    });
    const soap = async (req: FastifyRequest, reply: FastifyReply) => {
      this.notCounted.oauth++;
      if (this.latencyMs) await sleep(this.latencyMs);
      const { version } = req.params as { version: string };
      const r = handleSoap({
        login: (username, password) => {
          const userId = this.auth.verifyPassword(username, password);
          if (!userId) return undefined;
          const u = this.org.find(userId)?.rec ?? {};
          const s = this.auth.openSession(userId);
          return { token: s.token, secondsValid: Math.round(this.auth.tokenTtlMs / 1000), user: { userId, orgId: this.org.orgId, orgName: this.org.def.name ?? 'Emulated org',
            username: String(u.Username ?? username), email: String(u.Email ?? ''), fullName: `${(u.FirstName as string) ?? ''} ${(u.LastName as string) ?? ''}`.trim(), profileId: makeId('00e', 1) } };
        },
        logout: (token) => !!this.auth.check(token) && this.auth.revoke(token),
      }, version, String(req.body ?? ''), this.base(req));
      return reply.code(r.status).header('content-type', SOAP_TYPE).send(r.body);
    };
    app.post('/services/Soap/u/:version', soap);
    app.post('/services/Soap/u/:version/:org', soap);
    app.all('/cometd/*', async (_req, reply) => reply.code(400).header('content-type', JSON_TYPE).send(JSON.stringify([{ error: '400::Invalid connection type {websocket}', successful: false }])));
    this.adminRoutes(app);
    // Unknown routes and framework-level failures answer in Salesforce's shape, not the web framework's.
    app.setNotFoundHandler((_req, reply) => this.send(reply, sfError(404, 'NOT_FOUND', 'The requested resource does not exist')));
    app.setErrorHandler((e: { statusCode?: number; message?: string }, _req, reply) => {
      const status = e.statusCode && e.statusCode >= 400 ? e.statusCode : 500;
      return this.send(reply, sfError(status, status === 413 ? 'REQUEST_ENTITY_TOO_LARGE' : status < 500 ? 'INVALID_REQUEST' : 'UNKNOWN_EXCEPTION', e.message ?? 'An unexpected error occurred.'));
    });

    await app.listen({ port: this.opts.port ?? 0, host: this.opts.host ?? '127.0.0.1' });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    const host = this.opts.host && this.opts.host !== '0.0.0.0' ? this.opts.host : '127.0.0.1';
    const hostPart = host.includes(':') ? `[${host}]` : host;
    this.baseUrl = `http://${hostPart}:${port}`;
    if (this.opts.httpsPort !== undefined) {
      const tls = await selfSignedCertificate(host);
      this.certificate = tls.cert;
      const server = https.createServer({ key: tls.key, cert: tls.cert, keepAliveTimeout: 65_000 }, dispatch);
      this.httpsServer = server;
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(this.opts.httpsPort, this.opts.host ?? '127.0.0.1', () => resolve()); });
      const a = server.address();
      this.httpsUrl = `https://${hostPart}:${typeof a === 'object' && a ? a.port : this.opts.httpsPort}`;
    }
    if (this.opts.pubsubPort !== false) {
      const tls = await selfSignedCertificate(host);
      this.certificate = tls.cert;
      this.pubsubEndpoint = await this.pubsub.listen(this.opts.host ?? '127.0.0.1', this.opts.pubsubPort ?? 0, tls);
    }
    return this.baseUrl;
  }

  async close(): Promise<void> {
    for (const r of this.hung) { try { r.raw.destroy(); } catch { /* gone */ } }
    this.hung.clear();
    this.cdc.close();
    await this.pubsub.close();
    if (this.httpsServer) {
      const server = this.httpsServer;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await this.app?.close();
    if (this.opts.stateFile) {
      const tmp = this.opts.stateFile + '.tmp';
      writeFileSync(tmp, JSON.stringify(this.org.snapshot()));
      renameSync(tmp, this.opts.stateFile);
    }
  }

  /** The base URL the client reached: instance_url, identity and redirects stay on the same scheme and port. */
  private base(req: FastifyRequest): string {
    return (req.raw.socket as TLSSocket).encrypted && this.httpsUrl ? this.httpsUrl : this.baseUrl;
  }

  private bearer(req: FastifyRequest): string | undefined {
    const h = req.headers.authorization;
    const m = h ? /^(?:Bearer|OAuth)\s+(.+)$/i.exec(h) : null;
    return m ? m[1].trim() : undefined;
  }

  private identity(base: string, userId: string, userinfo: boolean) {
    const u = this.org.find(userId)?.rec ?? {};
    const v = VERSIONS[VERSIONS.length - 1].version;
    const urls = { enterprise: `${base}/services/Soap/c/{version}/${this.org.orgId}`, partner: `${base}/services/Soap/u/{version}/${this.org.orgId}`,
      rest: `${base}/services/data/v{version}/`, sobjects: `${base}/services/data/v{version}/sobjects/`, search: `${base}/services/data/v{version}/search/`,
      query: `${base}/services/data/v{version}/query/`, recent: `${base}/services/data/v{version}/recent/`, profile: `${base}/${userId}`, limits: `${base}/services/data/v{version}/limits/` };
    const name = `${(u.FirstName as string) ?? ''} ${(u.LastName as string) ?? ''}`.trim();
    if (userinfo) return { sub: `${base}/id/${this.org.orgId}/${userId}`, user_id: userId, organization_id: this.org.orgId, preferred_username: u.Username, nickname: u.Alias, name,
      email: u.Email, email_verified: true, given_name: u.FirstName, family_name: u.LastName, zoneinfo: 'Etc/UTC', urls, active: true, user_type: 'STANDARD', language: 'en_US', locale: 'en_US', utcOffset: 0, updated_at: u.LastModifiedDate, is_app_installed: true };
    return { id: `${base}/id/${this.org.orgId}/${userId}`, asserted_user: true, user_id: userId, organization_id: this.org.orgId, username: u.Username, nick_name: u.Alias, display_name: name,
      email: u.Email, email_verified: true, first_name: u.FirstName, last_name: u.LastName, timezone: 'Etc/UTC', active: true, user_type: 'STANDARD', language: 'en_US', locale: 'en_US', utcOffset: 0,
      last_modified_date: u.LastModifiedDate, is_app_installed: true, urls: Object.fromEntries(Object.entries(urls).map(([k, x]) => [k, x.replace('{version}', v)])) };
  }

  private versions(reply: FastifyReply) {
    this.notCounted.versions++;
    return reply.header('content-type', JSON_TYPE).send(JSON.stringify(VERSIONS.map((v) => ({ label: v.label, url: `/services/data/v${v.version}`, version: v.version }))));
  }

  private async token(req: FastifyRequest, reply: FastifyReply) {
    this.notCounted.oauth++;
    if (this.latencyMs) await sleep(this.latencyMs);
    if (await this.applyFault('oauth', req, reply)) return reply;
    const ct = String(req.headers['content-type'] ?? '');
    const form = new URLSearchParams(ct.startsWith('application/x-www-form-urlencoded') ? String(req.body ?? '') : '');
    const r = this.auth.token(form, this.base(req));
    return reply.code(r.status).header('content-type', JSON_TYPE).send(JSON.stringify(r.body));
  }

  private limitHeader(): string { return `api-usage=${this.limits.used}/${this.limits.dailyApiRequests}`; }

  private send(reply: FastifyReply, r: ApiResponse) {
    reply.code(r.status);
    reply.header('Sforce-Limit-Info', this.limitHeader());
    for (const [k, v] of Object.entries(r.headers ?? {})) reply.header(k, v);
    if (r.raw !== undefined) return reply.header('content-type', r.contentType === 'text/csv' ? 'text/csv' : (r.contentType ?? 'text/plain')).send(r.raw);
    if (r.body === undefined || r.status === 204 || r.status === 304) return reply.send();
    return reply.header('content-type', JSON_TYPE).send(JSON.stringify(r.body));
  }

  private matchFault(kind: string, method: string, path: string): Fault | undefined {
    for (const f of this.faults) {
      if (f.remaining === 0) continue;
      if (f.kind && f.kind !== 'any' && f.kind !== kind) continue;
      if (f.method && f.method.toUpperCase() !== method) continue;
      if (f.path && !path.includes(f.path)) continue;
      if (f.remaining > 0) f.remaining--;
      this.faults = this.faults.filter((x) => x.remaining !== 0);
      return f;
    }
    return undefined;
  }

  /**
   * True when a fault answered (or swallowed) the request, so the handler must not run. A boolean, not
   * the reply: a FastifyReply is thenable, so an async function returning it resolves to undefined and
   * the faulted write would still be performed.
   */
  private async applyFault(kind: string, req: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    if (this.faults.length === 0) return false;
    const f = this.matchFault(kind, req.method, req.url);
    if (!f) return false;
    switch (f.action) {
      case 'delay': await sleep(f.delayMs ?? 1000); return false;
      case 'drop-response': this.dropAfter.add(reply); return false;
      case 'hang': this.hung.add(reply); reply.hijack(); return true;
      case 'reset': reply.hijack(); req.raw.socket.destroy(); return true;
      default: {
        const status = f.status ?? (f.errorCode === 'REQUEST_LIMIT_EXCEEDED' ? 403 : f.errorCode === 'UNABLE_TO_LOCK_ROW' ? 400 : 503);
        const code = f.errorCode ?? (status >= 500 ? (status === 503 ? 'SERVER_UNAVAILABLE' : 'UNKNOWN_EXCEPTION') : 'UNKNOWN_EXCEPTION');
        const msg = f.message ?? (code === 'UNABLE_TO_LOCK_ROW' ? 'unable to obtain exclusive access to this record or 1 records: ' : code === 'REQUEST_LIMIT_EXCEEDED' ? 'TotalRequests Limit exceeded.' : code === 'SERVER_UNAVAILABLE' ? 'Server temporarily unavailable' : 'An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)');
        if (kind === 'oauth') reply.code(status).header('content-type', JSON_TYPE).send(JSON.stringify({ error: code.toLowerCase(), error_description: msg }));
        else this.send(reply, sfError(status, code, msg));
        return true;
      }
    }
  }

  private async api(req: FastifyRequest, reply: FastifyReply) {
    if (this.latencyMs) await sleep(this.latencyMs);
    const url = new URL(req.url, 'http://x');
    const m = /^\/services\/data\/v(\d+\.\d)(\/.*)?$/.exec(url.pathname.replace(/\/+$/, ''));
    if (!m || !VERSION_SET.has(m[1])) return this.send(reply, sfError(404, 'NOT_FOUND', 'The requested resource does not exist'));
    const version = m[1];
    const path = m[2] ?? '';
    const session = this.auth.check(this.bearer(req));
    if (!session) {
      reply.header('WWW-Authenticate', 'Token');
      return this.send(reply, sfError(401, 'INVALID_SESSION_ID', 'Session expired or invalid'));
    }
    const kind: CallKind = this.rest.kindOf(req.method, path);
    if (await this.applyFault(kind, req, reply)) {
      // The request reached the org and failed there: Salesforce still counts it.
      this.limits.used++;
      this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
      return reply;
    }
    if (this.limits.used >= this.limits.dailyApiRequests) {
      this.notCounted.rejected++;
      return this.send(reply, sfError(403, 'REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.'));
    }
    this.limits.used++;
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const apiReq = { method: req.method, path, query: url.searchParams, headers, body: typeof req.body === 'string' ? req.body : undefined, version, userId: session.userId, client: parseCallOptions(headers['sforce-call-options']), baseUrl: this.base(req) };
    const r = path.startsWith('/jobs/') || path === '/jobs' ? await this.bulk.handle(apiReq)
      : path.startsWith('/tooling/') ? this.tooling(apiReq)
      : await this.rest.handle(apiReq);
    if (this.dropAfter.has(reply)) {
      // The org has done the work; the client never hears about it.
      reply.hijack();
      req.raw.socket.destroy();
      return reply;
    }
    return this.send(reply, r);
  }

  /** Of the Tooling API, only queries of the event channels and their members (tooling.ts). */
  private tooling(req: { method: string; path: string; query: URLSearchParams; version: string }): ApiResponse {
    if (req.path.replace(/\/+$/, '') !== '/tooling/query' || req.method !== 'GET') return sfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    const q = req.query.get('q');
    if (!q) return sfError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    const channels = this.cdc.customChannels().map((c) => ({
      channel: c.channel,
      entities: c.objects.map((o) => this.org.object(o)?.changeEventName ?? `${o}ChangeEvent`),
    }));
    return toolingQuery(q, channels, req.version);
  }

  // ------------------------------------------------------------ observation and faults

  stats(): EmulatorStats {
    const counts: Record<string, number> = {};
    for (const [name, t] of this.org.tables) { let n = 0; for (const r of t.values()) if (!r.IsDeleted) n++; counts[name] = n; }
    return {
      api: { used: this.limits.used, limit: this.limits.dailyApiRequests, remaining: Math.max(0, this.limits.dailyApiRequests - this.limits.used), byKind: { ...this.byKind } },
      notCounted: { oauth: this.notCounted.oauth, versions: this.notCounted.versions, streamingHandshakes: this.cdc.handshakes, streamingConnects: this.cdc.connects, streamingSubscribes: this.cdc.subscribes, rejected: this.notCounted.rejected },
      records: { ...this.org.stats },
      bulk: { ...this.bulk.stats },
      events: { published: this.cdc.published, retained: this.cdc.retainedCount() },
      pubsub: { ...this.pubsub.stats },
      counts,
    };
  }

  reset(seed?: Record<string, number>): void {
    this.org.reset();
    this.bulk.reset();
    this.cdc.clear();
    this.byKind = {};
    this.limits.used = 0;
    this.notCounted = { oauth: 0, versions: 0, rejected: 0 };
    this.faults = [];
    this.org.lockFailures = 0;
    if (seed) seedOrg(this.org, seed);
  }

  records(objectName: string, includeDeleted = false): Rec[] {
    const obj = this.org.object(objectName);
    if (!obj) throw new Error(`unknown object ${objectName}`);
    const out: Rec[] = [];
    for (const r of this.org.table(obj).values()) {
      if (!includeDeleted && r.IsDeleted) continue;
      const full: Rec = { ...r };
      for (const f of obj.fields) if (f.calculated) full[f.name] = this.org.value(obj, r, f);
      out.push(full);
    }
    return out;
  }

  addFault(f: Partial<Fault>): Fault {
    const fault: Fault = { id: ++this.faultSeq, action: f.action ?? (f.status || f.errorCode ? 'error' : 'error'), remaining: f.remaining ?? 1, ...f } as Fault;
    if (fault.remaining === undefined) fault.remaining = 1;
    this.faults.push(fault);
    return fault;
  }

  undelete(ids: string[]) {
    return this.org.dml(ids.map((id) => ({ kind: 'undelete' as const, id })), { userId: this.org.defaultUserId, origin: origin('rest', VERSIONS[VERSIONS.length - 1].version) });
  }

  injectGap(object: string, changeType: ChangeEvent['changeType'], recordIds: string[]): void {
    const obj = this.org.object(object);
    if (!obj) throw new Error(`unknown object ${object}`);
    this.cdc.injectGap(obj.name, changeType, recordIds, '', this.org.defaultUserId);
  }

  private adminRoutes(app: FastifyInstance) {
    const json = (reply: FastifyReply, body: unknown, status = 200) => reply.code(status).header('content-type', JSON_TYPE).send(JSON.stringify(body));
    const body = (req: FastifyRequest): Record<string, any> => { try { return req.body ? JSON.parse(String(req.body)) : {}; } catch { return {}; } };
    app.get('/__emulator/stats', async (_req, reply) => json(reply, this.stats()));
    app.get('/__emulator/credentials', async (_req, reply) => json(reply, this.credentials()));
    app.post('/__emulator/reset', async (req, reply) => { this.reset(body(req).seed); return json(reply, { ok: true }); });
    app.post('/__emulator/seed', async (req, reply) => { seedOrg(this.org, body(req) as Record<string, number>, Date.now() & 0xffff); return json(reply, this.stats().counts); });
    app.post('/__emulator/latency', async (req, reply) => { this.latencyMs = Number(body(req).ms ?? 0); return json(reply, { latencyMs: this.latencyMs }); });
    app.get('/__emulator/faults', async (_req, reply) => json(reply, this.faults));
    app.post('/__emulator/faults', async (req, reply) => {
      const b = body(req);
      if (b.lockRows !== undefined) { this.org.lockFailures = Number(b.lockRows); return json(reply, { lockRows: this.org.lockFailures }); }
      return json(reply, this.addFault(b as Partial<Fault>), 201);
    });
    app.delete('/__emulator/faults', async (_req, reply) => { this.faults = []; this.org.lockFailures = 0; return json(reply, { ok: true }); });
    app.post('/__emulator/limits', async (req, reply) => {
      const b = body(req);
      if (b.dailyApiRequests !== undefined) this.limits.dailyApiRequests = Number(b.dailyApiRequests);
      if (b.used !== undefined) this.limits.used = Number(b.used);
      return json(reply, { dailyApiRequests: this.limits.dailyApiRequests, used: this.limits.used });
    });
    app.post('/__emulator/tokens/expire', async (_req, reply) => json(reply, { expired: this.auth.expireAll() }));
    app.post('/__emulator/tokens/refresh-token', async (_req, reply) => json(reply, { refresh_token: this.auth.mintRefreshToken() }));
    app.post('/__emulator/tokens/ttl', async (req, reply) => { this.auth.tokenTtlMs = Number(body(req).ms); return json(reply, { tokenTtlMs: this.auth.tokenTtlMs }); });
    app.post('/__emulator/streaming/drop', async (_req, reply) => json(reply, { dropped: this.cdc.dropSessions(), pubsubStreams: this.pubsub.dropStreams() }));
    app.get('/__emulator/channels', async (_req, reply) => json(reply, this.cdc.customChannels()));
    app.post('/__emulator/channels', async (req, reply) => {
      const b = body(req) as { name?: string; objects?: string[] };
      try { return json(reply, this.cdc.defineChannel(String(b.name ?? ''), Array.isArray(b.objects) ? b.objects.map(String) : [])); }
      catch (e) { return json(reply, { error: (e as Error).message }, 400); }
    });
    app.post('/__emulator/streaming/retention', async (req, reply) => { this.cdc.setRetention(Number(body(req).ms)); return json(reply, { retentionMs: this.cdc.retentionMs, retained: this.cdc.retainedCount() }); });
    app.post('/__emulator/streaming/gap', async (req, reply) => {
      const b = body(req);
      try { this.injectGap(b.object, b.changeType ?? 'GAP_UPDATE', b.recordIds ?? []); } catch (e) { return json(reply, { error: (e as Error).message }, 400); }
      return json(reply, { ok: true });
    });
    app.get('/__emulator/events', async (req, reply) => {
      const after = Number(new URL(req.url, 'http://x').searchParams.get('after') ?? -1);
      return json(reply, this.cdc.retained().filter((e) => e.replayId > after).map((e) => ({ replayId: e.replayId, channel: e.channel, ...e.data })));
    });
    app.get('/__emulator/records/:object', async (req, reply) => {
      const { object } = req.params as { object: string };
      const q = new URL(req.url, 'http://x').searchParams;
      try {
        let rows = this.records(object, q.get('includeDeleted') === 'true');
        const field = q.get('field');
        if (field) rows = rows.filter((r) => String(r[field] ?? '') === (q.get('value') ?? ''));
        return json(reply, rows);
      } catch (e) { return json(reply, { error: (e as Error).message }, 404); }
    });
    app.get('/__emulator/records/:object/:id', async (req, reply) => {
      const { id } = req.params as { id: string };
      const hit = this.org.find(normalizeId(id) ?? '');
      if (!hit) return json(reply, { error: 'not found' }, 404);
      return json(reply, this.records(hit.obj.name, true).find((r) => r.Id === hit.rec.Id));
    });
    app.post('/__emulator/undelete', async (req, reply) => json(reply, this.undelete(body(req).ids ?? [])));
  }

  credentials() {
    const u = (this.org.def.users ?? [])[0] ?? { username: 'admin@hcsync.emulator', password: 'emulator-password' };
    return { loginUrl: this.baseUrl, clientId: this.auth.clientId, clientSecret: this.auth.clientSecret, username: u.username, password: u.password };
  }
}
