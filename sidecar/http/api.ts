// The dashboard's JSON API under /api (documented in /api/openapi.json, see openapi.ts). Each endpoint
// is one call of the SQL API (hc.* views and functions, sql/000004_control.sql and
// sql/000040_dashboard.sql): the API validates input, names the caller and shapes the answer, nothing
// more. Changes run in a transaction that first sets hcsync.principal, so the audit row the SQL function
// writes names the token that asked (hc.audit_log.principal).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { stringify } from 'csv-stringify/sync';
import { z } from 'zod';
import type { SyncContext } from '../context.js';
import { bearerToken, cookieToken, refuse, setTokenCookie, type Principal, type Tokens } from './auth.js';
import type { EventHub } from './events.js';
import { openapi } from './openapi.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** A PostgreSQL error the caller can fix (bad input, unknown object, a refused state change): 400 with its hint. */
function isUserError(err: unknown): err is { message: string; hint?: string; code: string } {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^(22|23|42|P0|55)/.test(code) && code !== '42501';
}

const ObjectName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,79}$/, 'an object API name such as Account');
const Pick = z
  .object({
    ids: z.array(z.number().int().positive()).min(1).optional(),
    table: z.string().min(1).max(80).optional(),
    all: z.literal(true).optional(),
  })
  .strict()
  .refine((b) => b.ids || b.table || b.all, 'say which writes: ids (trigger-log ids), table (a table or object name), or all: true');
const Hours = z.coerce.number().int().min(1).max(2160).default(24);

const UI_DIR = join(dirname(fileURLToPath(import.meta.url)), 'ui');
const require = createRequire(import.meta.url);
const pkgDir = (name: string) => dirname(require.resolve(`${name}/package.json`));

