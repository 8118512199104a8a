// The contractor: ordered, locked, checksummed migrations; refusal of newer schemas; the psql script.
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { assertMigrated, installScript, migrate, migrations, SchemaError } from '../sidecar/db/contractor.js';
import { withDatabase } from './support/global-setup.js';
import { tempDir } from './support/tmp.js';

const created: string[] = [];

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: inject('adminUrl') });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** An empty database (not a clone of the migrated template). */
async function emptyDb(): Promise<string> {
  const name = `hcsync_t_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`create database "${name}"`));
  created.push(name);
  return withDatabase(inject('adminUrl'), name);
}

async function query(url: string, sql: string, params: unknown[] = []) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(sql, params);
  } finally {
    await c.end();
  }
}

afterAll(async () => {
  await admin(async (c) => {
    for (const name of created) await c.query(`drop database if exists "${name}" with (force)`);
  });
});

describe('migrate', () => {
  it('applies every migration in order, and two migrators started at once both finish', async () => {
    const url = await emptyDb();
    const [a, b] = await Promise.all([migrate(url), migrate(url)]);
    const all = migrations().map((m) => m.name);
    // Each migration ran exactly once, by one of the two.
    expect([...a.applied, ...b.applied].sort()).toEqual(all);
    const rows = await query(url, 'select id, name, checksum from hc.migrations order by id');
    expect(rows.rows.map((r) => r.name)).toEqual(all);
    expect(rows.rows.map((r) => r.checksum)).toEqual(migrations().map((m) => m.checksum));
    expect((await migrate(url)).applied).toEqual([]);
    await assertMigrated(url);
  });

  it('refuses a database migrated by a newer hcsync with a breaking change, saying what to do', async () => {
    const url = await emptyDb();
    await migrate(url);
    await query(url, `insert into hc.migrations (id, name, checksum, breaking) values (999999, '999999_from_the_future', 'x', true)`);
    const err = await migrate(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as Error).message).toMatch(/newer than this hcsync knows/);
    expect((err as Error).message).toMatch(/Run a newer hcsync/);
    await expect(assertMigrated(url)).rejects.toThrow(/Run a newer hcsync/);
  });

  it('tolerates a newer non-breaking migration (older code may keep running)', async () => {
    const url = await emptyDb();
    await migrate(url);
    await query(url, `insert into hc.migrations (id, name, checksum, breaking) values (999998, '999998_additive', 'x', false)`);
    await expect(assertMigrated(url)).resolves.toBeUndefined();
  });

  it('refuses a database whose applied migration differs from the shipped file', async () => {
    const url = await emptyDb();
    await migrate(url);
    await query(url, `update hc.migrations set checksum = 'edited' where id = 1`);
    await expect(assertMigrated(url)).rejects.toThrow(/checksum mismatch.*add a new migration/);
  });

  it('a functions file that changed since it was applied is applied again, and the sidecar refuses to start until then', async () => {
    const url = await emptyDb();
    await migrate(url);
    // As after an upgrade whose fix edited sql/functions/000001_core.sql: the database holds the old body.
    await query(url, `create or replace function hc._sync_log_last_id() returns bigint language sql as 'select 42::bigint'`);
    await query(url, `update hc.function_files set checksum = 'before the fix' where name = '000001_core'`);
    await expect(assertMigrated(url)).rejects.toThrow(/functions of sql\/functions\/000001_core\.sql are not this hcsync's.*Run `hcsync migrate`/);
    expect((await migrate(url)).applied).toEqual(['functions/000001_core']);
    expect((await query(url, 'select hc._sync_log_last_id() n')).rows[0].n).toBe('0');
    expect((await query(url, `select checksum from hc.function_files where name = '000001_core'`)).rows[0].checksum)
      .toBe(migrations()[0].functions!.checksum);
    // Still no role but the owner's may run what the file made (default privileges).
    expect((await query(url, `select has_function_privilege('public', 'hc._sync_log_last_id()', 'execute') ok`)).rows[0].ok).toBe(false);
    await assertMigrated(url);
    expect((await migrate(url)).applied).toEqual([]);
  });

  it('an hcsync older than the database leaves its functions alone (it would put older ones back)', async () => {
    const url = await emptyDb();
    await migrate(url);
    await query(url, `insert into hc.migrations (id, name, checksum, breaking) values (999998, '999998_additive', 'x', false)`);
    await query(url, `update hc.function_files set checksum = 'newer' where name = '000010_inbound'`);
    expect((await migrate(url)).applied).toEqual([]);
    expect((await query(url, `select checksum from hc.function_files where name = '000010_inbound'`)).rows[0].checksum).toBe('newer');
    await assertMigrated(url);
  });

  it('tells an unmigrated database to run hcsync migrate', async () => {
    const url = await emptyDb();
    await expect(assertMigrated(url)).rejects.toThrow(/Run `hcsync migrate`/);
  });
});

describe('sql/: tables apart from functions', () => {
  it('numbered files hold no function or view; each functions file has its numbered file and its "--! functions" line', () => {
    for (const f of readdirSync('sql').filter((x) => x.endsWith('.sql'))) {
      const text = readFileSync(`sql/${f}`, 'utf8');
      expect(text, f).not.toMatch(/^create or replace (function|view)/im);
    }
    for (const f of readdirSync('sql/functions')) {
      expect(readFileSync(`sql/${f}`, 'utf8'), f).toMatch(/^--! functions/m);
      expect(readFileSync(`sql/functions/${f}`, 'utf8'), f).not.toMatch(/^create (table|index|unique index|type|sequence|trigger)/im);
    }
    expect(migrations().filter((m) => m.functions).length).toBe(readdirSync('sql/functions').length);
  });
});

describe('hcsync sql (installScript)', () => {
  const sqlDir = tempDir('sql');
  it('applies cleanly with psql -v ON_ERROR_STOP=1 -f on a fresh database, and again (idempotent)', async () => {
    const url = await emptyDb();
    const file = join(sqlDir, 'hcsync.sql');
    writeFileSync(file, installScript());
    const run = () => execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', file, url], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    run();
    const second = run();
    expect(second).toContain('already applied');
    // A functions file changed since: the script applies it again.
    await query(url, `create or replace function hc._sync_log_last_id() returns bigint language sql as 'select 42::bigint'`);
    await query(url, `update hc.function_files set checksum = 'before the fix' where name = '000001_core'`);
    run();
    expect((await query(url, 'select hc._sync_log_last_id() n')).rows[0].n).toBe('0');
    await assertMigrated(url);
    const rows = await query(url, 'select name, checksum from hc.migrations order by id');
    expect(rows.rows).toEqual(migrations().map((m) => ({ name: m.name, checksum: m.checksum })));
    // The migrator agrees the database is complete, and the contract works.
    expect((await migrate(url)).applied).toEqual([]);
    await query(url, `select hc.create_connection('dba-installed')`);
    const t = await query(url, `select count(*)::int as n from pg_tables where schemaname = 'salesforce' and tablename like '\\_trigger\\_log%'`);
    expect(t.rows[0].n).toBe(2);
  });
});
