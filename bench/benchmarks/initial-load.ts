// 3. Initial load: a new mapping of N Account-like rows (1,000,000; realistic widths) loaded by the
// sidecar through Bulk 2.0 into Postgres: rows/s from the mapping's creation to DATA_SYNCED, and the
// sidecar's peak RSS. Baseline, same run: a raw COPY of the same CSV (the Bulk query's own output) into
// an unmapped table with identical columns and indexes. Also shown: the emulator serving that query to a
// bare client, the floor no loader can beat here.
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { accountGenerator, writeAccountCsv } from '../lib/accounts.js';
import { compared, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { bulkIngest, bulkQuery } from '../lib/bulk.js';
import { accountConfig, mapAccount } from '../lib/mapping.js';
import { withRig } from '../lib/rig.js';
import { loadPages } from '../lib/rounds.js';
import { waitSynced } from '../lib/sync.js';

export const initialLoad: Benchmark = {
  name: 'initial-load',
  title: '3. Initial load (Bulk 2.0)',
  large: '5,000,000 rows',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const n = ctx.quick ? 20_000 : ctx.large ? 5_000_000 : 1_000_000;
    const rows: Row[] = [];
    const config: Record<string, unknown> = { rows: n };
    return withRig(ctx, 'load', { poolMax: 2, partial: { rows, config } }, async (rig) => {
      const { emu, conn, describe, pool, startSidecar } = rig;
      const gen = accountGenerator(describe.fields as never, 3);
      const mappingConfig = accountConfig(describe as never, { access: 'read_write', notify: false, pollingSeconds: 600 });
      Object.assign(config, { mapping: mappingConfig });

      // The org: N Account-like rows, put there through Bulk 2.0 by "someone else".
      const source = join(ctx.workDir, `load-accounts-${n}.csv`);
      const { bytes, files } = await writeAccountCsv(source, gen, n);
      ctx.progress(`generated ${n} rows (${(bytes / 2 ** 20).toFixed(0)} MiB), ingesting into the emulator`);
      const ingest = await bulkIngest(conn, 'Account', files);
      if (ingest.failed) throw new Error(`seeding the emulator: ${ingest.failed} of ${n} rows failed`);
      Object.assign(config, { sourceCsvBytes: bytes, seedIngestRowsPerSecond: Math.round(ingest.processed / ingest.seconds) });

      // The baseline's input: exactly the CSV a Bulk 2.0 query of the mapped fields returns.
      const fields = Object.keys(mappingConfig.fields as object);
      const csv = join(ctx.workDir, `load-query-${n}.csv`);
      const held = await emu.memory();
      const rssLoaded = emu.rssMiB();
      const watch = emu.watchPeak();
      const q = await bulkQuery(conn, `SELECT ${fields.join(', ')} FROM Account`, { file: csv });
      const emuPeak = watch.stop();
      rows.push({ metric: 'Bulk 2.0 query alone (emulator → bare client)', value: q.rows / q.seconds, unit: 'rows/s', note: `${q.pages} pages, ${(q.bytes / 2 ** 20).toFixed(0)} MiB` });
      if (emuPeak !== undefined && rssLoaded !== undefined) {
        rows.push({ metric: 'emulator RSS growth serving that query', value: Math.max(0, emuPeak - rssLoaded), unit: 'MiB', note: `${rssLoaded} MiB with ${n.toLocaleString('en-US')} records held, peak ${emuPeak} MiB while streaming` });
      }
      rows.push({ metric: 'emulator heap holding the records (after GC)', value: held.heapUsedMiB, unit: 'MiB', note: `${n.toLocaleString('en-US')} records and up to 500,000 retained change events; RSS then ${held.rssMiB} MiB (it keeps the ingest's peak)` });
      config.emulatorMemory = held;
      ctx.progress(`bulk query to file: ${Math.round(q.rows / q.seconds)} rows/s; emulator heap ${held.heapUsedMiB} MiB after GC`);

      // An unmapped table with the mapped table's exact columns, types and indexes (built by the same
      // DDL function from the same describe, in a scratch connection), then COPY.
      await pool.query(`select hc.create_connection('baseline', 'bench_baseline')`);
      await pool.query(`select hc.create_mapping('Account', $1::jsonb, $2::jsonb, 'baseline')`, [JSON.stringify(mappingConfig), JSON.stringify(describe)]);
      const map = await pool.query<{ field_name: string; column_name: string }>(
        `select f.field_name, f.column_name from hc._mapping_fields f join hc._mappings m on m.id = f.mapping_id
          join hc.connections c on c.id = m.connection_id where c.name = 'baseline'`,
      );
      const column = new Map(map.rows.map((r) => [r.field_name.toLowerCase(), r.column_name]));
      await pool.query('create table public.account_copy (like bench_baseline.account including all)');
      await pool.query('create sequence public.account_copy_id_seq owned by public.account_copy.id');
      await pool.query(`alter table public.account_copy alter column id set default nextval('public.account_copy_id_seq')`);
      await pool.query(`select hc.delete_mapping('Account', 'baseline')`);
      await pool.query(`delete from hc.connections where name = 'baseline'`);
      await pool.query('drop schema bench_baseline cascade');
      const cols = fields.map((f) => {
        const c = column.get(f.toLowerCase());
        if (!c) throw new Error(`field ${f} has no column in hc._mapping_fields`);
        return `"${c}"`;
      });
      const client = await pool.connect();
      let copySeconds: number;
      try {
        const t0 = performance.now();
        await pipeline(createReadStream(csv), client.query(copyFrom(`copy public.account_copy (${cols.join(', ')}) from stdin with (format csv, header true)`)));
        copySeconds = (performance.now() - t0) / 1000;
      } finally {
        client.release();
      }
      const copyRate = n / copySeconds;
      ctx.progress(`baseline COPY: ${Math.round(copyRate)} rows/s`);
      await pool.query('drop table public.account_copy');
      await pool.query('checkpoint');

      // hcsync: the sidecar running, the mapping created (as an operator would), until DATA_SYNCED.
      // At debug level the sidecar logs each page's COPY + merge (read back below). The load's two settings
      // and the process's memory knobs (MALLOC_ARENA_MAX; BENCH_SIDECAR_NODE_OPTIONS as the sidecar's own
      // NODE_OPTIONS, which the bench's would give the emulator too), when set in the bench's environment,
      // are passed on to compare them, and recorded.
      const sidecarEnv: Record<string, string> = { HC_LOG_LEVEL: process.env.BENCH_SIDECAR_LOG_LEVEL ?? 'debug' };
      for (const k of ['HC_BULK_PAGE_SIZE', 'HC_BULK_PAGES_IN_FLIGHT', 'MALLOC_ARENA_MAX']) if (process.env[k]) sidecarEnv[k] = process.env[k]!;
      if (process.env.BENCH_SIDECAR_NODE_OPTIONS) sidecarEnv.NODE_OPTIONS = process.env.BENCH_SIDECAR_NODE_OPTIONS;
      config.sidecarEnv = sidecarEnv;
      const sidecar = await startSidecar('initial-load', sidecarEnv);
      const idleRss = sidecar.rssMiB();
      const t0 = performance.now();
      await mapAccount(pool, mappingConfig);
      await waitSynced(pool, 'Account', sidecar, ctx.quick ? 120_000 : ctx.large ? 3_600_000 : 600_000);
      const seconds = (performance.now() - t0) / 1000;
      const peak = sidecar.peakRssMiB();
      const loaded = (await pool.query<{ n: number }>('select count(*)::int as n from salesforce.account')).rows[0].n;
      if (loaded !== n) throw new Error(`the mapping is DATA_SYNCED with ${loaded} rows in Postgres, expected ${n}`);
      const apiCalls = (await pool.query<{ kind: string; n: number }>('select kind, count(*)::int as n from hc.api_calls group by kind order by kind')).rows;
      rows.unshift(
        compared('initial load, mapping created → DATA_SYNCED', n / seconds, 'rows/s', 'raw COPY of the same CSV', copyRate, `${n.toLocaleString('en-US')} rows in ${seconds.toFixed(1)} s`),
      );
      rows.push(compared('sidecar peak RSS (VmHWM)', peak ?? NaN, 'MiB', 'sidecar RSS before the load', idleRss ?? NaN));
      const pages = rig.logFile ? loadPages(rig.logFile) : [];
      if (pages.length) {
        const applyMs = pages.reduce((a, p) => a + p.applyMs, 0);
        rows.push({ metric: 'sidecar: pages read into COPY and merged, summed', value: applyMs / 1000, unit: 's',
          note: `${pages.length} pages of up to ${sidecarEnv.HC_BULK_PAGE_SIZE ?? 'the default'} rows, ${sidecarEnv.HC_BULK_PAGES_IN_FLIGHT ?? 'the default number'} at a time; the load took ${seconds.toFixed(1)} s in all` });
      }
      Object.assign(config, { loadSeconds: seconds, copySeconds, apiCallsByKind: Object.fromEntries(apiCalls.map((r) => [r.kind, r.n])) });
      return { rows, config };
    });
  },
};
