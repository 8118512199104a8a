// Convergence under faults (Jepsen-style): applications write to Postgres from several sessions while
// another user writes to Salesforce through the API, on the same records, and a nemesis kills the sidecar
// (kill -9), restarts PostgreSQL, terminates the sidecar's sessions and makes Salesforce fail (5xx, resets,
// lost answers, slow answers, REQUEST_LIMIT_EXCEEDED, UNABLE_TO_LOCK_ROW, expired tokens, a 503 from the
// token endpoint, dropped streaming sessions). Once settled, every record is compared field by field on
// both sides, before and after a forced drift sweep (definitions in checker.ts).
//
// CI runs a bounded version (about 2 minutes). `make soak` runs the same file for 30 minutes with at
// least 100 kills (HCSYNC_CONVERGENCE_SECONDS, HCSYNC_SOAK_MIN_KILLS). A failure prints its seed:
// HCSYNC_SEED=<seed> replays the same decisions (operations, records, values, faults); timing still varies.
//
// HCSYNC_CONVERGENCE_VOLUME=N (`make convergence-volume`: 100,000) is the volume mode (volume.ts): N
// Accounts synced before the chaos, one Bulk update job on all of them and one application UPDATE of half
// of them during it, and every one of the N compared field by field afterwards.
import { describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { runConvergence, seedFromEnv, printReport, saveReport } from './run.js';
import { FULL_MIX, type Mix } from './workload.js';

/** The volume mode's records (0: off, the default). */
const VOLUME = Number(process.env.HCSYNC_CONVERGENCE_VOLUME || 0);
if (!Number.isInteger(VOLUME) || VOLUME < 0) throw new Error(`HCSYNC_CONVERGENCE_VOLUME must be a number of records, not ${process.env.HCSYNC_CONVERGENCE_VOLUME}`);
// The volume mode's chaos lasts at least a minute, and then as long as its burst needs (run.ts), up to
// 3 ms per record more: 5 minutes at 100,000, where both sides agreed on the burst 81 and 110 s after the
// job in the first two runs (under faults, on the 2-core machine).
const SECONDS = Number(process.env.HCSYNC_CONVERGENCE_SECONDS ?? (VOLUME ? 60 : 45));
const EXTRA_CHAOS_MS = VOLUME * 3;
const SOAK = SECONDS > 300;
const MIN_KILLS = Number(process.env.HCSYNC_SOAK_MIN_KILLS ?? 1);
// The soak's nemesis hangs calls (no answer at all): the writer holds a hung call's records for 5 call
// timeouts (10 minutes at the default 2-minute timeout), since Salesforce may still act on such a request
// until it ends it after 10 minutes. The settle must outlast that hold: at 5 minutes the 30-minute soak
// at 10a4bed ended with 157 entries of a batch caught by a late hang still waiting, sent a minute later.
// The volume mode adds 3 ms per record: what the burst left undone when the chaos ended.
const SETTLE_MS = (SOAK ? 720_000 : 40_000) + VOLUME * 3;
// Seeding, the initial load (each up to 2 minutes and 3 ms a record), and checking N records twice.
const VOLUME_MS = VOLUME ? 240_000 + VOLUME * 10 : 0;
/** HCSYNC_NEMESIS=off: the same workload without faults (tells a defect under faults from one without). */
const CALM = process.env.HCSYNC_NEMESIS === 'off';
/**
 * The default mix leaves out the kinds of write whose defects are still open, each named here; remove a
 * line when its defect is fixed. HCSYNC_CONVERGENCE_MIX=full runs everything. None is open now: values
 * Salesforce flows rewrite (Email lower-cased, Rating from AnnualRevenue, Last_Touched__c after a Phone
 * change) come back to the row that sent them (test/inbound/flows.test.ts).
 */
const OPEN: Partial<Mix> = {};
const FULL = process.env.HCSYNC_CONVERGENCE_MIX === 'full';
const MIX: Mix = FULL ? FULL_MIX : { ...FULL_MIX, ...OPEN };
/**
 * HCSYNC_CONVERGENCE_POLICY=sf_wins|pg_wins|latest|manual sets the mappings' conflict_policy (unset: the
 * default, manual). Parked conflicts (manual) are counted apart, as `parked`, and are not divergence.
 */
const POLICY = process.env.HCSYNC_CONVERGENCE_POLICY || undefined;
if (POLICY && !['sf_wins', 'pg_wins', 'latest', 'manual'].includes(POLICY)) {
  throw new Error(`HCSYNC_CONVERGENCE_POLICY must be sf_wins, pg_wins, latest or manual, not ${POLICY}`);
}
/** Where a failed run leaves its summary (`make test-policies` and `make convergence-volume` print it). */
const LAST_FAILURE = 'bench/results/convergence-last-failure.txt';
/** Fields compared only after the forced drift sweep: none (SystemModstamp too is right before it). */
const IGNORE_BEFORE_SWEEP: string[] = [];

describe('convergence under faults', () => {
  it(`${SECONDS} s of writes on both sides under kill -9, Postgres restarts, terminated sessions and Salesforce faults: lost 0, duplicated 0, diverged 0, stuck 0`, async () => {
    const seed = seedFromEnv();
    rmSync(LAST_FAILURE, { force: true });
    console.log(`convergence: seed ${seed} (replay with HCSYNC_SEED=${seed}), ${SECONDS} s of chaos${VOLUME ? ` or more, volume ${VOLUME} records` : ''}, conflict_policy ${POLICY ?? 'manual (default)'}`);
    const report = await runConvergence({
      seed,
      chaosMs: SECONDS * 1000,
      label: VOLUME ? 'volume' : SOAK ? 'soak' : 'ci',
      // The soak needs at least 100 kills in 30 minutes, minus the time the sidecar is down or starting.
      killEveryMs: CALM ? 0 : SOAK ? 9_000 : 12_000,
      restartEveryMs: CALM ? 0 : SOAK ? 60_000 : 25_000,
      terminateEveryMs: CALM ? 0 : 8_000,
      emulatorFaultEveryMs: CALM ? 0 : 3_000,
      // A call that never answers holds the writer for its 2-minute call timeout: the soak has time for
      // that; the bounded run uses slow answers (2-8 s) instead.
      hangs: SOAK,
      settleTimeoutMs: SETTLE_MS,
      mix: MIX,
      ignoreBeforeSweep: IGNORE_BEFORE_SWEEP,
      conflictPolicy: POLICY,
      volume: VOLUME ? { records: VOLUME, extraChaosMs: EXTRA_CHAOS_MS } : undefined,
    });
    printReport(report);
    const file = saveReport(report, VOLUME ? 'volume' : SOAK ? 'soak' : 'convergence');
    console.log(`convergence: figures in ${file}`);
    // A failure's seed and first findings, for the Makefile to print last (CI shows the end of its output).
    const bad = (r: typeof report.before) => r.lost + r.duplicated + r.diverged + r.stuck > 0;
    if (bad(report.before) || bad(report.after)) {
      const findings = [...report.before.findings.map((f) => `before: ${f.kind} ${f.detail}`), ...report.after.findings.map((f) => `after: ${f.kind} ${f.detail}`)];
      writeFileSync(LAST_FAILURE, [`conflict_policy ${POLICY ?? 'manual'}: ${report.line}`, `figures in ${file}`,
        ...findings.slice(0, 8).map((f) => `  ${f.slice(0, 400)}`)].join('\n') + '\n');
    }

    const counts = (r: typeof report.before) => ({ lost: r.lost, duplicated: r.duplicated, diverged: r.diverged, stuck: r.stuck });
    if (!CALM) expect(report.faults.kills).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(report.ops.acked).toBeGreaterThan(0);
    if (VOLUME) {
      const b = report.volume!.burst;
      // The burst happened on both sides, and (under faults) the sidecar was killed while it crossed.
      expect(b.job.completeAfterS, report.line).toBeDefined();
      expect(b.job.processed, report.line).toBe(VOLUME);
      expect(b.update.committedAfterS, report.line).toBeDefined();
      expect(b.update.rows, report.line).toBeGreaterThan(0);
      if (!CALM) expect(b.killsDuringBurst, report.line).toBeGreaterThanOrEqual(1);
    }
    expect(counts(report.before), report.line).toEqual({ lost: 0, duplicated: 0, diverged: 0, stuck: 0 });
    expect(counts(report.after), report.line).toEqual({ lost: 0, duplicated: 0, diverged: 0, stuck: 0 });
  }, SECONDS * 1000 + EXTRA_CHAOS_MS + SETTLE_MS * 1.5 + VOLUME_MS + 60_000);
});
