// Salesforce → Postgres as the sidecar speaks it (sql/000010_inbound.sql and the inbound functions after
// it): the inbound leadership, a mapping's lifecycle, loads and reloads, polls, change-event batches, the
// drift sweep, and the staging tables pages are COPYed into. Each function runs one statement on the
// session it is given: the sync pool, the leader's dedicated session, or a checked-out client that holds a
// transaction or a session's temp table (COPY needs such a client: those functions take a pg.PoolClient).
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { exec, first, ident, qb, rows, sql, type Session } from './base.js';

// --- what the inbound side reads of a mapping --------------------------------------------------------

/** A mapping as the inbound workers read it (hc._mapping_rows: hc._mappings with its state's phase). */
export interface MappingRow {
  id: number;
  object_name: string;
  table_name: string;
  config: { sf_notify_enabled?: boolean; sf_polling_seconds?: number; upsert_field?: string; fields?: Record<string, unknown> };
  state: string;
  /**
   * What the state asks of the sidecar (hc.mapping_states.phase): describe the object and build the table,
   * then load; load (read every record); reload (read every record again into the live table); stay live;
   * or nothing.
   */
  phase: 'describe' | 'load' | 'reload' | 'live' | 'stopped';
  requested: string | null;
  /** Bumped by every config change (hc.update_mapping). */
  revision?: number;
}

/** What hc.inbound_merge did with a set of rows. */
export interface MergeResult {
  applied: number;
  deleted: number;
  failed: number;
  conflicts: number;
  skipped_deleted: number;
}

// --- the connection and its inbound leadership -------------------------------------------------------

/** Binds the connection to its org (hc.bind_org); refused when the connection belongs to another org. */
export async function bindOrg(s: Session, connectionId: number, orgId: string, apiVersion: string): Promise<void> {
  await rows(s, sql`select hc.bind_org(${connectionId}, ${orgId}, ${apiVersion})`);
}

/**
 * Tries for the connection's inbound lead on `s` (hc.inbound_try_lead: a session-level advisory lock, so
 * `s` must be the leader's own dedicated session): the leadership's epoch, or null when another holds it.
 */
export async function tryInboundLead(s: Session, connectionId: number): Promise<number | null> {
  return (await first<{ epoch: number | null }>(s, sql`select hc.inbound_try_lead(${connectionId}) as epoch`))!.epoch;
}

/** A round trip on `s`: fails when the session is gone (the leader's check that it still holds the lock). */
export async function ping(s: Session): Promise<void> {
  await rows(s, sql`select 1`);
}

/** The connection's mappings with their state's phase, in id order. */
export async function listMappings(s: Session, connectionId: number): Promise<MappingRow[]> {
  return rows<MappingRow>(
    s,
    sql`select m.id, m.object_name, m.table_name, m.config, m.state, m.phase, m.requested, m.revision
         from hc._mapping_rows(p_connection_id => ${connectionId}) m order by m.id`,
  );
}

/** Nudges every listener of hc_control about the connection of `schema` (its mappings are re-read). */
export async function nudgeControl(s: Session, schema: string): Promise<void> {
  await rows(s, sql`select pg_notify('hc_control', ${schema})`);
}

// --- a mapping's lifecycle ---------------------------------------------------------------------------

/** Moves the mapping to `state` with `message` (hc.set_mapping_state; 55000 when the step is not allowed). */
export async function setMappingState(s: Session, mappingId: number, state: string, message: string | null): Promise<void> {
  await rows(s, sql`select hc.set_mapping_state(${mappingId}, ${state}, ${message})`);
}

/** Takes (clears) the mapping's pending request: what was asked, or null. */
export async function takeRequest(s: Session, mappingId: number): Promise<string | null> {
  return (await first<{ r: string | null }>(s, sql`select hc.take_request(${mappingId}) as r`))!.r;
}

/** The mapping's state and phase as they are now, or undefined when the mapping is gone. */
export async function mappingPhase(s: Session, mappingId: number): Promise<{ state: string; phase: MappingRow['phase'] } | undefined> {
  return first(s, sql<{ state: string; phase: MappingRow['phase'] }>`select m.state, m.phase from hc._mapping_rows(p_id => ${mappingId}) m`);
}

/** The mapping's state and state message, or undefined when the mapping is gone. */
export async function mappingStateMessage(s: Session, mappingId: number): Promise<{ state: string; state_message: string | null } | undefined> {
  return first(s, sql<{ state: string; state_message: string | null }>`select state, state_message from hc._mapping_rows(p_id => ${mappingId})`);
}

