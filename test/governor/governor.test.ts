// The API budget governor end to end: the inbound reader, the writer and the connection supervisor run
// against the emulator, whose reported API usage (Sforce-Limit-Info) the test moves through each
// threshold with its limits hook. Polls every second and drift sweeps every 2 s make the background
// reads easy to count in the ledger (hc.api_calls).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startEmulator } from '../../emulator/index.js';
import { loadConfig } from '../../sidecar/config.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { createLogger } from '../../sidecar/log.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';
import type { Service, SyncContext } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { startOutbound } from '../../sidecar/sync/outbound/index.js';
import { startConnectionSupervisor } from '../../sidecar/sync/connection.js';
import { metricsRegistry } from '../../sidecar/http/server.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { sidecarEnv } from '../support/sidecar.js';
import { until } from '../support/until.js';

type Emulator = Awaited<ReturnType<typeof startEmulator>>;
let emu: Emulator;
let db: TestDb;
let pool: pg.Pool;
let ctx: SyncContext;
const services: Service[] = [];
const FIELDS = { Id: {}, Name: {}, SystemModstamp: {}, IsDeleted: {}, CreatedDate: {} };

async function limits(body: { used?: number; dailyApiRequests?: number }): Promise<void> {
  const res = await fetch(`${emu.url}/__emulator/limits`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.ok).toBe(true);
}

/** The ledger's last id: counts below are of calls made after it. */
async function mark(): Promise<number> {
  await ctx.sf.ledger.flush();
  return Number((await db.query('select coalesce(max(id), 0) as id from hc.api_calls')).rows[0].id);
}

/** Polls (SystemModstamp windows) and drift-sweep row counts of an object since a mark. */
async function reads(object: string, since: number): Promise<{ polls: number; counts: number }> {
  await ctx.sf.ledger.flush();
  const r = await db.query(
    `select count(*) filter (where path like '%ORDER%20BY%20SystemModstamp%')::int as polls,
            count(*) filter (where path like '%SELECT%20COUNT()%')::int as counts
       from hc.api_calls where id > $1 and path like $2`,
    [since, `%FROM%20${object}%`],
  );
  return r.rows[0];
}

async function level(): Promise<string> {
  return (await db.query(`select level from hc.api_budget`)).rows[0].level;
}

async function message(object: string): Promise<string | null> {
  return (await db.query(`select state_message from hc.mappings where object_name = $1`, [object])).rows[0].state_message;
}

async function scrape(): Promise<string> {
  const m = metricsRegistry({ db: pool, ledger: ctx.sf.ledger });
  await m.refresh();
  return m.registry.metrics();
}

/** An application insert, and whether the writer has sent it (the row has its Salesforce id). */
async function insertAccount(name: string): Promise<number> {
  return (await db.query(`insert into salesforce.account (name) values ($1) returning id`, [name])).rows[0].id;
}
async function written(id: number): Promise<boolean> {
  return Boolean((await db.query(`select sfid from salesforce.account where id = $1`, [id])).rows[0]?.sfid);
}

