// `hcsync budget`: the API budget from the command line, run in the test's process as the binary runs it.
// Shows what the governor acts on (hc.api_budget, each mapping's calls against its cap, what waits) and
// changes its settings through hc.set_api_budget: the database's range checks are exit 1 with the message,
// input that is not a number is exit 2 and changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { cli, contactConfig } from '../support/cli.js';

let db: TestDb;
let env: Record<string, string>;

async function settings() {
  return (await db.query('select slow_percent, pause_percent, slow_factor, pause_writes from hc.api_budget')).rows[0];
}

beforeAll(async () => {
  db = await createTestDb();
  env = { DATABASE_URL: db.url };
  const conn = (await db.query(`select hc.create_connection('cli-budget', 'salesforce') as id`)).rows[0].id;
  await db.query('select hc.create_mapping($1, $2)', ['Contact', { ...contactConfig, sf_max_daily_api_calls: 40 }]);
  const m = (await db.query(`select id from hc._mappings`)).rows[0].id;
  // The org reported 9,300 of 10,000; 40 calls of Contact's work today.
  await db.query(
    `insert into hc.api_calls (connection_id, mapping_id, kind, method, path, status, api_used, api_limit)
     select $1, $2, 'query', 'GET', '/q', 200, case when g = 40 then 9300 end, case when g = 40 then 10000 end from generate_series(1, 40) g`,
    [conn, m],
  );
  await db.query(`select hc.api_budget_gate($1, $2, 'poll', '600 seconds')`, [conn, m]);
});
afterAll(async () => {
  await db?.drop();
});

describe('hcsync budget', () => {
  it("prints the level, the org's use, hcsync's calls and forecast, each mapping's cap and what waits", async () => {
    const r = await cli(['budget'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('cli-budget: paused');
    expect(r.stdout).toContain('API budget: 9,300 of 10,000 daily API requests used (93%, paused from 90%)');
    expect(r.stdout).toMatch(/slow from 70 %, paused from 90 %, 4× slower, writes go on at the paused level/);
    expect(r.stdout).toMatch(/Contact\s+40\s+40\s+true/);
    expect(r.stdout).toMatch(/Contact\s+poll\s+capped\s+mapping_cap/);
    const j = JSON.parse((await cli(['budget', '--json'], env)).stdout);
    expect(j.budget[0]).toMatchObject({ connection_name: 'cli-budget', level: 'paused', used: 9300, allowance: 10000 });
    expect(j.mappings[0]).toMatchObject({ object_name: 'Contact', calls_24h: 40, max_daily_api_calls: 40, capped: true });
    expect(j.waits[0]).toMatchObject({ object_name: 'Contact', work: 'poll', status: 'capped' });
  });

  it('changes the settings; the SQL range checks answer out-of-range values (exit 1), non-numbers are exit 2', async () => {
    const r = await cli(['budget', '--slow-percent', '60', '--pause-percent', '95', '--slow-factor', '3', '--pause-writes', 'on'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await settings()).toEqual({ slow_percent: 60, pause_percent: 95, slow_factor: 3, pause_writes: true });
    expect(r.stdout).toContain('slow from 60 %, paused from 95 %, 3× slower, writes wait at the paused level');
    const high = await cli(['budget', '--pause-percent', '101'], env);
    expect(high.code).toBe(1);
    expect(high.stderr).toContain('pause_percent must be a whole number from 1 to 100, not 101');
    const crossed = await cli(['budget', '--slow-percent', '99'], env);
    expect(crossed.code).toBe(1);
    expect(crossed.stderr).toContain('slow_percent (99) must not be above pause_percent (95)');
    for (const args of [['--slow-factor', 'four'], ['--pause-writes', 'maybe'], ['--slow-percent', '7.5']]) {
      const bad = await cli(['budget', ...args], env);
      expect([args, bad.code]).toEqual([args, 2]);
      expect(bad.stderr).toContain(args[0]);
    }
    expect(await settings()).toEqual({ slow_percent: 60, pause_percent: 95, slow_factor: 3, pause_writes: true });
    const off = await cli(['budget', '--pause-writes', 'off'], env);
    expect(off.code).toBe(0);
    expect((await settings()).pause_writes).toBe(false);
  });
});
