// The dashboard's reads and controls (sidecar/http/): each is one call of the SQL API (hc.* views and
// functions, sql/000004_control.sql, sql/000040_dashboard.sql and the files each names), plus the probes
// of /healthz and /metrics. Reads run on the pool they are given; a control runs inside `asPrincipal`,
// whose transaction first sets hcsync.principal, so the audit row the SQL function writes names the token
// that asked (hc.audit_log.principal).
import type pg from 'pg';
import { exec, first, rows, sql, type Session } from './base.js';

type Row = Record<string, unknown>;

// --- controls run as a principal -------------------------------------------------------------------

/**
 * Runs `work` in a transaction of its own on a client of `pool`, after setting hcsync.principal to the
 * caller's name for that transaction: committed when it returns, rolled back when it throws.
 */
export async function asPrincipal<T>(pool: pg.Pool, principal: string, work: (s: Session) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await exec(c, sql`begin`);
    await exec(c, sql`select set_config('hcsync.principal', ${principal}, true)`);
    const r = await work(c);
    await exec(c, sql`commit`);
    return r;
  } catch (err) {
    await exec(c, sql`rollback`).catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

// --- the probes (/healthz, /metrics) --------------------------------------------------------------

/** The connection's state, message and the state's category (error, …), or undefined. */
export async function connectionHealth(s: Session, connectionId: number): Promise<{ state: string; state_message: string | null; category: string } | undefined> {
  return first(s, sql<{ state: string; state_message: string | null; category: string }>`select state, state_message, category from hc._connection_health(${connectionId})`);
}

/** One sample of hc.metrics() or hc.api_budget_metrics(). */
export interface MetricSample {
  metric: string;
  labels: Record<string, string>;
  value: number;
}

/** Every gauge sample, read at scrape time: hc.metrics() and hc.api_budget_metrics(). */
export async function metricSamples(s: Session): Promise<MetricSample[]> {
  return rows<MetricSample>(s, sql`select metric, labels, value from hc.metrics() union all select metric, labels, value from hc.api_budget_metrics()`);
}

// --- the connection -------------------------------------------------------------------------------

/** The connection's hc.status row (state, message, counts, details), or undefined. */
export async function connectionStatus(s: Session, connectionId: number): Promise<Row | undefined> {
  return first<Row>(s, sql`select * from hc.status where connection_id = ${connectionId}`);
}

/** One of the database's own checks (hc.diagnose()). */
export interface Check {
  scope: string;
  subject: string;
  rule: string;
  status: string;
  message: string;
}

/** The database's checks (hc.diagnose()), in its order. */
export async function diagnose(s: Session): Promise<Check[]> {
  return rows<Check>(s, sql`select scope, subject, rule, status, message from hc.diagnose()`);
}

const CONNECTION_ACTIONS = { pause: sql`hc.pause`, resume: sql`hc.resume`, recover: sql`hc.recover` };

/** Pauses, resumes or recovers the connection (hc.pause / hc.resume / hc.recover). */
export async function controlConnection(s: Session, action: keyof typeof CONNECTION_ACTIONS, connectionName: string): Promise<void> {
  await exec(s, sql`select ${CONNECTION_ACTIONS[action]}(${connectionName})`);
}

/** Sets the write algorithm, 'ordered' or 'merged' (hc.set_write_algorithm). */
export async function setWriteAlgorithm(s: Session, algorithm: string, connectionName: string): Promise<void> {
  await exec(s, sql`select hc.set_write_algorithm(${algorithm}, ${connectionName})`);
}

/** The API budget (hc.api_budget): the org's use against its allowance, hcsync's calls, the forecast and the governor's level. */
export async function apiBudget(s: Session, connectionId: number): Promise<Row | undefined> {
  return first<Row>(
    s,
    sql`select used, allowance, used_percent, reported_at, own_calls_24h, own_calls_1h, forecast_used, forecast_percent,
              level, slow_percent, pause_percent, slow_factor, pause_writes, message
         from hc.api_budget where connection_id = ${connectionId}`,
  );
}

/** Rows and errors per time bucket, both directions (hc.dashboard_activity). */
export async function activity(s: Session, hours: number, object: string | null, connectionName: string): Promise<Row[]> {
  return rows<Row>(s, sql`select * from hc.dashboard_activity(${hours}, ${object}, ${connectionName})`);
}

/** Salesforce API calls per time bucket and the org's allowance (hc.dashboard_api_usage). */
export async function apiUsage(s: Session, hours: number, connectionName: string): Promise<Row[]> {
  return rows<Row>(s, sql`select * from hc.dashboard_api_usage(${hours}, ${connectionName})`);
}

// --- mappings ---------------------------------------------------------------------------------------

/** Every mapping of the connection with its counts (hc.mappings), by object name. */
export async function listMappings(s: Session, connectionId: number): Promise<Row[]> {
  return rows<Row>(s, sql`select * from hc.mappings where connection_id = ${connectionId} order by object_name`);
}

/** One mapping with its fields (hc.dashboard_mapping). */
export async function mappingDetail(s: Session, object: string, connectionName: string): Promise<unknown> {
  return (await first<{ m: unknown }>(s, sql`select hc.dashboard_mapping(${object}, ${connectionName}) as m`))!.m;
}

const MAPPING_REQUESTS = { reload: sql`hc.reload`, poll_now: sql`hc.poll_now`, abort: sql`hc.abort` };

/** Asks for a reload, a poll now, or the abort of a load (hc.reload / hc.poll_now / hc.abort). */
export async function requestMapping(s: Session, request: keyof typeof MAPPING_REQUESTS, object: string, connectionName: string): Promise<void> {
  await exec(s, sql`select ${MAPPING_REQUESTS[request]}(${object}, ${connectionName})`);
}

/** The mapping's object name as Salesforce spells it (hc._mapping raises when there is no such mapping). */
export async function mappingObjectName(s: Session, object: string, connectionName: string): Promise<string> {
  return (await first<{ object_name: string }>(s, sql`select (hc._mapping(${object}, ${connectionName})).object_name`))!.object_name;
}

/** The mapping's state (hc._mapping raises when there is no such mapping). */
export async function mappingState(s: Session, object: string, connectionName: string): Promise<string> {
  return (await first<{ state: string }>(s, sql`select (hc._mapping(${object}, ${connectionName})).state`))!.state;
}

/** Creates a mapping from its config (hc.create_mapping); answers its id. */
export async function createMapping(s: Session, object: string, config: unknown, connectionName: string): Promise<number> {
  return (await first<{ id: number }>(s, sql`select hc.create_mapping(${object}, ${JSON.stringify(config)}::jsonb, null, ${connectionName}) as id`))!.id;
}

/** Replaces the mapping's config (hc.update_mapping). */
export async function updateMapping(s: Session, object: string, config: unknown, connectionName: string): Promise<void> {
  await exec(s, sql`select hc.update_mapping(${object}, ${JSON.stringify(config)}::jsonb, null, ${connectionName})`);
}

/** Deletes the mapping, and its table when `dropTable` (hc.delete_mapping). */
export async function deleteMapping(s: Session, object: string, connectionName: string, dropTable: boolean): Promise<void> {
  await exec(s, sql`select hc.delete_mapping(${object}, ${connectionName}, ${dropTable})`);
}

// --- orphaned mappings --------------------------------------------------------------------------------

/** The connection's orphaned mappings (SYNC_REMOVED), from hc.mappings. */
export async function orphanedMappings(s: Session, connectionId: number): Promise<Row[]> {
  return rows<Row>(s, sql`select mapping_id, object_name, table_name, state, state_message, pg_rows from hc.mappings where connection_id = ${connectionId} and state = 'SYNC_REMOVED' order by object_name`);
}

/** Each mapping of the connection: id, object and state. */
export async function connectionMappings(s: Session, connectionId: number): Promise<Array<{ id: number; object_name: string; state: string }>> {
  return rows<{ id: number; object_name: string; state: string }>(s, sql`select id, object_name, state from hc._mapping_rows(p_connection_id => ${connectionId})`);
}

/**
 * The orphan check in one call: marks each mapping SYNC_REMOVED with its message
 * (hc.set_mapping_state), and audits the check with what it checked and found (hc._control).
 */
export async function markOrphans(s: Session, connectionId: number, detail: { checked: number; orphaned: string[] }, mappingIds: number[], messages: string[]): Promise<void> {
  await exec(s, sql`select hc._control(c, 'check_orphans', null, ${detail})
                      from hc._connections(p_id => ${connectionId}) c,
                           lateral (select count(*) from unnest(${mappingIds}::int[], ${messages}::text[]) x(id, msg),
                                                         lateral hc.set_mapping_state(x.id, 'SYNC_REMOVED', x.msg)) marked`);
}

// --- failed writes ----------------------------------------------------------------------------------

/** Failed writes of the connection's schema by mapping (table or object name) and by the text of Salesforce's message (any case). */
function writeErrorFilter(schema: string, table: string | null, match: string | null) {
  return sql`w.schema_name = ${schema} and (${table}::text is null or w.table_name = lower(${table}) or lower(w.object_name) = lower(${table}))
                  and (${match}::text is null or strpos(lower(w.sf_message), lower(${match})) > 0)`;
}

/** The failed writes (hc.write_errors) that match, newest first. */
export async function writeErrors(s: Session, schema: string, table: string | null, match: string | null): Promise<Row[]> {
  return rows<Row>(s, sql`select * from hc.write_errors w where ${writeErrorFilter(schema, table, match)} order by w.created_at desc, w.trigger_log_id desc`);
}

const WRITE_ERROR_ACTIONS = { retry: sql`hc.retry`, discard: sql`hc.discard` };

/** Retries or discards failed writes by id, by table, or all (hc.retry / hc.discard); answers how many. */
export async function actOnWriteErrors(s: Session, action: keyof typeof WRITE_ERROR_ACTIONS, ids: number[] | null, table: string | null, connectionName: string): Promise<number> {
  return (await first<{ n: number }>(s, sql`select ${WRITE_ERROR_ACTIONS[action]}(${ids}, ${table}, ${connectionName}) as n`))!.n;
}

/**
 * Retries or discards the failed writes whose message contains `match` (within the table, when given):
 * picked by id in the same statement, so the audit row lists exactly the ones acted on.
 */
export async function actOnMatchingWriteErrors(
  s: Session, action: keyof typeof WRITE_ERROR_ACTIONS, schema: string, table: string | null, match: string, connectionName: string,
): Promise<number> {
  return (await first<{ n: number }>(
    s,
    sql`select ${WRITE_ERROR_ACTIONS[action]}(coalesce((select array_agg(w.trigger_log_id order by w.trigger_log_id) from hc.write_errors w where ${writeErrorFilter(schema, table, match)}), '{}'), null, ${connectionName}) as n`,
  ))!.n;
}

// --- the Sync Explorer (sql/000046_explorer.sql) --------------------------------------------------------

/** A mapped table's rows by sync state and search (hc.dashboard_rows). */
export async function explorerRows(s: Session, object: string, state: string | null, q: string | null, limit: number, connectionName: string): Promise<unknown[]> {
  return (await rows<{ r: unknown }>(s, sql`select r from hc.dashboard_rows(${object}, ${state}, ${q}, ${limit}, ${connectionName}) r`)).map((x) => x.r);
}

/** One row whole, with the fields its mapping maps (hc.dashboard_record). */
export interface ExplorerRecord {
  object_name: string;
  row: Record<string, unknown>;
  fields: Array<{ field_name: string; column_name: string; sf_type: string }>;
}

/** One row of a mapped table whole (hc.dashboard_record). */
export async function explorerRecord(s: Session, object: string, id: number, connectionName: string): Promise<ExplorerRecord> {
  return (await first<{ r: ExplorerRecord }>(s, sql`select hc.dashboard_record(${object}, ${id}, ${connectionName}) as r`))!.r;
}

// --- conflicts (sql/000050_conflicts.sql) ---------------------------------------------------------------

/** The connection's conflicts (hc._conflicts_of: hc.conflicts): parked (open) first, then the newest. */
export async function listConflicts(s: Session, connectionId: number, object: string | null, state: 'open' | 'resolved' | 'all', limit: number): Promise<Row[]> {
  return rows<Row>(
    s,
    sql`select k.id, k.object_name, k.table_name, k.record_id, k.sfid, k.kind, k.fields, k.columns, k.pg_values, k.sf_values,
              k.base_values, k.pg_at, k.sf_at, k.policy, k.winner, k.origin, k.sf_overwritten, k.detected_at, k.resolved_at,
              k.resolved_by, k.resolution, k.resolved_at is null as open
         from hc._conflicts_of(${connectionId}, null, ${object}, case when ${state}::text = 'all' then null else ${state}::text = 'open' end) k
        order by k.resolved_at is null desc, k.id desc limit ${limit}`,
  );
}

/**
 * Resolves a conflict of this connection (hc.resolve_conflict) with 'pg', 'sf' or chosen values; answers
 * what it returns, or undefined when the connection has no such conflict (nothing ran).
 */
export async function resolveConflict(s: Session, conflictId: number, choice: unknown, connectionId: number): Promise<{ r: unknown } | undefined> {
  return first<{ r: unknown }>(s, sql`select hc.resolve_conflict(k.id, ${JSON.stringify(choice)}::jsonb) as r from hc._conflicts_of(${connectionId}, null, null, null, ${conflictId}) k`);
}

// --- notifications, logs, audit -----------------------------------------------------------------------

/** Notifications, newest first, with whether each still holds and its webhook delivery (hc.notifications_list). */
export async function listNotifications(s: Session, limit: number, connectionName: string): Promise<Row[]> {
  return rows<Row>(s, sql`select * from hc.notifications_list(${limit}, ${connectionName})`);
}

/** The sync log's filters: null for any. */
export interface SyncLogFilter {
  object: string | null;
  level: string | null;
  direction: string | null;
  event: string | null;
  before: number | null;
  limit: number;
}

/** The sync log (hc._sync_log: hc.sync_log), newest first: by mapping, level and worse, direction, event type, before an id. */
export async function syncLog(s: Session, connectionId: number, f: SyncLogFilter): Promise<Row[]> {
  return rows<Row>(
    s,
    sql`select l.id, l.at, l.direction, l.level, l.event, l.message, l.detail, l.object_name
         from hc._sync_log(${connectionId}, p_limit => ${f.limit}, p_object => ${f.object}, p_min_level => ${f.level},
                           p_direction => ${f.direction}, p_event => ${f.event}, p_before => ${f.before}) l
        order by l.id desc`,
  );
}

/** The sync log's event types in the period, with counts (hc.dashboard_log_events). */
export async function logEvents(s: Session, hours: number, connectionName: string): Promise<Row[]> {
  return rows<Row>(s, sql`select * from hc.dashboard_log_events(${hours}, ${connectionName})`);
}

/** The audit trail (hc._audit_trail: hc.audit_log) of the connection and of no connection, newest first; `limit`: the latest that many. */
export async function auditTrail(s: Session, connectionId: number, limit?: number): Promise<Row[]> {
  return rows<Row>(
    s,
    sql`select a.id, a.at, a.actor, a.principal, a.action, a.object_name, a.detail from hc._audit_trail(${connectionId}, ${limit ?? null}) a order by a.id desc`,
  );
}

// --- configuration export and import ------------------------------------------------------------------

/** The mapping JSON, Heroku Connect's export format v1 (hc.export_config). */
export async function exportConfig(s: Session, connectionName: string): Promise<unknown> {
  return (await first<{ c: unknown }>(s, sql`select hc.export_config(${connectionName}) as c`))!.c;
}

/** Imports a mapping JSON (hc.import_config); answers what it created, updated and left unchanged. */
export async function importConfig(s: Session, config: unknown, connectionName: string): Promise<unknown> {
  return (await first<{ r: unknown }>(s, sql`select hc.import_config(${JSON.stringify(config)}::jsonb, ${connectionName}) as r`))!.r;
}
