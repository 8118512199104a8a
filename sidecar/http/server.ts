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
import { startWebhook } from '../sync/notify.js';
import { connectionHealth, metricSamples } from '../db/hc/dashboard.js';

/** Help text and label names of the samples hc.metrics() returns. */
const CATALOG: Record<string, { help: string; labels: string[] }> = {
  hcsync_connection_state: { help: 'The connection state (1 for the current one)', labels: ['connection', 'state'] },
  hcsync_trigger_log_rows: { help: 'Outbound changes in _trigger_log and its archive, by state', labels: ['connection', 'state'] },
  hcsync_pending_writes: { help: 'Changes waiting to be written to Salesforce (NEW + PENDING)', labels: ['connection'] },
  hcsync_errored_writes: { help: 'Changes Salesforce rejected (FAILED), within the archive retention', labels: ['connection'] },
  hcsync_conflicts: { help: 'Conflicts between Postgres and Salesforce (hc.conflicts): open = parked until resolved, resolved = decided by policy, ownership or an operator', labels: ['connection', 'object', 'state'] },
  hcsync_outbound_lag_seconds: { help: 'Age of the oldest change not yet written to Salesforce (0 when none)', labels: ['connection'] },
  hcsync_rows_synced: {
    help: 'Rows synced per direction: outbound = SUCCESS writes retained, inbound = rows whose current version came from Salesforce',
    labels: ['connection', 'direction'],
  },
  hcsync_api_calls_24h: { help: 'Salesforce API calls in the last 24 hours (the ledger), by kind', labels: ['connection', 'kind'] },
  hcsync_change_events_delivered_24h: {
    help: "Change events delivered to the sidecar in the last 24 hours (hc.event_deliveries), by transport and channel: what it spends of the org's event delivery allowance",
    labels: ['connection', 'transport', 'channel'],
  },
  hcsync_api_usage_used: { help: "The org's API requests used, as last reported by Salesforce", labels: ['connection'] },
  hcsync_api_usage_limit: { help: "The org's daily API request limit, as last reported by Salesforce", labels: ['connection'] },
  hcsync_api_usage_remaining: { help: "The org's API requests remaining, as last reported by Salesforce", labels: ['connection'] },
  hcsync_mapping_state: { help: 'The mapping state (1 for the current one)', labels: ['connection', 'object', 'state'] },
  hcsync_inbound_lag_seconds: { help: 'Seconds since the last successful poll of Salesforce', labels: ['connection', 'object'] },
  hcsync_table_rows: { help: 'Rows in the mapped table by _hc_lastop', labels: ['connection', 'object', 'lastop'] },
  // The API budget governor (hc.api_budget_metrics()).
  hcsync_api_budget_level: { help: 'The API budget level the governor acts on: normal, slow (from 70 %) or paused (from 90 %), 1 for the current one', labels: ['connection', 'level'] },
  hcsync_api_budget_used_ratio: { help: "The org's reported API use as a share of its daily allowance", labels: ['connection'] },
  hcsync_api_budget_forecast_ratio: { help: "The day's forecast use (others' use plus hcsync's at the last hour's pace) as a share of the allowance", labels: ['connection'] },
  hcsync_api_budget_waiting: { help: 'Work held back by the API budget (object "" for the writer); cause org_allowance or mapping_cap', labels: ['connection', 'object', 'work', 'cause'] },
  hcsync_api_budget_slowed: { help: 'Background reads running at a stretched interval (the slow level)', labels: ['connection', 'object', 'work'] },
  hcsync_mapping_api_calls_24h: { help: "A mapping's own Salesforce calls in the last 24 hours", labels: ['connection', 'object'] },
  hcsync_mapping_api_calls_max: { help: "A mapping's sf_max_daily_api_calls", labels: ['connection', 'object'] },
};

export interface MetricsSource {
  db: pg.Pool;
  /** The running client's in-memory ledger, when there is one. */
  ledger?: { totals: Map<string, number>; received: Map<string, number>; lastUsage?: { used: number; limit: number } };
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
  const received = new Gauge({
    name: 'hcsync_change_events_received_process',
    help: 'Change events delivered to this process since it started, by transport (pubsub, cometd) and channel: what it spends of the org\'s event delivery allowance',
    labelNames: ['transport', 'channel'],
    registers: [registry],
  });
  return {
    registry,
    async refresh() {
      const rows = await metricSamples(src.db);
      for (const g of gauges.values()) g.reset();
      for (const r of rows) gauges.get(r.metric)?.set(r.labels, r.value);
      processCalls.reset();
      processUsage.reset();
      for (const [kind, n] of src.ledger?.totals ?? []) processCalls.set({ kind }, n);
      received.reset();
      for (const [key, n] of src.ledger?.received ?? []) {
        const [transport, channel] = key.split(' ');
        received.set({ transport, channel }, n);
      }
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
      const r = await connectionHealth(ctx.db, ctx.connection.id);
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
  // The notification webhook hears hc_notifications through the same LISTEN session as the pages.
  const webhook = startWebhook(ctx, events);
  app.addHook('preClose', async () => {
    await webhook.stop();
    await events.close();
  });

  try {
    await app.listen({ host, port });
  } catch (err) {
    await webhook.stop();
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
