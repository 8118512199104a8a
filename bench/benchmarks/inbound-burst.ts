// 2b. Inbound change burst through CDC: someone else's nightly job changes a field of every record of an
// already synced Account table (N = 100,000; a few thousand with --quick) in ONE Bulk API 2.0 update job.
// The org applies it in internal batches of 10,000, each one transaction, and folds the identical changes
// of a transaction into change events with many recordIds, as Salesforce does. The sidecar runs as users
// run it, with the Pub/Sub API (its default change stream) and a read-write mapping with change events on.
// Figure: rows/s from the job's submission (UploadComplete acknowledged) until every row in Postgres holds
// the new value, polled by a count every few hundred ms. Then correctness: N rows, N distinct sfids,
// N with the new value, N in the org.
// Baseline, same run, same emulator, same kind of job over the same N records: a bare subscriber, the
// official salesforce-pubsub-api-client on /data/ChangeEvents (the channel the sidecar's stream uses), that
// decodes the events and COPYs one row per record id into a plain table (no index), one COPY in flight,
// timed the same way. It runs once before the sidecar exists and once after it has stopped (neither
// competes with the other for the 2 cores), and the ratio is against their mean.
// The emulator's ceiling beside it: the same bare subscriber's last event decoded (delivery of the burst,
// nothing written), and the Bulk job's own submission → JobComplete.
// Where hcsync's time goes: its database sessions sampled from pg_stat_activity (pg-activity.ts) give the
// duration of every hc.inbound_apply call and the share of the run some statement was running; the
// emulator's API counters say whether the apply fetched records (formula fields, re-reads).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import PubSubApiClient from 'salesforce-pubsub-api-client';
import { accountGenerator, writeAccountCsv } from '../lib/accounts.js';
import { compared, now, sleep, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { bulkIngest, bulkQuery } from '../lib/bulk.js';
import { startBulkUpdate } from '../lib/bulk-update.js';
import type { EmulatorHandle } from '../lib/emulator.js';
import { accountConfig } from '../lib/mapping.js';
import { watchActivity } from '../lib/pg-activity.js';
import { fmt } from '../lib/report.js';
import { withRig } from '../lib/rig.js';
import { eventBatches, type EventBatch } from '../lib/rounds.js';
import { whileAlive } from '../lib/sidecar.js';
import { round } from '../lib/stats.js';

interface BareRun {
  /** ms from the job's submission until every record's row was COPYed (committed). */
  ms: number;
  /** ms from the submission until the last event of the burst was received and decoded. */
  deliveredMs: number;
  /** ms from the submission until JobComplete was seen. */
  jobMs: number;
  events: number;
  copies: number;
  rows: number;
  distinct: number;
  withValue: number;
}

/** COPY text format: backslash, tab, newline and carriage return escaped; null as \N. */
function copyText(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  return String(v).replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

/**
 * The bare subscriber: subscribes (LATEST), runs one Bulk update job of `ids` to `value`, decodes the
 * events, and COPYs one row per record id into a fresh plain table. Resolves once N rows are committed.
 */
async function bareBurst(
  emu: EmulatorHandle,
  conn: import('jsforce').Connection,
  dbUrl: string,
  ids: readonly string[],
  value: string,
  table: string,
  timeoutMs: number,
): Promise<BareRun> {
  if (!emu.pubsub) throw new Error('the emulator serves no Pub/Sub API');
  const n = ids.length;
  const db = new pg.Client({ connectionString: dbUrl, application_name: 'hcsync bench baseline' });
  db.on('error', () => {}); // a query in progress rejects with it
  await db.connect();
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const client = new PubSubApiClient(
    { authType: 'oauth-client-credentials', loginUrl: emu.credentials.loginUrl, clientId: emu.credentials.clientId, clientSecret: emu.credentials.clientSecret, pubSubEndpoint: emu.pubsub.endpoint, rejectUnauthorizedSsl: false } as never,
    quiet as never,
  );
  try {
    await db.query(`create table ${table} (sfid varchar(18), description text, commit_ts timestamptz)`);
    await client.connect();
    let buffered: string[] = [];
    let received = 0;
    let events = 0;
    let copied = 0;
    let copies = 0;
    let deliveredAt = 0;
    let subscribed = false;
    let flushing = false;
    let failure: Error | undefined;
    let finishedAt = 0;
    const flush = async () => {
      if (flushing) return;
      flushing = true;
      try {
        while (buffered.length) {
          const lines = buffered;
          buffered = [];
          const stream = db.query(pgCopy.from(`copy ${table} (sfid, description, commit_ts) from stdin`));
          await new Promise<void>((resolve, reject) => {
            stream.on('finish', resolve);
            stream.on('error', reject);
            stream.end(lines.join(''));
          });
          copies++;
          copied += lines.length;
          if (copied >= n && !finishedAt) finishedAt = now();
        }
      } catch (e) {
        failure = e as Error;
      } finally {
        flushing = false;
      }
    };
    client.subscribe('/data/ChangeEvents', ((_s: unknown, type: string, data: { payload?: { Description?: string | null; ChangeEventHeader?: { entityName: string; changeType: string; recordIds: string[]; commitTimestamp: number } } }) => {
      if (type === 'grpcKeepAlive') subscribed = true;
      const p = type === 'event' ? data.payload : undefined;
      const h = p?.ChangeEventHeader;
      if (!h || h.entityName !== 'Account' || h.changeType !== 'UPDATE') return;
      events++;
      const ts = copyText(new Date(h.commitTimestamp).toISOString());
      const desc = copyText(p!.Description);
      for (const id of h.recordIds) buffered.push(`${id}\t${desc}\t${ts}\n`);
      received += h.recordIds.length;
      if (received >= n && !deliveredAt) deliveredAt = now();
      void flush();
    }) as never);
    // Subscribed once the first keepalive is in (LATEST: events from then on).
    const upBy = now() + 5000;
    while (!subscribed && now() < upBy) await sleep(10);
    await sleep(200);

    const job = await startBulkUpdate(conn, 'Account', 'Description', ids, value, { timeoutMs });
    const deadline = job.submittedAt + timeoutMs;
    while (!finishedAt) {
      if (failure) throw new Error(`the bare subscriber's COPY failed: ${failure.message}`);
      if (now() > deadline) throw new Error(`the bare subscriber had ${copied} of ${n} rows (${received} record ids received) after ${timeoutMs / 1000} s`);
      await sleep(2);
    }
    const jobDone = await job.done;
    const check = (await db.query<{ rows: number; distinct: number; with_value: number }>(
      `select count(*)::int as rows, count(distinct sfid)::int as distinct, count(*) filter (where description = $1)::int as with_value from ${table}`,
      [value],
    )).rows[0];
    return {
      ms: finishedAt - job.submittedAt,
      deliveredMs: deliveredAt - job.submittedAt,
      jobMs: jobDone.completedAt - job.submittedAt,
      events,
      copies,
      rows: check.rows,
      distinct: check.distinct,
      withValue: check.with_value,
    };
  } finally {
    client.close();
    await db.query(`drop table if exists ${table}`).catch(() => {});
    await db.end().catch(() => {});
  }
}

/** Numeric leaves of b minus a (the emulator's counters over a window). */
function counterDiff(a: unknown, b: unknown, prefix = ''): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof b === 'number') {
    const d = b - (typeof a === 'number' ? a : 0);
    if (d) out[prefix] = d;
    return out;
  }
  if (b && typeof b === 'object') {
    for (const [k, v] of Object.entries(b)) Object.assign(out, counterDiff((a as Record<string, unknown> | undefined)?.[k], v, prefix ? `${prefix}.${k}` : k));
  }
  return out;
}

