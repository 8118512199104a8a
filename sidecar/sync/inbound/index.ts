// Salesforce → Postgres. The supervisor: binds the connection to its org, then keeps one MappingWorker
// per mapping of the connection in step with hc._mappings. It re-reads the mappings on every hc_control
// nudge (payload = schema name) and on a slow timer (notifications are lost while a LISTEN connection is
// down; the tables are not). All state is in the database; this process only acts on it.
//
// Several sidecars may run against one database: only the inbound leader of a connection (the one whose
// dedicated session holds hc.inbound_try_lead's advisory lock, see sql/000010_inbound.sql) runs workers.
// The others stand by, trying every HC_INBOUND_STANDBY_MS; a leader that loses its session stops its
// workers at once and stands by too.
import pg from 'pg';
import { listen } from '../../db/notifier.js';
import { lockSession } from '../../db/pool.js';
import type { Service, SyncContext } from '../../context.js';
import { MappingWorker } from './mapping.js';
import type { MappingRow } from './rows.js';

/** The inbound service; `leading()`: this sidecar holds the connection now (its state is ours to report). */
export interface Inbound extends Service {
  leading(): boolean;
}

export async function startInbound(ctx: SyncContext): Promise<Inbound> {
  const log = ctx.log.child({ part: 'inbound' });
  // HC's rule: a connection belongs to one org. Refused (and the sidecar stops) when it is another.
  const orgId = ctx.sf.organizationId ?? (await ctx.sf.conn.identity()).organization_id;
  await ctx.db.query('select hc.bind_org($1, $2, $3)', [ctx.connection.id, orgId, ctx.sf.apiVersion]);

  const workers = new Map<number, MappingWorker>();
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  let lease: pg.Client | undefined;
  let leading = false;
  /** The fencing token of the current leadership (hc.inbound_leases.epoch). */
  let epoch: number | undefined;

  const stopWorkers = async () => {
    const all = [...workers.values()];
    workers.clear();
    await Promise.all(all.map((w) => w.stop()));
  };

  // Leadership: a session of its own holds the lock; losing the session means losing the lead.
  const lost = (c: pg.Client, err?: unknown) => {
    if (lease !== c) return;
    lease = undefined;
    leading = false;
    epoch = undefined;
    if (stopped) return;
    log.warn({ err }, 'inbound leadership lost (its database session ended): stopping inbound work and standing by');
    void c.end().catch(() => {});
    nudge();
  };
  const tryLead = async () => {
    if (stopped || lease) return;
    const c: pg.Client = lockSession(ctx.config.databaseUrl, 'hcsync inbound leader', (err) => lost(c, err));
    try {
      await c.connect();
      const got = (await c.query('select hc.inbound_try_lead($1) as epoch', [ctx.connection.id])).rows[0].epoch as number | null;
      if (got === null || stopped) {
        await c.end();
        return;
      }
      epoch = Number(got);
    } catch (err) {
      log.warn({ err }, 'could not try for the inbound lead; trying again');
      await c.end().catch(() => {});
      return;
    }
    c.on('end', () => lost(c));
    lease = c;
    leading = true;
    log.info({ schema: ctx.connection.schema, epoch }, 'inbound leader of this connection: starting inbound work');
    nudge();
  };
  let trying = false;
  const tick = () => {
    const c = lease;
    if (c) void c.query('select 1').catch((err) => lost(c, err));
    else if (!trying) {
      trying = true;
      void tryLead().finally(() => {
        trying = false;
      });
    }
  };

  const reconcileOnce = async () => {
    if (!leading) {
      await stopWorkers();
      return;
    }
    const conn = await ctx.db.query('select state from hc.connections where id = $1', [ctx.connection.id]);
    const paused = conn.rows[0]?.state === 'PAUSED';
    const { rows } = await ctx.db.query<MappingRow>(
      'select id, object_name, table_name, config, state, requested, revision from hc._mappings where connection_id = $1 order by id',
      [ctx.connection.id],
    );
    const seen = new Set<number>();
    for (const m of rows) {
      seen.add(m.id);
      let w = workers.get(m.id);
      if (!w) {
        w = new MappingWorker(ctx, m, nudge, () => epoch);
        workers.set(m.id, w);
      }
      try {
        await w.update(m, paused);
      } catch (e) {
        log.error({ err: e, mapping: m.object_name }, 'inbound mapping update failed');
      }
    }
    for (const [id, w] of workers) {
      if (!seen.has(id)) {
        workers.delete(id);
        await w.stop();
      }
    }
  };

  function nudge(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        await reconcileOnce().catch((e) => log.error({ err: e }, 'inbound re-read of mappings failed'));
      } while (again && !stopped);
    })().finally(() => {
      running = undefined;
    });
  }

  const listener = await listen(
    ctx.config.databaseUrl,
    ['hc_control'],
    (_channel, payload) => {
      if (!payload || payload === ctx.connection.schema) nudge();
    },
    { log, onConnect: nudge, application_name: 'hcsync inbound listen' },
  );
  const timer = setInterval(nudge, ctx.config.inbound.reconcileMs);
  timer.unref();
  const standby = setInterval(tick, ctx.config.inbound.standbyMs);
  standby.unref();
  await tryLead();
  log.info({ schema: ctx.connection.schema, org: orgId, leading }, leading ? 'inbound sync started' : 'inbound sync standing by: another sidecar leads this connection');

  return {
    leading: () => leading,
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(standby);
      await listener.close();
      await running;
      await stopWorkers();
      const c = lease;
      lease = undefined;
      leading = false;
      epoch = undefined;
      await c?.end().catch(() => {});
    },
  };
}
