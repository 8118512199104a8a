// Postgres → Salesforce: the writer. Wakes on "<schema>.hc_trigger_log" (and on hc_control for
// pause/resume/algorithm changes), claims work in SQL, sends it, reports the answers to SQL.
//
// Claiming identity: a dedicated session holds pg_advisory_lock(hc.lock_class('writer'), claimer) for the writer's
// life; SQL treats PENDING entries of a claimer without that lock as abandoned (see 000020_outbound).
//
// Cadence: no fixed debounce. When the writer is idle a change is claimed and sent at once. Changes
// that arrive while a call is in flight form the next batch; while they are still streaming in (a
// burst) the writer lets a batch fill up to one call's worth before claiming, never waiting longer
// than the quiet gap between two notifications.
//
// Concurrency (HC_WRITE_CONCURRENCY): at most that many Salesforce calls (collections calls or Bulk 2.0
// jobs) are in flight at once, across up to that many lanes. Each lane is a claimer of its own (all
// locked on the one writer session) and runs claim → send → record in turn. A second lane starts only
// when a claim came back full (the queue holds more than one claim), so a trickle of changes never
// fans out into small calls. Order is kept per record, not globally: a claim skips every record that
// has an entry PENDING under any claimer, so a record's next change waits for the outcome of the one
// in flight, while other records go meanwhile. No transaction is open across a Salesforce call: the
// claim commits before the call, the outcome is recorded after it.
//
// Stop: no new claim and no new call starts; the calls in flight are waited for and their outcomes
// recorded; everything else claimed is handed back (PENDING → NEW) at once. What it waits for is logged.
import pg from 'pg';
import type { Service, SyncContext } from '../../context.js';
import { backoff, subscribeAll } from '../../db/notifier.js';
import { lockSession } from '../../db/pool.js';
import { adoptLostCreates } from './adopt.js';
import { writesAllowed } from '../budget.js';
import { BATCH, InFlight, Limiter, send, type Activity, type Op, type Outcome } from './salesforce.js';
import {
  archiveOutbound, cancelBackends, claimOps, completeOps, hasOrphanedClaims, lockClaimer, newClaimer, recordCreateAttempts, releaseClaims, sweepUnclaimed,
  writeAlgorithm,
} from '../../db/hc/outbound.js';

export interface OutboundOptions {
  /** Entries claimed per round. */
  claimLimit?: number;
  /** Per Salesforce call. */
  callTimeoutMs?: number;
  /** Backoff cap after transient failures. */
  maxBackoffMs?: number;
  /** Safety-net wake-up (ms): finds work whose notification was lost. */
  sweepMs?: number;
  /** Ordered writer: updates/upserts/deletes of one object per batch from which one Bulk 2.0 job is used. */
  bulkThreshold?: number;
  /** Salesforce calls in flight at once (default HC_WRITE_CONCURRENCY). */
  concurrency?: number;
}

