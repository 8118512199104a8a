// 4. Outbound throughput and API economy: N updates (100,000) made by an application in bursts (one
// UPDATE statement of B rows per burst, a short pause between bursts) on an already synced table. Figures:
// rows/s from the first burst's commit until nothing is left NEW or PENDING in _trigger_log; Salesforce
// API calls spent (from the ledger hc.api_calls) against the ideal ceil(N/200) of 200-record calls; Bulk
// jobs opened. Baseline, same run: a bare client updating the same records through sObject Collections,
// 200 per call, with as many calls in flight as the writer keeps (HC_WRITE_CONCURRENCY, default 4); the
// same client one call at a time is shown too. The baseline with calls in flight is also the emulator's
// own ceiling for these calls on this machine at that moment. Then the writer alone: the same N rows
// updated again while the connection is paused, timed from hc.resume() until all are in Salesforce, so
// the application's own pace (each burst through the capture triggers) is out of the figure.
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
import { writerRounds } from '../lib/rounds.js';
import { fmt } from '../lib/report.js';
import { whileAlive } from '../lib/sidecar.js';

/** The calls the writer keeps in flight: the sidecar's default HC_WRITE_CONCURRENCY (the bench sets none). */
const WRITER_IN_FLIGHT = 4;

interface Variant {
  name: string;
  title: string;
  optIn?: string;
  notify: boolean;
  /** The connection's write algorithm; without it the default (ordered). */
  writeAlgorithm?: 'merged' | 'ordered';
  /** `large`: the size with --large, for the variants that have one. */
  updates: { quick: number; full: number; large?: number };
  burst: { quick: number; full: number };
}

