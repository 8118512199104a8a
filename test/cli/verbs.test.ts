// Every database verb of `hcsync` against a real Postgres: what it prints, what it changes, and that bad
// input (unknown mapping, bad JSON, wrong DATABASE_URL) changes nothing and exits with the documented
// code. The verbs run in the test's process (cli(), test/support/cli.ts); newcomer.test.ts checks that the
// built binary exits with the same codes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDb, type TestDb } from '../support/db.js';
import { cli, contactConfig } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

let db: TestDb;
let env: Record<string, string>;
const dir = tempDir('cli');


async function mappings(): Promise<{ object_name: string; state: string; requested: string | null }[]> {
  return (await db.query('select object_name, state, requested from hc._mappings order by object_name')).rows;
}
async function audit(): Promise<number> {
  return Number((await db.query('select count(*) from hc.audit_log')).rows[0].count);
}

beforeAll(async () => {
  db = await createTestDb();
  env = { DATABASE_URL: db.url };
  await db.query(`select hc.create_connection('cli-test', 'salesforce')`);
});
afterAll(async () => {
  await db?.drop();
});

describe('hcsync (database verbs)', () => {
  it('migrate finds the database up to date, sql prints the install script', async () => {
    const m = await cli(['migrate'], env);
    expect(m.stderr).toBe('');
    expect(m.stdout).toContain('database is up to date');
    expect(m.code).toBe(0);
    const s = await cli(['sql'], {});
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/^-- hcsync install script/);
    expect(s.stdout).toContain('-- 000030_ops');
  });

  it('mapping:create from a config file, then mapping:state and status show it', async () => {
    const file = join(dir, 'contact.json');
    writeFileSync(file, JSON.stringify(contactConfig));
    const r = await cli(['mapping:create', 'Contact', '--config', file], env);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('mapping Contact created');
    expect(r.code).toBe(0);
    expect(await mappings()).toEqual([{ object_name: 'Contact', state: 'INITIAL', requested: null }]);

    const state = await cli(['mapping:state', 'contact'], env);
    expect(state.stdout.trim()).toBe('INITIAL');
    const json = JSON.parse((await cli(['mapping:state', 'Contact', '--json'], env)).stdout);
    expect(json).toMatchObject({ object_name: 'Contact', access: 'read_write', state: 'INITIAL' });

    const status = JSON.parse((await cli(['status', '--json'], env)).stdout);
    expect(status.connections).toMatchObject([{ name: 'cli-test', schema_name: 'salesforce', mapping_count: 1 }]);
    expect(status.mappings.map((m: { object_name: string }) => m.object_name)).toEqual(['Contact']);
    const info = await cli(['info'], env);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/cli-test\s+salesforce/);
    expect(info.stdout).toContain('Contact');
  });

  it('mapping:create from flags builds the HC config with the upsert field indexed', async () => {
    const r = await cli(['mapping:create', 'Account', '--access', 'read_write', '--fields', 'Name,Phone', '--upsert-field', 'External_Id__c'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { rows } = await db.query(`select config from hc._mappings where object_name = 'Account'`);
    expect(rows[0].config).toMatchObject({
      access: 'read_write',
      upsert_field: 'External_Id__c',
      fields: { Id: {}, SystemModstamp: {}, Name: {}, Phone: {}, External_Id__c: {} },
      indexes: { External_Id__c: { unique: true } },
    });
  });

  it('bad input changes nothing: unknown mapping, bad JSON, missing file, invalid config, duplicate', async () => {
    const before = await mappings();
    const auditBefore = await audit();

    const unknown = await cli(['mapping:state', 'Opportunity'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('has no mapping for object "Opportunity"');
    expect(unknown.stderr).toContain('hint: Mapped objects: Account, Contact.');
    for (const verb of ['mapping:reload', 'mapping:poll', 'mapping:abort']) {
      const r = await cli([verb, 'Opportunity'], env);
      expect(r.code, verb).toBe(1);
      expect(r.stderr).toContain('no mapping for object "Opportunity"');
    }
    const del = await cli(['mapping:delete', 'Opportunity', '--confirm', 'Opportunity'], env);
    expect(del.code).toBe(1);

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"access": "read_only", "fields": {');
    const badJson = await cli(['mapping:create', 'Lead', '--config', bad], env);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toContain(`${bad} is not valid JSON`);
    const badImport = await cli(['import', bad], env);
    expect(badImport.code).toBe(2);
    expect(badImport.stderr).toContain('is not valid JSON');
    const missing = await cli(['import', join(dir, 'nope.json')], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read');
    expect(missing.stderr).toContain('ENOENT');

    const invalid = await cli(['mapping:create', 'Lead', '--config', '{"access": "everything", "fields": {"Id": {}}}'], env);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('access must be "read_only" or "read_write"');
    expect(invalid.stderr).toContain('hint:');
    const dup = await cli(['mapping:create', 'Contact', '--config', JSON.stringify(contactConfig)], env);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already maps Contact');
    const noConfig = await cli(['mapping:create', 'Lead'], env);
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toContain('needs --config');

    const usage = await cli(['mapping:frobnicate'], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("unknown command 'mapping:frobnicate'");

    expect(await mappings()).toEqual(before);
    expect(await audit()).toBe(auditBefore);
  });

  it('wrong or missing DATABASE_URL: a clear message, exit 2, for every database verb', async () => {
    const badHost = { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' };
    const noDb = { DATABASE_URL: db.url.replace(/\/[^/]+$/, '/hcsync_no_such_database') };
    const verbs = [['migrate'], ['status'], ['pause'], ['export'], ['mapping:state', 'Contact'], ['write-errors'], ['diagnose']];
    for (const args of verbs) {
      const r = await cli(args, badHost);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('cannot connect to the database at 127.0.0.1:1/nowhere');
      expect(r.stderr).toContain('Fix DATABASE_URL');
    }
    const r = await cli(['status'], noDb);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('hcsync_no_such_database');
    const unset = await cli(['status'], {});
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('DATABASE_URL is not set');
    const notPg = await cli(['status'], { DATABASE_URL: 'mysql://x@y/z' });
    expect(notPg.code).toBe(2);
    expect(notPg.stderr).toContain('DATABASE_URL must start with postgres://');
  });

  it('a database without hcsync: exit 2 and the fix (hcsync migrate)', async () => {
    const admin = db.url.replace(/\/[^/]+$/, '/postgres');
    const name = `${db.name}_empty`;
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`create database "${name}"`);
    try {
      const r = await cli(['status'], { DATABASE_URL: db.url.replace(/\/[^/]+$/, `/${name}`) });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('Run `hcsync migrate`');
    } finally {
      await c.query(`drop database "${name}" with (force)`);
      await c.end();
    }
  });

  it('mapping:reload, mapping:poll, mapping:abort record the request for the sidecar', async () => {
    const reload = await cli(['mapping:reload', 'Contact'], env);
    expect(reload.stdout.trim()).toBe('Contact: reload requested');
    expect((await mappings()).find((m) => m.object_name === 'Contact')?.requested).toBe('reload');

    // A poll on top of a requested reload is part of it.
    const pollOnReload = await cli(['mapping:poll', 'Contact'], env);
    expect(pollOnReload.code).toBe(0);
    expect(pollOnReload.stdout.trim()).toBe('Contact: reload requested');
    // Poll while still loading is refused by the SQL API, with its reason.
    await db.query(`update hc._mappings set requested = null, requested_at = null where object_name = 'Contact'`);
    const poll = await cli(['mapping:poll', 'Contact'], env);
    expect(poll.code).toBe(1);
    expect(poll.stderr).toContain('still loading');

    await db.query(`update hc._mappings set state = 'DATA_SYNCED', requested = null, requested_at = null where object_name = 'Contact'`);
    const poll2 = await cli(['mapping:poll', 'Contact'], env);
    expect(poll2.code).toBe(0);
    expect(poll2.stdout.trim()).toBe('Contact: poll requested');
    const abort = await cli(['mapping:abort', 'Contact'], env);
    expect(abort.stdout.trim()).toBe('Contact: pending request cancelled');
    expect((await mappings()).find((m) => m.object_name === 'Contact')?.requested).toBeNull();
  });

  it('pause, resume, recover move the connection state', async () => {
    await db.query(`update hc.connections set state = 'IDLE'`);
    const pause = await cli(['pause'], env);
    expect(pause.stdout.trim()).toBe('cli-test: PAUSED');
    expect((await db.query('select state from hc.connections')).rows[0].state).toBe('PAUSED');
    const recoverPaused = await cli(['recover'], env);
    expect(recoverPaused.code).toBe(1);
    expect(recoverPaused.stderr).toContain('hint: Use select hc.resume();');
    const resume = await cli(['--connection', 'cli-test', 'resume'], env);
    expect(resume.stdout.trim()).toBe('cli-test: IDLE');
    // A second resume is no error, like a second pause.
    const again = await cli(['resume'], env);
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe('cli-test: IDLE');
    const pauseAgain = [await cli(['pause'], env), await cli(['pause'], env)];
    expect(pauseAgain.map((r) => r.code)).toEqual([0, 0]);
    await cli(['resume'], env);
    await db.query(`update hc.connections set state = 'SYSTEM_ERROR'`);
    const recover = await cli(['recover'], env);
    expect(recover.stdout.trim()).toBe('cli-test: RECOVERY');
    const wrongConn = await cli(['--connection', 'other', 'pause'], env);
    expect(wrongConn.code).toBe(1);
    expect(wrongConn.stderr).toContain('no connection named "other"');
    await db.query(`update hc.connections set state = 'IDLE'`);
  });

  it('export writes HC export JSON; import of it into another database recreates the mappings', async () => {
    const out = await cli(['export'], env);
    expect(out.code).toBe(0);
    const exported = JSON.parse(out.stdout);
    expect(exported.mappings.map((m: { object_name: string }) => m.object_name).sort()).toEqual(['Account', 'Contact']);
    const file = join(dir, 'export.json');
    const toFile = await cli(['export', file], env);
    expect(toFile.stderr).toContain(`wrote ${file}`);
    const written = JSON.parse(readFileSync(file, 'utf8'));
    expect(written.connection.exported_at).toBeTruthy();
    expect({ ...written, connection: { ...written.connection, exported_at: null } }).toEqual({ ...exported, connection: { ...exported.connection, exported_at: null } });

    const other = await createTestDb();
    try {
      await other.query(`select hc.create_connection('target', 'salesforce')`);
      const imp = await cli(['import', file], { DATABASE_URL: other.url });
      expect(imp.stderr).toBe('');
      expect(imp.code).toBe(0);
      const { rows } = await other.query('select object_name, config from hc._mappings order by object_name');
      expect(rows.map((r) => r.object_name)).toEqual(['Account', 'Contact']);
      expect(rows[1].config.fields).toEqual(contactConfig.fields);
    } finally {
      await other.drop();
    }
  });

  it('write-errors lists FAILED writes of the last 24 hours, --json for scripts', async () => {
    const empty = JSON.parse((await cli(['write-errors', '--json'], env)).stdout);
    expect(empty).toEqual({ count: 0, results: [] });
    // A write Salesforce rejected, as the writer records it.
    await db.query(
      `insert into salesforce._trigger_log (state, action, table_name, record_id, sfid, sf_result, sf_message)
       values ('FAILED', 'UPDATE', 'contact', 7, '003000000000001AAA', 1, 'FIELD_CUSTOM_VALIDATION_EXCEPTION: nope')`,
    );
    const json = JSON.parse((await cli(['write-errors', '--json', '--mapping', 'Contact'], env)).stdout);
    expect(json.count).toBe(1);
    expect(json.results[0]).toMatchObject({ object_name: 'Contact', record_id: 7, sf_message: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: nope' });
    const text = await cli(['write-errors'], env);
    expect(text.stdout).toContain('FIELD_CUSTOM_VALIDATION_EXCEPTION');
    const none = JSON.parse((await cli(['write-errors', '--json', '--mapping', 'Account'], env)).stdout);
    expect(none.count).toBe(0);
    const unknown = await cli(['write-errors', '--mapping', 'Nope'], env);
    expect(unknown.code).toBe(1);
  });

  it('diagnose: RED for a read-write mapping without upsert field (exit 3), Salesforce SKIPPED without SF_*', async () => {
    const r = await cli(['diagnose', '--json'], env);
    expect(r.code).toBe(3);
    const out = JSON.parse(r.stdout);
    const find = (rule: string, subject?: string) => out.checks.find((c: { rule: string; subject: string | null }) => c.rule === rule && (subject === undefined || c.subject === subject));
    expect(find('HCSYNC_SCHEMA').status).toBe('GREEN');
    expect(find('POSTGRES_VERSION').status).toBe('GREEN');
    expect(find('UPSERT_FIELD', 'Contact')).toMatchObject({ status: 'RED' });
    expect(find('UPSERT_FIELD', 'Account')).toMatchObject({ status: 'GREEN', message: 'upsert field External_Id__c' });
    expect(find('SALESFORCE')).toMatchObject({ status: 'SKIPPED' });
    expect(out.red).toBeGreaterThan(0);
    const text = await cli(['diagnose'], env);
    expect(text.code).toBe(3);
    expect(text.stdout).toMatch(/^RED\s+mapping Contact · UPSERT_FIELD: read-write mapping without an upsert field/m);
  });

  it('mapping:delete needs --confirm with the object name, then drops the mapping', async () => {
    const wrong = await cli(['mapping:delete', 'Account', '--confirm', 'Contact'], env);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('does not match');
    const none = await cli(['mapping:delete', 'Account'], env);
    expect(none.code).toBe(2);
    expect((await mappings()).map((m) => m.object_name)).toEqual(['Account', 'Contact']);
    const ok = await cli(['mapping:delete', 'Account', '--confirm', 'Account'], env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect((await mappings()).map((m) => m.object_name)).toEqual(['Contact']);
    const diag = await cli(['diagnose', '--json'], env);
    expect(JSON.parse(diag.stdout).checks.some((c: { subject: string }) => c.subject === 'Account')).toBe(false);
  });
});
