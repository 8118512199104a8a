// /healthz and /metrics on HC_HTTP_HOST:HC_HTTP_PORT (127.0.0.1:9464 by default; port 0 picks a free
// one, which is logged). Every gauge is read from hc.metrics() at scrape time, so the numbers are true
// after a restart; only the per-process API-call counters come from the client's in-memory ledger.
import Fastify from 'fastify';
import { Gauge, Registry } from 'prom-client';
import type pg from 'pg';
import type { Service, SyncContext } from '../context.js';
import { registerDashboard } from './api.js';
import { generateToken, Tokens } from './auth.js';
import { startEvents } from './events.js';

/** Help text and label names of the samples hc.metrics() returns. */
const CATALOG: Record<string, { help: string; labels: string[] }> = {
  hcsync_connection_state: { help: 'The connection state (1 for the current one)', labels: ['connection', 'state'] },
  hcsync_trigger_log_rows: { help: 'Outbound changes in _trigger_log and its archive, by state', labels: ['connection', 'state'] },
  hcsync_pending_writes: { help: 'Changes waiting to be written to Salesforce (NEW + PENDING)', labels: ['connection'] },
  hcsync_errored_writes: { help: 'Changes Salesforce rejected (FAILED), within the archive retention', labels: ['connection'] },
  hcsync_outbound_lag_seconds: { help: 'Age of the oldest change not yet written to Salesforce (0 when none)', labels: ['connection'] },
  hcsync_rows_synced: {
    help: 'Rows synced per direction: outbound = SUCCESS writes retained, inbound = rows whose current version came from Salesforce',
    labels: ['connection', 'direction'],
  },
  hcsync_api_calls_24h: { help: 'Salesforce API calls in the last 24 hours (the ledger), by kind', labels: ['connection', 'kind'] },
  hcsync_api_usage_used: { help: "The org's API requests used, as last reported by Salesforce", labels: ['connection'] },
  hcsync_api_usage_limit: { help: "The org's daily API request limit, as last reported by Salesforce", labels: ['connection'] },
  hcsync_api_usage_remaining: { help: "The org's API requests remaining, as last reported by Salesforce", labels: ['connection'] },
  hcsync_mapping_state: { help: 'The mapping state (1 for the current one)', labels: ['connection', 'object', 'state'] },
  hcsync_inbound_lag_seconds: { help: 'Seconds since the last successful poll of Salesforce', labels: ['connection', 'object'] },
  hcsync_table_rows: { help: 'Rows in the mapped table by _hc_lastop', labels: ['connection', 'object', 'lastop'] },
};

export interface MetricsSource {
  db: pg.Pool;
  /** The running client's in-memory ledger, when there is one. */
  ledger?: { totals: Map<string, number>; lastUsage?: { used: number; limit: number } };
}

/** A registry whose `refresh()` re-reads hc.metrics(); render with `registry.metrics()` after it. */
export function metricsRegistry(src: MetricsSource): { registry: Registry; refresh(): Promise<void> } {
  const registry = new Registry();
  const gauges = new Map<string, Gauge>();
  for (const [name, { help, labels }] of Object.entries(CATALOG)) {
    gauges.set(name, new Gauge({ name, help, labelNames: labels, registers: [registry] }));
  }
  const processCalls = new Gauge({
    name: 'hcsync_api_calls_process',
    help: 'Salesforce API calls made by this process since it started, by kind',
    labelNames: ['kind'],
    registers: [registry],
  });
  const processUsage = new Gauge({
    name: 'hcsync_api_usage_process',
    help: 'API usage from the last Sforce-Limit-Info header this process saw',
    labelNames: ['figure'],
    registers: [registry],
  });
  return {
    registry,
    async refresh() {
      const { rows } = await src.db.query<{ metric: string; labels: Record<string, string>; value: number }>(
        'select metric, labels, value from hc.metrics()',
      );
      for (const g of gauges.values()) g.reset();
      for (const r of rows) gauges.get(r.metric)?.set(r.labels, r.value);
      processCalls.reset();
      processUsage.reset();
      for (const [kind, n] of src.ledger?.totals ?? []) processCalls.set({ kind }, n);
      const u = src.ledger?.lastUsage;
      if (u) {
        processUsage.set({ figure: 'used' }, u.used);
        processUsage.set({ figure: 'limit' }, u.limit);
        processUsage.set({ figure: 'remaining' }, u.limit - u.used);
      }
    },
  };
}

export async function startHttp(ctx: SyncContext): Promise<Service & { port: number }> {
  const { host, port } = ctx.config.http;
  const metrics = metricsRegistry({ db: ctx.db, ledger: ctx.sf.ledger });
  const app = Fastify({ logger: false });

  // Healthy = the database answers and the connection is not in an error state. 503 otherwise, with
  // the reason, so a load balancer or an orchestrator's probe can act on it.
  app.get('/healthz', async (_req, reply) => {
    try {
      const { rows } = await ctx.db.query(
        `select c.state, c.state_message, s.category from hc.connections c join hc.connection_states s using (state) where c.id = $1`,
        [ctx.connection.id],
      );
      const r = rows[0];
      const ok = r && r.category !== 'error';
      return reply.code(ok ? 200 : 503).send({
        status: ok ? 'ok' : 'error',
        connection: ctx.connection.name,
        state: r?.state ?? null,
        message: r?.state_message ?? null,
      });
    } catch (err) {
      return reply.code(503).send({ status: 'error', message: `database unavailable: ${(err as Error).message}` });
    }
  });

  // Scrapes run one at a time: each resets and refills the shared gauges before rendering them.
  let queue: Promise<unknown> = Promise.resolve();
  app.get('/metrics', async (_req, reply) => {
    const scrape = queue.then(async () => {
      await metrics.refresh();
      return metrics.registry.metrics();
    });
    queue = scrape.catch(() => {});
    try {
      return reply.type(metrics.registry.contentType).send(await scrape);
    } catch (err) {
      ctx.log.warn({ err }, 'metrics: reading hc.metrics() failed');
      return reply.code(503).type('text/plain').send(`# database unavailable: ${(err as Error).message}\n`);
    }
  });

  // The dashboard (/) and its API (/api/…): every request needs a token (auth.ts). Without
  // HC_DASHBOARD_TOKEN one is made for this run and printed below, the only place it appears.
  const adminToken = ctx.config.http.adminToken ?? generateToken();
  const events = await startEvents(ctx);
  registerDashboard(app, ctx, new Tokens(adminToken, ctx.config.http.viewerToken), events);
  app.addHook('preClose', async () => {
    await events.close();
  });

  try {
    await app.listen({ host, port });
  } catch (err) {
    await events.close();
    throw err;
  }
  const bound = (app.server.address() as { port: number }).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  ctx.log.info({ url: `http://${host}:${bound}`, endpoints: ['/healthz', '/metrics', '/', '/api/openapi.json'] }, 'http listening');
  if (!ctx.config.http.adminToken) {
    ctx.log.info({ dashboard: `http://${shown}:${bound}/?token=${adminToken}` }, 'dashboard: HC_DASHBOARD_TOKEN is not set, so this run made a token: open this URL');
  } else {
    ctx.log.info({ dashboard: `http://${shown}:${bound}/` }, 'dashboard: open this URL with ?token=<HC_DASHBOARD_TOKEN> once');
  }
  return {
    port: bound,
    async stop() {
      await app.close();
    },
  };
}
