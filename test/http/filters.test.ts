// The dashboard API's filtered reads and the actions on what a filter matches, against a real sidecar,
// emulator and Postgres: the sync log by event type, failed writes retried or discarded by mapping and
// message text in one request, and the conflicts list with its resolve action. Every action is audited
// with the token's principal; the viewer reads and is refused every change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, VIEWER, parkConflict, startDashboard, type Dashboard } from '../dashboard/harness.js';
import { until } from '../support/until.js';

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard();
}, 240_000);
afterAll(async () => {
  await d?.stop();
});

const json = async (path: string, as: string = ADMIN) => {
  const res = await d.api(path, { as });
  expect([path, res.status]).toEqual([path, 200]);
  return res.json();
};

describe('the sync log by type', () => {
  it('lists the event types of the period with counts, and filters the log by type, with mapping and level', async () => {
    const { rows: [m] } = await d.db.query(`select id, connection_id from hc._mappings where object_name = 'Account'`);
    await d.db.query(
      `insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message) values
         ($1, $2, 'outbound', 'warn', 'probe_type_a', 'A warn'), ($1, $2, 'outbound', 'info', 'probe_type_a', 'A info'),
         ($1, null, 'inbound', 'error', 'probe_type_b', 'B error')`,
      [m.connection_id, m.id],
    );
    const types = await json('/api/log-events');
    expect(types).toEqual(expect.arrayContaining([
      expect.objectContaining({ event: 'probe_type_a', lines: 2, worst_level: 'warn' }),
      expect.objectContaining({ event: 'probe_type_b', lines: 1, worst_level: 'error' }),
    ]));
    // Most frequent first.
    const counts = types.map((t: { lines: number }) => t.lines);
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
    expect((await json('/api/logs?event=probe_type_a')).map((l: { message: string }) => l.message)).toEqual(['A info', 'A warn']);
    expect((await json('/api/logs?event=probe_type_a&level=warn')).map((l: { message: string }) => l.message)).toEqual(['A warn']);
    expect(await json('/api/logs?event=probe_type_b&object=Account')).toEqual([]);
    expect((await json('/api/logs?event=probe_type_b', VIEWER)).map((l: { message: string }) => l.message)).toEqual(['B error']);
    expect((await d.api('/api/log-events?hours=0')).status).toBe(400);
  });
});

const failed = async (want: number) =>
  until(async () => {
    const e = await json('/api/write-errors');
    return e.length === want && e;
  }, `${want} failed writes`, 60_000, 200);
const audit = async (action: string) =>
  (await d.db.query(`select principal, detail from hc.audit_log where action = $1 order by id desc limit 1`, [action])).rows[0];

describe('failed writes: all that match a filter, in one request', () => {
  it('lists by mapping and message text; retries and discards exactly what matches; audited with the principal; the viewer is refused', async () => {
    // Two writes Salesforce's validation rule refuses, and one refused once by a fault of the call.
    await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'match-1'), ('INVALID', 'match-2')`);
    await failed(2);
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Quota refused for the match test', remaining: 1 });
    const { rows: [once] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Match once', 'match-3') returning id`);
    const all = await failed(3);
    const byMessage = (text: string) => all.filter((e: { sf_message: string }) => e.sf_message.toLowerCase().includes(text.toLowerCase())).map((e: { trigger_log_id: number }) => e.trigger_log_id).sort();

    const ids = (rows: Array<{ trigger_log_id: number }>) => rows.map((e) => e.trigger_log_id).sort();
    expect(ids(await json('/api/write-errors?q=is%20not%20allowed'))).toEqual(byMessage('is not allowed'));
    expect(byMessage('is not allowed')).toHaveLength(2);
    expect(ids(await json('/api/write-errors?table=Account&q=QUOTA%20REFUSED'))).toEqual(byMessage('quota refused'));
    expect(await json('/api/write-errors?table=account&q=no%20such%20message')).toEqual([]);

    // Refused before anything runs: ids with a filter, an empty filter, and the viewer.
    const before = Number((await d.db.query(`select count(*) from hc.audit_log`)).rows[0].count);
    for (const body of [{ ids: [all[0].trigger_log_id], match: 'x' }, { match: '  ' }, {}]) {
      expect([body, (await d.api('/api/write-errors/retry', { method: 'POST', json: body })).status]).toEqual([body, 400]);
    }
    const viewer = await d.api('/api/write-errors/discard', { method: 'POST', as: VIEWER, json: { match: 'is not allowed' } });
    expect(viewer.status).toBe(403);
    expect(Number((await d.db.query(`select count(*) from hc.audit_log`)).rows[0].count)).toBe(before);
    expect(await json('/api/write-errors')).toHaveLength(3);

    // Retry what matches the message (any case): that one write goes again, and is sent.
    let res = await d.api('/api/write-errors/retry', { method: 'POST', json: { table: 'Account', match: 'quota REFUSED' } });
    expect(await res.json()).toEqual({ ok: true, action: 'retry', count: 1 });
    expect(await audit('retry')).toMatchObject({ principal: 'dashboard:admin', detail: { ids: byMessage('quota refused'), requeued: 1 } });
    await until(async () => (await d.db.query(`select 1 from salesforce.account where id = $1 and sfid is not null`, [once.id])).rowCount, 'the retried write sent', 60_000, 200);

    // Discard what matches: the two refused by the validation rule, nothing else.
    res = await d.api('/api/write-errors/discard', { method: 'POST', json: { match: 'is not allowed' } });
    expect(await res.json()).toEqual({ ok: true, action: 'discard', count: 2 });
    expect(await audit('discard')).toMatchObject({ principal: 'dashboard:admin', detail: { ids: byMessage('is not allowed'), discarded: 2 } });
    expect(await json('/api/write-errors')).toEqual([]);
    // Nothing matching is nothing done (and not "all").
    res = await d.api('/api/write-errors/discard', { method: 'POST', json: { match: 'is not allowed' } });
    expect(await res.json()).toEqual({ ok: true, action: 'discard', count: 0 });
  }, 150_000);
});

