// Reading records from Salesforce (REST query pages, Bulk CSV pages) and handing them to the SQL
// apply function. No row logic here: hc.inbound_merge decides what a row does to the table.
import { Readable } from 'node:stream';
import type pg from 'pg';
import { parse } from 'csv-parse/sync';
import type { Sf } from '../../salesforce/client.js';
import { count, queryPages } from '../../salesforce/rest.js';
import { createStage, dropStage, mergeJsonRows, mergeStagedPage, type MappingRow, type MergeResult, type StagedTable } from '../../db/hc/inbound.js';

export type { MappingRow, MergeResult };

export type SfRecord = Record<string, unknown>;

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
export async function* restQuery(sf: Sf, soql: string, opts: { scanAll?: boolean } = {}): AsyncGenerator<{ records: SfRecord[]; totalSize: number }> {
  for await (const page of queryPages(sf, soql, opts)) {
    yield { records: page.records.map((r) => flatten(r)), totalSize: page.totalSize };
  }
}

/** SELECT COUNT() of an object, optionally with a WHERE clause. */
export function countRecords(sf: Sf, objectName: string, where = ''): Promise<number> {
  return count(sf, objectName, where);
}

/** Applies JSON rows (keys = SOQL names) through hc.inbound_merge on the given client or pool. */
export async function mergeRows(db: pg.Pool | pg.PoolClient, mappingId: number, fields: string[], rows: SfRecord[], origin: string): Promise<MergeResult> {
  if (!rows.length) return { applied: 0, deleted: 0, failed: 0, conflicts: 0, skipped_deleted: 0 };
  const present = fields.filter((f) => f === 'Id' || rows.some((r) => f in r));
  return mergeJsonRows(db, mappingId, present, JSON.stringify(rows), origin);
}

/**
 * The first line of a CSV stream (its header), and the whole CSV again as a stream, header included, for
 * COPY … (format csv, header true). Only the chunks up to the first line break are read ahead. Null for an
 * empty stream.
 */
export async function headerOf(body: Readable): Promise<{ header: string; csv: Readable } | null> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let head = Buffer.alloc(0);
  for (;;) {
    const r = await it.next();
    if (r.done) return head.length ? { header: head.toString('utf8').replace(/\r?\n$/, ''), csv: Readable.from([head]) } : null;
    head = Buffer.concat([head, typeof r.value === 'string' ? Buffer.from(r.value) : r.value]);
    const nl = head.indexOf(10);
    if (nl < 0) continue;
    const first = head;
    const rest = async function* () {
      yield first;
      for (let x = await it.next(); !x.done; x = await it.next()) yield x.value;
    };
    return { header: first.subarray(0, nl).toString('utf8').replace(/\r$/, ''), csv: Readable.from(rest(), { objectMode: false }) };
  }
}

/**
 * A staging table for CSV pages on one dedicated session: each page is COPYed in as text (COPY parses
 * the CSV, header row skipped) and merged by one set-based call, then the table is emptied.
 */
export class CsvStage {
  private constructor(private readonly client: pg.PoolClient, private readonly staged: StagedTable, private readonly mappingId: number) {}

  static async open(db: pg.Pool, mappingId: number, fields: string[]): Promise<CsvStage> {
    const client = await db.connect();
    let staged: StagedTable;
    try {
      staged = await createStage(client, mappingId, fields);
    } catch (e) {
      client.release();
      throw e;
    }
    return new CsvStage(client, staged, mappingId);
  }

  /**
   * COPYs one page as it is read and merges it, in one transaction; `alsoInTx` runs in it too (it may read
   * the staged page). `rows`: the rows the page held.
   */
  async apply(page: Readable, origin: string, alsoInTx?: (client: pg.PoolClient, staged: StagedTable) => Promise<unknown>): Promise<MergeResult & { rows: number }> {
    const split = await headerOf(page);
    if (!split) return { applied: 0, deleted: 0, failed: 0, conflicts: 0, skipped_deleted: 0, rows: 0 };
    const header = (parse(split.header) as string[][])[0];
    return mergeStagedPage(this.client, this.mappingId, this.staged, header, split.csv, origin, alsoInTx);
  }

  async close(): Promise<void> {
    await dropStage(this.client, this.staged);
    this.client.release();
  }
}
