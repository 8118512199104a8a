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
import { subscribeAll } from '../../db/notifier.js';
import { lockSession } from '../../db/pool.js';
import type { Service, SyncContext } from '../../context.js';
import { MappingWorker } from './mapping.js';
import { ChangeStreams } from './streams.js';
import { organizationId } from '../../salesforce/rest.js';
import { bindOrg, listMappings, ping, tryInboundLead } from '../../db/hc/inbound.js';
import { connectionState } from '../../db/hc/control.js';

/** The inbound service; `leading()`: this sidecar holds the connection now (its state is ours to report). */
export interface Inbound extends Service {
  leading(): boolean;
}

export async function startInbound(ctx: SyncContext): Promise<Inbound> {
  const log = ctx.log.child({ part: 'inbound' });
  // HC's rule: a connection belongs to one org. Refused (and the sidecar stops) when it is another.
  const orgId = await organizationId(ctx.sf);
  await bindOrg(ctx.db, ctx.connection.id, orgId, ctx.sf.apiVersion);

  const workers = new Map<number, MappingWorker>();
  // Pub/Sub (the default): the mappings share the connection's streams; CometD: one subscription each.
  const streams = ctx.config.changeStream.transport === 'pubsub' ? new ChangeStreams(ctx) : undefined;
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  let lease: pg.Client | undefined;
  let leading = false;
  /** The fencing token of the current leadership (hc.inbound_leases.epoch). */
  let epoch: number | undefined;

  /** Workers being stopped, for the stop's log lines (what each still has running). */
  const stopping = new Set<MappingWorker>();
  const stopWorkers = async () => {
    const all = [...workers.values()];
    workers.clear();
    for (const w of all) stopping.add(w);
    await Promise.all(all.map((w) => w.stop().finally(() => stopping.delete(w))));
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
      const got = await tryInboundLead(c, ctx.connection.id);
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
    if (c) void ping(c).catch((err) => lost(c, err));
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
    const paused = (await connectionState(ctx.db, ctx.connection.id)) === 'PAUSED';
    const rows = await listMappings(ctx.db, ctx.connection.id);
    const seen = new Set<number>();
    for (const m of rows) {
      seen.add(m.id);
      let w = workers.get(m.id);
      if (!w) {
        w = new MappingWorker(ctx, m, nudge, () => epoch, streams);
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

  const listener = await subscribeAll(
    ctx.notifications,
    ctx.config.databaseUrl,
    ['hc_control'],
    (_channel, payload) => {
      // payload null: (re)connected, nudges may have been missed; '': every connection.
      if (!payload || payload === ctx.connection.schema) nudge();
    },
    { log, application_name: 'hcsync inbound listen' },
  );
  const timer = setInterval(nudge, ctx.config.inbound.reconcileMs);
  timer.unref();
  const standby = setInterval(tick, ctx.config.inbound.standbyMs);
  standby.unref();
  await tryLead();
  log.info({ schema: ctx.connection.schema, org: orgId, leading }, leading ? 'inbound sync started' : 'inbound sync standing by: another sidecar leads this connection');

  return {
    leading: () => leading,
    waitingFor() {
      const work = [...stopping, ...workers.values()].map((w) => w.busyWork()).filter(Boolean);
      return work.length ? `mapping work to finish: ${work.join('; ')}` : 'the inbound leader session to close';
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearInterval(standby);
      await listener.close();
      await running;
      await stopWorkers();
      await streams?.stop();
      const c = lease;
      lease = undefined;
      leading = false;
      epoch = undefined;
      await c?.end().catch(() => {});
    },
  };
}
