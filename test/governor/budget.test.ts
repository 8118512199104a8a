// The API budget's decisions, in SQL alone: the figures of hc.api_budget from ledger rows, the thresholds
// of hc.api_budget_gate (slow at 70 %, pause at 90 % of the org's daily allowance, a mapping's own
// sf_max_daily_api_calls), what it writes where operators look, and the range checks of hc.set_api_budget.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_ } from '../sql/helpers.js';

let db: TestDb;
let conn: number;
let contact: number;

async function errorOf(fn: () => Promise<unknown>): Promise<{ message: string; hint?: string; code?: string }> {
  try {
    await fn();
  } catch (e) {
    return e as { message: string; hint?: string; code?: string };
  }
  throw new Error('expected an error');
}

/** Ledger rows as the sidecar writes them: `n` calls, the last one reporting used/limit. */
async function calls(n: number, opts: { used?: number; limit?: number; mapping?: number; ago?: string } = {}): Promise<void> {
  await db.query(
    `insert into hc.api_calls (at, connection_id, mapping_id, kind, method, path, status, api_used, api_limit)
     select now() - $5::interval - (g * interval '1 millisecond'), $1, $4, 'query', 'GET', '/services/data/v62.0/query', 200,
            case when g = 0 then $2::int end, case when g = 0 then $3::int end
       from generate_series(0, $6 - 1) g`,
    [conn, opts.used ?? null, opts.limit ?? null, opts.mapping ?? null, opts.ago ?? '0 seconds', n],
  );
}

async function gate(work: string, mapping: number | null = contact, interval: string | null = null) {
  return (await db.query('select * from hc.api_budget_gate($1, $2, $3, $4::interval)', [conn, mapping, work, interval])).rows[0] as { go: boolean; level: string; reason: string | null };
}

async function budget() {
  return (await db.query('select * from hc.api_budget where connection_id = $1', [conn])).rows[0];
}

beforeAll(async () => {
  db = await createTestDb();
  conn = await createConnection(db);
  contact = await createMapping(db, 'Contact', { ...contactConfig, sf_max_daily_api_calls: 50 }, describe_('contact'));
});
afterAll(async () => {
  await db.drop();
});

describe('hc.api_budget', () => {
  it('knows nothing before Salesforce has reported a figure: level normal, every read goes', async () => {
    const b = await budget();
    expect(b).toMatchObject({ used: null, allowance: null, level: 'normal', own_calls_24h: '0' });
    expect((await gate('poll')).go).toBe(true);
  });

  it("shows the org's last reported use, hcsync's own calls and a forecast for the day at this hour's pace", async () => {
    // 30 calls an hour ago and 10 in the last hour; Salesforce's last figure 1,000 of 10,000.
    await calls(30, { ago: '2 hours' });
    await calls(10, { used: 1000, limit: 10_000 });
    const b = await budget();
    expect(b).toMatchObject({ used: 1000, allowance: 10_000, level: 'normal', own_calls_24h: '40', own_calls_1h: '10' });
    expect(Number(b.used_percent)).toBe(10);
    // Others' use stays (1,000 - 40), hcsync's goes on at 10 an hour for 24 hours.
    expect(Number(b.forecast_used)).toBe(960 + 240);
    expect(b.message).toBeNull();
  });

  it('a figure older than 24 hours no longer counts (Salesforce counts a rolling day)', async () => {
    await db.query(`update hc.api_calls set at = at - interval '25 hours' where api_limit is not null`);
    expect((await budget()).level).toBe('normal');
    expect((await budget()).allowance).toBeNull();
  });
});

