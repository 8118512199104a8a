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
import { orphanMessage } from '../sync/inbound/mapping.js';
import { errorCode, isObjectMissing, isRecordMissing } from '../salesforce/errors.js';
import { count, describe, describeGlobal, recordCounts, retrieve } from '../salesforce/rest.js';
import type { Session } from '../db/hc/base.js';
import * as dash from '../db/hc/dashboard.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** Whether a Postgres value and the Salesforce value of one field say the same (by the field's type). */
export function sameValue(sfType: string, pg: unknown, sf: unknown): boolean {
  const empty = (v: unknown) => v === null || v === undefined || v === '';
  if (empty(pg) || empty(sf)) return empty(pg) && empty(sf);
  switch (sfType) {
    case 'boolean':
      return String(pg) === String(sf);
    case 'int': case 'double': case 'currency': case 'percent': case 'long':
      return Number(pg) === Number(sf);
    case 'datetime': {
      // Postgres keeps UTC without a zone (Heroku Connect's timestamp); Salesforce says +0000.
      const t = (v: unknown) => Date.parse(String(v).replace(/([+-]\d\d)(\d\d)$/, '$1:$2').replace(/^(\d{4}-\d\d-\d\dT[\d:.]+)$/, '$1Z'));
      return t(pg) === t(sf);
    }
    case 'date':
      return String(pg).slice(0, 10) === String(sf).slice(0, 10);
    default:
      return String(pg) === String(sf);
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
    match: z.string().trim().min(1).max(200).optional(),
  })
  .strict()
  .refine((b) => b.ids || b.table || b.match || b.all, 'say which writes: ids (trigger-log ids), table (a table or object name) and/or match (text of the message), or all: true')
  .refine((b) => !(b.ids && b.match), 'ids pick writes one by one and match picks them by their message: give one or the other');
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

  // A change: one call in a transaction that names the token that asked (hcsync.principal).
  const act = <T>(req: FastifyRequest, work: (s: Session) => Promise<T>) => dash.asPrincipal(db, req.principal!.name, work);
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
    const s = await dash.connectionStatus(db, ctx.connection.id);
    const sfc = ctx.config.salesforce;
    return {
      ...s, login_url: sfc.loginUrl, instance_url: ctx.sf.instanceUrl || null, username: sfc.username ?? null, auth: sfc.auth,
      configured_api_version: sfc.apiVersion,
    };
  });
  // Validations (the Connect API's diagnostics): the database's own checks, hc.diagnose(), RED first.
  // Heroku Connect's counts: errors (RED), warnings (YELLOW), passes (GREEN), skips (SKIPPED).
  app.get('/api/validations', async () => {
    const rank: Record<string, number> = { RED: 0, YELLOW: 1, SKIPPED: 2, GREEN: 3 };
    const checks = (await dash.diagnose(db))
      .sort((a, b) => (rank[a.status] ?? 9) - (rank[b.status] ?? 9));
    const n = (status: string) => checks.filter((c) => c.status === status).length;
    return { errors: n('RED'), warnings: n('YELLOW'), passes: n('GREEN'), skips: n('SKIPPED'), checks };
  });
  for (const action of ['pause', 'resume', 'recover'] as const) {
    app.post(`/api/connection/${action}`, async (req) => {
      await act(req, (s) => dash.controlConnection(s, action, conn));
      return { ok: true, action };
    });
  }

  app.get('/api/mappings', async () => dash.listMappings(db, ctx.connection.id));
  app.get('/api/mappings/:object', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    return dash.mappingDetail(db, object, conn);
  });
  for (const [path, fn] of [['reload', 'reload'], ['poll', 'poll_now'], ['abort', 'abort']] as const) {
    app.post(`/api/mappings/:object/${path}`, async (req, reply) => {
      const object = parse(ObjectName, (req.params as { object: string }).object, reply);
      if (object === undefined) return reply;
      await act(req, (s) => dash.requestMapping(s, fn, object, conn));
      return { ok: true, action: path, object };
    });
  }

  app.get('/api/activity', async (req, reply) => {
    const q = parse(z.object({ hours: Hours, object: ObjectName.optional() }), req.query, reply);
    if (!q) return reply;
    return dash.activity(db, q.hours, q.object ?? null, conn);
  });
  app.get('/api/api-usage', async (req, reply) => {
    const q = parse(z.object({ hours: Hours }), req.query, reply);
    if (!q) return reply;
    return dash.apiUsage(db, q.hours, conn);
  });
  // The API budget (sql/000060_budget.sql): the org's use against its daily allowance as Salesforce last
  // reported it (within 24 hours, else null), hcsync's own calls, the day's forecast, and the governor's
  // level with its thresholds: what the Overview draws the usage against.
  app.get('/api/api-budget', async () => {
    return (await dash.apiBudget(db, ctx.connection.id)) ?? {};
  });

  // Failed writes by mapping (table or object name) and by the text of Salesforce's message (q, any
  // case): the list the Write errors tab shows, and the same filter its "all that match" actions send.
  app.get('/api/write-errors', async (req, reply) => {
    const q = parse(z.object({ table: z.string().max(80).optional(), q: z.string().trim().max(200).optional() }), req.query, reply);
    if (!q) return reply;
    return dash.writeErrors(db, ctx.connection.schema, q.table ?? null, q.q || null);
  });
  for (const action of ['retry', 'discard'] as const) {
    app.post(`/api/write-errors/${action}`, async (req, reply) => {
      const b = parse(Pick, req.body ?? {}, reply);
      if (!b) return reply;
      // match: the writes whose message contains the text (within the table, when given) are picked by
      // id in the same transaction, so the audit row lists exactly the ones acted on.
      const match = b.match;
      const n = match
        ? await act(req, (s) => dash.actOnMatchingWriteErrors(s, action, ctx.connection.schema, b.table ?? null, match, conn))
        : await act(req, (s) => dash.actOnWriteErrors(s, action, b.ids ?? null, b.table ?? null, conn));
      return { ok: true, action, count: n };
    });
  }

  // Creating and editing mappings. The object list and an object's fields come from Salesforce (one
  // call each, only when the page asks: the field picker); the mapping itself is hc.create_mapping /
  // hc.update_mapping / hc.delete_mapping, whose checks (upsert field, field names) answer 400 with a hint.
  const sfFailure = (reply: FastifyReply, err: unknown) => {
    const e = err as { message: string };
    const code = errorCode(err);
    if (isObjectMissing(err)) return reply.code(404).send({ error: `Salesforce: ${e.message}`, hint: 'Check the object API name, and that the integration user can see it.' });
    return reply.code(502).send({ error: `Salesforce refused the call: ${code ? `${code}: ` : ''}${e.message}` });
  };
  app.get('/api/salesforce/objects', async (_req, reply) => {
    try {
      const g = await describeGlobal<{ sobjects: Array<Record<string, unknown>> }>(ctx.sf);
      return g.sobjects
        .filter((o) => o.queryable !== false && o.replicateable !== false)
        .map((o) => ({ name: o.name, label: o.label, custom: o.custom === true }));
    } catch (err) {
      return sfFailure(reply, err);
    }
  });
  app.get('/api/salesforce/objects/:object', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    try {
      const d = await describe<{ name: string; label: string; fields: Array<Record<string, unknown>> }>(ctx.sf, object);
      return {
        name: d.name,
        label: d.label,
        fields: d.fields.map((f) => ({
          name: f.name, label: f.label, type: f.type, length: f.length ?? null, externalId: f.externalId === true, unique: f.unique === true,
          idLookup: f.idLookup === true, createable: f.createable === true, updateable: f.updateable === true, calculated: f.calculated === true,
          nillable: f.nillable === true, referenceTo: f.referenceTo ?? [],
        })),
      };
    } catch (err) {
      return sfFailure(reply, err);
    }
  });
  // Salesforce's row count: its estimate first (/limits/recordCount, one call); above a million rows the
  // estimate is the answer, as in Heroku Connect, and below it SELECT COUNT() gives the exact figure
  // (a second call). Never read unless asked: it costs the org's API allowance.
  app.get('/api/mappings/:object/salesforce-count', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    const m = { object_name: await dash.mappingObjectName(db, object, conn) };
    let calls = 0;
    try {
      let estimate: number | undefined;
      try {
        calls++;
        const r = await recordCounts(ctx.sf, [m.object_name]);
        estimate = r.sObjects?.find((o) => o.name.toLowerCase() === m.object_name.toLowerCase())?.count;
      } catch {
        estimate = undefined; // an org or version without the resource: count exactly
      }
      if (estimate !== undefined && estimate > 1_000_000) return { object_name: m.object_name, count: estimate, estimate: true, calls };
      calls++;
      return { object_name: m.object_name, count: await count(ctx.sf, m.object_name), estimate: false, calls };
    } catch (err) {
      return sfFailure(reply, err);
    }
  });
  const Config = z.record(z.string(), z.unknown());
  app.post('/api/mappings', async (req, reply) => {
    const b = parse(z.object({ object_name: ObjectName, config: Config }).strict(), req.body, reply);
    if (!b) return reply;
    const id = await act(req, (s) => dash.createMapping(s, b.object_name, b.config, conn));
    return { ok: true, action: 'create', object: b.object_name, mapping_id: id };
  });
  app.put('/api/mappings/:object', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    const b = parse(z.object({ config: Config }).strict(), req.body, reply);
    if (!b) return reply;
    await act(req, (s) => dash.updateMapping(s, object, b.config, conn));
    return { ok: true, action: 'update', object };
  });
  app.delete('/api/mappings/:object', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    const q = parse(z.object({ keep_table: z.enum(['true', 'false']).optional() }), req.query, reply);
    if (!q) return reply;
    await act(req, (s) => dash.deleteMapping(s, object, conn, q.keep_table !== 'true'));
    return { ok: true, action: 'delete', object, table_kept: q.keep_table === 'true' };
  });

  // Orphaned mappings: their object is gone from Salesforce (SYNC_REMOVED). The check reads the org's
  // object list (one call) and marks each mapping whose object is not in it; "remove" deletes the mapping
  // and keeps its table and rows.
  app.get('/api/orphans', async () =>
    dash.orphanedMappings(db, ctx.connection.id),
  );
  app.post('/api/orphans/check', async (req, reply) => {
    let names: Set<string>;
    try {
      names = new Set((await describeGlobal<{ sobjects: Array<{ name: string }> }>(ctx.sf)).sobjects.map((o) => o.name.toLowerCase()));
    } catch (err) {
      return sfFailure(reply, err);
    }
    const mapped = await dash.connectionMappings(db, ctx.connection.id);
    const gone = mapped.filter((m) => !names.has(m.object_name.toLowerCase()));
    const marking = gone.filter((m) => m.state !== 'SYNC_REMOVED');
    const orphaned = gone.map((m) => m.object_name);
    // One call, as every action: the mappings found orphaned are marked SYNC_REMOVED, and the check is
    // audited with the token's principal, what it checked and what it found.
    await act(req, (s) => dash.markOrphans(s, ctx.connection.id, { checked: mapped.length, orphaned },
      marking.map((m) => m.id), marking.map((m) => orphanMessage(m.object_name))));
    return { ok: true, checked: mapped.length, orphaned };
  });
  app.post('/api/orphans/:object/remove', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    const m = { state: await dash.mappingState(db, object, conn) };
    if (m.state !== 'SYNC_REMOVED') return reply.code(400).send({ error: `mapping ${object} is not orphaned (state ${m.state})`, hint: 'Check for orphans first; delete other mappings from the Mappings tab.' });
    await act(req, (s) => dash.deleteMapping(s, object, conn, false));
    return { ok: true, action: 'remove', object, table_kept: true };
  });

  // The write algorithm (Heroku Connect's Settings): ordered or merged.
  app.post('/api/connection/write-algorithm', async (req, reply) => {
    const b = parse(z.object({ algorithm: z.enum(['ordered', 'merged']) }).strict(), req.body, reply);
    if (!b) return reply;
    await act(req, (s) => dash.setWriteAlgorithm(s, b.algorithm, conn));
    return { ok: true, action: 'write-algorithm', algorithm: b.algorithm };
  });

  // The Sync Explorer (sql/000046_explorer.sql): a table's rows by sync state and search, one row whole,
  // and, on demand only, the same record read from Salesforce (one API call) beside it, field by field.
  app.get('/api/explorer/:object', async (req, reply) => {
    const object = parse(ObjectName, (req.params as { object: string }).object, reply);
    if (object === undefined) return reply;
    const q = parse(z.object({ state: z.string().max(32).optional(), q: z.string().max(200).optional(), limit: z.coerce.number().int().min(1).max(500).default(50) }), req.query, reply);
    if (!q) return reply;
    return dash.explorerRows(db, object, q.state ?? null, q.q ?? null, q.limit, conn);
  });
  const RowId = z.coerce.number().int().min(1).max(2_147_483_647);
  const record = (object: string, id: number) => dash.explorerRecord(db, object, id, conn);
  app.get('/api/explorer/:object/:id', async (req, reply) => {
    const p = parse(z.object({ object: ObjectName, id: RowId }), req.params, reply);
    if (!p) return reply;
    return record(p.object, p.id);
  });
  app.get('/api/explorer/:object/:id/salesforce', async (req, reply) => {
    const p = parse(z.object({ object: ObjectName, id: RowId }), req.params, reply);
    if (!p) return reply;
    const rec = await record(p.object, p.id);
    const sfid = rec.row.sfid as string | null;
    if (!sfid) return reply.code(400).send({ error: `row ${p.id} has no sfid yet: it is not in Salesforce`, hint: 'A row gets its sfid once its create is written; see Write errors if it failed.' });
    const fields = rec.fields.filter((f) => f.sf_type !== 'relationship_external_id');
    let sf: Record<string, unknown>;
    try {
      sf = await retrieve(ctx.sf, rec.object_name, sfid, fields.map((f) => f.field_name));
    } catch (err) {
      const e = err as { message: string };
      const code = errorCode(err);
      if (isRecordMissing(err)) return reply.code(404).send({ error: `Salesforce has no ${rec.object_name} ${sfid} (deleted there?)`, hint: 'A reload of the mapping makes the table match Salesforce again.' });
      return reply.code(502).send({ error: `Salesforce refused the lookup: ${code ? `${code}: ` : ''}${e.message}` });
    }
    return {
      object_name: rec.object_name,
      id: p.id,
      sfid,
      fields: rec.fields.map((f) => {
        const postgres = rec.row[f.column_name] ?? null;
        if (f.sf_type === 'relationship_external_id') return { ...f, postgres, salesforce: null, compared: false, differs: false };
        const salesforce = sf[f.field_name] ?? null;
        return { ...f, postgres, salesforce, compared: true, differs: !sameValue(f.sf_type, postgres, salesforce) };
      }),
    };
  });

  // Conflicts (sql/000050_conflicts.sql): hc.conflicts of the connection, parked ones first, then the
  // newest; state open = parked, waiting for an operator; resolved = decided by policy, ownership or
  // an operator. Resolving is hc.resolve_conflict: 'pg' or 'sf' (or an object of chosen values), whose
  // values reach the side that lost through the normal paths; it writes the audit row (resolve_conflict)
  // and the conflict's resolved_by, both naming the token's principal.
  app.get('/api/conflicts', async (req, reply) => {
    const q = parse(z.object({
      state: z.enum(['open', 'resolved', 'all']).default('all'),
      object: ObjectName.optional(),
      limit: z.coerce.number().int().min(1).max(1000).default(200),
    }), req.query, reply);
    if (!q) return reply;
    return dash.listConflicts(db, ctx.connection.id, q.object ?? null, q.state, q.limit);
  });
  const Choice = z.union([
    z.enum(['pg', 'sf']),
    z.record(z.string().min(1).max(80), z.union([z.string(), z.number(), z.boolean(), z.null()])).refine((v) => Object.keys(v).length > 0, 'name at least one field'),
  ]);
  app.post('/api/conflicts/:id/resolve', async (req, reply) => {
    const p = parse(z.object({ id: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }), req.params, reply);
    if (!p) return reply;
    const b = parse(z.object({ choice: Choice }).strict(), req.body, reply);
    if (!b) return reply;
    // Only this connection's conflicts: another's id finds no row, and nothing runs.
    const r = await act(req, (s) => dash.resolveConflict(s, p.id, b.choice, ctx.connection.id));
    if (!r) return reply.code(404).send({ error: `conflict ${p.id} does not exist on connection ${conn}`, hint: 'GET /api/conflicts?state=open lists the parked ones.' });
    return { ok: true, action: 'resolve', conflict: r.r };
  });

  // Notifications (sql/000045_notifications.sql), newest first, with whether each still holds (active)
  // and its webhook delivery: the page's banner shows the active ones.
  app.get('/api/notifications', async (req, reply) => {
    const q = parse(z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }), req.query, reply);
    if (!q) return reply;
    return dash.listNotifications(db, q.limit, conn);
  });

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
    return dash.syncLog(db, ctx.connection.id, {
      object: q.object ?? null, level: q.level ?? null, direction: q.direction ?? null, event: q.event ?? null, before: q.before ?? null, limit: q.limit,
    });
  });

  // The event types logged in the period, with counts: the Logs tab's "type" filter (sql/000040).
  app.get('/api/log-events', async (req, reply) => {
    const q = parse(z.object({ hours: Hours.default(168) }), req.query, reply);
    if (!q) return reply;
    return dash.logEvents(db, q.hours, conn);
  });

  app.get('/api/audit', async () => dash.auditTrail(db, ctx.connection.id, 500));
  app.get('/api/audit.csv', async (_req, reply) => {
    const rows = await dash.auditTrail(db, ctx.connection.id);
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
    const c = await dash.exportConfig(db, conn);
    if ((req.query as { download?: string }).download) {
      reply.header('content-disposition', `attachment; filename="hcsync-${ctx.connection.name}.json"`);
    }
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(c, null, 2));
  });
  app.post('/api/import', async (req, reply) => {
    const body = parse(z.object({ mappings: z.array(z.unknown()) }).passthrough(), req.body, reply);
    if (!body) return reply;
    return act(req, (s) => dash.importConfig(s, body, conn));
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
