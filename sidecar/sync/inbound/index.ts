// Salesforce → Postgres. The supervisor: binds the connection to its org, then keeps one MappingWorker
// per mapping of the connection in step with hc._mappings. It re-reads the mappings on every hc_control
// nudge (payload = schema name) and on a slow timer (notifications are lost while a LISTEN connection is
// down; the tables are not). All state is in the database; this process only acts on it.
import { listen } from '../../db/notifier.js';
import type { Service, SyncContext } from '../../context.js';
import { MappingWorker } from './mapping.js';
import type { MappingRow } from './rows.js';

/** Catch-up re-read of the mappings, in case a nudge was missed. */
export const RECONCILE_MS = Number(process.env.HC_INBOUND_RECONCILE_MS ?? 30_000);

export async function startInbound(ctx: SyncContext): Promise<Service> {
  const log = ctx.log.child({ part: 'inbound' });
  // HC's rule: a connection belongs to one org. Refused (and the sidecar stops) when it is another.
  const orgId = ctx.sf.organizationId ?? (await ctx.sf.conn.identity()).organization_id;
  await ctx.db.query('select hc.bind_org($1, $2, $3)', [ctx.connection.id, orgId, ctx.sf.apiVersion]);

  const workers = new Map<number, MappingWorker>();
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;

  const reconcileOnce = async () => {
    const conn = await ctx.db.query('select state from hc.connections where id = $1', [ctx.connection.id]);
    const paused = conn.rows[0]?.state === 'PAUSED';
    const { rows } = await ctx.db.query<MappingRow>(
      'select id, object_name, table_name, config, state, requested from hc._mappings where connection_id = $1 order by id',
      [ctx.connection.id],
    );
    const seen = new Set<number>();
    for (const m of rows) {
      seen.add(m.id);
      let w = workers.get(m.id);
      if (!w) {
        w = new MappingWorker(ctx, m, nudge);
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
  const timer = setInterval(nudge, RECONCILE_MS);
  timer.unref();
  nudge();
  log.info({ schema: ctx.connection.schema, org: orgId }, 'inbound sync started');

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await listener.close();
      await running;
      await Promise.all([...workers.values()].map((w) => w.stop()));
      workers.clear();
    },
  };
}
