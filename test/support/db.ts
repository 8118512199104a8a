// Per-file isolation in the manner of graphile-worker: each test file gets its own database cloned
// from the migrated template. A database whose file failed is kept (its psql string is printed) until a run three hours later clears it.
import { beforeEach, inject } from 'vitest';
import { randomBytes } from 'node:crypto';
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
