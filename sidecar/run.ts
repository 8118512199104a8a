// `hcsync run`: the sidecar. It migrates (or refuses a newer schema), finds its connection, signs in to
// Salesforce, then starts the inbound reader, the outbound writer and the HTTP endpoints. Everything it
// knows it reads from the database, so it can be killed at any instant and started again.
import net from 'node:net';
import type { Config } from './config.js';
import { ConfigError, redacted } from './config.js';
import { createLogger, type Logger } from './log.js';
import { migrate } from './db/contractor.js';
import { syncPool } from './db/pool.js';
import { backoff, createListener } from './db/notifier.js';
import { SalesforceClient } from './salesforce/client.js';
import { isRefusal } from './salesforce/errors.js';
import type { ConnectionRef, Service, SyncContext } from './context.js';
import { startInbound } from './sync/inbound/index.js';
import { startOutbound } from './sync/outbound/index.js';
import { startHttp } from './http/server.js';
import { startConnectionSupervisor } from './sync/connection.js';
import { createConnection, findConnection, inboundLeaderPid, setConnectionState } from './db/hc/control.js';

export interface Sidecar extends Service {
  ctx: SyncContext;
}

/** The connection row for the configured schema, created (with its HC objects) on first start. */
async function ensureConnection(ctx: Pick<SyncContext, 'db' | 'config'>): Promise<ConnectionRef> {
  const { schema, connectionName } = ctx.config;
  const found = await findConnection(ctx.db, schema);
  if (found) return { id: found.id, name: found.name, schema };
  const made = await createConnection(ctx.db, connectionName, schema);
  return { id: made.id, name: made.name, schema };
}

/**
 * Signs in, retrying (capped backoff) whatever is not a definite refusal of the credentials: a token
 * endpoint that answers 503 once must not stop hcsync. A refusal (invalid_grant, invalid_client) throws.
 */
async function signIn(config: Config, opts: { log: Logger; db: SyncContext['db']; connection: ConnectionRef }): Promise<SalesforceClient> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await SalesforceClient.connect(config.salesforce, { log: opts.log, pool: opts.db, connectionId: opts.connection.id });
    } catch (err) {
      if (isRefusal(err)) throw err;
      const wait = backoff(attempt, 30_000, 500);
      opts.log.warn({ err, attempt, retryInMs: wait }, 'signing in to Salesforce failed for a reason that may pass: trying again');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Whether this process may speak for the connection: no other sidecar holds it (hc.inbound_leaders,
 * the inbound leader's lock, see hc.inbound_try_lead).
 */
async function holdsConnection(db: SyncContext['db'], connectionId: number): Promise<boolean> {
  const pid = await inboundLeaderPid(db, connectionId).catch(() => undefined);
  return !pid; // cannot tell: say what we know
}

/** A taken HTTP port is found before any work (a load would otherwise run first and be left half done). */
async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES'
          ? new ConfigError([
              `HC_HTTP_PORT ${port} on ${host} is ${err.code === 'EADDRINUSE' ? 'taken (another hcsync, or another server?)' : 'not allowed for this user'}: stop what holds it, or set HC_HTTP_PORT to a free port (0 picks one and logs it)`,
            ])
          : err,
      ),
    );
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}

/** A pinned API version the org does not serve would start "healthy" and then fail every call. */
async function assertApiVersion(sf: SalesforceClient, wanted: string): Promise<void> {
  const served = await sf.versions();
  if (!served.length || served.includes(wanted)) return;
  throw new ConfigError([
    `SF_API_VERSION ${wanted} is not served by this org (it serves ${served[0]}–${served[served.length - 1]}): set SF_API_VERSION to one of them, e.g. ${served[served.length - 1]}`,
  ]);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * A database session ended under a start that was going well (pg_terminate_backend, a server restart
 * or failover): that says nothing about the settings, so the start is made again. A server that cannot
 * be reached at all is a setting to fix and still stops the start.
 */
function interruptedStart(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  return ['57P01', '57P02', '57P03'].includes(String(e?.code)) ||
    /Connection terminated|encountered a connection error|terminating connection/i.test(String(e?.message ?? ''));
}

export async function startSidecar(config: Config, opts: { log?: Logger } = {}): Promise<Sidecar> {
  const log = opts.log ?? createLogger({ level: config.log.level, pretty: config.log.pretty });
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(config, log);
    } catch (err) {
      if (!interruptedStart(err) || attempt >= 10) throw err;
      const wait = Math.min(5000, 500 * attempt);
      log.warn({ err, attempt, retryInMs: wait }, 'a database session ended while starting: starting again');
      await new Promise((r) => setTimeout(r, wait)); // (a timer that keeps the process alive meanwhile)
    }
  }
}

