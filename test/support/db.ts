// Per-file isolation in the manner of graphile-worker: each test file gets its own database cloned
// from the migrated template. A database whose file failed is kept (its psql string is printed) until a run three hours later clears it.
import { beforeEach, inject } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { withDatabase } from './global-setup.js';

export interface TestDb {
  url: string;
  name: string;
  pool: pg.Pool;
  /** Runs SQL as an application would (xmlbinary = base64, captured by the triggers). */
  query: pg.Pool['query'];
  drop(): Promise<void>;
}

// Whether a test of this file failed: its databases are then kept (and named) instead of dropped.
// Registered when a test file imports this module, so it applies to every test of that file.
let fileFailed = false;
beforeEach((ctx) => {
  ctx.onTestFailed(() => {
    fileFailed = true;
  });
});

export async function createTestDb(): Promise<TestDb> {
  const adminUrl = inject('adminUrl');
  const template = inject('templateDb');
  // The creation time in the name lets a later run tell leftovers from another run's live databases.
  const name = `hcsync_t_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database "${name}" template "${template}"`);
  await admin.end();
  const url = withDatabase(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // The forced drop below terminates sessions that are still closing; that is expected, not a failure.
  pool.on('error', () => {});
  return {
    url,
    name,
    pool,
    query: pool.query.bind(pool) as pg.Pool['query'],
    drop: async () => {
      await pool.end();
      if (fileFailed) {
        console.error(`a test failed: its database is kept for inspection: psql "${url}"`);
        return;
      }
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`drop database if exists "${name}" with (force)`);
      await a.end();
    },
  };
}

/**
 * The embedded server's reports of deadlocks in database `name` (its log lines from "deadlock detected" to
 * the statement), for an assertion's message: which two statements waited on each other. Empty on a
 * server of DATABASE_URL (its log is its own).
 */
export function deadlockReports(name: string): string {
  const file = process.env.HCSYNC_TEST_PG_LOG;
  if (!file || !existsSync(file)) return '';
  const out: string[] = [];
  let pid = '';   // the process whose deadlock report is being read
  let cur = '';   // the process of the last log line (its indented lines follow it)
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    // A log line: "<timestamp> [<pid>] <database> LEVEL:  text"; the DETAIL's lines that follow are indented.
    const m = /^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[(\d+)\] (\S*) (\w+):/.exec(line);
    if (m) {
      cur = m[1];
      if (m[2] === name && line.includes('deadlock detected')) pid = cur;
      else if (cur === pid && !['DETAIL', 'HINT', 'CONTEXT', 'STATEMENT'].includes(m[3])) pid = '';
    }
    if (pid && cur === pid) out.push(line);
  }
  return out.join('\n');
}

/**
 * The tuples of a table (by default the queue, salesforce._trigger_log) read so far by the session's
 * uncommitted work, and by its last transactions until the statistics are flushed: take differences.
 * An index scan counts its reads on the index, so the table's indexes are summed with it.
 */
export async function tuplesRead(c: pg.ClientBase, table = 'salesforce._trigger_log'): Promise<number> {
  return Number((await c.query(`select sum(pg_stat_get_xact_tuples_returned(r) + pg_stat_get_xact_tuples_fetched(r)) as n
                                  from (select $1::regclass::oid r union all select indexrelid from pg_index where indrelid = $1::regclass) x`, [table])).rows[0].n);
}