function throughput(v: Variant): Benchmark {
  return {
    name: v.name,
    title: v.title,
    optIn: v.optIn,
    large: v.updates.large ? `${v.updates.large.toLocaleString('en-US')} updates` : undefined,
    async run(ctx: BenchContext): Promise<BenchResult> {
      const n = ctx.quick ? v.updates.quick : ctx.large && v.updates.large ? v.updates.large : v.updates.full;
      const burst = ctx.quick ? v.burst.quick : v.burst.full;
      const pauseMs = 250;
      const baselineRecords = Math.min(n, 20_000);
      const rows: Row[] = [];
      const config: Record<string, unknown> = { updates: n, burstRows: burst, pauseBetweenBurstsMs: pauseMs };
      return withRig(ctx, v.name, { poolMax: 3, partial: { rows, config } }, async (rig) => {
        const { emu, conn, describe, pool, startSidecar, mapSynced } = rig;
        const gen = accountGenerator(describe.fields as never, 4);
        const source = join(ctx.workDir, `throughput-accounts-${n}.csv`);
        const { files } = await writeAccountCsv(source, gen, n);
        const ingest = await bulkIngest(conn, 'Account', files);
        if (ingest.failed) throw new Error(`seeding the emulator: ${ingest.failed} rows failed`);

        // Baselines: a bare client, sObject Collections updates of 200, with the writer's number of calls
        // in flight, and one at a time.
        const idFile = join(ctx.workDir, 'throughput-ids.csv');
        await bulkQuery(conn, 'SELECT Id FROM Account', { file: idFile });
        const ids = readFileSync(idFile, 'utf8').split('\n').slice(1).map((l) => l.replace(/"/g, '').trim()).filter(Boolean).slice(0, baselineRecords);
        const bare = async (inFlight: number, tag: string): Promise<number> => {
          const b0 = performance.now();
          let next = 0;
          await Promise.all(Array.from({ length: inFlight }, async () => {
            for (let i = (next += 200) - 200; i < ids.length; i = (next += 200) - 200) {
              const records = ids.slice(i, i + 200).map((Id, k) => ({ attributes: { type: 'Account' }, Id, Description: `baseline ${tag} ${i + k}` }));
              await collections(conn, 'PATCH', records);
            }
          }));
          return ids.length / ((performance.now() - b0) / 1000);
        };
        const serialRate = await bare(1, 'serial');
        const baseRate = await bare(WRITER_IN_FLIGHT, 'in flight');
        ctx.progress(`baseline collections update: ${Math.round(baseRate)} records/s with ${WRITER_IN_FLIGHT} calls in flight, ${Math.round(serialRate)} serially`);
        const baseLabel = `bare client, collections, ${WRITER_IN_FLIGHT} calls in flight`;

        const mapping = accountConfig(describe as never, { access: 'read_write', notify: v.notify, pollingSeconds: 600 });
        config.mapping = mapping;
        if (v.writeAlgorithm) {
          await pool.query(`select hc.create_connection('bench', 'salesforce')`);
          await pool.query('select hc.set_write_algorithm($1)', [v.writeAlgorithm]);
        }
        // At debug level the writer logs each round's claim, send and record times (read back below).
        const sidecar = await startSidecar(v.name, { HC_LOG_LEVEL: process.env.BENCH_SIDECAR_LOG_LEVEL ?? 'debug' });
        await mapSynced(mapping, { syncedMs: ctx.quick ? 120_000 : ctx.large ? 1_800_000 : 300_000, caughtUpMs: ctx.quick ? 60_000 : ctx.large ? 1_800_000 : 300_000 });
        const algorithm = (await pool.query(`select write_algorithm from hc.connections where schema_name = 'salesforce'`)).rows[0].write_algorithm;
        config.writeAlgorithm = algorithm;
        await sleep(1000); // let the ledger flush the load's calls
        const mark = (await pool.query<{ id: number | null }>('select max(id) as id from hc.api_calls')).rows[0].id ?? 0;
        const { lo } = (await pool.query<{ lo: number }>('select min(id) as lo from salesforce.account')).rows[0];

        // The application's bursts.
        const t0 = performance.now();
        const t0Epoch = Date.now();
        // Where the writer's time went, from its own log: per round (one claim of up to 2,000 entries),
        // and the share of the run during which some lane was in that phase.
        const roundRows = (seconds: number, fromEpoch = t0Epoch, phase = 'writer') => {
          const wr = rig.logFile ? writerRounds(rig.logFile, fromEpoch, fromEpoch + seconds * 1000) : undefined;
          if (!wr) return undefined;
          const pct = (x: number) => `${Math.round(x * 100)} %`;
          rows.push(
            { metric: `${phase}: claim per round (hc.outbound_claim), p50`, value: wr.claimMs.p50, unit: 'ms', note: `p90 ${fmt(wr.claimMs.p90)} ms (incl. waiting for another lane's claim); a claim running ${pct(wr.claimShare)} of the run; ${wr.rounds} rounds, ${fmt(wr.ops / wr.rounds)} ops each` },
            { metric: `${phase}: send per round (Salesforce calls), p50`, value: wr.sendMs.p50, unit: 'ms', note: `p90 ${fmt(wr.sendMs.p90)} ms; calls in flight ${pct(wr.sendShare)} of the run` },
            { metric: `${phase}: record per round (hc.outbound_complete), p50`, value: wr.completeMs.p50, unit: 'ms', note: `p90 ${fmt(wr.completeMs.p90)} ms; recording ${pct(wr.completeShare)} of the run` },
          );
          return wr;
        };
        for (let k = 0; k * burst < n; k++) {
          const from = lo + k * burst;
          const to = Math.min(lo + n - 1, from + burst - 1);
          await pool.query(`update salesforce.account set description = 'bench-burst ' || $1::int || ' row ' || id, numberofemployees = id % 5000 where id between $2 and $3`, [k, from, to]);
          await sleep(pauseMs);
        }
        const burstSeconds = (performance.now() - t0) / 1000;
        // What the writer had not sent yet when the application's last burst committed: from there on the
        // writer works alone, so that backlog's drain is its own rate, apart from the capture's.
        const tBacklog = performance.now();
        const backlog = (await pool.query<{ n: number }>(`select count(*)::int as n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n;
        ctx.progress(`${n} updates committed in ${burstSeconds.toFixed(1)} s, ${backlog} not sent yet; waiting for the writer`);
        // The writer gets a budget (the suite must finish in 20 minutes; --large has an hour); past it, what
        // was sent is reported and the benchmark fails.
        const budgetSeconds = ctx.quick ? 60 : ctx.large ? 3600 : 240;
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
                rows.push(compared('throughput (unfinished)', sent / elapsed, 'rows/s', baseLabel, baseRate, `${sent.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} sent in ${elapsed.toFixed(0)} s`));
                config.writerRounds = roundRows(elapsed);
                throw new Error(`the writer sent ${sent} of ${n} updates within the ${budgetSeconds} s budget (${pending} still NEW/PENDING); sidecar log:\n${sidecar.tail(5)}`);
              }
              await sleep(200);
            }
          })(),
        );
        const seconds = (performance.now() - t0) / 1000;
        const drainSeconds = (performance.now() - tBacklog) / 1000;
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
          compared('throughput, first burst → all in Salesforce', n / seconds, 'rows/s', baseLabel, baseRate, `${n.toLocaleString('en-US')} updates in ${seconds.toFixed(1)} s (${algorithm} writes)`),
          compared('the same against the bare client one call at a time', n / seconds, 'rows/s', 'bare client, collections, serial', serialRate),
          { metric: "the application's bursts alone (UPDATE statements committed)", value: n / burstSeconds, unit: 'rows/s', note: `${burstSeconds.toFixed(1)} s for the ${Math.ceil(n / burst)} bursts, ${pauseMs} ms apart: no writer can finish before them` },
          backlog >= 2000
            ? compared('writer alone: backlog at the last burst → all in Salesforce', backlog / drainSeconds, 'rows/s', baseLabel, baseRate, `${backlog.toLocaleString('en-US')} entries left, sent in ${drainSeconds.toFixed(1)} s`)
            : { metric: 'writer alone: backlog at the last burst', value: backlog, unit: 'entries', note: `less than one claim: the writer kept up with the bursts (done ${drainSeconds.toFixed(1)} s after the last)` },
          compared('write calls for the updates', writeCalls, 'calls', 'ideal ceil(N/200)', ideal),
          { metric: 'Bulk 2.0 ingest jobs opened', value: bulkJobs, unit: 'jobs', note: algorithm === 'ordered' ? 'ordered writes' : 'merged writes' },
          compared('all API calls during the run', calls.length, 'calls', 'ideal ceil(N/200)', ideal, Object.entries(byKind).map(([k, v]) => `${k} ${v}`).join(', ')),
        );
        const wr = roundRows(seconds);

        // The writer alone: the same N rows updated again while the connection is paused (captured, not
        // sent), then hc.resume(); from the resume until all are in Salesforce. Above, the application's
        // own bursts (each UPDATE through the capture triggers) can set the pace; here nothing but the
        // writer does, which is what the bare client is compared with.
        await pool.query('select hc.pause()');
        await sleep(1000); // a round in progress when the pause lands finishes
        for (let k = 0; k * burst < n; k++) {
          const from = lo + k * burst;
          await pool.query(`update salesforce.account set description = 'bench-backlog ' || $1::int || ' row ' || id where id between $2 and $3`, [k, from, Math.min(lo + n - 1, from + burst - 1)]);
        }
        const queued = (await pool.query<{ n: number }>(`select count(*)::int as n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n;
        const tResume = performance.now();
        const resumeEpoch = Date.now();
        await pool.query('select hc.resume()');
        const backlogDeadline = tResume + budgetSeconds * 1000;
        await whileAlive(
          sidecar,
          (async () => {
            for (;;) {
              const left = (await pool.query<{ n: number }>(`select count(*)::int as n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n;
              if (left === 0) return;
              if (performance.now() > backlogDeadline) throw new Error(`the writer sent ${queued - left} of a backlog of ${queued} within the ${budgetSeconds} s budget`);
              await sleep(100);
            }
          })(),
        );
        const backlogSeconds = (performance.now() - tResume) / 1000;
        const backlogInSf = await emu.countWhere('Account', 'Description', 'bench-backlog ');
        if (backlogInSf !== n) throw new Error(`the backlog drained but ${backlogInSf} of ${n} updates are in Salesforce`);
        rows.push(compared('writer alone: N queued while paused → all in Salesforce after hc.resume()', queued / backlogSeconds, 'rows/s', baseLabel, baseRate,
          `${queued.toLocaleString('en-US')} updates sent in ${backlogSeconds.toFixed(1)} s`));
        const backlogRounds = roundRows(backlogSeconds, resumeEpoch, 'writer alone');
        Object.assign(config, { seconds, burstSeconds, backlog, drainSeconds, failed, apiCallsByKind: byKind, baselineRecords, baselineInFlight: WRITER_IN_FLIGHT, serialRate, idealCalls: ideal, writerRounds: wr, backlogQueued: queued, backlogSeconds, backlogRounds });
        return { rows, config };
      });
    },
  };
}

export const outboundThroughput = throughput({
  name: 'outbound-throughput',
  title: '4. Outbound throughput + API economy (CDC off)',
  notify: false,
  updates: { quick: 5_000, full: 100_000, large: 1_000_000 },
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
// through sObject Collections. Not in the default run, to keep `make bench` under 20 minutes.
export const outboundThroughputMerged = throughput({
  name: 'outbound-throughput-merged',
  title: '4c. Outbound throughput (CDC off, merged writes)',
  optIn: 'the ordered default is what `make bench` measures',
  notify: false,
  writeAlgorithm: 'merged',
  updates: { quick: 5_000, full: 100_000 },
  burst: { quick: 1_000, full: 5_000 },
});
