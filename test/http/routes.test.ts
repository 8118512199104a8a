// Every route of the dashboard and its API, taken from the server itself rather than from a list kept by
// hand: each is in the OpenAPI document (and each documented path is served), each refuses a missing or
// wrong token with 401 before anything reaches the database, each change refuses the viewer and a request
// without the CSRF header with 403 the same way. The SQL behind the routes is tested against a real
// sidecar in dashboard-api.test.ts; here the database is a recorder that must stay silent.
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerDashboard } from '../../sidecar/http/api.js';
import { Tokens } from '../../sidecar/http/auth.js';
import type { EventHub } from '../../sidecar/http/events.js';
import { openapi } from '../../sidecar/http/openapi.js';
import type { SyncContext } from '../../sidecar/context.js';

const ADMIN = 'admin-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';
const SECRETS = { password: 'sf-password-secret-1', clientSecret: 'sf-client-secret-2', accessToken: 'sf-session-secret-3' };

let app: FastifyInstance;
const routes: Array<{ method: string; url: string }> = [];
const queries: string[] = [];
/** What the recorder answers, by the first words of the SQL. */
const answers: Array<[RegExp, Array<Record<string, unknown>>]> = [
  [/from hc\.status/, [{ connection_id: 1, name: 'salesforce', schema_name: 'salesforce', state: 'IDLE', organization_id: '00D000000000001', api_version: '65.0' }]],
  [/from hc\.diagnose\(\)/, [
    { scope: 'database', subject: 'postgres', rule: 'POSTGRES_VERSION', status: 'GREEN', message: 'PostgreSQL 15' },
    { scope: 'mapping', subject: 'Account', rule: 'UPSERT_FIELD', status: 'RED', message: 'read-write without an upsert field' },
    { scope: 'mapping', subject: 'Contact', rule: 'CALCULATED_FIELDS', status: 'YELLOW', message: 'formula field(s)' },
  ]],
  [/\(hc\._mapping\(\$1, \$2\)\)\.state/, [{ state: 'SYNC_REMOVED' }]],
  [/from hc\._mappings where connection_id/, [{ id: 7, object_name: 'Gone__c', state: 'DATA_SYNCED' }]],
];
/** The statements of the sessions changes run in (db.connect()), each with its parameters. */
const sessions: Array<Array<{ sql: string; params: unknown[] }>> = [];
const recorder = {
  async query(sql: string) {
    queries.push(sql);
    return { rows: answers.find(([re]) => re.test(sql))?.[1] ?? [] };
  },
  async connect() {
    const session: Array<{ sql: string; params: unknown[] }> = [];
    sessions.push(session);
    return {
      async query(sql: string, params: unknown[] = []) {
        queries.push(sql);
        session.push({ sql, params });
        return { rows: /^(begin|commit|rollback)$/.test(sql) ? [] : [{ n: 0, id: 1, r: { created: [], updated: [], unchanged: [] } }] };
      },
      release() {},
    };
  },
};

beforeAll(async () => {
  app = Fastify({ logger: false });
  app.addHook('onRoute', (r: RouteOptions) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });
  const ctx = {
    config: {
      salesforce: { loginUrl: 'https://login.salesforce.com', username: 'integration@example.com', auth: 'password', apiVersion: '65.0', password: SECRETS.password, clientSecret: SECRETS.clientSecret },
      http: { host: '127.0.0.1', port: 0, adminToken: ADMIN, viewerToken: VIEWER },
    },
    db: recorder,
    log: { info() {}, warn() {}, error() {}, debug() {} },
    // The API reaches Salesforce through sidecar/salesforce's operations, which also take a bare connection.
    sf: { instanceUrl: 'https://acme.my.salesforce.com', accessToken: SECRETS.accessToken, version: '65.0', request: async () => ({ sobjects: [] }) },
    connection: { id: 1, name: 'salesforce', schema: 'salesforce' },
  } as unknown as SyncContext;
  const events: EventHub = { add() {}, clients: () => 0, on() {}, close: async () => {} };
  registerDashboard(app, ctx, new Tokens(ADMIN, VIEWER), events);
  await app.ready();
});
afterAll(async () => {
  await app?.close();
});

/** A concrete URL for a route: Account for :object, 1 for :id. */
const concrete = (url: string) => url.replace(':object', 'Account').replace(':id', '1');
const api = () => routes.filter((r) => r.url.startsWith('/api/'));

