// Reading records from Salesforce (REST query pages, Bulk CSV pages) and handing them to the SQL
// apply function. No row logic here: hc.inbound_merge decides what a row does to the table.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { parse } from 'csv-parse/sync';
import copyStreams from 'pg-copy-streams';
import type { SalesforceClient } from '../../salesforce/client.js';

export type SfRecord = Record<string, unknown>;

export interface MergeResult {
  applied: number;
  deleted: number;
  failed: number;
  conflicts: number;
  skipped_deleted: number;
}

export interface MappingRow {
  id: number;
  object_name: string;
  table_name: string;
  config: { sf_notify_enabled?: boolean; sf_polling_seconds?: number; upsert_field?: string; fields?: Record<string, unknown> };
  state: string;
  requested: string | null;
  /** Bumped by every config change (hc.update_mapping). */
  revision?: number;
}

/** REST record → flat object keyed like Bulk CSV headers: attributes dropped, parents as Rel.Field. */
export function flatten(rec: SfRecord, prefix = '', out: SfRecord = {}): SfRecord {
  for (const [k, v] of Object.entries(rec)) {
    if (k === 'attributes') continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && 'attributes' in (v as object)) flatten(v as SfRecord, `${prefix}${k}.`, out);
    else out[prefix + k] = v;
  }
  return out;
}

/** Salesforce datetime literal for SOQL (whole seconds, UTC). */
export function soqlDateTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Pages of a REST query (or queryAll), each page's records flattened; follows nextRecordsUrl. */
export async function* restQuery(sf: SalesforceClient, soql: string, opts: { scanAll?: boolean } = {}): AsyncGenerator<{ records: SfRecord[]; totalSize: number }> {
  let url: string | undefined = `${sf.basePath}/${opts.scanAll ? 'queryAll' : 'query'}?q=${encodeURIComponent(soql)}`;
  while (url) {
    const res = (await sf.conn.request(url)) as { totalSize: number; done: boolean; nextRecordsUrl?: string; records: SfRecord[] };
    yield { records: (res.records ?? []).map((r) => flatten(r)), totalSize: res.totalSize };
    url = res.done === false && res.nextRecordsUrl ? res.nextRecordsUrl : undefined;
  }
}

export async function countRecords(sf: SalesforceClient, objectName: string, where = ''): Promise<number> {
  const res = (await sf.conn.request(`${sf.basePath}/query?q=${encodeURIComponent(`SELECT COUNT() FROM ${objectName}${where ? ` WHERE ${where}` : ''}`)}`)) as { totalSize: number };
  return Number(res.totalSize);
}

/** Applies JSON rows (keys = SOQL names) through hc.inbound_merge on the given client or pool. */
export async function mergeRows(db: pg.Pool | pg.PoolClient, mappingId: number, fields: string[], rows: SfRecord[], origin: string): Promise<MergeResult> {
  if (!rows.length) return { applied: 0, deleted: 0, failed: 0, conflicts: 0, skipped_deleted: 0 };
  const present = fields.filter((f) => f === 'Id' || rows.some((r) => f in r));
  const res = await db.query('select hc.inbound_merge($1, $2, $3, $4, $5) as r', [mappingId, 'json', present, JSON.stringify(rows), origin]);
  return res.rows[0].r as MergeResult;
}

/**
 * A staging table for CSV pages on one dedicated session: each page is COPYed in as text (COPY parses
 * the CSV, header row skipped) and merged by one set-based call, then the table is emptied.
 */
export class CsvStage {
  private constructor(private readonly client: pg.PoolClient, private readonly name: string, private readonly mappingId: number) {}

  static async open(db: pg.Pool, mappingId: number, fields: string[]): Promise<CsvStage> {
    const client = await db.connect();
    const name = `hc_stage_${mappingId}`;
    try {
      await client.query(`drop table if exists pg_temp.${name}`);
      await client.query(`create temp table ${name} (${fields.map((f) => `"${f.replace(/"/g, '""')}" text`).join(', ')})`);
    } catch (e) {
      client.release();
      throw e;
    }
    return new CsvStage(client, name, mappingId);
  }

  /** COPY one page and merge it, in one transaction; `alsoInTx` runs in it too (it may read the staged page). */
  async apply(csv: string, origin: string, alsoInTx?: (client: pg.PoolClient, staged: string) => Promise<unknown>): Promise<MergeResult> {
    const nl = csv.indexOf('\n');
    if (nl < 0 || !csv.slice(nl + 1).trim()) return { applied: 0, deleted: 0, failed: 0, conflicts: 0, skipped_deleted: 0 };
    const header = (parse(csv.slice(0, nl)) as string[][])[0];
    const cols = header.map((h) => `"${h.replace(/"/g, '""')}"`).join(', ');
    await this.client.query('begin');
    try {
      await pipeline(Readable.from([csv]), this.client.query(copyStreams.from(`copy pg_temp.${this.name} (${cols}) from stdin with (format csv, header true)`)));
      const r = await this.client.query(`select hc.inbound_merge($1, $2, $3, null, $4) as r`, [this.mappingId, `pg_temp.${this.name}`, header, origin]);
      if (alsoInTx) await alsoInTx(this.client, `pg_temp.${this.name}`);
      await this.client.query(`truncate pg_temp.${this.name}`);
      await this.client.query('commit');
      return r.rows[0].r as MergeResult;
    } catch (e) {
      await this.client.query('rollback').catch(() => {});
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.client.query(`drop table if exists pg_temp.${this.name}`).catch(() => {});
    this.client.release();
  }
}
