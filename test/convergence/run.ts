// One convergence run: the rig, the workload and the nemesis together for `chaosMs`; then the nemesis
// stops, the workload stops, the run settles (no entry waits to be sent, the reader has applied every
// change event Salesforce published, and the tables stay still), the checker compares both sides, a
// drift sweep (id reconciliation) is forced for every mapping, and the checker compares again.
// Shared by the CI test (test/convergence/convergence.test.ts) and `make soak`.
import { mkdirSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { loadConfig } from '../../sidecar/config.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { createLogger } from '../../sidecar/log.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';
import { driftSweep, type DriftResult } from '../../sidecar/sync/inbound/drift.js';
import type { MappingRow } from '../../sidecar/sync/inbound/rows.js';
import { startRig, lastError, OBJECTS, type Rig } from './rig.js';
import { startWorkload, FULL_MIX, type Mix, type WorkloadStats } from './workload.js';
import { startNemesis, type FaultCounts } from './nemesis.js';
import { check, summary, type CheckResult, type Finding } from './checker.js';
import { seedVolume, waitLoaded, startBurst, VOLUME_MAPPING_EXTRAS, type Burst, type BurstReport, type VolumeSeed } from './volume.js';
import { MAPPINGS, type ObjectName } from './rig.js';
import type { LogicalRecord } from './workload.js';

export interface ConvergenceOptions {
  seed: number;
  chaosMs: number;
  killEveryMs: number;
  restartEveryMs: number;
  terminateEveryMs: number;
  emulatorFaultEveryMs: number;
  hangs: boolean;
  settleTimeoutMs: number;
  pauseMs?: number;
  mix?: Mix;
  /** Fields the check before the drift sweep leaves out (each for an open defect, named by the caller). */
  ignoreBeforeSweep?: string[];
  /** The mappings' conflict_policy (unset: the default, manual). */
  conflictPolicy?: string;
  /**
   * The volume mode (volume.ts): `records` Accounts synced before the chaos, and a burst on them during it.
   * The chaos then lasts at least until both sides agree on the burst (and 10 s more, so that the faults
   * also meet what follows it), but at most `extraChaosMs` longer than `chaosMs`.
   */
  volume?: { records: number; extraChaosMs: number };
  label?: string;
  log?: (s: string) => void;
}

export interface ConvergenceReport {
  seed: number;
  mix: Mix;
  ignoredBeforeSweep: string[];
  chaosMs: number;
  faults: FaultCounts & { total: number };
  /** Sidecar exits nobody caused, apart from those while Postgres was down (it cannot start then). */
  crashes: { code: number | null; signal: string | null; error: string }[];
  exitsWhilePostgresDown: number;
  sidecarStarts: number;
  ops: WorkloadStats;
  settledMs: number;
  settled: boolean;
  /** What was still moving when settling timed out. */
  waiting: string;
  connectionState: string;
  before: CheckResult;
  /** The volume mode: the seeding, the initial load, the burst. */
  volume?: { seededS: number; loadedS: number; burst: BurstReport };
  /** What the forced drift sweep found and repaired, per object. */
  drift: Record<string, DriftResult>;
  after: CheckResult;
  line: string;
  /** For the first findings: the workload's writes, the trigger log, the sync log and Salesforce's change events of the record. */
  evidence: string[];
}

/** The seed from HCSYNC_SEED, or a new one (printed with the result, so a failing run can be replayed). */
export function seedFromEnv(): number {
  const s = process.env.HCSYNC_SEED;
  return s ? Number(s) : Math.floor(Math.random() * 2 ** 31);
}

export async function runConvergence(o: ConvergenceOptions): Promise<ConvergenceReport> {
  const say = o.log ?? ((s: string) => console.log(s));
  const n = o.volume?.records ?? 0;
  let seeded: VolumeSeed | undefined;
  let seededAt = 0;
  const rig = await startRig({
    label: o.label ?? 'run',
    log: say,
    conflictPolicy: o.conflictPolicy,
    ...(n
      ? {
          prepare: async (emu) => {
            seeded = await seedVolume(emu, n, o.seed);
            seededAt = Date.now();
            say(`volume: ${n} Accounts put in the org with one Bulk 2.0 insert job in ${seeded.seconds.toFixed(1)} s`);
          },
          mappingExtras: VOLUME_MAPPING_EXTRAS,
          loadTimeoutMs: 120_000 + n * 3,
        }
      : {}),
  });
  // A run that finds anything (or ends in an error) keeps its database for a look.
  let keep = true;
  let burst: Burst | undefined;
  try {
    let loadedS = 0;
    if (seeded) {
      await waitLoaded(rig.url, n, 120_000 + n * 3);
      loadedS = (Date.now() - seededAt) / 1000;
      say(`volume: the initial load brought them to Postgres in ${loadedS.toFixed(1)} s`);
    }
    const workload = await startWorkload({ seed: o.seed, url: rig.url, sf: rig.emu.credentials, pauseMs: o.pauseMs, mix: o.mix, existing: seeded?.records, log: () => {} });
    const nemesis = startNemesis(rig, { seed: o.seed, killEveryMs: o.killEveryMs, restartEveryMs: o.restartEveryMs, terminateEveryMs: o.terminateEveryMs, emulatorFaultEveryMs: o.emulatorFaultEveryMs, hangs: o.hangs, log: say });
    const started = Date.now();
    const calm = !o.killEveryMs;
    // The burst comes once the workload has records of its own in play (15 s, or a quarter of a short chaos).
    const burstAt = started + Math.min(15_000, o.chaosMs / 4);
    const chaosEnd = () => {
      if (!o.volume) return started + o.chaosMs;
      const agreed = burst?.agreedAt();
      return agreed ? Math.max(started + o.chaosMs, agreed + 10_000) : started + o.chaosMs + o.volume.extraChaosMs;
    };
    let lastReport = started;
    while (Date.now() < chaosEnd()) {
      await new Promise((r) => setTimeout(r, 1000));
      if (seeded && !burst && Date.now() >= burstAt) {
        say(`volume: the burst starts ${Math.round((Date.now() - started) / 1000)} s into the chaos`);
        burst = startBurst({
          rig, workload, nemesis: calm ? undefined : nemesis, seeded: seeded.records, seed: o.seed, chaosStarted: started,
          kills: () => nemesis.counts.kills, faults: () => nemesis.total(), timeoutMs: o.volume!.extraChaosMs + o.settleTimeoutMs, log: say,
        });
      }
      if (Date.now() - lastReport >= 60_000) {
        lastReport = Date.now();
        say(`  ${Math.round((Date.now() - started) / 1000)} s: faults ${nemesis.total()} (kills ${nemesis.counts.kills}, restarts ${nemesis.counts.restarts}), ops ${workload.stats.acked + workload.stats.unknown}, crashes ${rig.sidecar.crashes.filter((c) => !c.whilePostgresDown).length}`);
      }
    }
    // (the volume mode's chaos runs as long as its burst needs)
    const chaosMs = o.volume ? Date.now() - started : o.chaosMs;
    await nemesis.stop();
    await workload.stop();
    // The job and the statement finish (and are noted in the model) before anything is judged.
    await burst?.done;

    const settleStart = Date.now();
    const { ok: settled, waiting } = await settle(rig, o.settleTimeoutMs);
    const settledMs = Date.now() - settleStart;
    const volume = burst && seeded ? { seededS: seeded.seconds, loadedS, burst: await burst.stop() } : undefined;
    const before = await check(rig.url, workload.conn, workload.records, { ignore: o.ignoreBeforeSweep });

    const drift = await forceDriftSweep(rig);
    await settle(rig, Math.min(o.settleTimeoutMs / 2, 60_000));
    const after = await check(rig.url, workload.conn, workload.records);
    // A few findings of each kind (those left after the sweep first) are explained in full.
    const perKind = Number(process.env.HCSYNC_EVIDENCE ?? 2);
    const explain = (['lost', 'duplicated', 'stuck', 'diverged'] as const).flatMap((k) => {
      const of = (r: CheckResult) => r.findings.filter((f) => f.kind === k);
      return (of(after).length ? of(after) : of(before)).slice(0, perKind);
    });
    const evidence = await gather(rig, workload.records, explain);

    const state = await (async () => {
      const c = new pg.Client({ connectionString: rig.url });
      await c.connect();
      try {
        return (await c.query(`select state || coalesce(': ' || state_message, '') s from hc.connections`)).rows[0]?.s ?? '?';
      } finally {
        await c.end();
      }
    })();
    const faults = { ...nemesis.counts, total: nemesis.total() };
    const crashes = rig.sidecar.crashes.filter((c) => !c.whilePostgresDown).map((c) => ({ code: c.code, signal: c.signal, error: lastError(c.tail) }));
    const head = volume ? `volume ${n}: faults ${faults.total} (kills ${faults.kills}, ${volume.burst.killsDuringBurst} during the burst)` : `faults ${faults.total}`;
    const line = `${head}, ${summary(before)} | after drift sweep: ${summary(after)} | seed ${o.seed} (HCSYNC_SEED=${o.seed})`;
    keep = !settled || [before, after].some((r) => r.lost || r.duplicated || r.diverged || r.stuck) || crashes.length > 0;
    return {
      seed: o.seed,
      mix: o.mix ?? FULL_MIX,
      ignoredBeforeSweep: o.ignoreBeforeSweep ?? [],
      chaosMs,
      faults,
      crashes,
      exitsWhilePostgresDown: rig.sidecar.crashes.length - crashes.length,
      sidecarStarts: rig.sidecar.starts,
      ops: workload.stats,
      settledMs,
      settled,
      waiting,
      connectionState: state,
      before,
      volume,
      drift,
      after,
      line,
      evidence,
    };
  } finally {
    await burst?.stop().catch(() => {}); // (a run that ended in an error has not stopped its watch)
    await rig.close({ keep });
  }
}

/**
 * Waits until nothing waits to be sent (but what an open conflict holds) or read again (hc.inbound_rereads), the reader has applied (recorded the replay id of) the last change
 * event of every mapped object, and the tables have not changed for two seconds. False on timeout.
 */
async function settle(rig: Rig, timeoutMs: number): Promise<{ ok: boolean; waiting: string }> {
  const c = new pg.Client({ connectionString: rig.url, application_name: 'convergence settle' });
  c.on('error', () => {});
  await c.connect();
  let waiting = '';
  try {
    const end = Date.now() + timeoutMs;
    let lastPrint = '';
    let stableSince = 0;
    while (Date.now() < end) {
      const round = Date.now();
      try {
        // (entries of a record with an open conflict wait for hc.resolve_conflict: parked, not unsent)
        const q = (await c.query(`select (select count(*) from salesforce._trigger_log l where l.state in ('NEW', 'PENDING')
                                            and not exists (select 1 from hc.conflicts k join hc._mappings m on m.id = k.mapping_id
                                                             where k.resolved_at is null and m.table_name = l.table_name
                                                               and k.record_id = l.record_id))::int unsent,
                                         (select md5(coalesce(string_agg(t::text, '|' order by t.id), '')) from salesforce.account t) ||
                                         (select md5(coalesce(string_agg(t::text, '|' order by t.id), '')) from salesforce.contact t) print`)).rows[0];
        q.rereads = (await c.query(`select to_regclass('hc.inbound_rereads') is not null as has`)).rows[0].has
          ? (await c.query(`select count(*)::int n from hc.inbound_rereads`)).rows[0].n
          : 0;
        // Echoes of our creates that wait for the write-back (hc.inbound_deferred_echoes), once a row holds the record.
        q.deferred = (await c.query(`select to_regclass('hc.inbound_deferred_echoes') is not null as has`)).rows[0].has
          ? (await c.query(`select count(*)::int n from hc.inbound_deferred_echoes e
                             where exists (select 1 from salesforce.account a where a.sfid = e.sfid)
                                or exists (select 1 from salesforce.contact t where t.sfid = e.sfid)`)).rows[0].n
          : 0;
        const positions = (await c.query(`select m.object_name, p.replay_channel, p.replay_id from hc._mappings m left join hc.sync_positions p on p.mapping_id = m.id`)).rows;
        // Pub/Sub positions are 8-byte replay ids in hex; CometD's are numbers.
        const replayOf = (p: { replay_channel: string | null; replay_id: string | null }) =>
          p.replay_id == null ? NaN : p.replay_channel?.startsWith('pubsub:') ? Number(BigInt('0x' + p.replay_id)) : Number(p.replay_id);
        const behind = positions.filter((p) => {
          const last = rig.lastReplayId(p.object_name);
          return last !== undefined && !(replayOf(p) >= last);
        });
        const running = Boolean(rig.sidecar.current());
        waiting = [
          q.unsent ? `${q.unsent} entries to send` : '',
          q.rereads ? `${q.rereads} records to read again` : '',
          q.deferred ? `${q.deferred} echoes of our creates to apply` : '',
          behind.length ? `reader behind on ${behind.map((b) => b.object_name).join(', ')}` : '',
          running ? '' : 'no sidecar running',
          q.print === lastPrint ? '' : 'tables changing',
        ].filter(Boolean).join(', ');
        if (!waiting) {
          if (!stableSince) stableSince = Date.now();
          if (Date.now() - stableSince >= 2000) return { ok: true, waiting: '' };
        } else stableSince = 0;
        lastPrint = q.print;
      } catch (e) {
        waiting = String(e);
      }
      // Every half second, or less often when a round itself takes longer (the whole-table print, at
      // 100,000 rows): the check must not become the load that keeps the sync from settling.
      await new Promise((r) => setTimeout(r, Math.max(500, Date.now() - round)));
    }
    return { ok: false, waiting };
  } finally {
    await c.end().catch(() => {});
  }
}

/** A drift sweep with id reconciliation for every mapping, run here as the sidecar would run it. */
async function forceDriftSweep(rig: Rig): Promise<Record<string, DriftResult>> {
  const out: Record<string, DriftResult> = {};
  const config = loadConfig(rig.env);
  const pool = syncPool(rig.url);
  pool.on('error', () => {});
  try {
    const conn = (await pool.query(`select id, name, schema_name from hc.connections`)).rows[0];
    const sf = await SalesforceClient.connect(config.salesforce, { pool, connectionId: conn.id });
    try {
      const ctx = { config, db: pool, log: createLogger({ level: 'error', pretty: false }), sf, connection: { id: conn.id, name: conn.name, schema: conn.schema_name } };
      const maps = (await pool.query(`select id, object_name, table_name, config, state, requested, revision from hc._mappings order by id`)).rows as MappingRow[];
      for (const m of maps) out[m.object_name] = await driftSweep(ctx, m, { reconcile: true });
    } finally {
      await sf.close();
    }
  } finally {
    await pool.end();
  }
  return out;
}

export function printReport(r: ConvergenceReport, say: (s: string) => void = (s) => console.log(s)): void {
  const em = Object.entries(r.faults.emulator).map(([k, v]) => `${k} ${v}`).join(', ');
  say(`convergence: ${r.line}`);
  say(`  faults: kills ${r.faults.kills}, Postgres restarts ${r.faults.restarts}, backend terminations ${r.faults.terminations} (${r.faults.terminated} sessions), emulator ${em} (API faults met ${r.faults.emulatorMet})`);
  say(`  sidecar: ${r.sidecarStarts} starts, ${r.crashes.length} crashes, ${r.exitsWhilePostgresDown} exits while Postgres was down; connection ${r.connectionState}`);
  if (r.ignoredBeforeSweep.length) say(`  left out of the check before the drift sweep: ${r.ignoredBeforeSweep.join(', ')}`);
  say(`  workload: mix ${JSON.stringify(r.mix)}, ${JSON.stringify(r.ops)}; records pg ${r.before.records.pg}, sf ${r.before.records.sf}; FAILED entries ${r.before.failedEntries}`);
  say(`  settled: ${r.settled ? 'yes' : `NO (timed out: ${r.waiting})`} after ${(r.settledMs / 1000).toFixed(1)} s of ${(r.chaosMs / 1000).toFixed(0)} s of chaos`);
  if (r.volume) {
    const b = r.volume.burst;
    say(`  volume: ${b.records} Accounts (seeded in ${r.volume.seededS.toFixed(1)} s, loaded in ${r.volume.loadedS.toFixed(1)} s); burst ${b.startedAtS.toFixed(0)} s into the chaos: ` +
      `Bulk update of AccountNumber, ${b.job.processed} processed, ${b.job.failed} failed${b.job.completeAfterS !== undefined ? `, complete after ${b.job.completeAfterS.toFixed(1)} s` : ` (${b.job.error ?? 'not complete'})`}; ` +
      `UPDATE of NumberOfEmployees on ${b.update.rows} rows${b.update.committedAfterS !== undefined ? ` committed after ${b.update.committedAfterS.toFixed(1)} s` : ' NOT committed'} (${b.update.attempts} attempt${b.update.attempts === 1 ? '' : 's'}); ` +
      `both sides agreed ${b.agreedAfterS !== undefined ? `after ${b.agreedAfterS.toFixed(1)} s` : 'NOT within the run'}; ` +
      `during the burst: kills ${b.killsDuringBurst} (aimed: inbound ${b.aimedKills.inbound ? 'yes' : 'no'}, outbound ${b.aimedKills.outbound ? 'yes' : 'no'}), faults ${b.faultsDuringBurst}`);
  }
  say(`  drift sweep: ${Object.entries(r.drift).map(([o, d]) => `${o} ${d.repaired} repaired (sf ${d.sf}, pg ${d.pg})`).join(', ')}`);
  for (const c of r.crashes.slice(0, 5)) say(`  crash (code ${c.code}, signal ${c.signal}): ${c.error}`);
  for (const [label, res] of [['before', r.before], ['after drift sweep', r.after]] as const) {
    for (const f of res.findings.slice(0, 15)) say(`  ${label}: ${f.kind} ${f.key}: ${f.detail}`);
    if (res.findings.length > 15) say(`  ${label}: … ${res.findings.length - 15} more`);
  }
  for (const e of r.evidence) say(`evidence: ${e}`);
}

/** One timeline per finding, to tell the cause: what the workload did, what the sync did, what Salesforce published. */
async function gather(rig: Rig, model: Map<string, LogicalRecord>, findings: Finding[]): Promise<string[]> {
  const out: string[] = [];
  if (!findings.length) return out;
  // Unpacked once for all findings, not once per finding: an org may retain 100,000 and more.
  const events = rig.emu.events();
  const c = new pg.Client({ connectionString: rig.url });
  await c.connect();
  try {
    for (const f of findings) {
      const rec = model.get(f.key);
      const obj = rec?.object ?? (f.key.startsWith('a-') ? 'Account' : 'Contact');
      const m = MAPPINGS[obj as ObjectName];
      const rows = (await c.query(`select id, sfid from salesforce.${m.table} where ${m.key.toLowerCase()} = $1`, [f.key])).rows;
      const sfid = rows[0]?.sfid ?? rec?.sfid;
      const lines = [`${f.kind} ${f.key}: ${f.detail}`];
      for (const w of rec?.writes ?? []) lines.push(`  #${w.seq} workload ${w.side}${w.acked ? '' : ' (unknown outcome)'} ${w.field} = ${JSON.stringify(w.value)}`);
      for (const d of rec?.deletes ?? []) lines.push(`  #${d.seq} workload ${d.side} DELETE${d.acked ? '' : ' (unknown outcome)'}`);
      const ids = rows.map((r) => r.id);
      if (ids.length || sfid) {
        const log = await c.query(
          `select id, state, action, record_id, sfid, "values", sf_message, created_at, processed_at from (
             select * from salesforce._trigger_log union all select * from salesforce._trigger_log_archive) l
            where table_name = $1 and (record_id = any($2) or sfid = $3) order by id`,
          [m.table, ids, sfid ?? ''],
        );
        for (const l of log.rows) lines.push(`  _trigger_log ${l.id} ${l.action} ${l.state} row ${l.record_id} ${l.values ?? ''}${l.sf_message ? ` (${l.sf_message})` : ''} at ${l.created_at?.toISOString?.()} done ${l.processed_at?.toISOString?.() ?? '-'}`);
      }
      if (sfid) {
        const sl = await c.query(`select at, direction, level, event, message from hc.sync_log where detail::text like $1 or message like $1 order by id`, [`%${sfid}%`]);
        for (const l of sl.rows) lines.push(`  sync_log ${l.at.toISOString()} ${l.direction} ${l.level} ${l.event}: ${String(l.message ?? '').slice(0, 200)}`);
        for (const e of events) {
          const h = (e.data.payload as { ChangeEventHeader?: { recordIds?: string[]; changeType?: string; changeOrigin?: string; commitTimestamp?: number } }).ChangeEventHeader;
          if (!h?.recordIds?.includes(sfid)) continue;
          const { ChangeEventHeader: _h, ...fields } = e.data.payload as Record<string, unknown>;
          lines.push(`  sf event ${e.replayId} ${h.changeType} ${new Date(h.commitTimestamp ?? e.at).toISOString()} ${h.changeOrigin?.includes('client=hcsync') ? '(hcsync)' : '(user)'} ${JSON.stringify(fields).slice(0, 300)}`);
        }
      }
      out.push(lines.join('\n'));
    }
  } finally {
    await c.end();
  }
  return out;
}

/** Keeps the figures of a run (bench/results is not committed). */
export function saveReport(r: ConvergenceReport, name: string): string {
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}

export { OBJECTS };
