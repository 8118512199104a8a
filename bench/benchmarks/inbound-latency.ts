// 2. Inbound latency: someone writes a record in Salesforce (jsforce against the emulator); how long until
// the row is in Postgres. Start: the write acknowledged to the writer. End: the row (or the new value)
// first seen by a query polling Postgres every 2 ms. Two configurations of the same mapping:
//  - CDC on (sf_notify_enabled): change events drive the apply, over the sidecar's default stream (the Pub/Sub
//    API; BENCH_CHANGE_STREAM=cometd for CometD); baseline, same samples: when the same event reached a bare
//    subscriber of that transport in this process (the delivery floor no CDC-driven sync can beat): the
//    official salesforce-pubsub-api-client for Pub/Sub, jsforce streaming for CometD. Both bare subscribers
//    run, so the run also shows the two transports' floors side by side;
//  - polling only, at the mapping's configured sf_polling_seconds (short here so the run stays short;
//    the latency is then dominated by, and scales with, the interval).
import pg from 'pg';
import type { Connection } from 'jsforce';
import PubSubApiClient from 'salesforce-pubsub-api-client';
import { compared, now, sleep, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { sfConnection } from '../lib/emulator.js';
import { accountConfig } from '../lib/mapping.js';
import { withRig } from '../lib/rig.js';
import type { SidecarProcess } from '../lib/sidecar.js';
import { round, summarize } from '../lib/stats.js';
import { waitSynced } from '../lib/sync.js';

/**
 * Watches Postgres for rows by sfid (optionally with an expected description): one client, one query
 * every 2 ms for everything outstanding, so watching many writes costs no more than watching one.
 */
class PgWatcher {
  private waiting = new Map<string, { description?: string; deadline: number; resolve(t: number): void; reject(e: Error): void }>();
  private running = false;

  constructor(private readonly db: pg.Client, private readonly sidecar: () => SidecarProcess) {}

  seen(sfid: string, opts: { description?: string; timeoutMs: number }): Promise<number> {
    const p = new Promise<number>((resolve, reject) => this.waiting.set(sfid, { description: opts.description, deadline: now() + opts.timeoutMs, resolve, reject }));
    if (!this.running) void this.loop();
    return Promise.race([p, this.sidecar().exited]);
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.size) {
        const ids = [...this.waiting.keys()];
        const r = await this.db.query<{ sfid: string; description: string | null }>({
          name: 'watch',
          text: 'select sfid, description from salesforce.account where sfid = any($1)',
          values: [ids],
        });
        const t = now();
        for (const row of r.rows) {
          const w = this.waiting.get(row.sfid);
          if (w && (w.description === undefined || w.description === row.description)) {
            this.waiting.delete(row.sfid);
            w.resolve(t);
          }
        }
        for (const [sfid, w] of this.waiting) {
          if (t > w.deadline) {
            this.waiting.delete(sfid);
            w.reject(new Error(`Account ${sfid}${w.description ? ` with description "${w.description}"` : ''} not in Postgres in time; sidecar log:\n${this.sidecar().tail(8)}`));
          }
        }
        if (this.waiting.size) await sleep(2);
      }
    } catch (e) {
      for (const w of this.waiting.values()) w.reject(e as Error);
      this.waiting.clear();
    } finally {
      this.running = false;
    }
  }
}

/**
 * The CDC floor: a bare jsforce streaming subscriber in this process, receiving the same change events the
 * sidecar receives. Returns when each (changeType, record) event arrived.
 */
async function bareSubscriber(conn: Connection): Promise<{ arrival(changeType: string, id: string): Promise<number>; close(): void }> {
  const arrived = new Map<string, number>();
  const topic = conn.streaming.topic('/data/AccountChangeEvent');
  const sub = topic.subscribe((msg: unknown) => {
    const h = (msg as { payload?: { ChangeEventHeader?: { changeType: string; recordIds: string[] } } }).payload?.ChangeEventHeader;
    if (!h) return;
    const t = now();
    for (const id of h.recordIds) arrived.set(`${h.changeType}:${id}`, t);
  }) as unknown as PromiseLike<void>;
  await Promise.race([Promise.resolve(sub), sleep(5000).then(() => Promise.reject(new Error('the bare CDC subscriber got no subscription ack within 5 s')))]);
  return {
    async arrival(changeType, id) {
      const key = `${changeType}:${id}`;
      const deadline = now() + 10_000;
      while (!arrived.has(key)) {
        if (now() > deadline) throw new Error(`the bare CDC subscriber saw no ${changeType} event for ${id}`);
        await sleep(1);
      }
      return arrived.get(key)!;
    },
    close() {
      topic.unsubscribe(sub as never);
    },
  };
}