describe('conflicts', () => {
  it('lists a parked conflict with both values; the viewer may not resolve it; the admin resolves it for Salesforce, audited, and both sides hold that value', async () => {
    const { id, sfid, conflict } = await parkConflict(d, 'pg-api', 'sf-api');
    const kid = Number(conflict.id);
    const open = await json('/api/conflicts?state=open', VIEWER);
    expect(open.find((k: { id: number }) => k.id === kid)).toMatchObject({
      object_name: 'Account', record_id: id, sfid, kind: 'update', fields: ['Phone'], columns: ['phone'], policy: 'manual', winner: null, open: true,
      pg_values: { phone: 'pg-api' }, sf_values: { phone: 'sf-api' },
    });
    expect((await json('/api/conflicts?state=resolved')).some((k: { id: number }) => k.id === kid)).toBe(false);
    expect(await json('/api/conflicts?object=Contact')).toEqual([]);

    const before = Number((await d.db.query(`select count(*) from hc.audit_log`)).rows[0].count);
    for (const as of [VIEWER, null]) {
      const res = await d.api(`/api/conflicts/${kid}/resolve`, { method: 'POST', as, json: { choice: 'sf' } });
      expect(res.status).toBe(as ? 403 : 401);
    }
    expect((await d.api(`/api/conflicts/${kid}/resolve`, { method: 'POST', json: { choice: 'both' } })).status).toBe(400);
    expect((await d.api('/api/conflicts/999999/resolve', { method: 'POST', json: { choice: 'sf' } })).status).toBe(404);
    expect(Number((await d.db.query(`select count(*) from hc.audit_log`)).rows[0].count)).toBe(before);
    expect((await d.db.query(`select resolved_at from hc.conflicts where id = $1`, [kid])).rows[0].resolved_at).toBeNull();

    const res = await d.api(`/api/conflicts/${kid}/resolve`, { method: 'POST', json: { choice: 'sf' } });
    expect(res.status).toBe(200);
    expect((await res.json()).conflict).toMatchObject({ id: kid, winner: 'sf', resolution: 'operator', resolved_by: expect.stringContaining('(dashboard:admin)') });
    expect((await d.db.query(`select principal, detail from hc.audit_log where action = 'resolve_conflict' order by id desc limit 1`)).rows[0])
      .toMatchObject({ principal: 'dashboard:admin', detail: { conflict: kid, choice: 'sf' } });
    await until(async () => (await d.db.query(`select phone from salesforce.account where id = $1`, [id])).rows[0].phone === 'sf-api'
      && d.emu.records('Account').find((r) => r.Id === sfid)?.Phone === 'sf-api', 'both sides hold sf-api', 60_000, 200);
    // Resolved once: a second time is refused with the reason.
    const again = await d.api(`/api/conflicts/${kid}/resolve`, { method: 'POST', json: { choice: 'pg' } });
    expect(again.status).toBe(400);
    expect((await again.json()).error).toMatch(/resolved already/);
    expect((await json('/api/conflicts?state=resolved')).find((k: { id: number }) => k.id === kid)).toMatchObject({ open: false, winner: 'sf' });
  }, 150_000);
});