/**
 * Validates the config against the object's describe and builds the table (hc.apply_mapping_ddl), and
 * moves the mapping to POLLING_SF_CHANGES ('table ready: loading') in the same statement, so the table and
 * the load's state commit together.
 */
export async function buildTableAndStartLoad(s: Session, mappingId: number, describe: unknown): Promise<void> {
  await rows(s, sql`select hc.set_mapping_state(${mappingId}, 'POLLING_SF_CHANGES', 'table ready: loading') from (select hc.apply_mapping_ddl(${mappingId}, ${describe})) ddl`);
}

/** The Salesforce fields an inbound read selects (hc.inbound_soql_fields). */
export async function soqlFields(s: Session, mappingId: number): Promise<string[]> {
  return (await first<{ f: string[] }>(s, sql`select hc.inbound_soql_fields(${mappingId}) as f`))!.f;
}

/** The mapped formula (calculated) fields, which change events do not carry (hc.inbound_calculated_fields). */
export async function calculatedFields(s: Session, mappingId: number): Promise<string[]> {
  return (await first<{ f: string[] }>(s, sql`select hc.inbound_calculated_fields(${mappingId}) as f`))!.f;
}

// --- positions and clocks (hc.sync_positions) --------------------------------------------------------

/** The change stream position stored for the mapping (channel and replay id), or undefined when none. */
export async function storedPosition(s: Session, mappingId: number): Promise<{ replay_channel: string | null; replay_id: string | null } | undefined> {
  return first(s, sql<{ replay_channel: string | null; replay_id: string | null }>`select replay_channel, replay_id from hc._sync_position(${mappingId})`);
}

/** The poll watermark: the latest SystemModstamp applied by a read, or null. */
export async function pollWatermark(s: Session, mappingId: number): Promise<Date | null> {
  return (await first<{ poll_watermark: Date | null }>(s, sql`select poll_watermark from hc._sync_position(${mappingId})`))?.poll_watermark ?? null;
}

/** Moves the mapping's poll and delete watermarks to `watermark` (hc.inbound_position). */
export async function setWatermarks(s: Session, mappingId: number, watermark: Date | null): Promise<void> {
  await rows(s, sql`select hc.inbound_position(${mappingId}, p_poll_watermark => ${watermark}, p_delete_watermark => ${watermark})`);
}

/** Records that a poll finished (hc.inbound_polled). */
export async function markPolled(s: Session, mappingId: number): Promise<void> {
  await rows(s, sql`select hc.inbound_polled(${mappingId})`);
}

/** When the next drift sweep is due, sweeping every `everyMs` (hc.inbound_drift_due), or null. */
export async function driftDue(s: Session, mappingId: number, everyMs: number): Promise<Date | null> {
  return (await first<{ t: Date | null }>(s, sql`select hc.inbound_drift_due(${mappingId}, ${`${everyMs / 1000} seconds`}::interval) as t`))?.t ?? null;
}

/** Records that a drift sweep ran (hc.inbound_drift_checked): the sweep's clock counts from now. */
export async function markDriftChecked(s: Session, mappingId: number): Promise<void> {
  await rows(s, sql`select hc.inbound_drift_checked(${mappingId})`);
}

/** When every record's id was last compared with the table (or read), or null. */
export async function reconciledAt(s: Session, mappingId: number): Promise<Date | null> {
  return (await first<{ reconciled_at: Date | null }>(s, sql`select reconciled_at from hc._sync_position(${mappingId})`))?.reconciled_at ?? null;
}

/** Records that every record was read or compared at `at` (hc.inbound_reconciled). */
export async function markReconciled(s: Session, mappingId: number, at: Date): Promise<void> {
  await rows(s, sql`select hc.inbound_reconciled(${mappingId}, ${at})`);
}

/** When the next queued re-read (hc.inbound_rereads) is due, or null when none is queued. */
export async function rereadsNext(s: Session, mappingId: number): Promise<Date | null> {
  return (await first<{ t: Date | null }>(s, sql`select hc.inbound_rereads_next(${mappingId}) as t`))?.t ?? null;
}

// --- loads and reloads -------------------------------------------------------------------------------

/** Starts a reload (hc.inbound_begin_reload; 55006 when local changes are pending). */
export async function beginReload(s: Session, mappingId: number): Promise<void> {
  await rows(s, sql`select hc.inbound_begin_reload(${mappingId})`);
}

/** Notes the ids a reload has read (hc.inbound_reload_seen). */
export async function noteReloadSeen(s: Session, mappingId: number, ids: string[]): Promise<void> {
  await rows(s, sql`select hc.inbound_reload_seen(${mappingId}, ${ids})`);
}