/**
 * The Pub/Sub floor: the official salesforce-pubsub-api-client, unmodified, on /data/ChangeEvents (the channel
 * the sidecar's one stream uses), pointed at the emulator by configuration (its endpoint, certificate checks off).
 */
async function barePubSubSubscriber(emu: { credentials: { loginUrl: string; clientId: string; clientSecret: string }; pubsub?: { endpoint: string } }): Promise<{ arrival(changeType: string, id: string): Promise<number>; close(): void }> {
  if (!emu.pubsub) throw new Error('the emulator serves no Pub/Sub API');
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const client = new PubSubApiClient(
    { authType: 'oauth-client-credentials', loginUrl: emu.credentials.loginUrl, clientId: emu.credentials.clientId, clientSecret: emu.credentials.clientSecret, pubSubEndpoint: emu.pubsub.endpoint, rejectUnauthorizedSsl: false } as never,
    quiet as never,
  );
  await client.connect();
  const arrived = new Map<string, number>();
  client.subscribe('/data/ChangeEvents', ((_s: unknown, type: string, data: { payload?: { ChangeEventHeader?: { changeType: string; recordIds: string[] } } }) => {
    const h = type === 'event' ? data.payload?.ChangeEventHeader : undefined;
    if (!h) return;
    const t = now();
    for (const id of h.recordIds) if (!arrived.has(`${h.changeType}:${id}`)) arrived.set(`${h.changeType}:${id}`, t);
  }) as never);
  await sleep(1000); // the stream is open once its first FetchRequest is in (LATEST: events from then on)
  return {
    async arrival(changeType, id) {
      const key = `${changeType}:${id}`;
      const deadline = now() + 10_000;
      while (!arrived.has(key)) {
        if (now() > deadline) throw new Error(`the bare Pub/Sub subscriber saw no ${changeType} event for ${id}`);
        await sleep(1);
      }
      return arrived.get(key)!;
    },
    close() {
      client.close();
    },
  };
}

async function create(conn: Connection, name: string): Promise<{ id: string; at: number }> {
  const r = (await conn.sobject('Account').create({ Name: name, Phone: '(212) 555-0199', BillingCity: 'New York' })) as { id: string; success: boolean };
  const at = now();
  if (!r.success) throw new Error(`create in Salesforce failed: ${JSON.stringify(r)}`);
  return { id: r.id, at };
}

