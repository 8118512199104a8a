// Postgres → Salesforce: the writer. Wakes on "<schema>.hc_trigger_log" (and on hc_control for
// pause/resume/algorithm changes), claims work in SQL, sends it, reports the answers to SQL.
//
// Claiming identity: a dedicated session holds pg_advisory_lock(1751347065, claimer) for the writer's
// life; SQL treats PENDING entries of a claimer without that lock as abandoned (see 000020_outbound).
//
// Cadence: no fixed debounce. When the writer is idle a change is claimed and sent at once. Changes
// that arrive while a call is in flight form the next batch; while they are still streaming in (a
// burst) the writer lets a batch fill up to one call's worth before claiming, never waiting longer
// than the quiet gap between two notifications.
import pg from 'pg';
import type { Service, SyncContext } from '../../context.js';
import { backoff, listen } from '../../db/notifier.js';
import { lockSession } from '../../db/pool.js';
import { adoptLostCreates } from './adopt.js';
import { BATCH, InFlight, send, type Op, type Outcome } from './salesforce.js';

const LOCK_CLASS = 1751347065;

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
}

export async function startOutbound(ctx: SyncContext, opts: OutboundOptions = {}): Promise<Service> {
  const { db, log, sf, connection, config } = ctx;
  const wlog = log.child({ part: 'outbound' });
  const claimLimit = opts.claimLimit ?? 2000;
  const channel = `${connection.schema}.hc_trigger_log`;

  let stopped = false;
  let claimer: number | undefined;
  let lockClient: pg.Client | undefined;

  async function takeClaimer(): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      let n: number | undefined;
      const c = lockSession(config.databaseUrl, 'hcsync writer', (err) => {
        if (n === undefined) return; // while registering: the attempt fails and is made again
        wlog.warn({ err, claimer: n }, 'writer session lost: its claims will be taken over');
        if (claimer === n) claimer = undefined;
      });
      try {
        await c.connect();
        n = (await c.query('select hc.outbound_new_claimer() as n')).rows[0].n as number;
        await c.query('select pg_advisory_lock($1, $2)', [LOCK_CLASS, n]);
        c.on('end', () => {
          if (claimer === n) claimer = undefined;
        });
        lockClient = c;
        claimer = n;
        wlog.info({ claimer: n }, 'writer claimer registered');
        return n;
      } catch (err) {
        await c.end().catch(() => {});
        if (stopped) throw err;
        const wait = backoff(attempt, 10_000);
        wlog.warn({ err, retryInMs: wait }, 'cannot register the writer yet');
        await sleep(wait);
      }
    }
  }

  // --- the loop -------------------------------------------------------------------------------------
  let running: Promise<void> | undefined;
  let again = false;
  let nudges = 0;
  let failures = 0;
  let lastArchive = 0;
  let lastRoundSent = false;
  let lastCallMs = 50;
  const inflight = new InFlight(5 * (opts.callTimeoutMs ?? 120_000));

  function wake(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = loop()
      .catch(async (err) => {
        wlog.error({ err }, 'writer round failed; retrying');
        failures++;
        // What this writer holds goes back to the queue: a live writer's claims are never taken over,
        // so without this its entries would stay PENDING. Creates keep their attempts (lost-create lookup).
        if (claimer !== undefined) {
          await db.query('select hc.outbound_release($1, $2)', [connection.id, claimer])
            .catch((e) => wlog.warn({ err: e }, 'cannot give claimed work back yet; the next round takes it over'));
        }
        setTimeout(wake, backoff(failures, opts.maxBackoffMs ?? 10_000));
      })
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          wake();
        }
      });
  }

  async function gather(): Promise<void> {
    // Only under load: the previous round sent something and notifications are still arriving.
    if (!lastRoundSent) return;
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

  async function loop(): Promise<void> {
    while (!stopped) {
      again = false;
      const me = claimer ?? (await takeClaimer());
      await gather();
      const tClaim = Date.now();
      const claimed = await db.query('select hc.outbound_claim($1, $2, $3) as op', [connection.id, me, claimLimit]);
      const claimMs = Date.now() - tClaim;
      const ops = claimed.rows.map((r) => r.op as Op);
      // Bulk 2.0 for large batches is the ordered writer's (merged batches are condensed already).
      const ordered = ops.length > 1 && (await db.query('select write_algorithm from hc.connections where id = $1', [connection.id])).rows[0]?.write_algorithm === 'ordered';
      if (!ops.length) {
        lastRoundSent = false;
        await maybeArchive();
        if (!again) return;
        continue;
      }
      const t0 = Date.now();
      let outcomes: Outcome[];
      try {
        // Held records (an earlier call may still land) are not looked up yet: the lookup could miss it.
        await adoptLostCreates(sf.conn, db, connection.id, ops.filter((o) => !inflight.holds(o)));
        outcomes = await send(sf.conn, ops, {
          timeoutMs: opts.callTimeoutMs,
          inflight,
          bulkThreshold: ordered ? (opts.bulkThreshold ?? config.bulkWriteThreshold) : undefined,
          beforeCreate: async (creates) => {
            await db.query('select hc.outbound_attempt($1, $2, $3)', [
              connection.id, me,
              JSON.stringify(creates.map((o) => ({
                op_id: o.op_id, table: o.table, record_id: o.record_id, object: o.object, upsert_field: o.upsert_field,
                body: o.upsert_field ? { ...o.body, [o.upsert_field]: o.upsert_value } : o.body,
              }))),
            ]);
          },
        });
      } catch (err) {
        // Looking up lost creates failed (Salesforce unreachable): everything goes back to the queue.
        wlog.warn({ err }, 'Salesforce unavailable: claimed work returns to the queue');
        outcomes = ops.map((o) => ({ op_id: o.op_id, action: o.action, outcome: 'retry' as const, error: String((err as Error).message) }));
      }
      const calls = Math.max(1, Math.ceil(ops.length / BATCH));
      lastCallMs = (Date.now() - t0) / calls;
      const tComplete = Date.now();
      await complete(me, outcomes);
      const completeMs = Date.now() - tComplete;
      const counts = { ok: 0, failed: 0, retry: 0 };
      for (const o of outcomes) counts[o.outcome]++;
      wlog.debug({ ops: ops.length, ...counts, claimMs, sendMs: tComplete - t0, completeMs }, 'outbound round');
      lastRoundSent = true;
      if (counts.retry) {
        failures++;
        const wait = backoff(failures, opts.maxBackoffMs ?? 10_000);
        wlog.warn({ retry: counts.retry, retryInMs: wait, error: outcomes.find((o) => o.outcome === 'retry')?.error }, 'transient Salesforce failure: retrying later');
        await sleep(wait);
      } else {
        failures = 0;
      }
      await maybeArchive();
    }
  }

  /**
   * Records the outcomes. Salesforce has already acted on them, so a deadlock or serialization failure
   * (a transaction of the read side or of the application holding the same rows) is retried at once
   * with the same outcomes: the claims are still ours. Only when that keeps failing does the round fail,
   * and its claims go back to the queue (the round's catch).
   */
  async function complete(me: number, outcomes: Outcome[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await db.query('select hc.outbound_complete($1, $2, $3)', [connection.id, me, JSON.stringify(outcomes)]);
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (!(code === '40P01' || code === '40001' || code === '55P03') || attempt >= 5 || stopped) throw err;
        wlog.warn({ err, attempt }, 'recording results met a lock conflict; recording them again');
        await sleep(backoff(attempt, 1000, 10));
      }
    }
  }

  async function maybeArchive(): Promise<void> {
    if (Date.now() - lastArchive < 1000) return;
    lastArchive = Date.now();
    await db.query('select hc.outbound_archive($1, $2)', [connection.id, config.archiveRetentionDays]);
  }

  await takeClaimer();
  const listener = await listen(
    config.databaseUrl,
    [channel, 'hc_control'],
    (ch, payload) => {
      if (ch === channel) nudges++;
      if (ch === channel || payload === connection.schema) wake();
    },
    { log: wlog, onConnect: wake, application_name: 'hcsync writer listen' },
  );
  const sweep = setInterval(wake, opts.sweepMs ?? 30_000);
  // Take-over: a writer that died (kill -9, a lost host) leaves its claims PENDING until some claim puts
  // them back; with no new change to wake us that would be the sweep, 30 s later. Its lock is gone at
  // once, so a cheap look on the standby beat (HC_INBOUND_STANDBY_MS) finds them and a round sends them.
  const orphans = setInterval(() => {
    if (stopped || running) return;
    db.query(
      `select exists (select 1 from hc._outbound_claims k
                       where k.connection_id = $1 and not hc._outbound_claimer_alive(k.claimer)) as orphaned`,
      [connection.id],
    )
      .then((r) => {
        if (r.rows[0]?.orphaned) {
          wlog.info('claims of a writer that is gone: taking them over');
          wake();
        }
      })
      .catch(() => {}); // the database is away: the next beat looks again
  }, config.inbound.standbyMs);
  orphans.unref();
  wake();

  return {
    async stop() {
      stopped = true;
      clearInterval(sweep);
      clearInterval(orphans);
      await listener.close();
      await running?.catch(() => {});
      if (claimer !== undefined) {
        await db.query('select hc.outbound_release($1, $2)', [connection.id, claimer]).catch(() => {});
      }
      await lockClient?.end().catch(() => {});
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