/** Notes the ids of a staged page (`staged`: a CsvStage table of this session) as read by the reload. */
export async function noteReloadSeenStaged(s: Session, mappingId: number, staged: StagedTable): Promise<void> {
  await rows(s, sql`select hc.inbound_reload_seen(${mappingId}, array(select "Id" from ${sql.raw(staged)}))`);
}

/** Ends a reload: removes the rows not read since `since` (hc.inbound_finish_reload); how many. */
export async function finishReload(s: Session, mappingId: number, since: Date): Promise<number> {
  return (await first<{ n: number }>(s, sql`select hc.inbound_finish_reload(${mappingId}, ${since}) as n`))!.n;
}

/** Records a load's progress (rows, rate, ETA) for the dashboard (hc.inbound_progress). */
export async function noteProgress(s: Session, mappingId: number, progress: Record<string, unknown>): Promise<void> {
  await rows(s, sql`select hc.inbound_progress(${mappingId}, ${progress})`);
}

/** Logs a finished load or reload (hc.inbound_log: hc.sync_log, event 'load' or 'reload'). */
export async function logLoadComplete(s: Session, connectionId: number, mappingId: number, event: 'load' | 'reload', message: string, detail: Record<string, unknown>): Promise<void> {
  await rows(s, sql`select hc.inbound_log(${connectionId}, ${mappingId}, ${event}, ${message}, ${detail})`);
}

// --- applying rows -----------------------------------------------------------------------------------

/** Applies JSON rows (keys = SOQL names, `fields` those present) through hc.inbound_merge. */
export async function mergeJsonRows(s: Session, mappingId: number, fields: string[], rowsJson: string, origin: string): Promise<MergeResult> {
  return (await first<{ r: MergeResult }>(s, sql`select hc.inbound_merge(${mappingId}, ${'json'}, ${fields}, ${rowsJson}, ${origin}) as r`))!.r;
}

/** Removes the rows of records Salesforce no longer has (hc.inbound_delete); how many. */
export async function deleteRecords(s: Session, mappingId: number, ids: string[], origin: string): Promise<number> {
  return (await first<{ n: number }>(s, sql`select hc.inbound_delete(${mappingId}, ${ids}, ${origin}) n`))!.n;
}

/** What a change-event batch needs before it is read: which updated records the table has, which re-reads are due. */
export async function batchPreread(s: Session, schema: string, table: string, updateIds: string[], mappingId: number): Promise<{ known: string[]; due: string[] }> {
  return (await first<{ known: string[]; due: string[] }>(
    s,
    sql`select (select coalesce(array_agg(sfid), '{}') from ${ident(schema, table)} where sfid = any(${updateIds})) as known, hc.inbound_rereads_due(${mappingId}) as due`,
  ))!;
}

/** Applies a change-event batch (JSON) with its replay id, in one transaction (hc.inbound_apply). */
export async function applyBatch(s: Session, mappingId: number, batchJson: string): Promise<{ deferred?: number; reread?: number }> {
  return (await first<{ r: { deferred?: number; reread?: number } }>(s, sql`select hc.inbound_apply(${mappingId}, ${batchJson}) as r`))!.r;
}

// --- CSV staging (a temp table on one checked-out client) --------------------------------------------

/** A staging table's name as SQL text (`pg_temp.hc_stage_<mapping id>`). */
export type StagedTable = string;

/** The staging table of a mapping's CSV pages, on the client's session. */
export function stageName(mappingId: number): StagedTable {
  return `pg_temp.hc_stage_${mappingId}`;
}

/** (Re)creates the mapping's staging table on `c`, one text column per field. */
export async function createStage(c: pg.PoolClient, mappingId: number, fields: string[]): Promise<StagedTable> {
  const name = `hc_stage_${mappingId}`;
  await exec(c, sql`drop table if exists ${sql.raw(`pg_temp.${name}`)}`);
  await exec(c, sql`create temp table ${sql.raw(name)} (${sql.join(fields.map((f) => sql`${sql.id(f)} text`))})`);
  return stageName(mappingId);
}

/**
 * COPYs one CSV page (its `header` the page's first row) into the staging table and merges it through
 * hc.inbound_merge, in one transaction on `c`; `alsoInTx` runs in it too, after the merge (it may read the
 * staged page). The table is emptied before the commit.
 */