describe('the routes the server has', () => {
  it('are the ones the OpenAPI document lists, method by method, and no more', () => {
    expect(api().length).toBeGreaterThan(30);
    const served = api().map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`).sort();
    const documented = Object.entries(openapi.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(served).toEqual(documented);
  });

  it('each refuses a missing or wrong token with 401, and nothing reaches the database', async () => {
    queries.length = 0;
    for (const r of routes) {
      for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789abcdef' }, { cookie: 'hcsync_token=nope' }, { authorization: `Bearer ${VIEWER}x` }]) {
        const res = await app.inject({
          method: r.method as 'GET',
          url: concrete(r.url),
          headers: { ...headers, 'x-hcsync-csrf': '1', 'content-type': 'application/json' },
          payload: r.method === 'GET' ? undefined : JSON.stringify({ all: true }),
        });
        expect([r.method, r.url, JSON.stringify(headers), res.statusCode]).toEqual([r.method, r.url, JSON.stringify(headers), 401]);
        expect(res.body).not.toContain(ADMIN);
      }
    }
    expect(queries).toEqual([]);
  });

  it('each change refuses the viewer token, and the admin token without the CSRF header, with 403; nothing reaches the database', async () => {
    queries.length = 0;
    const changes = routes.filter((r) => r.method !== 'GET');
    expect(changes.length).toBeGreaterThanOrEqual(15);
    for (const r of changes) {
      for (const headers of [{ authorization: `Bearer ${VIEWER}`, 'x-hcsync-csrf': '1' }, { authorization: `Bearer ${ADMIN}` }, { authorization: `Bearer ${ADMIN}`, 'x-hcsync-csrf': '1', origin: 'http://evil.example' }]) {
        const res = await app.inject({ method: r.method as 'POST', url: concrete(r.url), headers: { ...headers, 'content-type': 'application/json' }, payload: JSON.stringify({ all: true }) });
        expect([r.method, r.url, res.statusCode]).toEqual([r.method, r.url, 403]);
      }
    }
    expect(queries).toEqual([]);
  });
});

describe('changes', () => {
  it("each runs its SQL call in a transaction that first names the token's principal (the audit row's principal)", async () => {
    const bodies: Record<string, unknown> = {
      'POST /api/mappings': { object_name: 'Account', config: {} }, 'PUT /api/mappings/:object': { config: {} },
      'POST /api/connection/write-algorithm': { algorithm: 'merged' }, 'POST /api/import': { mappings: [] },
      'POST /api/write-errors/retry': { all: true }, 'POST /api/write-errors/discard': { all: true },
      'POST /api/conflicts/:id/resolve': { choice: 'pg' },
    };
    for (const r of routes.filter((x) => x.method !== 'GET')) {
      sessions.length = 0;
      const key = `${r.method} ${r.url}`;
      const res = await app.inject({
        method: r.method as 'POST', url: concrete(r.url), headers: { authorization: `Bearer ${ADMIN}`, 'x-hcsync-csrf': '1', 'content-type': 'application/json' },
        payload: JSON.stringify(bodies[key] ?? {}),
      });
      expect([key, res.statusCode]).toEqual([key, 200]);
      expect([key, sessions.length]).toEqual([key, 1]);
      const [begin, principal, call, commit] = sessions[0];
      expect([key, begin.sql, commit.sql]).toEqual([key, 'begin', 'commit']);
      expect([key, principal.sql, principal.params]).toEqual([key, "select set_config('hcsync.principal', $1, true)", ['dashboard:admin']]);
      expect([key, call.sql]).toEqual([key, expect.stringMatching(/^select hc\.\w+\(/)]);
    }
  });
});

describe('answers', () => {
  it("the connection's details name the org, the user, the instance, the API version and the schema, and no secret", async () => {
    const res = await app.inject({ method: 'GET', url: '/api/connection', headers: { authorization: `Bearer ${VIEWER}` } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      organization_id: '00D000000000001', username: 'integration@example.com', instance_url: 'https://acme.my.salesforce.com',
      api_version: '65.0', schema_name: 'salesforce',
    });
    for (const s of [...Object.values(SECRETS), ADMIN, VIEWER]) expect(res.body).not.toContain(s);
  });

  it("validations (Heroku Connect's Connect API resource) are hc.diagnose()'s checks, counted as errors, warnings, passes and skips", async () => {
    queries.length = 0;
    const res = await app.inject({ method: 'GET', url: '/api/validations', headers: { authorization: `Bearer ${VIEWER}` } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ errors: 1, warnings: 1, passes: 1, skips: 0 });
    expect(body.checks.map((c: { rule: string; status: string }) => `${c.status} ${c.rule}`)).toEqual(['RED UPSERT_FIELD', 'YELLOW CALCULATED_FIELDS', 'GREEN POSTGRES_VERSION']);
    expect(queries).toHaveLength(1);
    expect(queries[0]).toMatch(/from hc\.diagnose\(\)/);
  });
});
