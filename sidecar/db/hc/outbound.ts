// The writer's side of the outbound queue (sql/000020_outbound.sql): claimers and their locks, claims,
// the attempts recorded before creates are sent, outcomes, hand-backs, the archive, and the look for a
// dead writer's claims. Each function runs on the session it is given: the claimer's lock on the writer's
// dedicated lock session, a claim on the client a stop may cancel, the rest on the sync pool.
import { exec, first, rows, sql, type Session } from './base.js';

// --- claimers ---------------------------------------------------------------------------------------

/** A new claimer number (hc.outbound_new_claimer). */
export async function newClaimer(s: Session): Promise<number> {
  return (await first<{ n: number }>(s, sql`select hc.outbound_new_claimer() as n`))!.n;
}

/**
 * Takes the claimer's session-level advisory lock on `s` (the writer's lock session), waiting for it:
 * held for the writer's life (the key is derived from its name by hc.lock_class).
 */
export async function lockClaimer(s: Session, claimer: number): Promise<void> {
  await exec(s, sql`select pg_advisory_lock(hc.lock_class('writer'), ${claimer})`);
}

/**
 * Entries PENDING with no claim (Heroku Connect's writer stopped mid-round) back to NEW, when a writer
 * starts (hc.outbound_sweep_unclaimed); how many.
 */
export async function sweepUnclaimed(s: Session, connectionId: number): Promise<number> {
  return Number((await first<{ n: number }>(s, sql`select hc.outbound_sweep_unclaimed(${connectionId}) as n`))?.n ?? 0);
}

// --- a round: claim, attempts, outcomes -------------------------------------------------------------

/** Claims up to `limit` entries for `claimer` (hc.outbound_claim): one op per row, PENDING once this commits. */
export async function claimOps<Op = unknown>(s: Session, connectionId: number, claimer: number, limit: number): Promise<Op[]> {
  return (await rows<{ op: Op }>(s, sql`select hc.outbound_claim(${connectionId}, ${claimer}, ${limit}) as op`)).map((r) => r.op);
}

/** The connection's write algorithm ('ordered' or 'merged'), or undefined when the row is gone. */
export async function writeAlgorithm(s: Session, connectionId: number): Promise<string | undefined> {
  return (await first<{ write_algorithm: string }>(s, sql`select write_algorithm from hc._connections(p_id => ${connectionId})`))?.write_algorithm;
}

/** A create about to be sent, as hc.outbound_attempt records it (for the lost-create lookup). */
export interface CreateAttempt {
  op_id: number;
  table: string;
  record_id: number;
  object: string;
  upsert_field?: string | null;
  body: Record<string, unknown>;
}

/** Records that these creates are being sent (hc.outbound_attempt), before the call. */
export async function recordCreateAttempts(s: Session, connectionId: number, claimer: number, creates: CreateAttempt[]): Promise<void> {
  await exec(s, sql`select hc.outbound_attempt(${connectionId}, ${claimer}, ${JSON.stringify(creates)})`);
}

/** Records the records the lost-create lookup found (hc.outbound_found): later rounds take them as found. */
export async function recordFound(s: Session, connectionId: number, claimer: number, found: { op_id: number; table: string; record_id: number; sfid: string }[]): Promise<void> {
  if (!found.length) return;
  await exec(s, sql`select hc.outbound_found(${connectionId}, ${claimer}, ${JSON.stringify(found)})`);
}

/** Records Salesforce's answers for the claimer's entries (hc.outbound_complete). */
export async function completeOps(s: Session, connectionId: number, claimer: number,
  outcomes: { op_id: number; outcome: string; sfid?: string; error?: string }[]): Promise<void> {
  // Only what Salesforce answered: what each op was, its claim recorded.
  const answers = outcomes.map(({ op_id, outcome, sfid, error }) => ({ op_id, outcome, sfid, error }));
  await exec(s, sql`select hc.outbound_complete(${connectionId}, ${claimer}, ${JSON.stringify(answers)})`);
}

/** Hands what the claimer holds back to the queue (hc.outbound_release); answers how many entries. */
export async function releaseClaims(s: Session, connectionId: number, claimer: number): Promise<number> {
  return Number((await first<{ n: number }>(s, sql`select hc.outbound_release(${connectionId}, ${claimer}) as n`))?.n ?? 0);
}

/** Moves finished entries to the archive and drops archived ones older than the retention (hc.outbound_archive). */
export async function archiveOutbound(s: Session, connectionId: number, retentionDays: number): Promise<void> {
  await exec(s, sql`select hc.outbound_archive(${connectionId}, ${retentionDays})`);
}

// --- take-over and stop -----------------------------------------------------------------------------

/**
 * Whether a writer that is gone left claims (its lock is free), or records held after such a take-over
 * are due: a round would take them over (hc._outbound_orphaned).
 */
export async function hasOrphanedClaims(s: Session, connectionId: number): Promise<boolean> {
  const r = await first<{ orphaned: boolean }>(s, sql`select hc._outbound_orphaned(${connectionId}) as orphaned`);
  return !!r?.orphaned;
}

/** Cancels the statements running on these backends (a stop's cancel of claims under way). */
export async function cancelBackends(s: Session, pids: number[]): Promise<void> {
  await exec(s, sql`select pg_cancel_backend(pid) from unnest(${pids}::int[]) pid`);
}

// --- lost creates ------------------------------------------------------------------------------------

/** Ids among `ids` that an application row of `table` already holds (hc.outbound_held_sfids). */
export async function heldSfids(s: Session, connectionId: number, table: string, ids: string[]): Promise<string[]> {
  return (await first<{ held: string[] }>(s, sql`select hc.outbound_held_sfids(${connectionId}, ${table}, ${ids}) as held`))!.held;
}
