// The operator's side of the SQL boundary: the reads and controls the `hcsync` verbs and the demo make.
// Each is one call of the SQL API (what an operator can run from psql) or one read of its views, run on
// the session the caller holds (the CLI's admin session, or a pool). Errors of the SQL API (its message
// and hint, its SQLSTATE) reach the caller unchanged: the CLI prints them as they are.
import { exec, first, ident, rows, sql, type Session } from './base.js';

// ---------------------------------------------------------------------------------------------------
// Transactions

/** Runs `fn` in one transaction on the client `s`: begin, commit when it resolves, rollback when it throws. */
export async function inTransaction<T>(s: Session, fn: () => Promise<T>): Promise<T> {
  await exec(s, sql`begin`);
  try {
    const r = await fn();
    await exec(s, sql`commit`);
    return r;
  } catch (e) {
    await exec(s, sql`rollback`).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------
// The installed schema (diagnose)

/** One row of hc.migrations: a migration this database has applied. */
export interface AppliedMigration { id: number; name: string; checksum: string; breaking: boolean }

/** Whether hcsync is installed here at all (hc.migrations exists). */
export async function schemaInstalled(s: Session): Promise<boolean> {
  return (await first<{ ok: boolean }>(s, sql`select to_regclass('hc.migrations') is not null as ok`))!.ok;
}

/** The migrations applied to this database, oldest first. */
export async function appliedMigrations(s: Session): Promise<AppliedMigration[]> {
  return rows<AppliedMigration>(s, sql`select id, name, checksum, breaking from hc.migrations order by id`);
}

/** One check of hc.diagnose(): RED / YELLOW / GREEN for a rule, on the database or a mapping. */
export interface DiagnoseRow { scope: string; subject: string | null; rule: string; status: 'RED' | 'YELLOW' | 'GREEN' | 'SKIPPED'; message: string }

/** Whether the database has hc.diagnose() (an older or partial install may lack it). */
export async function hasDiagnose(s: Session): Promise<boolean> {
  return (await first<{ ok: boolean }>(s, sql`select to_regproc('hc.diagnose') is not null as ok`))!.ok;
}

/** The database's own checks (hc.diagnose()). */
export async function diagnoseChecks(s: Session): Promise<DiagnoseRow[]> {
  return rows<DiagnoseRow>(s, sql`select scope, subject, rule, status, message from hc.diagnose()`);
}

// ---------------------------------------------------------------------------------------------------
// Connections

/** The id of the connection syncing into `schema`, or undefined when there is none. */
export async function connectionIdBySchema(s: Session, schema: string): Promise<number | undefined> {
  return (await first<{ id: number }>(s, sql`select id from hc._connections(p_schema => ${schema})`))?.id;
}

/** Whether the database has no connection yet (a first import makes one). */
export async function noConnections(s: Session): Promise<boolean> {
  return (await first<{ none: boolean }>(s, sql`select not exists (select 1 from hc._connections()) as none`))!.none;
}

/** Creates a connection syncing into `schema` (hc.create_connection); returns nothing the callers use. */
export async function createConnection(s: Session, name: string, schema: string): Promise<void> {
  await exec(s, sql`select hc.create_connection(${name}, ${schema})`);
}

/** The connection's id (hc._connection raises naming the connections when `connection` is unknown or ambiguous). */
export async function connectionId(s: Session, connection: string | null): Promise<number> {
  return (await first<{ id: number }>(s, sql`select (hc._connection(${connection})).id`))!.id;
}

/** The connection's state, e.g. IDLE. */
export async function connectionState(s: Session, connection: string | null): Promise<string> {
  return (await first<{ state: string }>(s, sql`select (hc._connection(${connection})).state`))!.state;
}

/** A connection's name and state. */
export interface ConnectionState { name: string; state: string }

/** The state of each connection `connection` names (all when null), by name or schema. */
export async function connectionStates(s: Session, connection: string | null): Promise<ConnectionState[]> {
  return rows<ConnectionState>(s, sql`select name, state from hc._connections(${connection})`);
}

/** Stops syncing both ways (hc.pause); changes keep queueing in the trigger log. */
export async function pauseConnection(s: Session, connection: string | null): Promise<void> {
  await exec(s, sql`select hc.pause(${connection})`);
}

/** Syncs again from where it stopped (hc.resume). */
export async function resumeConnection(s: Session, connection: string | null): Promise<void> {
  await exec(s, sql`select hc.resume(${connection})`);
}

/** Clears an error state so the sidecar retries (hc.recover). */
export async function recoverConnection(s: Session, connection: string | null): Promise<void> {
  await exec(s, sql`select hc.recover(${connection})`);
}

// ---------------------------------------------------------------------------------------------------
// Status

/** A row of hc.status: one connection, its state and its counts (the columns the CLI reads by name, and the rest). */
export interface StatusRow { name: string; [column: string]: unknown }

/** A row of hc.mappings: one mapping, its state, rows and config. */
export interface MappingRow { object_name: string; state: string; config?: unknown; [column: string]: unknown }

/** A running sidecar's hold on a connection's change stream (hc.inbound_leaders). */
export interface LeaderRow { connection_name: string; pid: number; application_name: string | null }

/** hc.status for the connections `connection` names (all when null), by name or schema. */
export async function connectionStatus(s: Session, connection: string | null): Promise<StatusRow[]> {
  return rows<StatusRow>(s, sql`select * from hc.status where ${connection}::text is null or name = ${connection} or schema_name = ${connection}`);
}

/** hc.mappings for the connections `connection` names (all when null), by connection then object. */
export async function mappingsOf(s: Session, connection: string | null): Promise<MappingRow[]> {
  return rows<MappingRow>(
    s,
    sql`select * from hc.mappings where ${connection}::text is null or connection_name = ${connection} or schema_name = ${connection} order by connection_name, object_name`,
  );
}

/** The connections a sidecar is running for: the sessions that hold their change stream's lock. */
export async function runningSidecars(s: Session): Promise<LeaderRow[]> {
  return rows<LeaderRow>(s, sql`select connection_name, pid, application_name from hc.inbound_leaders where pid is not null`);
}

// ---------------------------------------------------------------------------------------------------
// The API budget governor

/** The governor's settings to change; null keeps a setting as it is (hc.set_api_budget). */
export interface BudgetSettings { slowPercent: number | null; pausePercent: number | null; slowFactor: number | null; pauseWrites: boolean | null }

/** A row of hc.api_budget: a connection's daily API use, forecast, level and settings. */
export interface BudgetRow {
  connection_name: string;
  level: string;
  used: number | null;
  allowance: number | null;
  used_percent: string | null;
  own_calls_24h: number;
  own_calls_1h: number;
  forecast_used: number | null;
  forecast_percent: string | null;
  message: string | null;
  slow_percent: number;
  pause_percent: number;
  slow_factor: number;
  pause_writes: boolean;
  [column: string]: unknown;
}

/** A mapping's own calls of the last 24 hours against its cap. */
export interface BudgetMappingRow { object_name: string; calls_24h: number; max_daily_api_calls: number | null; capped: boolean }

/** Work the governor holds back, and why. */
export interface BudgetWaitRow { object_name: string; work: string; status: string; cause: string | null; since: Date }

/** Changes the governor's settings (hc.set_api_budget); the database checks the ranges. */
export async function setApiBudget(s: Session, connection: string | null, b: BudgetSettings): Promise<void> {
  await exec(s, sql`select hc.set_api_budget(${connection}, ${b.slowPercent}, ${b.pausePercent}, ${b.slowFactor}, ${b.pauseWrites})`);
}

/** hc.api_budget for the connections `connection` names (all when null). */
export async function apiBudget(s: Session, connection: string | null): Promise<BudgetRow[]> {
  return rows<BudgetRow>(
    s,
    sql`select * from hc.api_budget where connection_id in (select id from hc._connections(${connection})) order by connection_name`,
  );
}

/** Each mapping's calls and cap (hc.api_budget_mappings) for the connections `connection` names. */
export async function apiBudgetMappings(s: Session, connection: string | null): Promise<BudgetMappingRow[]> {
  return rows<BudgetMappingRow>(
    s,
    sql`select object_name, calls_24h, max_daily_api_calls, capped from hc.api_budget_mappings where connection_id in (select id from hc._connections(${connection})) order by object_name`,
  );
}

/** What waits for the governor (hc._api_budget_waits: hc.api_budget_waits), the writer's waits as '(writer)'. */
export async function apiBudgetWaits(s: Session, connection: string | null): Promise<BudgetWaitRow[]> {
  return rows<BudgetWaitRow>(
    s,
    sql`select object_name, work, status, cause, since from hc._api_budget_waits(${connection}) order by 1, 2`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Configuration: export, import, mappings

/** The connection's mappings in Heroku Connect's export format (hc.export_config). */
export async function exportConfig(s: Session, connection: string | null): Promise<unknown> {
  return (await first<{ config: unknown }>(s, sql`select hc.export_config(${connection}) as config`))!.config;
}

/** Creates or updates the mappings of an export (hc.import_config); returns its summary. */
export async function importConfig(s: Session, config: unknown, connection: string | null): Promise<unknown> {
  return (await first<{ result: unknown }>(s, sql`select hc.import_config(${JSON.stringify(config)}::jsonb, ${connection}) as result`))!.result;
}

/** Maps an object (hc.create_mapping); the sidecar describes it, creates the table and loads it. Returns the mapping id. */
export async function createMapping(s: Session, object: string, config: unknown, connection: string | null): Promise<number> {
  return (await first<{ id: number }>(s, sql`select hc.create_mapping(${object}, ${JSON.stringify(config)}::jsonb, null, ${connection}) as id`))!.id;
}

/** Replaces a mapping's config (hc.update_mapping); the sidecar alters the table, keeping its rows. */
export async function updateMapping(s: Session, object: string, config: unknown, connection: string | null): Promise<void> {
  await exec(s, sql`select hc.update_mapping(${object}, ${JSON.stringify(config)}::jsonb, null, ${connection})`);
}

/** Removes a mapping (hc.delete_mapping), dropping its table unless `dropTable` is false. */
export async function deleteMapping(s: Session, object: string, connection: string | null, dropTable: boolean): Promise<void> {
  await exec(s, sql`select hc.delete_mapping(${object}, ${connection}, ${dropTable})`);
}

/** Whether any connection maps `object` (any letter case). */
export async function mappingExists(s: Session, object: string): Promise<boolean> {
  return (await rows(s, sql`select 1 from hc._mapping_rows() where lower(object_name) = lower(${object})`)).length > 0;
}

/** The mapping's id (hc._mapping raises "no mapping for object …" with the mapped objects as hint). */
export async function mappingId(s: Session, object: string, connection: string | null): Promise<number> {
  return (await first<{ id: number }>(s, sql`select (hc._mapping(${object}, ${connection})).id`))!.id;
}

/** Raises as hc._mapping does when `object` is not mapped in the connection; nothing otherwise. */
export async function assertMapped(s: Session, object: string, connection: string | null): Promise<void> {
  await exec(s, sql`select hc._mapping(${object}, ${connection})`);
}

/** The mapping's whole hc.mappings row. */
export async function mappingById(s: Session, id: number): Promise<MappingRow | undefined> {
  return first<MappingRow>(s, sql`select * from hc.mappings where mapping_id = ${id}`);
}

// ---------------------------------------------------------------------------------------------------
// Requests to the sidecar: reload, poll, abort

/** What a request did: 'reload', 'poll' or 'abort' requested, or 'cancelled' (a pending request taken back). */
export type RequestResult = string;

/** Asks the sidecar to reload the table from Salesforce (hc.reload). */
export async function requestReload(s: Session, object: string, connection: string | null): Promise<RequestResult> {
  return (await first<{ r: string }>(s, sql`select hc.reload(${object}, ${connection}) as r`))!.r;
}

/** Asks the sidecar to poll Salesforce for changes now (hc.poll_now). */
export async function requestPoll(s: Session, object: string, connection: string | null): Promise<RequestResult> {
  return (await first<{ r: string }>(s, sql`select hc.poll_now(${object}, ${connection}) as r`))!.r;
}

/** Asks the sidecar to abort the running load or poll (hc.abort). */
export async function requestAbort(s: Session, object: string, connection: string | null): Promise<RequestResult> {
  return (await first<{ r: string }>(s, sql`select hc.abort(${object}, ${connection}) as r`))!.r;
}

/** The statement an operator runs in psql to reload a mapping: what a message about a stopped load suggests. */
export function reloadStatement(object: string): string {
  return `select hc.reload('${object}')`;
}

/** A mapping as followed through a load: state, rows, and the progress the sidecar records. */
export interface MappingProgress {
  object_name: string;
  state: string;
  state_category: string;
  state_message: string | null;
  requested: string | null;
  pg_rows: number | null;
  progress: { rows?: number; total?: number; rate_per_s?: number; eta_s?: number | null } | null;
}

/** The progress of the mappings named (all when null, any letter case) in the connection named (all when null), by object. */
export async function mappingProgress(s: Session, objects: string[] | null, connection: string | null): Promise<MappingProgress[]> {
  return rows<MappingProgress>(
    s,
    sql`select m.object_name, m.state, m.state_category, m.state_message, m.requested, m.pg_rows, x.progress
         from hc.mappings m join hc._mapping_rows() x on x.id = m.mapping_id
        where (${objects}::text[] is null or lower(m.object_name) = any (${objects}))
          and (${connection}::text is null or m.connection_name = ${connection} or m.schema_name = ${connection})
        order by m.object_name`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Failed writes and conflicts

/** The failed writes a retry or discard applies to: these trigger log ids, or this table, or all (both null). */
export interface FailedSelection { ids: number[] | null; table: string | null }

/** Sends failed writes again (hc.retry); returns how many were re-queued. */
export async function retryFailedWrites(s: Session, sel: FailedSelection, connection: string | null): Promise<number> {
  return (await first<{ n: number }>(s, sql`select hc.retry(${sel.ids}::integer[], ${sel.table}, ${connection}) as n`))!.n;
}

/** Gives up failed writes, marking them IGNORED (hc.discard); returns how many. */
export async function discardFailedWrites(s: Session, sel: FailedSelection, connection: string | null): Promise<number> {
  return (await first<{ n: number }>(s, sql`select hc.discard(${sel.ids}::integer[], ${sel.table}, ${connection}) as n`))!.n;
}

/** A row of hc.write_errors: a write Salesforce rejected. */
export interface WriteErrorRow { object_name: string | null; sfid: string | null; sf_message: string | null; created_at: Date; [column: string]: unknown }

/** The writes Salesforce rejected in the last 24 hours, newest first, for one object (any case) or all. */
export async function recentWriteErrors(s: Session, object: string | null, connection: string | null): Promise<WriteErrorRow[]> {
  return rows<WriteErrorRow>(
    s,
    sql`select * from hc.write_errors
            where (${object}::text is null or lower(object_name) = lower(${object}))
              and (${connection}::text is null or connection_name = ${connection} or schema_name = ${connection})
              and created_at > now() - interval '24 hours'
            order by created_at desc`,
  );
}

/** A conflict between Postgres and Salesforce, as `hcsync conflicts` lists it. */
export interface ConflictRow {
  id: number;
  object_name: string;
  sfid: string | null;
  record_id: number | null;
  kind: string;
  fields: string;
  policy: string;
  winner: string;
  pg_values: unknown;
  sf_values: unknown;
  detected_at: Date;
  resolved_at: Date | null;
  resolution: unknown;
}

/** The connection's latest 200 conflicts, newest first: parked ones only unless `all`; one object (any case) or all. */
export async function conflicts(s: Session, connection: string | null, object: string | null, all: boolean): Promise<ConflictRow[]> {
  return rows<ConflictRow>(
    s,
    sql`select k.id, k.object_name, k.sfid, k.record_id, k.kind, array_to_string(k.fields, ',') as fields, k.policy,
                  coalesce(k.winner, 'parked') as winner, k.pg_values, k.sf_values, k.detected_at, k.resolved_at, k.resolution
             from hc._conflicts_of(null, ${connection}, ${object}, case when ${all}::boolean then null else true end) k
            order by k.id desc limit 200`,
  );
}

/** What hc.resolve_conflict reports: the conflict, and whose values won ('pg', 'sf' or 'values'). */
export interface Resolution { id: number; object_name: string; sfid: string; fields: string[]; kind: string; winner: 'pg' | 'sf' | 'values' }

/** Resolves a parked conflict with `choice`: 'pg', 'sf', or a JSON object of chosen values (hc.resolve_conflict). */
export async function resolveConflict(s: Session, id: string, choice: string): Promise<Resolution> {
  return (await first<{ r: Resolution }>(s, sql`select hc.resolve_conflict(${id}::bigint, ${choice}::text) as r`))!.r;
}

// ---------------------------------------------------------------------------------------------------
// The sync log and notifications

/** An entry of hc.sync_log with its mapping's object. */
export interface SyncLogRow {
  id: number;
  at: Date;
  level: string;
  direction: string | null;
  object_name: string | null;
  event: string;
  message: string | null;
  detail: unknown;
}

/**
 * The connection's sync log at `levels`, for one mapping or all (null), after the entry `after` (all when
 * null): the latest `limit` (all when null), newest first.
 */
export async function syncLog(
  s: Session,
  q: { connectionId: number; levels: string[]; mappingId: number | null; after: number | null; limit: number | null },
): Promise<SyncLogRow[]> {
  return rows<SyncLogRow>(
    s,
    sql`select l.id, l.at, l.level, l.direction, l.object_name, l.event, l.message, l.detail
                 from hc._sync_log(${q.connectionId}, p_limit => ${q.limit}, p_levels => ${q.levels}, p_mapping_id => ${q.mappingId}, p_after => ${q.after}) l
                order by l.id desc`,
  );
}

/** The id of the sync log's latest entry (0 when it is empty). */
export async function lastSyncLogId(s: Session): Promise<number> {
  return Number((await first<{ id: number }>(s, sql`select hc._sync_log_last_id() as id`))!.id);
}

/** A notification, still active or not, and its webhook delivery (hc.notifications_list). */
export interface NotificationRow {
  id: number;
  at: Date;
  kind: string;
  object_name: string | null;
  message: string;
  active: boolean;
  webhook: string | null;
  attempts: number | null;
  delivered_at: Date | null;
}

/** The latest `limit` notifications of the connection. */
export async function notifications(s: Session, limit: number, connection: string | null): Promise<NotificationRow[]> {
  return rows<NotificationRow>(s, sql`select * from hc.notifications_list(${limit}, ${connection})`);
}

// ---------------------------------------------------------------------------------------------------
// The demo's own database and data

/** Whether the cluster has a database named `name` (run on a session of another database). */
export async function databaseExists(s: Session, name: string): Promise<boolean> {
  return (await rows(s, sql`select 1 from pg_database where datname = ${name}`)).length > 0;
}

/** Creates the database `name`. */
export async function createDatabase(s: Session, name: string): Promise<void> {
  await exec(s, sql`create database ${ident(name)}`);
}

/** The first synced Account's sfid in the connection schema `schema` (what the demo's examples use). */
export async function firstAccountSfid(s: Session, schema: string): Promise<string | undefined> {
  return (await first<{ sfid: string }>(s, sql`select sfid from ${ident(schema, 'account')} where sfid is not null order by sfid limit 1`))?.sfid;
}
