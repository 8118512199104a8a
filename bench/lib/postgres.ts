// The Postgres server the benchmarks run against: the embedded server (fresh data directory, started
// here) or the one DATABASE_URL names. Each benchmark gets a database of its own, migrated, dropped
// afterwards, so one benchmark's leftovers never slow the next.
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../sidecar/demo/postgres.js';
import { migrate } from '../../sidecar/db/contractor.js';

export interface BenchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

export interface BenchServer {
  kind: 'embedded' | 'DATABASE_URL';
  adminUrl: string;
  version: string;
  /** Settings that move the numbers (durability, memory), as the server reports them. */
  settings: Record<string, string>;
  createDatabase(label: string, opts?: { migrated?: boolean }): Promise<BenchDatabase>;
  stop(): Promise<void>;
}

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = '/' + db;
  return u.toString();
}

const SETTINGS = ['fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections', 'wal_level'];

async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: url, application_name: 'hcsync bench' });
  await c.connect();
  try {
    return (await c.query<R>(sql)).rows;
  } finally {
    await c.end();
  }
}

export async function startBenchServer(): Promise<BenchServer> {
  let adminUrl = process.env.DATABASE_URL;
  let stop = async () => {};
  let kind: BenchServer['kind'] = 'DATABASE_URL';
  if (!adminUrl) {
    const server = await startEmbeddedPostgres(resolve('.data/bench-pg'), { fresh: true });
    adminUrl = server.url;
    stop = server.stop;
    kind = 'embedded';
  }
  const url = adminUrl;
  // Databases a crashed earlier run left behind on a shared server.
  for (const r of await adminQuery<{ datname: string }>(url, `select datname from pg_database where datname like 'hcsync\\_b\\_%'`)) {
    await adminQuery(url, `drop database if exists "${r.datname}" with (force)`);
  }
  const version = (await adminQuery<{ server_version: string }>(url, 'show server_version'))[0].server_version;
  const settings = Object.fromEntries(
    (await adminQuery<{ name: string; setting: string; unit: string | null }>(
      url,
      `select name, setting, unit from pg_settings where name in (${SETTINGS.map((s) => `'${s}'`).join(', ')})`,
    )).map((r) => [r.name, r.unit ? `${r.setting} (${r.unit})` : r.setting]),
  );
  return {
    kind,
    adminUrl: url,
    version,
    settings,
    async createDatabase(label, opts = {}) {
      const name = `hcsync_b_${label.replace(/[^a-z0-9]/g, '_')}_${randomBytes(3).toString('hex')}`;
      await adminQuery(url, `create database "${name}"`);
      const dbUrl = withDatabase(url, name);
      if (opts.migrated !== false) await migrate(dbUrl);
      return {
        url: dbUrl,
        name,
        drop: async () => {
          await adminQuery(url, `drop database if exists "${name}" with (force)`);
        },
      };
    },
    stop,
  };
}
