// `hcsync run`: the sidecar. It migrates (or refuses a newer schema), finds its connection, signs in to
// Salesforce, then starts the inbound reader, the outbound writer and the HTTP endpoints. Everything it
// knows it reads from the database, so it can be killed at any instant and started again.
import net from 'node:net';
import type { Config } from './config.js';
import { ConfigError, redacted } from './config.js';
import { createLogger, type Logger } from './log.js';
import { migrate } from './db/contractor.js';
import { syncPool } from './db/pool.js';
import { backoff } from './db/notifier.js';
import { isRefusal, SalesforceClient } from './salesforce/client.js';
import type { ConnectionRef, Service, SyncContext } from './context.js';
import { startInbound } from './sync/inbound/index.js';
import { startOutbound } from './sync/outbound/index.js';
import { startHttp } from './http/server.js';
import { startConnectionSupervisor } from './sync/connection.js';

export interface Sidecar extends Service {
  ctx: SyncContext;
}

/** The connection row for the configured schema, created (with its HC objects) on first start. */
async function ensureConnection(ctx: Pick<SyncContext, 'db' | 'config'>): Promise<ConnectionRef> {
  const { schema, connectionName } = ctx.config;
  const found = await ctx.db.query('select id, name, schema_name from hc.connections where schema_name = $1', [schema]);
  if (found.rows[0]) return { id: found.rows[0].id, name: found.rows[0].name, schema };
  await ctx.db.query('select hc.create_connection($1, $2)', [connectionName, schema]);
  const made = await ctx.db.query('select id, name from hc.connections where schema_name = $1', [schema]);
  return { id: made.rows[0].id, name: made.rows[0].name, schema };
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
  const r = await db.query('select pid from hc.inbound_leaders where connection_id = $1', [connectionId]).catch(() => undefined);
  return !r?.rows[0]?.pid; // cannot tell: say what we know
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

export async function startSidecar(config: Config, opts: { log?: Logger } = {}): Promise<Sidecar> {
  const log = opts.log ?? createLogger({ level: config.log.level, pretty: config.log.pretty });
  log.info({ config: redacted(config) }, 'hcsync starting');
  await assertPortFree(config.http.host, config.http.port);
  const { applied } = await migrate(config.databaseUrl);
  if (applied.length) log.info({ applied }, 'database migrated');
  const db = syncPool(config.databaseUrl, { onIdleError: (err) => log.warn({ err }, 'an idle database session died; the pool replaces it') });
  const connection = await ensureConnection({ db, config });
  let sf: SalesforceClient;
  try {
    sf = await signIn(config, { log, db, connection });
  } catch (err) {
    // Refused credentials: shown where operators look (hc.status) as well as in the exit message, unless
    // another sidecar holds this connection (the state is its to report, and it is syncing).
    if (await holdsConnection(db, connection.id)) {
      await db
        .query('select hc.set_connection_state($1, $2, $3)', [
          'UNAUTHORIZED',
          `${(err as Error).message}. Fix the SF_* settings and start hcsync again.`,
          connection.name,
        ])
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
  const ctx: SyncContext = { config, db, log, sf, connection };
  const services: Service[] = [];
  try {
    const inbound = await startInbound(ctx);
    services.push(inbound);
    services.push(await startConnectionSupervisor(ctx, { holds: () => inbound.leading() }));
    services.push(await startOutbound(ctx));
    services.push(await startHttp(ctx));
  } catch (err) {
    for (const s of services.reverse()) await s.stop().catch(() => {});
    await sf.close();
    await db.end();
    throw err;
  }
  log.info({ schema: connection.schema }, 'hcsync running');
  return {
    ctx,
    async stop() {
      log.info('hcsync stopping');
      for (const s of services.reverse()) await s.stop().catch((e) => log.error({ err: e }, 'stop failed'));
      await sf.close();
      await db.end();
      log.info('hcsync stopped');
    },
  };
}