export async function mergeStagedPage(
  c: pg.PoolClient, mappingId: number, staged: StagedTable, header: string[], csv: Readable, origin: string,
  alsoInTx?: (client: pg.PoolClient, staged: StagedTable) => Promise<unknown>,
): Promise<MergeResult & { rows: number }> {
  const copy = sql`copy ${sql.raw(staged)} (${sql.join(header.map((h) => sql.id(h)))}) from stdin with (format csv, header true)`.compile(qb).sql;
  await exec(c, sql`begin`);
  try {
    const into = c.query(copyStreams.from(copy));
    await pipeline(csv, into);
    const r = (await first<{ r: MergeResult }>(c, sql`select hc.inbound_merge(${mappingId}, ${staged}, ${header}, null, ${origin}) as r`))!.r;
    if (alsoInTx) await alsoInTx(c, staged);
    await exec(c, sql`truncate ${sql.raw(staged)}`);
    await exec(c, sql`commit`);
    return { ...r, rows: into.rowCount };
  } catch (e) {
    await exec(c, sql`rollback`).catch(() => {});
    throw e;
  }
}

/** Drops the staging table (errors ignored: the session may be gone). */
export async function dropStage(c: pg.PoolClient, staged: StagedTable): Promise<void> {
  await exec(c, sql`drop table if exists ${sql.raw(staged)}`).catch(() => {});
}

// --- the drift sweep ---------------------------------------------------------------------------------

/** The table's rows that have a Salesforce id. */
export async function countSyncedRows(s: Session, schema: string, table: string): Promise<number> {
  return Number((await first<{ n: number }>(s, sql`select count(*) n from ${ident(schema, table)} where sfid is not null`))!.n);
}

/** Creates (or empties) the session's id listing, hc_drift_ids, on `c`. */
export async function openIdListing(c: pg.PoolClient): Promise<void> {
  await exec(c, sql`create temp table if not exists hc_drift_ids (sfid text, smod timestamp)`);
  await exec(c, sql`truncate hc_drift_ids`);
}

/** Adds REST records (Id, SystemModstamp) to the id listing on `c`. */
export async function listIds(c: pg.PoolClient, recordsJson: string): Promise<void> {
  await exec(c, sql`insert into hc_drift_ids select x."Id", (x."SystemModstamp")::timestamptz at time zone 'UTC' from jsonb_to_recordset(${recordsJson}) as x("Id" text, "SystemModstamp" text)`);
}

/** Creates the CSV landing table of the id listing (hc_drift_csv) on `c`. */
export async function openCsvIdListing(c: pg.PoolClient): Promise<void> {
  await exec(c, sql`create temp table if not exists hc_drift_csv (sfid text, smod text)`);
}

/** COPYs a Bulk 2.0 CSV page (Id, SystemModstamp) into the id listing on `c` (Postgres parses CSV and timestamps). */
export async function listCsvIds(c: pg.PoolClient, csv: Readable): Promise<void> {
  await exec(c, sql`truncate hc_drift_csv`);
  await pipeline(csv, c.query(copyStreams.from('copy hc_drift_csv (sfid, smod) from stdin with (format csv, header true)')));
  await exec(c, sql`insert into hc_drift_ids select sfid, nullif(smod, '')::timestamptz at time zone 'UTC' from hc_drift_csv`);
}

/** Drops the CSV landing table of the id listing. */
export async function closeCsvIdListing(c: pg.PoolClient): Promise<void> {
  await exec(c, sql`drop table hc_drift_csv`);
}

/** Indexes and analyzes the complete id listing on `c`, before it is compared. */
export async function indexIdListing(c: pg.PoolClient): Promise<void> {
  await exec(c, sql`create index if not exists hc_drift_ids_sfid on hc_drift_ids (sfid)`);
  await exec(c, sql`analyze hc_drift_ids`);
}

/** What hc.inbound_reconcile settled and what it leaves to be re-read by id. */
export interface ReconcileResult {
  removed: number;
  reread: string[];
  missing: number;
  stale: number;
  check: number;
}

/** Compares the id listing on `c` (listed at `listedAt`) with the table (hc.inbound_reconcile). */
export async function reconcileIdListing(c: pg.PoolClient, mappingId: number, listedAt: Date): Promise<ReconcileResult> {
  return (await first<{ r: ReconcileResult }>(c, sql`select hc.inbound_reconcile(${mappingId}, ${'pg_temp.hc_drift_ids'}, ${listedAt}) r`))!.r;
}

/** Drops the id listing on `c`. */
export async function dropIdListing(c: pg.PoolClient): Promise<void> {
  await exec(c, sql`drop table hc_drift_ids`);
}

/** Logs what a drift sweep repaired (hc.inbound_log: hc.sync_log, a warning, event 'drift'). */
export async function logDriftRepair(s: Session, connectionId: number, mappingId: number, message: string, detail: Record<string, unknown>): Promise<void> {
  await rows(s, sql`select hc.inbound_log(${connectionId}, ${mappingId}, 'drift', ${message}, ${detail}, 'warn')`);
}
