// 4. Outbound throughput and API economy: N updates (100,000) made by an application in bursts (one
// UPDATE statement of B rows per burst, a short pause between bursts) on an already synced table. Figures:
// rows/s from the first burst's commit until nothing is left NEW or PENDING in _trigger_log; Salesforce
// API calls spent (from the ledger hc.api_calls) against the ideal ceil(N/200) of 200-record calls; Bulk
// jobs opened. Baseline, same run: a bare client updating the same records through sObject Collections,
// 200 per call, one call at a time.
// Configurations: change events off (the writer alone) and on (Accelerated Polling, a mapping's default:
// the echo of every update comes back through CDC while the writer works), both with the connection's
// default ordered writes, where batches of HC_BULK_WRITE_THRESHOLD (2,000) or more go as Bulk 2.0 ingest
// jobs; and, by name only, merged writes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { accountGenerator, writeAccountCsv } from '../lib/accounts.js';
import { compared, sleep, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { bulkIngest, bulkQuery } from '../lib/bulk.js';
import { accountConfig } from '../lib/mapping.js';
import { collections, withRig } from '../lib/rig.js';
import { whileAlive } from '../lib/sidecar.js';

interface Variant {
  name: string;
  title: string;
  optIn?: string;
  notify: boolean;
  /** The connection's write algorithm; without it the default (ordered). */
  writeAlgorithm?: 'merged' | 'ordered';
  updates: { quick: number; full: number };
  burst: { quick: number; full: number };
}

function throughput(v: Variant): Benchmark {
  return {
    name: v.name,
    title: v.title,
    optIn: v.optIn,
    async run(ctx: BenchContext): Promise<BenchResult> {
      const n = ctx.quick ? v.updates.quick : v.updates.full;
      const burst = ctx.quick ? v.burst.quick : v.burst.full;
      const pauseMs = 250;
      const baselineRecords = Math.min(n, 20_000);
      const rows: Row[] = [];
      const config: Record<string, unknown> = { updates: n, burstRows: burst, pauseBetweenBurstsMs: pauseMs };
      return withRig(ctx, v.name, { poolMax: 3, partial: { rows, config } }, async ({ emu, conn, describe, pool, startSidecar, mapSynced }) => {
        const gen = accountGenerator(describe.fields as never, 4);
        const source = join(ctx.workDir, `throughput-accounts-${n}.csv`);
        const { files } = await writeAccountCsv(source, gen, n);
        const ingest = await bulkIngest(conn, 'Account', files);
        if (ingest.failed) throw new Error(`seeding the emulator: ${ingest.failed} rows failed`);

        // Baseline: a bare client, sObject Collections updates of 200, serially.
        const idFile = join(ctx.workDir, 'throughput-ids.csv');
        await bulkQuery(conn, 'SELECT Id FROM Account', { file: idFile });
        const ids = readFileSync(idFile, 'utf8').split('\n').slice(1).map((l) => l.replace(/"/g, '').trim()).filter(Boolean).slice(0, baselineRecords);
        const b0 = performance.now();
        for (let i = 0; i < ids.length; i += 200) {
          const records = ids.slice(i, i + 200).map((Id, k) => ({ attributes: { type: 'Account' }, Id, Description: `baseline ${i + k}` }));
          await collections(conn, 'PATCH', records);
        }
        const baseRate = ids.length / ((performance.now() - b0) / 1000);
        ctx.progress(`baseline collections update: ${Math.round(baseRate)} records/s`);

        const mapping = accountConfig(describe as never, { access: 'read_write', notify: v.notify, pollingSeconds: 600 });
        config.mapping = mapping;
        if (v.writeAlgorithm) {
          await pool.query(`select hc.create_connection('bench', 'salesforce')`);
          await pool.query('select hc.set_write_algorithm($1)', [v.writeAlgorithm]);
        }
        const sidecar = await startSidecar(v.name);
        await mapSynced(mapping, { syncedMs: ctx.quick ? 120_000 : 300_000, caughtUpMs: ctx.quick ? 60_000 : 300_000 });
        const algorithm = (await pool.query(`select write_algorithm from hc.connections where schema_name = 'salesforce'`)).rows[0].write_algorithm;
        config.writeAlgorithm = algorithm;
        await sleep(1000); // let the ledger flush the load's calls
        const mark = (await pool.query<{ id: number | null }>('select max(id) as id from hc.api_calls')).rows[0].id ?? 0;
        const { lo } = (await pool.query<{ lo: number }>('select min(id) as lo from salesforce.account')).rows[0];

        // The application's bursts.
        const t0 = performance.now();
        for (let k = 0; k * burst < n; k++) {
          const from = lo + k * burst;
          const to = Math.min(lo + n - 1, from + burst - 1);
          await pool.query(`update salesforce.account set description = 'bench-burst ' || $1::int || ' row ' || id, numberofemployees = id % 5000 where id between $2 and $3`, [k, from, to]);
          await sleep(pauseMs);
        }
        const burstSeconds = (performance.now() - t0) / 1000;
        ctx.progress(`${n} updates committed in ${burstSeconds.toFixed(1)} s; waiting for the writer`);
        // The writer gets a budget (the suite must finish in 15 minutes); past it, what was sent is reported
        // and the benchmark fails.
        const budgetSeconds = ctx.quick ? 60 : 240;
        const deadline = t0 + budgetSeconds * 1000;
        await whileAlive(
          sidecar,
          (async () => {
            for (;;) {
              const r = await pool.query<{ pending: number }>(`select count(*)::int as pending from salesforce._trigger_log where state in ('NEW', 'PENDING')`);
              const pending = r.rows[0].pending;
              if (pending === 0) return;
              if (performance.now() > deadline) {
                const sent = n - pending;
                const elapsed = (performance.now() - t0) / 1000;
                rows.push(compared('throughput (unfinished)', sent / elapsed, 'rows/s', 'bare client, collections, serial', baseRate, `${sent.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} sent in ${elapsed.toFixed(0)} s`));
                throw new Error(`the writer sent ${sent} of ${n} updates within the ${budgetSeconds} s budget (${pending} still NEW/PENDING); sidecar log:\n${sidecar.tail(5)}`);
              }
              await sleep(200);
            }
          })(),
        );
        const seconds = (performance.now() - t0) / 1000;
        const failed = (await pool.query<{ n: number }>(
          `select (select count(*) from salesforce._trigger_log where state = 'FAILED') + (select count(*) from salesforce._trigger_log_archive where state = 'FAILED') as n`,
        )).rows[0].n;
        const inSf = await emu.countWhere('Account', 'Description', 'bench-burst ');
        if (inSf !== n) throw new Error(`the writer finished but ${inSf} of ${n} updates are in Salesforce (${failed} FAILED)`);
        await sleep(1500); // the ledger writes every 500 ms
        const calls = (await pool.query<{ kind: string; method: string; path: string }>('select kind, method, path from hc.api_calls where id > $1', [mark])).rows;
        const byKind: Record<string, number> = {};
        for (const c of calls) byKind[c.kind] = (byKind[c.kind] ?? 0) + 1;
        const writeCalls = calls.filter((c) => ['collections', 'composite', 'rest', 'bulk2_ingest'].includes(c.kind) && c.method !== 'GET').length;
        const bulkJobs = calls.filter((c) => c.kind === 'bulk2_ingest' && c.method === 'POST' && /\/jobs\/ingest\/?$/.test(c.path.split('?')[0])).length;
        const ideal = Math.ceil(n / 200);
        rows.push(
          compared('throughput, first burst → all in Salesforce', n / seconds, 'rows/s', 'bare client, collections, serial', baseRate, `${n.toLocaleString('en-US')} updates in ${seconds.toFixed(1)} s (${algorithm} writes)`),
          compared('write calls for the updates', writeCalls, 'calls', 'ideal ceil(N/200)', ideal),
          { metric: 'Bulk 2.0 ingest jobs opened', value: bulkJobs, unit: 'jobs', note: algorithm === 'ordered' ? 'ordered writes' : 'merged writes' },
          compared('all API calls during the run', calls.length, 'calls', 'ideal ceil(N/200)', ideal, Object.entries(byKind).map(([k, v]) => `${k} ${v}`).join(', ')),
        );
        Object.assign(config, { seconds, burstSeconds, failed, apiCallsByKind: byKind, baselineRecords, idealCalls: ideal });
        return { rows, config };
      });
    },
  };
}

export const outboundThroughput = throughput({
  name: 'outbound-throughput',
  title: '4. Outbound throughput + API economy (CDC off)',
  notify: false,
  updates: { quick: 5_000, full: 100_000 },
  burst: { quick: 1_000, full: 5_000 },
});

// With change events on (a mapping's default), each update's echo comes back through CDC and is applied
// inbound while the writer works: the same 100,000 updates as with CDC off, so the two compare. (Each
// batch of echoes is one hc.inbound_apply call that looks only at its own rows' queue entries; when every
// echo event read the whole queue, 100,000 did not finish in 240 s.)
export const outboundThroughputCdc = throughput({
  name: 'outbound-throughput-cdc',
  title: '4b. Outbound throughput (CDC on)',
  notify: true,
  updates: { quick: 5_000, full: 100_000 },
  burst: { quick: 1_000, full: 5_000 },
});

// Merged writes (HC's other write algorithm): a record's queued changes fold into one op, sent
// through sObject Collections. Not in the default run, to keep `make bench` under 15 minutes.
export const outboundThroughputMerged = throughput({
  name: 'outbound-throughput-merged',
  title: '4c. Outbound throughput (CDC off, merged writes)',
  optIn: 'the ordered default is what `make bench` measures',
  notify: false,
  writeAlgorithm: 'merged',
  updates: { quick: 5_000, full: 100_000 },
  burst: { quick: 1_000, full: 5_000 },
});