/** A sample's value in Prometheus text, whatever order its labels come in; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_0-9]+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...m[2].matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  emu = await startEmulator({ seed: { Account: 5, Contact: 5 } } as Parameters<typeof startEmulator>[0]);
  await limits({ dailyApiRequests: 10_000, used: 0 });
  db = await createTestDb();
  const config = loadConfig({
    ...sidecarEnv(emu, db.url),
    HC_DRIFT_SECONDS: '2',
    HC_CONNECTION_CHECK_MS: '200',
    HC_BUDGET_PROBE_SECONDS: '1',
  });
  const connectionId = (await db.query(`select hc.create_connection('test', 'salesforce') as id`)).rows[0].id as number;
  await db.query(`update hc.connections set state = 'IDLE'`);
  pool = syncPool(db.url);
  pool.on('error', () => {});
  const sf = await SalesforceClient.connect(config.salesforce, { pool, connectionId });
  ctx = { config, db: pool, log: createLogger({ level: config.log.level, pretty: false }), sf, connection: { id: connectionId, name: 'test', schema: 'salesforce' } };
  await db.query('select hc.create_mapping($1, $2)', ['Account', { access: 'read_write', sf_notify_enabled: false, sf_polling_seconds: 1, fields: FIELDS }]);
  await db.query('select hc.create_mapping($1, $2)', ['Contact', { access: 'read_only', sf_notify_enabled: false, sf_polling_seconds: 1, fields: { Id: {}, LastName: {}, SystemModstamp: {}, IsDeleted: {} } }]);
  const inbound = await startInbound(ctx);
  services.push(inbound);
  services.push(await startConnectionSupervisor(ctx, { holds: () => inbound.leading() }));
  services.push(await startOutbound(ctx, { maxBackoffMs: 500, sweepMs: 300 }));
  await until(async () => (await db.query(`select count(*)::int n from hc._mappings where state = 'DATA_SYNCED' and last_poll_at is not null`)).rows[0].n === 2, 'both mappings loaded and polling', 90_000);
}, 120_000);

afterAll(async () => {
  for (const s of services.reverse()) await s.stop().catch(() => {});
  await ctx?.sf.close();
  await pool?.end();
  await new Promise((r) => setTimeout(r, 300));
  await db?.drop();
  await emu?.stop();
});

describe('the API budget governor against the emulator', () => {
  it('below 70 %: polls every second and drift sweeps every 2 s, each call in the ledger with its mapping', async () => {
    const from = await mark();
    await until(async () => {
      const r = await reads('Account', from);
      return r.polls >= 4 && r.counts >= 1;
    }, 'Account polls and drift counts', 20_000);
    expect(await level()).toBe('normal');
    const per = (await db.query(`select object_name, calls_24h from hc.api_budget_mappings order by 1`)).rows;
    expect(per.map((r) => r.object_name)).toEqual(['Account', 'Contact']);
    for (const r of per) expect(Number(r.calls_24h)).toBeGreaterThan(0);
    const b = (await db.query(`select used, allowance from hc.api_budget`)).rows[0];
    expect(b.allowance).toBe(10_000);
  });

  it('at 70 %: polls stretch to every 4 s, writes go on, the state message and /metrics say so', async () => {
    await limits({ used: 7_500 });
    await until(async () => (await level()) === 'slow', 'the slow level', 20_000);
    await until(async () => /polls run every 4 s instead of 1 s/.test((await message('Account')) ?? ''), 'the slow message on Account', 20_000);
    const from = await mark();
    const t0 = Date.now();
    const id = await insertAccount('Written at 75 %');
    await until(() => written(id), 'the write at 75 %', 20_000);
    await until(() => Date.now() - t0 >= 9_000, '9 s of slowed polling', 20_000, 200);
    const r = await reads('Account', from);
    // 9 s at one poll per 4 s: 2 or 3, where normal pace would have made 9.
    expect(r.polls).toBeGreaterThanOrEqual(1);
    expect(r.polls).toBeLessThanOrEqual(3);
    expect(await message('Account')).toMatch(/^API budget: 7,5\d\d of 10,000 daily API requests used \(75(\.\d)?%, slow from 70%\): .*polls run every 4 s instead of 1 s/);
    const text = await scrape();
    expect(sample(text, 'hcsync_api_budget_level', { connection: 'test', level: 'slow' })).toBe(1);
    expect(sample(text, 'hcsync_api_budget_slowed', { connection: 'test', object: 'Account', work: 'poll' })).toBe(1);
  });

  it('at 90 %: polls and drift sweeps wait, writes go on; the messages and /metrics name what waits and why', async () => {
    await limits({ used: 9_200 });
    await until(async () => (await level()) === 'paused', 'the paused level', 20_000);
    // A poll or sweep already under way when the figure came finishes; count from the first ask after.
    await until(async () => /paused from 90%/.test((await message('Account')) ?? ''), 'the paused message on Account', 20_000);
    await sleep(500);
    const from = await mark();
    const id = await insertAccount('Written at 92 %');
    await until(() => written(id), 'the write at 92 %', 20_000);
    // The window spans several poll and sweep intervals, and the sidecar was busy in it: it wrote, and
    // asked Salesforce for the figure.
    await sleep(5_000);
    const r = await reads('Account', from);
    expect(r).toEqual({ polls: 0, counts: 0 });
    expect((await reads('Contact', from)).polls).toBe(0);
    const other = (await db.query(`select count(*) filter (where kind = 'collections')::int w from hc.api_calls where id > $1`, [from])).rows[0];
    expect(other.w).toBeGreaterThanOrEqual(1);
    expect(await message('Account')).toMatch(/^API budget: 9,2\d\d of 10,000 daily API requests used \(92(\.\d)?%, paused from 90%\): background reads .* wait until use falls below 90%; writes go on$/);
    expect((await db.query(`select state, state_message from hc.status`)).rows[0]).toMatchObject({ state: 'IDLE', state_message: expect.stringMatching(/^API budget: .*paused from 90%/) });
    const text = await scrape();
    expect(sample(text, 'hcsync_api_budget_level', { connection: 'test', level: 'paused' })).toBe(1);
    expect(sample(text, 'hcsync_api_budget_waiting', { connection: 'test', object: 'Account', work: 'poll', cause: 'org_allowance' })).toBe(1);
    expect(sample(text, 'hcsync_api_budget_waiting', { connection: 'test', object: 'Account', work: 'drift', cause: 'org_allowance' })).toBe(1);
  });

  it('at 90 % with pause_writes: writes wait too, while the sidecar keeps asking Salesforce for the figure', async () => {
    await db.query(`select hc.set_api_budget(pause_writes => true)`);
    const from = await mark();
    const id = await insertAccount('Held at 92 %');
    await until(async () => sample(await scrape(), 'hcsync_api_budget_waiting', { connection: 'test', object: '', work: 'write', cause: 'org_allowance' }) === 1, 'the writer waiting', 20_000);
    await until(async () => {
      await ctx.sf.ledger.flush();
      return (await db.query(`select count(*)::int n from hc.api_calls where id > $1 and kind = 'limits'`, [from])).rows[0].n >= 2;
    }, 'GET /limits asking for the figure', 20_000);
    expect(await written(id)).toBe(false);
    expect((await db.query(`select state from salesforce._trigger_log where record_id = $1`, [id])).rows[0].state).toBe('NEW');
    expect((await db.query(`select state_message from hc.status`)).rows[0].state_message).toContain('writes wait too (pause_writes)');
  });

  it('recovers by itself when the allowance returns: reads resume, the held write goes, the messages clear', async () => {
    const held = Number((await db.query(`select id from salesforce.account where name = 'Held at 92 %'`)).rows[0].id);
    await limits({ used: 100 });
    await until(async () => (await level()) === 'normal', 'the normal level (from the next GET /limits)', 20_000);
    await until(() => written(held), 'the held write sent', 20_000);
    const from = await mark();
    await until(async () => {
      const r = await reads('Account', from);
      return r.polls >= 3 && r.counts >= 1;
    }, 'polls and drift sweeps again', 20_000);
    await until(async () => (await message('Account')) === null, 'the Account message cleared', 20_000);
    expect((await db.query(`select state_message from hc.status`)).rows[0].state_message).toBeNull();
    expect((await scrape())).not.toContain('hcsync_api_budget_waiting{');
    const log = (await db.query(`select message from hc.sync_log where event = 'api_budget' order by id`)).rows.map((r) => r.message as string);
    expect(log.some((m) => m.includes('paused from 90%'))).toBe(true);
    expect(log.some((m) => m.startsWith('API budget: back to normal'))).toBe(true);
    await db.query(`select hc.set_api_budget(pause_writes => false)`);
  });

  it("a mapping's sf_max_daily_api_calls pauses that mapping's reads alone", async () => {
    await ctx.sf.ledger.flush();
    const spent = Number((await db.query(`select calls_24h from hc.api_budget_mappings where object_name = 'Contact'`)).rows[0].calls_24h);
    const cap = spent + 3;
    await db.query(`select hc.update_mapping('Contact', $1::jsonb)`, [JSON.stringify({ access: 'read_only', sf_notify_enabled: false, sf_polling_seconds: 1, sf_max_daily_api_calls: cap, fields: { Id: {}, LastName: {}, SystemModstamp: {}, IsDeleted: {} } })]);
    await until(async () => /sf_max_daily_api_calls/.test((await message('Contact')) ?? ''), 'the cap message on Contact', 30_000);
    await sleep(500);
    const from = await mark();
    await sleep(4_000);
    expect((await reads('Contact', from)).polls).toBe(0);
    expect((await reads('Account', from)).polls).toBeGreaterThanOrEqual(2);
    const per = (await db.query(`select calls_24h, max_daily_api_calls, capped from hc.api_budget_mappings where object_name = 'Contact'`)).rows[0];
    expect(per).toMatchObject({ max_daily_api_calls: cap, capped: true });
    // A poll under way when the cap was reached may finish: at most that one call over.
    expect(Number(per.calls_24h)).toBeLessThanOrEqual(cap + 1);
    expect(await message('Contact')).toMatch(new RegExp(`^API budget: Contact made (${cap}|${cap + 1}) of its ${cap} daily API calls \\(sf_max_daily_api_calls\\)`));
    expect(await message('Account')).toBeNull();
    const text = await scrape();
    expect(sample(text, 'hcsync_api_budget_waiting', { connection: 'test', object: 'Contact', work: 'poll', cause: 'mapping_cap' })).toBe(1);
    expect(sample(text, 'hcsync_mapping_api_calls_max', { connection: 'test', object: 'Contact' })).toBe(cap);
    expect(sample(text, 'hcsync_api_budget_waiting', { connection: 'test', object: 'Account', work: 'poll', cause: 'mapping_cap' })).toBeUndefined();
  });
});