async function startOnce(config: Config, log: Logger): Promise<Sidecar> {
  log.info({ config: redacted(config) }, 'hcsync starting');
  await assertPortFree(config.http.host, config.http.port);
  const { applied } = await migrate(config.databaseUrl);
  if (applied.length) log.info({ applied }, 'database migrated');
  const db = syncPool(config.databaseUrl, { onIdleError: (err) => log.warn({ err }, 'an idle database session died; the pool replaces it') });
  const connection = await ensureConnection({ db, config }).catch(async (err) => {
    await db.end().catch(() => {});
    throw err;
  });
  let sf: SalesforceClient;
  try {
    sf = await signIn(config, { log, db, connection });
  } catch (err) {
    // Refused credentials: shown where operators look (hc.status) as well as in the exit message, unless
    // another sidecar holds this connection (the state is its to report, and it is syncing).
    if (await holdsConnection(db, connection.id)) {
      await setConnectionState(db, 'UNAUTHORIZED', `${(err as Error).message}. Fix the SF_* settings and start hcsync again.`, connection.name)
        .catch(() => {});
    } else {
      log.error({ err }, 'another sidecar holds this connection: its state is left as that sidecar reports it');
    }
    await db.end();
    throw err;
  }
  try {
    await assertApiVersion(sf, config.salesforce.apiVersion);
  } catch (err) {
    await sf.close();
    await db.end();
    throw err;
  }
  // One LISTEN session for the whole process: every service below subscribes to its channels on it.
  const notifications = await createListener(config.databaseUrl, { log: log.child({ part: 'listen' }), application_name: 'hcsync listen' });
  const ctx: SyncContext = { config, db, log, sf, connection, notifications };
  const services: (Service & { name: string })[] = [];
  try {
    const inbound = await startInbound(ctx);
    services.push(Object.assign(inbound, { name: 'inbound reader' }));
    services.push(Object.assign(await startConnectionSupervisor(ctx, { holds: () => inbound.leading() }), { name: 'connection supervisor' }));
    services.push(Object.assign(await startOutbound(ctx), { name: 'outbound writer' }));
    services.push(Object.assign(await startHttp(ctx), { name: 'http' }));
  } catch (err) {
    for (const s of services.reverse()) await s.stop().catch(() => {});
    await notifications.close();
    await sf.close();
    await db.end();
    throw err;
  }
  log.info({ schema: connection.schema }, 'hcsync running');
  return {
    ctx,
    async stop() {
      // HTTP first (no new requests), then the sync services side by side: each finishes or hands back
      // its work in flight. The whole stop is bounded by HC_STOP_SECONDS; what a service still waits for
      // is logged every second. Past the bound the process exits without it: what it had claimed is
      // taken over by the next start (its session, and with it its claims' lock, ends with the process).
      const deadline = Date.now() + config.stopMs;
      log.info({ services: services.map((s) => s.name), withinMs: config.stopMs }, 'hcsync stopping');
      const late: string[] = [];
      const stopOne = async (s: Service & { name: string }): Promise<void> => {
        const t0 = Date.now();
        log.info({ service: s.name, waitingFor: s.waitingFor?.() }, 'stopping service');
        const tick = setInterval(() => log.info({ service: s.name, waitingFor: s.waitingFor?.() ?? 'its work in flight', forMs: Date.now() - t0 }, 'still stopping'), 1000);
        const done = await Promise.race([
          s.stop().then(() => true, (e) => { log.error({ err: e, service: s.name }, 'stop failed'); return true; }),
          sleep(Math.max(0, deadline - Date.now())).then(() => false),
        ]);
        clearInterval(tick);
        if (done) log.info({ service: s.name, ms: Date.now() - t0 }, 'service stopped');
        else {
          late.push(s.name);
          log.warn({ service: s.name, waitingFor: s.waitingFor?.() ?? 'its work in flight', ms: Date.now() - t0 },
            'service did not stop within HC_STOP_SECONDS: exiting without it; the next start takes over what it holds');
        }
      };
      const [http, ...sync] = [...services].reverse();
      await stopOne(http);
      await Promise.all(sync.map(stopOne));
      const rest = Math.max(500, deadline - Date.now());
      await Promise.race([notifications.close().catch(() => {}), sleep(rest)]);
      await Promise.race([sf.close().catch(() => {}), sleep(rest)]);
      // A pool still serving a late service's query would wait for it: not past the bound.
      if (late.length) void db.end().catch(() => {});
      else await Promise.race([db.end().catch(() => {}), sleep(rest)]);
      log.info({ late }, 'hcsync stopped');
    },
  };
}
