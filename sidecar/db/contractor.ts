// The contractor installs and upgrades hcsync's SQL: numbered plain-SQL files in sql/, applied in order,
// each in its own transaction under one advisory lock, recorded with a checksum in hc.migrations.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export interface Migration {
  id: number;
  name: string;
  text: string;
  checksum: string;
  /** A breaking migration changes what older code relies on: older code must refuse the database. */
  breaking: boolean;
}

const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
const FILE_RE = /^(\d{6})_([a-z0-9_]+)\.sql$/;
/** One lock for every hcsync migrator in the cluster: two at once queue, the second finds nothing to do. */
const MIGRATE_LOCK = 'select pg_advisory_xact_lock(hashtextextended(\'hcsync.migrate\', 0))';

let cached: Migration[] | undefined;

export function migrations(): Migration[] {
  if (cached) return cached;
  cached = readdirSync(SQL_DIR)
    .filter((f) => FILE_RE.test(f))
    .sort()
    .map((file) => {
      const [, num, name] = FILE_RE.exec(file)!;
      const text = readFileSync(SQL_DIR + file, 'utf8');
      return {
        id: Number(num),
        name: `${num}_${name}`,
        text,
        checksum: createHash('sha256').update(text).digest('hex'),
        breaking: /^--!\s*breaking/m.test(text),
      };
    });
  return cached;
}

export function latestVersion(): number {
  return migrations().at(-1)?.id ?? 0;
}

const BOOTSTRAP = `
create schema if not exists hc;
create table if not exists hc.migrations (
  id          integer primary key,
  name        text not null,
  checksum    text not null,
  breaking    boolean not null default false,
  applied_at  timestamptz not null default now()
);`;

export class SchemaError extends Error {}

interface AppliedRow { id: number; name: string; checksum: string; breaking: boolean }

async function applied(client: pg.ClientBase): Promise<AppliedRow[]> {
  const exists = await client.query(`select to_regclass('hc.migrations') is not null as ok`);
  if (!exists.rows[0].ok) return [];
  const r = await client.query<AppliedRow>('select id, name, checksum, breaking from hc.migrations order by id');
  return r.rows;
}

/** Throws a SchemaError naming the fix when this code must not run against the database as it is. */
export function checkCompatible(rows: AppliedRow[], known = migrations()): void {
  const latest = known.at(-1)?.id ?? 0;
  const newer = rows.filter((r) => r.id > latest);
  if (newer.some((r) => r.breaking)) {
    throw new SchemaError(
      `The database's hcsync schema is at migration ${rows.at(-1)!.name}, newer than this hcsync knows ` +
        `(${known.at(-1)?.name ?? 'none'}), and that change is breaking. Run a newer hcsync against this database.`,
    );
  }
  for (const r of rows) {
    const m = known.find((k) => k.id === r.id);
    if (m && m.checksum !== r.checksum) {
      throw new SchemaError(
        `Migration ${r.name} applied to this database differs from the file shipped with this hcsync ` +
          `(checksum mismatch). Migrations are never edited after release: restore sql/${r.name}.sql and add a new migration instead.`,
      );
    }
  }
}

/**
 * Applies every pending migration. Safe to run from several processes at once: each step takes the
 * advisory lock, then re-reads what is applied (the race check) before doing anything.
 */
export async function migrate(connectionString: string): Promise<{ applied: string[] }> {
  const client = new pg.Client({ connectionString, application_name: 'hcsync migrate' });
  // A session ended under us (a restart, pg_terminate_backend) fails the statement in flight; unheard,
  // the client's own 'error' event would kill the process instead of failing the start with a message.
  client.on('error', () => {});
  await client.connect();
  const done: string[] = [];
  try {
    for (;;) {
      await client.query('begin');
      try {
        await client.query(MIGRATE_LOCK);
        await client.query(BOOTSTRAP);
        const rows = await applied(client);
        checkCompatible(rows);
        const have = new Set(rows.map((r) => r.id));
        const next = migrations().find((m) => !have.has(m.id));
        if (!next) {
          await client.query('commit');
          return { applied: done };
        }
        await client.query(next.text);
        await client.query('insert into hc.migrations (id, name, checksum, breaking) values ($1, $2, $3, $4)', [
          next.id, next.name, next.checksum, next.breaking,
        ]);
        await client.query('commit');
        done.push(next.name);
      } catch (err) {
        await client.query('rollback').catch(() => {});
        throw err;
      }
    }
  } finally {
    await client.end();
  }
}

/** Refuses to start against a database that is behind (run migrate) or ahead in a breaking way. */
export async function assertMigrated(connectionString: string): Promise<void> {
  const client = new pg.Client({ connectionString, application_name: 'hcsync check' });
  client.on('error', () => {}); // as in migrate: the statement in flight fails instead
  await client.connect();
  try {
    const rows = await applied(client);
    checkCompatible(rows);
    const missing = migrations().filter((m) => !rows.some((r) => r.id === m.id));
    if (missing.length) {
      throw new SchemaError(
        `The database lacks hcsync migration(s) ${missing.map((m) => m.name).join(', ')}. ` +
          'Run `hcsync migrate` (or apply the output of `hcsync sql` with psql -f).',
      );
    }
  } finally {
    await client.end();
  }
}

/** The whole install as one psql script, for DBAs who apply SQL themselves (`hcsync sql`). */
export function installScript(): string {
  const parts = [
    '-- hcsync install script: apply with  psql -v ON_ERROR_STOP=1 -f hcsync.sql "$DATABASE_URL"',
    '-- Each migration runs in its own transaction and is skipped when already applied.',
    '\\set ON_ERROR_STOP on',
    BOOTSTRAP.trim(),
  ];
  for (const m of migrations()) {
    parts.push(
      `\n-- ${m.name}`,
      'begin;',
      MIGRATE_LOCK + ';',
      `select exists (select 1 from hc.migrations where id = ${m.id}) as skip \\gset`,
      '\\if :skip',
      `  \\echo 'migration ${m.name} already applied'`,
      'rollback;',
      '\\else',
      m.text.trim(),
      `insert into hc.migrations (id, name, checksum, breaking) values (${m.id}, '${m.name}', '${m.checksum}', ${m.breaking});`,
      'commit;',
      '\\endif',
    );
  }
  return parts.join('\n') + '\n';
}