export async function startOutbound(ctx: SyncContext, opts: OutboundOptions = {}): Promise<Service> {
  const { db, log, sf, connection, config } = ctx;
  const wlog = log.child({ part: 'outbound' });
  const claimLimit = opts.claimLimit ?? 2000;
  const channel = `${connection.schema}.hc_trigger_log`;
  const concurrency = Math.max(1, opts.concurrency ?? config.writeConcurrency ?? 1);
  const limiter = new Limiter(concurrency);
  const activity: Activity = { calls: new Map(), seq: 0 };

  let stopped = false;
  /** One claimer number per lane, all held by lockClient's advisory locks; empty once that session is lost. */
  let claimers: number[] = [];
  let lockClient: pg.Client | undefined;
  let registering: Promise<number[]> | undefined;

  async function register(): Promise<number[]> {
    for (let attempt = 1; ; attempt++) {
      let ns: number[] | undefined;
      const c = lockSession(config.databaseUrl, 'hcsync writer', (err) => {
        if (ns === undefined) return; // while registering: the attempt fails and is made again
        wlog.warn({ err, claimers: ns }, 'writer session lost: its claims will be taken over');
        if (claimers === ns) claimers = [];
      });
      try {
        await c.connect();
        const got: number[] = [];
        for (let i = 0; i < concurrency; i++) {
          const n = await newClaimer(c);
          await lockClaimer(c, n);
          got.push(n);
        }
        ns = got;
        c.on('end', () => {
          if (claimers === got) claimers = [];
        });
        lockClient = c;
        claimers = got;
        wlog.info({ claimers: got, concurrency }, 'writer claimers registered');
        // (a sweep that fails is logged and tried again at the next registration: the writer goes on)
        try {
          const swept = await sweepUnclaimed(c, connection.id);
          if (swept) wlog.warn({ entries: swept }, 'entries PENDING with no writer (an earlier writer stopped mid-round) are back in the queue');
        } catch (err) {
          wlog.warn({ err }, 'could not look for entries PENDING with no writer; the writer goes on, and looks again when it next registers');
        }
        // The session can end while it sweeps (a Postgres restart during start-up): its claimers are gone
        // already, and the attempt is made again like any other that failed. Returned, they made the
        // caller throw, and the process exit 1 at start-up (a convergence run).
        if (claimers !== got) throw new Error('the writer session ended as it registered');
        return got;
      } catch (err) {
        await c.end().catch(() => {});
        if (stopped) throw err;
        const wait = backoff(attempt, 10_000);
        wlog.warn({ err, retryInMs: wait }, 'cannot register the writer yet');
        await sleep(wait);
      }
    }
  }

  async function claimerOf(lane: number): Promise<number> {
    if (!claimers.length) {
      registering ??= register().finally(() => { registering = undefined; });
      await registering;
    }
    const n = claimers[lane];
    if (n === undefined) throw new Error('the writer session was lost while registering');
    return n;
  }

  // --- the lanes ------------------------------------------------------------------------------------
  /** claimPid: the backend running this lane's claim, while it runs (a stop cancels it: a claim changes nothing until it commits). */
  interface Lane { i: number; running?: Promise<void>; claimer?: number; lastRoundSent: boolean; ops: number; phase: string; claimPid?: number }
  const lanes: Lane[] = Array.from({ length: concurrency }, (_, i) => ({ i, lastRoundSent: false, ops: 0, phase: 'idle' }));
  let again = false;
  /** The stop's cancel of claims under way, while it is being sent. */
  let cancelling: Promise<unknown> | undefined;
  let nudges = 0;
  let failures = 0;
  let lastArchive = 0;
  let lastCallMs = 50;
  /** Lanes backing off after a transient failure: a stop cuts the wait short. */
  const sleepers = new Set<() => void>();
  const inflight = new InFlight(5 * (opts.callTimeoutMs ?? 120_000));

  function wake(): void {
    if (stopped) return;
    if (lanes.some((l) => l.running)) {
      again = true;
      return;
    }
    start(lanes[0]);
  }

  /** The queue holds more than one claim: an idle lane takes the next one. */
  function more(): void {
    const idle = lanes.find((l) => !l.running);
    if (idle) start(idle);
  }

  function start(lane: Lane): void {
    if (stopped || lane.running) return;
    lane.running = loop(lane)
      .catch(async (err) => {
        wlog.error({ err, lane: lane.i }, 'writer round failed; retrying');
        failures++;
        // What this lane holds goes back to the queue: a live writer's claims are never taken over,
        // so without this its entries would stay PENDING. Creates keep their attempts (lost-create lookup).
        if (lane.claimer !== undefined) {
          await releaseClaims(db, connection.id, lane.claimer)
            .catch((e) => wlog.warn({ err: e }, 'cannot give claimed work back yet; the next round takes it over'));
        }
        if (!stopped) setTimeout(wake, backoff(failures, opts.maxBackoffMs ?? 10_000));
      })
      .finally(() => {
        lane.running = undefined;
        lane.ops = 0;
        lane.phase = 'idle';
        if (again && !stopped && !lanes.some((l) => l.running)) {
          again = false;
          wake();
        }
      });
  }

  async function gather(lane: Lane): Promise<void> {
    // Only under load: the previous round sent something and notifications are still arriving.
    if (!lane.lastRoundSent) return;
    const start = Date.now();
    const base = nudges;
    let seen = nudges;
    const cap = Math.min(1000, Math.max(20, lastCallMs * 2));
    while (!stopped && nudges - base < BATCH && Date.now() - start < cap) {
      await sleep(10);
      if (nudges === seen) break;
      seen = nudges;
    }
  }

  async function loop(lane: Lane): Promise<void> {
    while (!stopped) {
      again = false;
      lane.phase = 'registering its claimer';
      const me = await claimerOf(lane.i);
      lane.claimer = me;
      // Writes go on at any API budget unless the operator chose to hold them (hc.set_api_budget
      // pause_writes); then the sweep asks again.
      if (!(await writesAllowed(ctx))) {
        lane.lastRoundSent = false;
        return;
      }
      lane.phase = 'gathering a batch';
      await gather(lane);
      if (stopped) return;
      lane.phase = 'claiming';
      const tClaim = Date.now();
      // On a session of its own, so that a stop can cancel it (see stop()): a claim of 2,000 entries under
      // load can take seconds, and the stop must hand everything back within HC_STOP_SECONDS.
      const claimClient = await db.connect();
      let ops: Op[];
      lane.claimPid = (claimClient as unknown as { processID?: number }).processID;
      try {
        ops = await claimOps<Op>(claimClient, connection.id, me, claimLimit);
      } catch (err) {
        if (stopped && (err as { code?: string }).code === '57014') return; // cancelled by the stop: nothing was claimed
        throw err;
      } finally {
        lane.claimPid = undefined;
        // (a cancel on its way must not reach another query of this session once it is back in the pool)
        await cancelling?.catch(() => {});
        claimClient.release();
      }
      const claimMs = Date.now() - tClaim;
      lane.ops = ops.length;
      if (ops.length >= claimLimit) more();
      // Bulk 2.0 for large batches is the ordered writer's (merged batches are condensed already).
      const ordered = ops.length > 1 && (await writeAlgorithm(db, connection.id)) === 'ordered';
      if (!ops.length) {
        lane.lastRoundSent = false;
        await maybeArchive();
        if (!again || lane.i > 0) return;
        continue;
      }
      const t0 = Date.now();
      let outcomes: Outcome[];
      try {
        // Held records (an earlier call may still land) are not looked up yet: the lookup could miss it.
        lane.phase = 'looking up creates whose answer was lost';
        await adoptLostCreates(sf, db, connection.id, me, ops.filter((o) => !inflight.holds(o)));
        lane.phase = 'sending';
        outcomes = await send(sf, ops, {
          timeoutMs: opts.callTimeoutMs,
          inflight,
          limiter,
          activity,
          stopping: () => stopped,
          bulkThreshold: ordered ? (opts.bulkThreshold ?? config.bulkWriteThreshold) : undefined,
          beforeCreate: async (creates) => {
            await recordCreateAttempts(db, connection.id, me, creates.map((o) => ({
              op_id: o.op_id, table: o.table, record_id: o.record_id, object: o.object, upsert_field: o.upsert_field,
              body: o.upsert_field ? { ...o.body, [o.upsert_field]: o.upsert_value } : o.body,
            })));
          },
        });
      } catch (err) {
        // Looking up lost creates failed (Salesforce unreachable): everything goes back to the queue.
        wlog.warn({ err }, 'Salesforce unavailable: claimed work returns to the queue');
        outcomes = ops.map((o) => ({ op_id: o.op_id, action: o.action, outcome: 'retry' as const, error: String((err as Error).message) }));
      }
      const calls = Math.max(1, Math.ceil(ops.length / BATCH));
      lastCallMs = (Date.now() - t0) / Math.max(1, Math.ceil(calls / concurrency));
      const tComplete = Date.now();
      lane.phase = 'recording results';
      await complete(me, outcomes);
      const completeMs = Date.now() - tComplete;
      const counts = { ok: 0, failed: 0, retry: 0 };
      for (const o of outcomes) counts[o.outcome]++;
      // Each refused write reaches the process log (shown at the default level), not only hc.sync_log.
      if (counts.failed) {
        const byId = new Map(ops.map((o) => [o.op_id, o]));
        for (const o of outcomes) {
          if (o.outcome !== 'failed') continue;
          const op = byId.get(o.op_id);
          wlog.warn({ object: op?.object, table: op?.table, record_id: op?.record_id, action: o.action, sfid: o.sfid ?? op?.sfid ?? null, entry: o.op_id, error: o.error },
            'write failed: Salesforce refused it and the row is FAILED (hcsync write-errors lists it; hcsync retry sends it again)');
        }
      }
      wlog.debug({ lane: lane.i, ops: ops.length, ...counts, unsent: ops.length - outcomes.length, claimMs, sendMs: tComplete - t0, completeMs }, 'outbound round');
      lane.lastRoundSent = true;
      if (counts.retry && !stopped) {
        failures++;
        const wait = backoff(failures, opts.maxBackoffMs ?? 10_000);
        wlog.warn({ retry: counts.retry, retryInMs: wait, error: outcomes.find((o) => o.outcome === 'retry')?.error }, 'transient Salesforce failure: retrying later');
        lane.phase = 'backing off';
        await new Promise<void>((r) => {
          const done = () => { clearTimeout(t); sleepers.delete(done); r(); };
          const t = setTimeout(done, wait);
          sleepers.add(done);
        });
      } else if (!counts.retry) {
        failures = 0;
      }
      if (!stopped) await maybeArchive();
    }
  }

  /**
   * Records the outcomes. Salesforce has already acted on them, so a deadlock or serialization failure
   * (a transaction of the read side or of the application holding the same rows) is retried at once
   * with the same outcomes: the claims are still ours. Only when that keeps failing does the round fail,
   * and its claims go back to the queue (the round's catch).
   */
  async function complete(me: number, outcomes: Outcome[]): Promise<void> {
    if (!outcomes.length) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await completeOps(db, connection.id, me, outcomes);
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (!(code === '40P01' || code === '40001' || code === '55P03') || attempt >= 5) throw err;
        wlog.warn({ err, attempt }, 'recording results met a lock conflict; recording them again');
        await sleep(backoff(attempt, 1000, 10));
      }
    }
  }

  async function maybeArchive(): Promise<void> {
    if (Date.now() - lastArchive < 1000) return;
    lastArchive = Date.now();
    await archiveOutbound(db, connection.id, config.archiveRetentionDays);
  }

  /** What a stop is waiting for, in words. */
  function waitingFor(): string {
    const calls = [...activity.calls.values()];
    const busy = lanes.filter((l) => l.running);
    if (!busy.length) return 'nothing: handing back what is claimed';
    const rounds = busy.map((l) => `${l.phase}${l.ops ? ` (${l.ops} entries)` : ''}`).join('; ');
    if (!calls.length) return `writer rounds: ${rounds}`;
    return `${calls.length} Salesforce call(s) in flight: ${calls.slice(0, 4).join('; ')}${calls.length > 4 ? '; …' : ''}; writer rounds: ${rounds}`;
  }

  await claimerOf(0);
  const listener = await subscribeAll(
    ctx.notifications,
    config.databaseUrl,
    [channel, 'hc_control'],
    (ch, payload) => {
      if (payload === null) return wake(); // (re)connected: changes may have been missed
      if (ch === channel) nudges++;
      if (ch === channel || payload === connection.schema) wake();
    },
    { log: wlog, application_name: 'hcsync writer listen' },
  );
  const sweep = setInterval(wake, opts.sweepMs ?? 30_000);
  // Take-over: a writer that died (kill -9, a lost host) leaves its claims PENDING until some claim puts
  // them back; with no new change to wake us that would be the sweep, 30 s later. Its lock is gone at
  // once, so a cheap look on the standby beat (HC_INBOUND_STANDBY_MS) finds them and a round sends them.
  const orphans = setInterval(() => {
    if (stopped || lanes.some((l) => l.running)) return;
    hasOrphanedClaims(db, connection.id)
      .then((orphaned) => {
        if (orphaned) {
          wlog.info('claims of a writer that is gone: taking them over');
          wake();
        }
      })
      .catch(() => {}); // the database is away: the next beat looks again
  }, config.inbound.standbyMs);
  orphans.unref();
  wake();

  return {
    waitingFor,
    async stop() {
      stopped = true;
      // Claims under way are cancelled (rolled back: their entries stay NEW), not waited for.
      const claiming = lanes.map((l) => l.claimPid).filter((p): p is number => p !== undefined);
      if (claiming.length) cancelling = cancelBackends(db, claiming);
      clearInterval(sweep);
      clearInterval(orphans);
      for (const w of [...sleepers]) w();
      const busy = lanes.filter((l) => l.running);
      wlog.info({ lanes: busy.length, callsInFlight: activity.calls.size, waitingFor: waitingFor() },
        busy.length ? 'writer stopping: no new call starts; waiting for the calls in flight and their results' : 'writer stopping: nothing in flight');
      const closing = listener.close().catch(() => {});
      // Each lane's claims go back as soon as its round has ended, so that one slow round (a Bulk job
      // still running at the stop's bound) keeps only its own entries PENDING for the next start.
      let handedBack = 0;
      const release = async (n: number | undefined): Promise<void> => {
        if (n === undefined) return;
        for (let attempt = 1; ; attempt++) {
          try {
            handedBack += await releaseClaims(db, connection.id, n);
            return;
          } catch (err) {
            if (attempt >= 3) {
              wlog.warn({ err, claimer: n }, 'could not hand claimed entries back; the next start takes them over');
              return;
            }
            await sleep(100 * attempt);
          }
        }
      };
      await Promise.all(busy.map((l) => l.running?.catch(() => {}).then(() => release(l.claimer))));
      for (const n of claimers) await release(n);
      await closing;
      wlog.info({ handedBack }, `writer stopped: calls in flight answered and recorded, ${handedBack} claimed entries handed back to the queue`);
      await lockClient?.end().catch(() => {});
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