describe('hc.api_budget_gate', () => {
  it('at 70 % background reads stretch their interval (4 times by default), writes go on, and the messages say so', async () => {
    await calls(1, { used: 7_000, limit: 10_000 });
    expect((await budget()).level).toBe('slow');
    // Never polled: it may go.
    expect((await gate('poll', contact, '10 seconds')).go).toBe(true);
    await db.query(`update hc._mappings set last_poll_at = now() - interval '20 seconds' where id = $1`, [contact]);
    const g = await gate('poll', contact, '10 seconds');
    expect(g).toMatchObject({ go: false, level: 'slow' });
    expect(g.reason).toMatch(/^API budget: 7,000 of 10,000 daily API requests used \(70%/);
    expect(g.reason).toContain('polls');
    await db.query(`update hc._mappings set last_poll_at = now() - interval '40 seconds' where id = $1`, [contact]);
    expect((await gate('poll', contact, '10 seconds')).go).toBe(true);
    expect((await gate('write', null)).go).toBe(true);
    const m = (await db.query('select state, state_message from hc.mappings where mapping_id = $1', [contact])).rows[0];
    expect(m.state_message).toMatch(/^API budget: .*polls run every 40 s instead of 10 s/);
    const c = (await db.query('select state_message from hc.status where connection_id = $1', [conn])).rows[0];
    expect(c.state_message).toMatch(/^API budget: 7,000 of 10,000/);
  });

  it('at 70 % drift sweeps (with their Salesforce row count) and reconciliations stretch their interval too; a repair goes', async () => {
    expect((await budget()).level).toBe('slow');
    for (const [work, column, label] of [['drift', 'drift_checked_at', 'drift sweeps'], ['reconcile', 'reconciled_at', 'reconciliations']] as const) {
      // Never ran: it may go.
      await db.query(`update hc.sync_positions set ${column} = null where mapping_id = $1`, [contact]);
      expect([work, (await gate(work, contact, '1 hour')).go]).toEqual([work, true]);
      // Two hours after the last one, at an hourly interval: it waits (4 times longer by default).
      await db.query(`update hc.sync_positions set ${column} = now() - interval '2 hours' where mapping_id = $1`, [contact]);
      const g = await gate(work, contact, '1 hour');
      expect([work, g.go, g.level]).toEqual([work, false, 'slow']);
      expect(g.reason).toMatch(/^API budget: 7,000 of 10,000 daily API requests used \(70%, slow from 70%\): /);
      expect(g.reason).toContain(`${label} run every 4 h instead of 60 min`);
      // Four hours after: it goes.
      await db.query(`update hc.sync_positions set ${column} = now() - interval '4 hours' where mapping_id = $1`, [contact]);
      expect([work, (await gate(work, contact, '1 hour')).go]).toEqual([work, true]);
    }
    // A reconciliation asked without an interval (the counts differed: a repair) is not held back at this level.
    expect((await gate('reconcile', contact, null)).go).toBe(true);
    // The mapping's message names each slowed read with its stretched interval.
    const m = (await db.query('select state_message from hc.mappings where mapping_id = $1', [contact])).rows[0];
    expect(m.state_message).toMatch(/^API budget: 7,000 of 10,000 daily API requests used \(70%, slow from 70%\): /);
    expect(m.state_message).toContain('drift sweeps run every 4 h instead of 60 min');
    expect(m.state_message).toContain('polls run every 40 s instead of 10 s');
    expect(m.state_message).toMatch(/; writes go on$/);
  });

  it('at 90 % background reads wait and writes go on; with pause_writes the writes wait too', async () => {
    await calls(1, { used: 9_000, limit: 10_000 });
    for (const work of ['poll', 'drift', 'reconcile']) {
      const g = await gate(work, contact, '1 second');
      expect([work, g.go, g.level]).toEqual([work, false, 'paused']);
    }
    expect((await gate('write', null)).go).toBe(true);
    const m = (await db.query('select state_message from hc.mappings where mapping_id = $1', [contact])).rows[0];
    expect(m.state_message).toMatch(/^API budget: 9,000 of 10,000 daily API requests used \(90%, paused from 90%\): background reads \(.*\) wait until use falls below 90%; writes go on$/);
    await db.query(`select hc.set_api_budget(pause_writes => true)`);
    const w = await gate('write', null);
    expect(w.go).toBe(false);
    expect(w.reason).toContain('writes wait too');
    const metrics = (await db.query(`select metric, labels, value from hc.api_budget_metrics()`)).rows;
    expect(metrics).toContainEqual({ metric: 'hcsync_api_budget_level', labels: { connection: 'my-app', level: 'paused' }, value: 1 });
    expect(metrics).toContainEqual({ metric: 'hcsync_api_budget_waiting', labels: { connection: 'my-app', object: 'Contact', work: 'drift', cause: 'org_allowance' }, value: 1 });
    expect(metrics).toContainEqual({ metric: 'hcsync_api_budget_waiting', labels: { connection: 'my-app', object: '', work: 'write', cause: 'org_allowance' }, value: 1 });
    await db.query(`select hc.set_api_budget(pause_writes => false)`);
  });

  it('recovers by itself once Salesforce reports the allowance back: the waits and the messages go', async () => {
    await calls(1, { used: 200, limit: 10_000 });
    expect((await gate('poll', contact, '1 second')).go).toBe(true);
    expect((await gate('drift', contact, '1 second')).go).toBe(true);
    expect((await gate('reconcile', contact, '1 second')).go).toBe(true);
    expect((await gate('write', null)).go).toBe(true);
    expect((await db.query('select state_message from hc.mappings where mapping_id = $1', [contact])).rows[0].state_message).toBeNull();
    expect((await db.query('select state_message from hc.status where connection_id = $1', [conn])).rows[0].state_message).toBeNull();
    expect((await db.query(`select count(*)::int n from hc.api_budget_metrics() where metric = 'hcsync_api_budget_waiting'`)).rows[0].n).toBe(0);
  });

  it("a mapping's own sf_max_daily_api_calls pauses its background reads alone", async () => {
    const account = await createMapping(db, 'Account', { access: 'read_only', sf_notify_enabled: false, sf_polling_seconds: 600, fields: { Id: {}, Name: {}, SystemModstamp: {}, IsDeleted: {} } }, describe_('account'));
    await calls(49, { mapping: contact });
    expect((await gate('poll', contact, '1 second')).go).toBe(true);
    await calls(1, { mapping: contact });
    const g = await gate('poll', contact, '1 second');
    expect(g.go).toBe(false);
    expect(g.reason).toBe('API budget: Contact made 50 of its 50 daily API calls (sf_max_daily_api_calls): its polls, drift sweeps and reconciliations wait until its calls of the last 24 hours fall below that; writes go on');
    expect((await gate('poll', account, '1 second')).go).toBe(true);
    expect((await gate('write', null)).go).toBe(true);
    const per = (await db.query(`select object_name, calls_24h, max_daily_api_calls, capped from hc.api_budget_mappings order by object_name`)).rows;
    expect(per).toEqual([
      { object_name: 'Account', calls_24h: '0', max_daily_api_calls: null, capped: false },
      { object_name: 'Contact', calls_24h: '50', max_daily_api_calls: 50, capped: true },
    ]);
    // A higher cap (the operator's fix) lets it go at the next ask.
    await db.query(`select hc.update_mapping('Contact', $1::jsonb)`, [JSON.stringify({ ...contactConfig, sf_max_daily_api_calls: 51 })]);
    expect((await gate('poll', contact, '1 second')).go).toBe(true);
  });

  it('refuses work it does not know', async () => {
    const e = await errorOf(() => gate('nap'));
    expect(e.message).toContain('poll, drift, reconcile or write');
  });
});

describe('hc.set_api_budget', () => {
  it('range-checks every number and names the fix', async () => {
    for (const [arg, v] of [['slow_percent', 0], ['slow_percent', 101], ['pause_percent', 0], ['pause_percent', 101], ['slow_factor', 1], ['slow_factor', 101]] as const) {
      const e = await errorOf(() => db.query(`select hc.set_api_budget(${arg} => $1)`, [v]));
      expect([arg, v, e.code]).toEqual([arg, v, '22023']);
      expect(e.message).toContain(arg);
    }
    const e = await errorOf(() => db.query(`select hc.set_api_budget(slow_percent => 95, pause_percent => 80)`));
    expect(e.message).toContain('slow_percent (95) must not be above pause_percent (80)');
    const s = (await db.query(`select * from hc.set_api_budget(slow_percent => 50, pause_percent => 80, slow_factor => 2)`)).rows[0];
    expect(s).toMatchObject({ slow_percent: 50, pause_percent: 80, slow_factor: 2, pause_writes: false });
    expect((await budget()).slow_percent).toBe(50);
    const audit = (await db.query(`select action, detail from hc.audit_log where action = 'set_api_budget' order by id desc limit 1`)).rows[0];
    expect(audit.detail).toMatchObject({ slow_percent: 50, pause_percent: 80, slow_factor: 2 });
  });
});