/** The page and its scripts: the page's own files, and Preact, its hooks and htm from node_modules. */
function assets(): Map<string, { type: string; body: string }> {
  const js = 'text/javascript; charset=utf-8';
  const files = new Map<string, { type: string; body: string }>([
    ['/', { type: 'text/html; charset=utf-8', body: readFileSync(join(UI_DIR, 'index.html'), 'utf8') }],
    ['/ui/app.js', { type: js, body: readFileSync(join(UI_DIR, 'app.js'), 'utf8') }],
    ['/ui/style.css', { type: 'text/css; charset=utf-8', body: readFileSync(join(UI_DIR, 'style.css'), 'utf8') }],
    ['/ui/vendor/preact.mjs', { type: js, body: readFileSync(join(pkgDir('preact'), 'dist/preact.mjs'), 'utf8') }],
    // The hooks import "preact" by bare name: pointed at the served copy (the page uses no import map,
    // so the content security policy can forbid inline scripts).
    ['/ui/vendor/hooks.mjs', { type: js, body: readFileSync(join(pkgDir('preact'), 'hooks/dist/hooks.mjs'), 'utf8').replace(/from\s*"preact"/g, 'from"/ui/vendor/preact.mjs"') }],
    ['/ui/vendor/htm.mjs', { type: js, body: readFileSync(join(dirname(require.resolve('htm')), 'htm.mjs'), 'utf8') }],
  ]);
  return files;
}

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export function registerDashboard(app: FastifyInstance, ctx: SyncContext, tokens: Tokens, events: EventHub): void {
  const conn = ctx.connection.name;
  const db = ctx.db;
  const files = assets();
  const open = new Set(['/healthz', '/metrics']);

  // Every request but the probes' (/healthz, /metrics: no secret, no action) needs a token.
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0];
    // The probes, and paths that do not exist (404 says nothing a token would protect).
    if (open.has(path) || !req.routeOptions.url) return;
    // First visit with ?token=: the cookie is set and the token leaves the address bar.
    const q = (req.query as { token?: string } | undefined)?.token;
    if (req.method === 'GET' && q && !path.startsWith('/api/')) {
      if (tokens.check(q)) {
        setTokenCookie(reply, q);
        return reply.code(303).header('location', path).header('cache-control', 'no-store').send();
      }
    }
    const who = tokens.check(bearerToken(req) ?? cookieToken(req));
    const no = refuse(req, who);
    if (no) {
      if (no.status === 401 && req.method === 'GET' && !path.startsWith('/api/')) {
        return reply.code(401).type('text/html; charset=utf-8').send(
          '<!doctype html><title>hcsync</title><p>This dashboard needs its token: open the URL hcsync printed when it started (it ends in <code>?token=…</code>).</p>',
        );
      }
      return reply.code(no.status).send({ error: no.message });
    }
    req.principal = who;
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  app.setErrorHandler((err, req, reply) => {
    if (isUserError(err)) return reply.code(400).send({ error: err.message, hint: err.hint });
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status < 500) return reply.code(status).send({ error: (err as Error).message });
    ctx.log.error({ err, url: req.url }, 'dashboard API request failed');
    return reply.code(500).send({ error: 'internal error: see the sidecar log' });
  });

  for (const [path, f] of files) app.get(path, async (_req, reply) => reply.type(f.type).send(f.body));

  const read = async <T = Record<string, unknown>>(sql: string, params: unknown[]) => (await db.query(sql, params)).rows as T[];
  const act = async (req: FastifyRequest, sql: string, params: unknown[]) => {
    const c = await db.connect();
    try {
      await c.query('begin');
      await c.query(`select set_config('hcsync.principal', $1, true)`, [req.principal!.name]);
      const r = await c.query(sql, params);
      await c.query('commit');
      return r.rows;
    } catch (err) {
      await c.query('rollback').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  };
  const parse = <T>(schema: z.ZodType<T>, value: unknown, reply: FastifyReply): T | undefined => {
    const r = schema.safeParse(value);
    if (r.success) return r.data;
    void reply.code(400).send({ error: r.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ') });
    return undefined;
  };

  app.get('/api/openapi.json', async () => openapi);

  app.get('/api/whoami', async (req) => ({ role: req.principal!.role, principal: req.principal!.name }));

  // The connection: state and message, counts, and its details (no secret: the sign-in settings are not shown).
  app.get('/api/connection', async () => {
    const [s] = await read(`select * from hc.status where connection_id = $1`, [ctx.connection.id]);
    const sfc = ctx.config.salesforce;
    return { ...s, login_url: sfc.loginUrl, username: sfc.username ?? null, auth: sfc.auth, configured_api_version: sfc.apiVersion };
  });
  for (const action of ['pause', 'resume', 'recover'] as const) {
    app.post(`/api/connection/${action}`, async (req) => {
      await act(req, `select hc.${action}($1)`, [conn]);
      return { ok: true, action };
    });
  }

  app.get('/api/mappings', async () => read(`select * from hc.mappings where connection_id = $1 order by object_name`, [ctx.connection.id]));
  app.get('/api/mappings/:object', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    return (await read<{ m: unknown }>(`select hc.dashboard_mapping($1, $2) as m`, [object, conn]))[0].m;
  });
  for (const [path, fn] of [['reload', 'reload'], ['poll', 'poll_now'], ['abort', 'abort']] as const) {
    app.post(`/api/mappings/:object/${path}`, async (req, reply) => {
      const object = parse(ObjectName, (req.params as { object: string }).object, reply);
      if (object === undefined) return reply;
      await act(req, `select hc.${fn}($1, $2)`, [object, conn]);
      return { ok: true, action: path, object };
    });
  }

  app.get('/api/activity', async (req, reply) => {
    const q = parse(z.object({ hours: Hours, object: ObjectName.optional() }), req.query, reply);
    if (!q) return reply;
    return read(`select * from hc.dashboard_activity($1, $2, $3)`, [q.hours, q.object ?? null, conn]);
  });
  app.get('/api/api-usage', async (req, reply) => {
    const q = parse(z.object({ hours: Hours }), req.query, reply);
    if (!q) return reply;
    return read(`select * from hc.dashboard_api_usage($1, $2)`, [q.hours, conn]);
  });

  app.get('/api/write-errors', async (req, reply) => {
    const q = parse(z.object({ table: z.string().max(80).optional() }), req.query, reply);
    if (!q) return reply;
    return read(
      `select * from hc.write_errors where schema_name = $1 and ($2::text is null or table_name = lower($2) or lower(object_name) = lower($2))`,
      [ctx.connection.schema, q.table ?? null],
    );
  });
  for (const action of ['retry', 'discard'] as const) {
    app.post(`/api/write-errors/${action}`, async (req, reply) => {
      const b = parse(Pick, req.body ?? {}, reply);
      if (!b) return reply;
      const [r] = await act(req, `select hc.${action}($1, $2, $3) as n`, [b.ids ?? null, b.table ?? null, conn]);
      return { ok: true, action, count: r.n };
    });
  }

  const Logs = z.object({
    object: ObjectName.optional(),
    level: z.enum(['debug', 'info', 'warn', 'error']).optional(),
    direction: z.enum(['inbound', 'outbound']).optional(),
    event: z.string().max(64).optional(),
    before: z.coerce.number().int().positive().optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  });
  app.get('/api/logs', async (req, reply) => {
    const q = parse(Logs, req.query, reply);
    if (!q) return reply;
    return read(
      `select l.id, l.at, l.direction, l.level, l.event, l.message, l.detail, m.object_name
         from hc.sync_log l left join hc._mappings m on m.id = l.mapping_id
        where l.connection_id = $1
          and ($2::text is null or lower(m.object_name) = lower($2))
          and ($3::text is null or array_position(array['debug','info','warn','error'], l.level) >= array_position(array['debug','info','warn','error'], $3::text))
          and ($4::text is null or l.direction = $4)
          and ($5::text is null or l.event = $5)
          and ($6::bigint is null or l.id < $6)
        order by l.id desc limit $7`,
      [ctx.connection.id, q.object ?? null, q.level ?? null, q.direction ?? null, q.event ?? null, q.before ?? null, q.limit],
    );
  });

  const auditSql = `select a.id, a.at, a.actor, a.principal, a.action, m.object_name, a.detail
                      from hc.audit_log a left join hc._mappings m on m.id = a.mapping_id
                     where a.connection_id = $1 or a.connection_id is null order by a.id desc`;
  app.get('/api/audit', async () => read(`${auditSql} limit 500`, [ctx.connection.id]));
  app.get('/api/audit.csv', async (_req, reply) => {
    const rows = await read<Record<string, unknown>>(auditSql, [ctx.connection.id]);
    const csv = stringify(
      rows.map((r) => ({ ...r, at: (r.at as Date).toISOString(), detail: r.detail == null ? '' : JSON.stringify(r.detail) })),
      { header: true, columns: ['id', 'at', 'actor', 'principal', 'action', 'object_name', 'detail'] },
    );
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="hcsync-audit-${ctx.connection.name}.csv"`)
      .send(csv);
  });

  app.get('/api/export', async (req, reply) => {
    const [r] = await read<{ c: unknown }>(`select hc.export_config($1) as c`, [conn]);
    if ((req.query as { download?: string }).download) {
      reply.header('content-disposition', `attachment; filename="hcsync-${ctx.connection.name}.json"`);
    }
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(r.c, null, 2));
  });
  app.post('/api/import', async (req, reply) => {
    const body = parse(z.object({ mappings: z.array(z.unknown()) }).passthrough(), req.body, reply);
    if (!body) return reply;
    const [r] = await act(req, `select hc.import_config($1::jsonb, $2) as r`, [JSON.stringify(body), conn]);
    return r.r;
  });

  app.get('/api/events', (req, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    events.add(reply.raw);
  });
}
