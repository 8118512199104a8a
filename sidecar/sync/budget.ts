// The API budget governor's door on the sidecar's side. The decisions are SQL's (hc.api_budget_gate in
// sql/000060_budget.sql): before each background read (a poll, a drift sweep with its row count, a
// reconciliation) and before each write round the sidecar asks, and does what it is told. The answer's
// reason is already where operators look (state messages, hc.api_budget_waits, /metrics); here it is
// only logged when it changes.
import type { SyncContext } from '../context.js';
import { budgetGate } from '../db/hc/control.js';

export type BudgetWork = 'poll' | 'drift' | 'reconcile' | 'write';

const lastReason = new Map<string, string | null>();

async function ask(ctx: SyncContext, mappingId: number | null, work: BudgetWork, intervalMs?: number): Promise<boolean> {
  const r = await budgetGate(ctx.db, ctx.connection.id, mappingId, work, intervalMs === undefined ? null : `${intervalMs / 1000} seconds`);
  const key = `${ctx.connection.id}/${mappingId ?? '-'}/${work}`;
  const reason = r.go ? null : r.reason;
  if (lastReason.get(key) !== reason) {
    if (reason) ctx.log.warn({ mappingId, work, level: r.level }, `${work} waits: ${reason}`);
    else if (lastReason.get(key)) ctx.log.info({ mappingId, work, level: r.level }, `${work} goes again (API budget)`);
    lastReason.set(key, reason);
  }
  return r.go;
}

/** Whether a mapping's background read may run now. `intervalMs`: its own interval (stretched when slow). */
export function budgetAllows(ctx: SyncContext, m: { id: number }, work: Exclude<BudgetWork, 'write'>, intervalMs?: number): Promise<boolean> {
  return ask(ctx, m.id, work, intervalMs);
}

/** Whether the writer may send now (false only at the paused level with pause_writes set). */
export function writesAllowed(ctx: SyncContext): Promise<boolean> {
  return ask(ctx, null, 'write');
}
