// The operator's verbs beyond Heroku Connect's plugin: state, mapping:update, retry and discard of
// failed writes, and the sync log, against a real Postgres. The verbs run in the test's process (cli());
// logs --follow, which runs until Ctrl-C, runs as the built binary.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createTestDb, type TestDb } from '../support/db.js';
import { assertFreshBuild, CLI, cli, contactConfig } from '../support/cli.js';

let db: TestDb;
let env: Record<string, string>;


async function failed(n: number): Promise<number[]> {
  const { rows } = await db.query(
    `insert into salesforce._trigger_log (state, action, table_name, record_id, sfid, sf_result, sf_message)
     select 'FAILED', 'UPDATE', 'contact', g, '003000000000001AAA', 1, 'FIELD_CUSTOM_VALIDATION_EXCEPTION: nope'
       from generate_series(1, $1) g returning id`,
    [n],
  );
  return rows.map((r) => Number(r.id));
}
const states = async (ids: number[]) =>
  (await db.query('select state from salesforce._trigger_log where id = any ($1) order by id', [ids])).rows.map((r) => r.state);

beforeAll(async () => {
  assertFreshBuild();
  db = await createTestDb();
  env = { DATABASE_URL: db.url };
  await db.query(`select hc.create_connection('ops', 'salesforce')`);
  await db.query(`select hc.create_mapping('Contact', $1::jsonb)`, [JSON.stringify(contactConfig)]);
});
afterAll(async () => {
  await db?.drop();
});

describe('hcsync operator verbs', () => {
  it('state prints the connection state', async () => {
    await db.query(`select hc.set_connection_state('IDLE')`);
    const r = await cli(['state'], env);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('IDLE');
  });

  it('status says when no sidecar is running for a connection, and stops saying it while one is', async () => {
    const none = await cli(['status'], env);
    expect(none.stdout).toContain('no sidecar is running for ops: nothing syncs');
    expect(JSON.parse((await cli(['status', '--json'], env)).stdout).connections[0].sidecar_running).toBe(false);
    // A running sidecar holds its connection's inbound lead (hc.inbound_leaders); one session stands in for it.
    const { default: pg } = await import('pg');
    const lead = new pg.Client({ connectionString: db.url });
    await lead.connect();
    try {
      await lead.query(`select pg_advisory_lock(hc.lock_class('inbound_lead'), id) from hc.connections`);
      const running = await cli(['status'], env);
      expect(running.stdout).not.toContain('no sidecar is running');
      expect(JSON.parse((await cli(['status', '--json'], env)).stdout).connections[0].sidecar_running).toBe(true);
    } finally {
      await lead.end();
    }
  });

  it('mapping:update changes the config; a bad config is refused and changes nothing', async () => {
    const config = { ...contactConfig, sf_polling_seconds: 300 };
    const r = await cli(['mapping:update', 'Contact', '--config', JSON.stringify(config)], env);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('mapping Contact updated');
    const stored = async () => (await db.query(`select config from hc._mappings where object_name = 'Contact'`)).rows[0].config;
    expect((await stored()).sf_polling_seconds).toBe(300);
    const bad = await cli(['mapping:update', 'Contact', '--config', JSON.stringify({ ...config, access: 'sometimes' })], env);
    expect(bad.code).toBe(1);
    expect((await stored()).sf_polling_seconds).toBe(300);
    const unknown = await cli(['mapping:update', 'Nope', '--config', JSON.stringify(config)], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('Nope');
  });

  it('mapping:create --polling takes whole seconds in range, or refuses and creates nothing', async () => {
    for (const bad of ['abc', '1e3', '0', '86401', '2.5']) {
      const r = await cli(['mapping:create', 'Lead', '--fields', 'LastName', '--polling', bad], env);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain('--polling is whole seconds from 1 to 86400');
    }
    expect((await db.query(`select count(*)::int as n from hc._mappings where object_name = 'Lead'`)).rows[0].n).toBe(0);
  });

  it('retry and discard act on the failed writes named, and refuse to guess when none are named', async () => {
    const ids = await failed(4);
    const none = await cli(['retry'], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--all');
    expect(await states(ids)).toEqual(['FAILED', 'FAILED', 'FAILED', 'FAILED']);
    const badId = await cli(['discard', 'x1'], env);
    expect(badId.code).toBe(2);

    const one = await cli(['retry', String(ids[0])], env);
    expect(one.stdout.trim()).toBe('1 write re-queued');
    expect(await states(ids)).toEqual(['NEW', 'FAILED', 'FAILED', 'FAILED']);
    const two = await cli(['discard', String(ids[1]), String(ids[2])], env);
    expect(two.stdout.trim()).toBe('2 writes discarded');
    expect(await states(ids)).toEqual(['NEW', 'IGNORED', 'IGNORED', 'FAILED']);
    const byTable = await cli(['retry', '--table', 'contact'], env);
    expect(byTable.stdout.trim()).toBe('1 write re-queued');
    expect(await states(ids)).toEqual(['NEW', 'IGNORED', 'IGNORED', 'NEW']);
    const audit = await db.query(`select action from hc.audit_log where action in ('retry', 'discard') order by id`);
    expect(audit.rows.map((r) => r.action)).toEqual(['retry', 'discard', 'retry']);
  });

  it('logs prints the latest entries by level and mapping, and --follow prints new ones as they come', async () => {
    const conn = (await db.query('select id from hc.connections')).rows[0].id;
    const mapping = (await db.query(`select id from hc._mappings where object_name = 'Contact'`)).rows[0].id;
    await db.query(
      `insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message)
       values ($1, $2, 'outbound', 'error', 'write_failed', 'first failure'),
              ($1, null, null, 'info', 'state', 'connection idle'),
              ($1, $2, 'inbound', 'debug', 'poll', 'nothing new')`,
      [conn, mapping],
    );
    const all = await cli(['logs'], env);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/ERROR Contact write_failed: first failure\n.*INFO  - state: connection idle\n$/);
    expect(all.stdout).not.toContain('nothing new');
    const errors = await cli(['logs', '--level', 'error', '--json'], env);
    const parsed = errors.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(parsed.map((e) => e.event)).toEqual(['write_failed']);
    expect((await cli(['logs', '--level', 'loud'], env)).code).toBe(2);

    const child = spawn(process.execPath, [CLI, 'logs', '--follow', '--lines', '1'], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // Once it has printed the latest entry it follows; then something new is logged.
    const until = async (text: string) => {
      const deadline = Date.now() + 30_000;
      while (!out.includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    };
    await until('connection idle');
    await db.query(`insert into hc.sync_log (connection_id, mapping_id, level, event, message) values ($1, $2, 'warn', 'retry', 'second try')`, [conn, mapping]);
    await until('second try');
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toMatch(/^\S+ INFO  - state: connection idle\n\S+ WARN  Contact retry: second try\n$/);
  });
});
