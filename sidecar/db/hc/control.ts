// The connection's control plane as the sidecar speaks it (sql/000004_control.sql, sql/000045_notifications.sql,
// sql/000060_budget.sql): finding or creating the connection at start, who leads it, its state, the API
// budget's gate and probe, and the notification webhook's queue. Each function runs on the session it is
// given (the sync pool, normally), one statement each.
import { exec, first, rows, sql, type Session } from './base.js';

// --- the connection ---------------------------------------------------------------------------------

/** The connection row of a schema, if there is one. */
export interface ConnectionRow {
  id: number;
  name: string;
  schema_name: string;
}

/** The connection whose schema is `schema`, or undefined. */
export async function findConnection(s: Session, schema: string): Promise<ConnectionRow | undefined> {
  return first<ConnectionRow>(s, sql`select id, name, schema_name from hc._connections(p_schema => ${schema})`);
}

/** Creates the connection (hc.create_connection, with its HC objects) and reads back its id and name. */
export async function createConnection(s: Session, name: string, schema: string): Promise<{ id: number; name: string }> {
  await exec(s, sql`select hc.create_connection(${name}, ${schema})`);
  return (await first<{ id: number; name: string }>(s, sql`select id, name from hc._connections(p_schema => ${schema})`))!;
}

/** The backend pid of the sidecar that leads the connection's inbound side (hc.inbound_leaders), or null/undefined when none. */
export async function inboundLeaderPid(s: Session, connectionId: number): Promise<number | null | undefined> {
  return (await first<{ pid: number | null }>(s, sql`select pid from hc.inbound_leaders where connection_id = ${connectionId}`))?.pid;
}

/** Sets the connection's state and message (hc.set_connection_state), as the sidecar reports it. */
export async function setConnectionState(s: Session, state: string, message: string | null, connectionName: string): Promise<void> {
  await exec(s, sql`select hc.set_connection_state(${state}, ${message}, ${connectionName})`);
}

/** The connection's current state, or undefined when the row is gone. */
export async function connectionState(s: Session, connectionId: number): Promise<string | undefined> {
  return (await first<{ state: string }>(s, sql`select state from hc._connections(p_id => ${connectionId})`))?.state;
}

// --- the API budget (sql/000060_budget.sql) -----------------------------------------------------------

/** The gate's answer: whether the work may run, the budget's level, and why not. */
export interface BudgetGate {
  go: boolean;
  level: string;
  reason: string | null;
}

/**
 * Asks hc.api_budget_gate whether `work` of a mapping (null: the writer) may run now; `interval` is its
 * own interval as text (`'600 seconds'`), or null.
 */
export async function budgetGate(s: Session, connectionId: number, mappingId: number | null, work: string, interval: string | null): Promise<BudgetGate> {
  return (await first<BudgetGate>(s, sql`select go, level, reason from hc.api_budget_gate(${connectionId}, ${mappingId}, ${work}, ${interval}::interval)`))!;
}

/** Whether no call has reported the org's use for `interval` (text, `'300 seconds'`): a GET /limits is due. */
export async function budgetProbeDue(s: Session, connectionId: number, interval: string): Promise<boolean | undefined> {
  return (await first<{ due: boolean }>(s, sql`select hc.api_budget_probe_due(${connectionId}, ${interval}::interval) as due`))?.due;
}

// --- the notification webhook's queue (sql/000045_notifications.sql) ---------------------------------

/** A notification to send. */
export interface NotificationToSend {
  id: string;
  at: Date;
  kind: string;
  object_name: string | null;
  message: string | null;
  detail: { count?: number } | null;
}

/** Leases up to 20 due notifications for `leaseSeconds` (hc.notification_claim), so no other sidecar sends them meanwhile. */
export async function claimNotifications(s: Session, connectionId: number, leaseSeconds: number): Promise<NotificationToSend[]> {
  return rows<NotificationToSend>(s, sql`select id, at, kind, object_name, message, detail from hc.notification_claim(${connectionId}, 20, ${leaseSeconds})`);
}

/** One webhook delivery attempt, as hc.notification_attempt records it. */
export interface NotificationAttempt {
  notificationId: string;
  target: string;
  status: number | null;
  error: string | null;
  ms: number;
  ok: boolean;
  maxAttempts: number;
  backoffSeconds: number;
}

/** Records a delivery attempt; answers how many attempts it has had and whether it was given up on. */
export async function recordNotificationAttempt(s: Session, a: NotificationAttempt): Promise<{ attempts: number; gave_up_at: Date | null } | undefined> {
  return first<{ attempts: number; gave_up_at: Date | null }>(
    s,
    sql`select attempts, gave_up_at from hc.notification_attempt(${a.notificationId}, ${a.target}, ${a.status}, ${a.error}, ${a.ms}, ${a.ok}, ${a.maxAttempts}, ${a.backoffSeconds})`,
  );
}

/** Milliseconds until the next retry of an undelivered notification of the last day is due (negative: overdue), or null when none waits. */
export async function nextNotificationDueMs(s: Session, connectionId: number): Promise<number | null> {
  const r = await first<{ ms: string | null }>(
    s,
    sql`select hc._notification_next_due_ms(${connectionId}) as ms`,
  );
  return r?.ms == null ? null : Number(r.ms); // (numeric arrives as text)
}