export const inboundBurst: Benchmark = {
  name: 'inbound-burst',
  title: '2b. Inbound change burst via CDC (one Bulk update)',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const n = ctx.quick ? 5_000 : 100_000;
    const timeoutMs = ctx.quick ? 120_000 : 300_000;
    const pollMs = ctx.quick ? 50 : 200;
    const rows: Row[] = [];
    const config: Record<string, unknown> = { records: n, job: 'Bulk 2.0 update, one field (Description), same value for every record', timedFrom: 'job submission (UploadComplete acknowledged)', pgPollMs: pollMs };
    return withRig(ctx, 'inburst', { poolMax: 3, partial: { rows, config } }, async (rig) => {
      const { emu, conn, describe, db, pool } = rig;
      const run = Date.now().toString(36);
      const gen = accountGenerator(describe.fields as never, 11);
      const source = join(ctx.workDir, `burst-accounts-${n}.csv`);
      const { files } = await writeAccountCsv(source, gen, n);
      const ingest = await bulkIngest(conn, 'Account', files);
      if (ingest.failed) throw new Error(`seeding the emulator: ${ingest.failed} rows failed`);
      const idFile = join(ctx.workDir, 'burst-ids.csv');
      await bulkQuery(conn, 'SELECT Id FROM Account', { file: idFile });
      const ids = readFileSync(idFile, 'utf8').split('\n').slice(1).map((l) => l.replace(/"/g, '').trim()).filter(Boolean);
      if (ids.length !== n) throw new Error(`the org holds ${ids.length} Accounts, expected ${n}`);
      ctx.progress(`${n.toLocaleString('en-US')} Accounts in the org`);

      // Baseline 1: before the sidecar exists.
      const bares: BareRun[] = [];
      const bare = async (k: number) => {
        const b = await bareBurst(emu, conn, db.url, ids, `burst baseline ${k} ${run}`, `bench_burst_baseline_${k}`, timeoutMs);
        if (b.rows !== n || b.distinct !== n || b.withValue !== n) throw new Error(`bare subscriber ${k}: ${b.rows} rows, ${b.distinct} distinct, ${b.withValue} with the new value, expected ${n}`);
        bares.push(b);
        ctx.progress(`bare subscriber ${k}: ${Math.round(n / (b.ms / 1000))} rows/s (${b.events} events, ${b.copies} COPYs; last event after ${(b.deliveredMs / 1000).toFixed(2)} s, job complete after ${(b.jobMs / 1000).toFixed(2)} s)`);
      };
      await bare(1);

      // hcsync: the mapping loaded (it reads baseline 1's values), its change stream up.
      const mapping = accountConfig(describe as never, { access: 'read_write', notify: true, pollingSeconds: 600 });
      config.mapping = mapping;
      // At debug level the sidecar logs each change-event batch's phases (read back below).
      const sidecar = await rig.startSidecar('inbound-burst', { HC_LOG_LEVEL: process.env.BENCH_SIDECAR_LOG_LEVEL ?? 'debug' });
      await rig.mapSynced(mapping, { syncedMs: ctx.quick ? 120_000 : 300_000, caughtUpMs: ctx.quick ? 60_000 : 300_000 });
      await sleep(1000); // the shared stream subscribes once the mapping is synced
      // Once subscribed, the sidecar re-reads by SystemModstamp from the load's start; baseline 1 changed
      // every record shortly before, so that pass reads all N again, for tens of seconds after
      // hc._mappings.last_poll_at is set. The burst starts once it has logged what it found (it logs at
      // info when it found rows), or after 180 s.
      const rereadBy = now() + 180_000;
      const count = (s: string) => sidecar.tail(200).split('\n').filter((l) => l.includes(s)).length;
      const announcedBy = now() + 5000; // it is announced once the stream holds (1.5 s after subscribing)
      while (!count('re-reading by SystemModstamp') && now() < announcedBy) await sleep(100);
      while (count('re-reading by SystemModstamp') > count('Polling Salesforce found') && now() < rereadBy) await sleep(200);
      await sleep(1000);
      const loaded = (await pool.query<{ n: number }>('select count(*)::int as n from salesforce.account')).rows[0].n;
      if (loaded !== n) throw new Error(`the initial load gave ${loaded} rows, expected ${n}`);
      const calculated: string[] = (await pool.query(`select hc.inbound_calculated_fields(id) as f from hc._mappings where object_name = 'Account'`)).rows[0]?.f ?? [];
      config.calculatedFields = calculated;

      const value = `burst hcsync ${run}`;
      const statsBefore = await emu.stats();
      const activity = watchActivity(db.url, { inbound_apply: 'hc.inbound_apply', known_and_rereads: 'inbound_rereads_due', inbound_merge: 'hc.inbound_merge' });
      const pubsubDelivered = async () => ((await emu.stats()) as { pubsub?: { delivered?: number } }).pubsub?.delivered ?? 0;
      const deliveredBefore = await pubsubDelivered();
      const job = await startBulkUpdate(conn, 'Account', 'Description', ids, value, { timeoutMs });
      let firstAt = 0;
      let applied = 0;
      let reportAt = job.submittedAt + 15_000;
      // When the emulator handed the burst's events to the sidecar (its only subscriber now): read from the
      // emulator's counters every 100 ms, so "waiting for events" and "applying them" can be told apart.
      const deliveries: number[] = [];
      let watching = true;
      const deliveryWatch = (async () => {
        while (watching) {
          const d = (await pubsubDelivered()) - deliveredBefore;
          const t = now() - job.submittedAt;
          while (deliveries.length < d) deliveries.push(t);
          await sleep(100);
        }
      })().catch(() => {});
      let endAt: number;
      try {
        endAt = await whileAlive(
          sidecar,
          (async () => {
            for (;;) {
              applied = (await pool.query<{ n: number }>('select count(*)::int as n from salesforce.account where description = $1', [value])).rows[0].n;
              const t = now();
              if (applied > 0 && !firstAt) firstAt = t;
              if (applied >= n) return t;
              if (t > reportAt) {
                reportAt += 15_000;
                ctx.progress(`hcsync: ${applied} of ${n} rows after ${Math.round((t - job.submittedAt) / 1000)} s; the emulator delivered ${(await pubsubDelivered()) - deliveredBefore} Pub/Sub events since the job`);
              }
              if (t - job.submittedAt > timeoutMs) {
                const secs = (t - job.submittedAt) / 1000;
                rows.push(compared('burst → all rows in Postgres (unfinished)', applied / secs, 'rows/s', 'bare subscriber, COPY', bares[0].rows / (bares[0].ms / 1000), `${applied} of ${n} after ${secs.toFixed(0)} s`));
                throw new Error(`hcsync applied ${applied} of ${n} changes within ${timeoutMs / 1000} s; sidecar log:\n${sidecar.tail(5)}`);
              }
              await sleep(pollMs);
            }
          })(),
        );
      } catch (e) {
        watching = false;
        config.activity = await activity.stop();
        config.deliveredToSidecarMs = deliveries.map((x) => round(x, 0));
        throw e;
      } finally {
        watching = false;
        await deliveryWatch;
      }
      const act = await activity.stop();
      const jobDone = await job.done;
      const hcMs = endAt - job.submittedAt;
      await sleep(600); // the ledger and the emulator's counters settle
      const statsAfter = await emu.stats();
      const apiDiff = counterDiff((statsBefore as { api?: unknown }).api, (statsAfter as { api?: unknown }).api);

      // Correctness: every row has the new value, no row twice, the org agrees.
      const check = (await pool.query<{ rows: number; distinct: number; with_value: number }>(
        'select count(*)::int as rows, count(distinct sfid)::int as distinct, count(*) filter (where description = $1)::int as with_value from salesforce.account',
        [value],
      )).rows[0];
      const inOrg = await emu.countWhere('Account', 'Description', value);
      if (check.rows !== n || check.distinct !== n || check.with_value !== n || inOrg !== n) {
        throw new Error(`after the burst: ${check.rows} rows, ${check.distinct} distinct sfids, ${check.with_value} with the new value, ${inOrg} in the org; expected ${n} each`);
      }
      ctx.progress(`hcsync: ${Math.round(n / (hcMs / 1000))} rows/s (first row after ${((firstAt - job.submittedAt) / 1000).toFixed(2)} s, all after ${(hcMs / 1000).toFixed(2)} s)`);
      await sidecar.stop();

      // Baseline 2: after the sidecar has stopped.
      await bare(2);

      const hcRate = n / (hcMs / 1000);
      const bareRates = bares.map((b) => n / (b.ms / 1000));
      const bareRate = bareRates.reduce((a, b) => a + b, 0) / bareRates.length;
      const deliveredRate = bares.map((b) => n / (b.deliveredMs / 1000)).reduce((a, b) => a + b, 0) / bares.length;
      const jobRate = [...bares.map((b) => n / (b.jobMs / 1000)), n / ((jobDone.completedAt - job.submittedAt) / 1000)];
      const bareLabel = 'bare Pub/Sub subscriber, COPY into a plain table';
      rows.push(
        compared('burst → every row in Postgres', hcRate, 'rows/s', bareLabel, bareRate,
          `${n.toLocaleString('en-US')} changes in ${(hcMs / 1000).toFixed(1)} s from the job's submission; baseline ${bareRates.map((r) => fmt(r)).join(' / ')} rows/s (before / after)`),
        compared('the same against the emulator delivering the burst', hcRate, 'rows/s', 'last event decoded by the bare subscriber', deliveredRate,
          `emulator ceiling; ${bares.map((b) => b.events).join(' / ')} events for ${n.toLocaleString('en-US')} records`),
        { metric: 'emulator: the Bulk update job itself', value: jobRate.reduce((a, b) => a + b, 0) / jobRate.length, unit: 'rows/s', note: `submission → JobComplete, mean of ${jobRate.length} jobs (${jobRate.map((r) => fmt(r)).join(' / ')})` },
        { metric: 'emulator: burst events handed to the sidecar', value: (deliveries.at(-1) ?? NaN) / 1000, unit: 's', note: `${deliveries.length} events, the first after ${fmt((deliveries[0] ?? NaN) / 1000)} s (emulator counters read every 100 ms)` },
        { metric: 'hcsync: first changed row in Postgres', value: (firstAt - job.submittedAt) / 1000, unit: 's', note: `after the job's submission; JobComplete after ${((jobDone.completedAt - job.submittedAt) / 1000).toFixed(2)} s` },
      );
      const apply = act.byKind.inbound_apply;
      if (apply) {
        // The calls that carried the burst's records, and the records applied per second of apply time.
        rows.push({
          metric: 'hcsync: time in hc.inbound_apply',
          value: apply.totalMs / 1000,
          unit: 's',
          note: `${apply.calls} calls, the longest ${fmt(apply.ms.max)} ms (p50 ${fmt(apply.ms.p50)} ms): ${fmt(n / Math.max(0.001, apply.totalMs / 1000))} records per second of apply; a call running ${Math.round(apply.activeShare * 100)} % of the run, no sidecar statement ${Math.round(act.idleShare * 100)} %`,
        });
      }
      // The sidecar's own account of each batch: how long its first event waited in the queue, and the
      // pre-read, Salesforce reads, JSON building and apply of every batch.
      const batches = rig.logFile ? eventBatches(rig.logFile, job.submittedAt - 1000, endAt + 5000) : [];
      if (batches.length) {
        const sum = (k: keyof EventBatch) => batches.reduce((a, b) => a + b[k], 0);
        const b0 = batches[0];
        const b0Ms = b0.queuedMs + b0.prereadMs + b0.fetchMs + b0.buildMs + b0.applyMs;
        rows.push(
          { metric: 'hcsync: first batch, arrival of its event → committed', value: b0Ms / 1000, unit: 's',
            note: `its event reached the sidecar's queue ${fmt((b0.time - b0Ms - job.submittedAt) / 1000)} s after the submission; ${b0.records.toLocaleString('en-US')} records: queued ${fmt(b0.queuedMs)} ms, pre-read ${fmt(b0.prereadMs)}, Salesforce reads ${fmt(b0.fetchMs)}, building ${fmt(b0.buildMs)}, apply ${fmt(b0.applyMs)} ms` },
          { metric: 'hcsync: all batches, sidecar time per phase', value: (sum('prereadMs') + sum('fetchMs') + sum('buildMs') + sum('applyMs')) / 1000, unit: 's',
            note: `${batches.length} batches, ${sum('records').toLocaleString('en-US')} records: pre-read ${fmt(sum('prereadMs'))} ms, Salesforce reads ${fmt(sum('fetchMs'))}, building ${fmt(sum('buildMs'))}, apply ${fmt(sum('applyMs'))} ms` },
        );
      }
      Object.assign(config, {
        eventBatches: batches,
        hcsyncMs: round(hcMs, 1),
        hcsyncFirstRowMs: round(firstAt - job.submittedAt, 1),
        hcsyncJobMs: round(jobDone.completedAt - job.submittedAt, 1),
        baselines: bares,
        activity: act,
        deliveredToSidecarMs: deliveries.map((x) => round(x, 0)),
        emulatorApiDuringBurst: apiDiff,
        pubsub: { before: (statsBefore as { pubsub?: unknown }).pubsub, after: (statsAfter as { pubsub?: unknown }).pubsub },
      });
      return { rows, config };
    });
  },
};
