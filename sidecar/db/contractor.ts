// The contractor installs and upgrades hcsync's SQL: numbered plain-SQL files in sql/, applied in order,
// each in its own transaction under one advisory lock, recorded with a checksum in hc.migrations.
//
// A numbered file holds what must never change after release (tables, types, indexes, triggers,
// grants). Its functions and views live in sql/functions/ under the same name, applied where the numbered
// file says `--! functions`, and applied again (create or replace, under the same lock, with a
// lock_timeout) whenever their checksum differs from the one recorded in hc.function_files: a fix after
// release edits the function's own file.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export interface Migration {
  id: number;
  name: string;
  /** The numbered file (its checksum is the migration's). */
  text: string;
  checksum: string;
  /** A breaking migration changes what older code relies on: older code must refuse the database. */
  breaking: boolean;
  /** sql/functions/<name>.sql, applied at the numbered file's `--! functions` line. */
  functions?: { text: string; checksum: string };
}

/** Where a numbered file takes its functions file. */
export const FUNCTIONS_MARK = /^--! functions[^\n]*$/m;
/** While a functions file is applied: a SQL function's body may name a table of a later file. */
const FUNCTIONS_SETTINGS = "set local check_function_bodies = off; set local lock_timeout = '10s';";

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
      const fnFile = `${SQL_DIR}functions/${file}`;
      const fnText = existsSync(fnFile) ? readFileSync(fnFile, 'utf8') : undefined;
      if (fnText !== undefined && !FUNCTIONS_MARK.test(text)) {
        throw new Error(`sql/${file} has a functions file (sql/functions/${file}) but no "--! functions" line to apply it at`);
      }
      return {
        id: Number(num),
        name: `${num}_${name}`,
        text,
        checksum: sha256(text),
        breaking: /^--!\s*breaking/m.test(text),
        functions: fnText === undefined ? undefined : { text: fnText, checksum: sha256(fnText) },
      };
    });
  return cached;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The numbered file with its functions file in place of the `--! functions` line. */
function fullText(m: Migration): string {
  if (!m.functions) return m.text;
  const at = FUNCTIONS_MARK.exec(m.text)!;
  return [m.text.slice(0, at.index), FUNCTIONS_SETTINGS, m.functions.text, 'reset check_function_bodies; reset lock_timeout;',
    m.text.slice(at.index + at[0].length)].join('\n');
}

const RECORD_FUNCTIONS = `insert into hc.function_files as f (name, checksum) values ($1, $2)
  on conflict (name) do update set checksum = excluded.checksum, applied_at = now()`;

/**
 * Functions files whose recorded checksum differs from the file's (none recorded: its migration is
 * pending). None for an hcsync older than the database (`applied` holds migrations it does not know): it
 * would put older functions back.
 */
async function staleFunctions(client: pg.ClientBase, applied: AppliedRow[]): Promise<Migration[]> {
  if (applied.some((r) => r.id > latestVersion())) return [];
  if (!(await client.query(`select to_regclass('hc.function_files') is not null as ok`)).rows[0].ok) return [];
  const r = await client.query<{ name: string; checksum: string }>('select name, checksum from hc.function_files');
  const have = new Map(r.rows.map((x) => [x.name, x.checksum]));
  return migrations().filter((m) => m.functions && have.has(m.name) && have.get(m.name) !== m.functions.checksum);
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
);
create table if not exists hc.function_files (
  name        text primary key,
  checksum    text not null,
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
          // Then the functions files that changed since they were applied.
          const stale = (await staleFunctions(client, rows))[0];
          if (!stale) {
            await client.query('commit');
            return { applied: done };
          }
          await client.query(FUNCTIONS_SETTINGS);
          await client.query(stale.functions!.text);
          await client.query(RECORD_FUNCTIONS, [stale.name, stale.functions!.checksum]);
          await client.query('commit');
          done.push(`functions/${stale.name}`);
          continue;
        }
        await client.query(fullText(next));
        await client.query('insert into hc.migrations (id, name, checksum, breaking) values ($1, $2, $3, $4)', [
          next.id, next.name, next.checksum, next.breaking,
        ]);
        if (next.functions) await client.query(RECORD_FUNCTIONS, [next.name, next.functions.checksum]);
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
    const stale = await staleFunctions(client, rows);
    if (stale.length) {
      throw new SchemaError(
        `The database's hcsync functions of ${stale.map((m) => `sql/functions/${m.name}.sql`).join(', ')} are not this hcsync's. ` +
          'Run `hcsync migrate` (or apply the output of `hcsync sql` with psql -f).',
      );
    }
  } finally {
    await client.end();
  }
}

/**
 * One step of the install script: its own transaction under the migration lock, skipped (rolled back)
 * when `applied` (a boolean query) says it is in already.
 */
function scriptStep(title: string, applied: string, skipped: string[], body: string[]): string[] {
  return [`\n-- ${title}`, 'begin;', MIGRATE_LOCK + ';', `select ${applied} as skip \\gset`, '\\if :skip', ...skipped, 'rollback;', '\\else', ...body, 'commit;', '\\endif'];
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
    parts.push(...scriptStep(m.name, `exists (select 1 from hc.migrations where id = ${m.id})`,
      [`  \\echo 'migration ${m.name} already applied'`],
      [
        fullText(m).trim(),
        `insert into hc.migrations (id, name, checksum, breaking) values (${m.id}, '${m.name}', '${m.checksum}', ${m.breaking});`,
        ...(m.functions ? [`insert into hc.function_files (name, checksum) values ('${m.name}', '${m.functions.checksum}');`] : []),
      ]));
  }
  // Functions files changed since an earlier install: applied again.
  for (const m of migrations().filter((x) => x.functions)) {
    const f = m.functions!;
    parts.push(...scriptStep(`functions/${m.name}`, `exists (select 1 from hc.function_files where name = '${m.name}' and checksum = '${f.checksum}')`, [],
      [FUNCTIONS_SETTINGS, f.text.trim(), `update hc.function_files set checksum = '${f.checksum}', applied_at = now() where name = '${m.name}';`]));
  }
  return parts.join('\n') + '\n';
}
