// 4d. Application lock waits during a burst (issue 10, item 18): 20 application connections make 50,000
// single-row UPDATEs (autocommitted, rows picked at random among 10,000 synced Accounts) while the sidecar
// sends them and applies their echoes (change events on, the mapping's default). Figure: the latency of
// the application's statements (p50, p99, max), which includes every wait on a row lock the sync holds.
// Baseline, same run: the same burst from the same connections on a plain copy of the table (no capture
// trigger, no sync). Then: seconds until the writer has sent everything and the reader has applied the
// last echo.
import { join } from 'node:path';
import { accountGenerator, writeAccountCsv } from '../lib/accounts.js';
import { compared, sleep, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { bulkIngest } from '../lib/bulk.js';
import { accountConfig } from '../lib/mapping.js';
import { withRig } from '../lib/rig.js';
import { whileAlive } from '../lib/sidecar.js';
import { round, summarize } from '../lib/stats.js';

const CONNECTIONS = 20;

/** A fixed pseudo-random sequence (the same rows in both phases). */
function picks(n: number, rows: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % rows;
  });
}

export const appLockWaits: Benchmark = {
  name: 'app-lock-waits',
  title: '4d. Application statement latency during a burst (CDC on)',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const records = ctx.quick ? 2_000 : 10_000;
    const updates = ctx.quick ? 5_000 : 50_000;
    const rows: Row[] = [];
    const config: Record<string, unknown> = { records, updates, connections: CONNECTIONS };
    return withRig(ctx, 'app-lock-waits', { poolMax: CONNECTIONS + 2, partial: { rows, config } }, async ({ conn, describe, pool, startSidecar, mapSynced }) => {
      const gen = accountGenerator(describe.fields as never, 4);
      const source = join(ctx.workDir, `lock-wait-accounts-${records}.csv`);
      const { files } = await writeAccountCsv(source, gen, records);
      const ingest = await bulkIngest(conn, 'Account', files);
      if (ingest.failed) throw new Error(`seeding the emulator: ${ingest.failed} rows failed`);
      const mapping = accountConfig(describe as never, { access: 'read_write', notify: true, pollingSeconds: 600 });
      const sc = await startSidecar('app-lock-waits');
      await mapSynced(mapping, { syncedMs: 300_000, caughtUpMs: 300_000 });
      const ids = (await pool.query<{ id: number }>('select id from salesforce.account order by id')).rows.map((r) => r.id);
      if (ids.length !== records) throw new Error(`${ids.length} of ${records} rows synced`);
      await pool.query('create table public.bench_plain as select * from salesforce.account');
      await pool.query('alter table public.bench_plain add primary key (id)');

      const burst = async (table: string, k: number): Promise<number[]> => {
        const seq = picks(updates, ids.length, 7 + k);
        const lat: number[] = [];
        const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.connect()));
        try {
          await Promise.all(clients.map(async (c, j) => {
            for (let i = j; i < seq.length; i += CONNECTIONS) {
              const t = performance.now();
              await c.query(`update ${table} set numberofemployees = $1 where id = $2`, [i, ids[seq[i]]]);
              lat.push(performance.now() - t);
            }
          }));
        } finally {
          for (const c of clients) c.release();
        }
        return lat;
      };

      ctx.progress(`baseline: ${updates} updates from ${CONNECTIONS} connections on a plain table`);
      const b0 = performance.now();
      const base = summarize(await burst('public.bench_plain', 1));
      const baseSeconds = (performance.now() - b0) / 1000;

      ctx.progress(`${updates} updates from ${CONNECTIONS} connections on the synced table (CDC on)`);
      const t0 = performance.now();
      const synced = summarize(await burst('salesforce.account', 1));
      const burstSeconds = (performance.now() - t0) / 1000;
      await whileAlive(sc, (async () => {
        for (;;) {
          const r = await pool.query<{ n: number }>(`select count(*)::int n from salesforce._trigger_log where state in ('NEW', 'PENDING')`);
          if (r.rows[0].n === 0) return;
          if (performance.now() - t0 > 600_000) throw new Error(`${r.rows[0].n} changes still unsent after 600 s`);
          await sleep(200);
        }
      })());
      const sentSeconds = (performance.now() - t0) / 1000;
      // The reader has applied the last echo once its position stops moving and no re-read is queued.
      await whileAlive(sc, (async () => {
        for (;;) {
          const q = (await pool.query<{ n: number }>('select count(*)::int n from hc.inbound_rereads')).rows[0].n;
          const lag = (await pool.query<{ lag: number }>(
            `select extract(epoch from now() - coalesce(max(updated_at), now()))::float lag from hc.sync_positions`)).rows[0].lag;
          if (q === 0 && lag > 2) return;
          if (performance.now() - t0 > 900_000) return;
          await sleep(250);
        }
      })());
      const settledSeconds = (performance.now() - t0) / 1000;

      rows.push(
        compared('statement latency p50', round(synced.p50, 2), 'ms', 'plain table, same burst', round(base.p50, 2)),
        compared('statement latency p99', round(synced.p99, 2), 'ms', 'plain table, same burst', round(base.p99, 2)),
        compared('statement latency max', round(synced.max, 1), 'ms', 'plain table, same burst', round(base.max, 1)),
        compared('burst duration', round(burstSeconds, 1), 's', 'plain table, same burst', round(baseSeconds, 1)),
        { metric: 'all sent to Salesforce', value: round(sentSeconds, 1), unit: 's', note: 'from the first statement' },
        { metric: 'echoes applied, nothing queued', value: round(settledSeconds, 1), unit: 's', note: 'from the first statement' },
      );
      Object.assign(config, { base, synced, baseSeconds, burstSeconds, sentSeconds, settledSeconds });
      return { rows, config };
    });
  },
};