export const inboundLatency: Benchmark = {
  name: 'inbound-latency',
  title: '2. Inbound latency (SF → PG)',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const samples = ctx.quick ? 15 : 100;
    const pauseMs = ctx.quick ? 30 : 100;
    const pollSeconds = ctx.quick ? 2 : 10;
    const pollWindows = 3;
    const pollEveryMs = ctx.quick ? 300 : 1000;
    const rows: Row[] = [];
    const config: Record<string, unknown> = { samples, pauseMs, pgPollMs: 2 };
    return withRig(ctx, 'inlat', { poolMax: 2, partial: { rows, config } }, async (rig) => {
      const { emu, conn, describe, db, pool } = rig;
      const watcher = new pg.Client({ connectionString: db.url, application_name: 'bench watcher' });
      try {
        const run = Date.now().toString(36);
        await watcher.connect();
        const watch = new PgWatcher(watcher, () => rig.sidecar!);

        // CDC on.
        const cdcConfig = accountConfig(describe as never, { access: 'read_write', notify: true, pollingSeconds: 600 });
        await rig.startSidecar('inbound-latency-cdc');
        await rig.mapSynced(cdcConfig, { syncedMs: 120_000, caughtUpMs: 60_000 });
        config.cdcMapping = cdcConfig;
        await sleep(500); // the CDC subscription is up once the mapping is synced; a moment for the handshake
        const stream = process.env.BENCH_CHANGE_STREAM === 'cometd' || !emu.pubsub ? 'cometd' : 'pubsub';
        config.changeStream = stream;
        const bare = await bareSubscriber(await sfConnection(emu));
        const barePs = emu.pubsub ? await barePubSubSubscriber(emu) : undefined;
        const ins: number[] = [];
        const upd: number[] = [];
        const bareIns: number[] = [];
        const bareUpd: number[] = [];
        const psIns: number[] = [];
        const psUpd: number[] = [];
        for (let i = 0; i < samples; i++) {
          const c = await create(conn, `Inbound ${run} ${i}`);
          ins.push((await watch.seen(c.id, { timeoutMs: 30_000 })) - c.at);
          bareIns.push((await bare.arrival('CREATE', c.id)) - c.at);
          if (barePs) psIns.push((await barePs.arrival('CREATE', c.id)) - c.at);
          await sleep(pauseMs);
          const desc = `changed in Salesforce ${run} ${i}`;
          await conn.sobject('Account').update({ Id: c.id, Description: desc });
          const at = now();
          upd.push((await watch.seen(c.id, { description: desc, timeoutMs: 30_000 })) - at);
          bareUpd.push((await bare.arrival('UPDATE', c.id)) - at);
          if (barePs) psUpd.push((await barePs.arrival('UPDATE', c.id)) - at);
          await sleep(pauseMs);
        }
        bare.close();
        barePs?.close();
        const si = summarize(ins);
        const su = summarize(upd);
        const bi = summarize(bareIns);
        const bu = summarize(bareUpd);
        const pi = psIns.length ? summarize(psIns) : undefined;
        const pu = psUpd.length ? summarize(psUpd) : undefined;
        // The sidecar against the floor of its own transport.
        const [floorName, fi, fu] = stream === 'pubsub' && pi && pu ? ['a bare salesforce-pubsub-api-client subscriber', pi, pu] : ['a bare jsforce (CometD) subscriber', bi, bu];
        const label = stream === 'pubsub' ? 'CDC on (Pub/Sub)' : 'CDC on (CometD)';
        rows.push(
          compared(`${label}: create → in Postgres, p50`, si.p50, 'ms', `event at ${floorName} p50`, fi.p50),
          compared(`${label}: create → in Postgres, p99`, si.p99, 'ms', `event at ${floorName} p99`, fi.p99),
          compared(`${label}: update → in Postgres, p50`, su.p50, 'ms', `event at ${floorName} p50`, fu.p50),
          compared(`${label}: update → in Postgres, p99`, su.p99, 'ms', `event at ${floorName} p99`, fu.p99),
        );
        if (pi && pu) {
          rows.push(
            compared('bare subscribers: create event, Pub/Sub p50', pi.p50, 'ms', 'CometD (jsforce) p50', bi.p50),
            compared('bare subscribers: update event, Pub/Sub p50', pu.p50, 'ms', 'CometD (jsforce) p50', bu.p50),
          );
        }
        config.cdc = { create: si, update: su, bareSubscriberCreate: bi, bareSubscriberUpdate: bu, barePubSubCreate: pi, barePubSubUpdate: pu };
        ctx.progress(`CDC over ${stream}: create p50 ${si.p50.toFixed(1)} ms, update p50 ${su.p50.toFixed(1)} ms`);

        // Polling only: the same mapping with change events off, at a short interval; restart the sidecar so
        // nothing of the CDC run carries over.
        await rig.sidecar!.stop();
        const pollConfig = accountConfig(describe as never, { access: 'read_write', notify: false, pollingSeconds: pollSeconds });
        await pool.query(`select hc.update_mapping('Account', $1::jsonb)`, [JSON.stringify(pollConfig)]);
        const sidecar = await rig.startSidecar('inbound-latency-poll');
        await waitSynced(pool, 'Account', sidecar, 60_000);
        config.pollMapping = pollConfig;
        // Writes at a steady cadence across several intervals, so they land at every phase of the cycle.
        const polled: Promise<number>[] = [];
        const count = Math.round((pollWindows * pollSeconds * 1000) / pollEveryMs);
        for (let i = 0; i < count; i++) {
          const c = await create(conn, `Polled ${run} ${i}`);
          const p = watch.seen(c.id, { timeoutMs: (pollSeconds * 3 + 30) * 1000 }).then((t) => t - c.at);
          p.catch(() => {});
          polled.push(p);
          await sleep(pollEveryMs);
        }
        const sp = summarize(await Promise.all(polled));
        rows.push(
          compared(`polling only (every ${pollSeconds} s): create → in Postgres, p50`, sp.p50, 'ms', 'half the interval', (pollSeconds * 1000) / 2),
          compared(`polling only (every ${pollSeconds} s): create → in Postgres, p99`, sp.p99, 'ms', 'the interval', pollSeconds * 1000),
        );
        config.polling = { create: sp, writes: count, everyMs: pollEveryMs, intervalSeconds: pollSeconds };
        return {
          rows,
          config,
          samples: { cdcCreateMs: ins.map((x) => round(x, 2)), cdcUpdateMs: upd.map((x) => round(x, 2)), pollCreateMs: (await Promise.all(polled)).map((x) => round(x, 2)) },
        };
      } finally {
        await watcher.end().catch(() => {});
      }
    });
  },
};
