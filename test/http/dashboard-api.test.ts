// The dashboard's HTTP API against a real sidecar, emulator and Postgres: tokens (401 for a missing or
// wrong one, 403 for the viewer and for a change without the CSRF header or from another origin, and in
// every refused case nothing changed), each endpoint doing its SQL call, the audit naming the token's
// principal, server-sent events from the database's nudges, and no secret in any answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, VIEWER, startDashboard, type Dashboard } from '../dashboard/harness.js';
import { until } from '../support/until.js';
import { sidecarEnv, spawnSidecar } from '../support/sidecar.js';

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard();
}, 240_000);
afterAll(async () => {
  await d?.stop();
});

const state = async () => (await d.db.query(`select state from hc.connections`)).rows[0].state as string;
const auditCount = async () => Number((await d.db.query(`select count(*) from hc.audit_log`)).rows[0].count);

describe('tokens', () => {
  it('a missing or wrong token gets 401 on every API path and changes nothing', async () => {
    const before = { state: await state(), audit: await auditCount() };
    for (const as of [null, 'wrong-token-0123456789abcdef', VIEWER + 'x']) {
      for (const [method, path] of [
        ['GET', '/api/connection'], ['GET', '/api/mappings'], ['GET', '/api/audit.csv'], ['GET', '/api/events'], ['GET', '/api/openapi.json'],
        ['POST', '/api/connection/pause'], ['POST', '/api/mappings/Account/reload'], ['POST', '/api/write-errors/discard'], ['POST', '/api/import'],
      ] as const) {
        const res = await d.api(path, { method, as, json: method === 'POST' ? { all: true } : undefined });
        expect([as, method, path, res.status]).toEqual([as, method, path, 401]);
        expect(JSON.stringify(await res.json())).not.toContain(ADMIN);
      }
    }
    // The page itself too (a cookie with a wrong token, or a wrong ?token=, is no token).
    expect((await fetch(`${d.base}/`)).status).toBe(401);
    expect((await fetch(`${d.base}/?token=nope`, { redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${d.base}/`, { headers: { cookie: 'hcsync_token=nope' } })).status).toBe(401);
    expect(await state()).toBe(before.state);
    expect(await auditCount()).toBe(before.audit);
    // The probes stay open; unknown paths are 404 as before.
    expect((await fetch(`${d.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${d.base}/nope`)).status).toBe(404);
  });

  it('?token= sets an HttpOnly SameSite=Strict cookie and redirects to the bare URL; the cookie then opens the page', async () => {
    const res = await fetch(`${d.base}/?token=${ADMIN}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^hcsync_token=[^;]+; Path=\/; HttpOnly; SameSite=Strict$/);
    const page = await fetch(`${d.base}/`, { headers: { cookie: cookie.split(';')[0] } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/ui/app.js">');
    expect(html).not.toContain(ADMIN);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect((await fetch(`${d.base}/api/whoami`, { headers: { cookie: cookie.split(';')[0] } })).status).toBe(200);
  });

  it('the viewer reads but every change is 403 and changes nothing', async () => {
    expect((await d.api('/api/connection', { as: VIEWER })).status).toBe(200);
    expect(await (await d.api('/api/whoami', { as: VIEWER })).json()).toEqual({ role: 'viewer', principal: 'dashboard:viewer' });
    const before = { state: await state(), audit: await auditCount() };
    for (const path of ['/api/connection/pause', '/api/mappings/Account/reload', '/api/write-errors/retry']) {
      const res = await d.api(path, { method: 'POST', as: VIEWER, json: { all: true } });
      expect([path, res.status]).toEqual([path, 403]);
      expect((await res.json()).error).toMatch(/read-only/);
    }
    expect(await state()).toBe(before.state);
    expect(await auditCount()).toBe(before.audit);
  });

  it('an admin change without the CSRF header, or from another origin, is 403 and changes nothing', async () => {
    const before = { state: await state(), audit: await auditCount() };
    let res = await d.api('/api/connection/pause', { method: 'POST', csrf: false });
    expect(res.status).toBe(403);
    expect((await res.json()).error).toMatch(/X-HCSync-CSRF/);
    res = await d.api('/api/connection/pause', { method: 'POST', headers: { origin: 'http://evil.example' } });
    expect(res.status).toBe(403);
    // A form post from another site carries the cookie at most (SameSite=Strict keeps even that), never the header.
    res = await fetch(`${d.base}/api/connection/pause`, { method: 'POST', headers: { cookie: `hcsync_token=${ADMIN}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
    expect(res.status).toBe(403);
    expect(await state()).toBe(before.state);
    expect(await auditCount()).toBe(before.audit);
  });
});

describe('the API', () => {
  it('pause and resume: the state changes, and hc.audit_log names the token principal', async () => {
    expect((await d.api('/api/connection/pause', { method: 'POST' })).status).toBe(200);
    expect(await state()).toBe('PAUSED');
    expect((await (await d.api('/api/connection')).json()).state).toBe('PAUSED');
    expect((await d.api('/api/connection/resume', { method: 'POST' })).status).toBe(200);
    expect(await state()).not.toBe('PAUSED');
    const { rows } = await d.db.query(`select action, principal, actor from hc.audit_log where action in ('pause', 'resume') order by id`);
    expect(rows.map((r) => [r.action, r.principal])).toEqual([['pause', 'dashboard:admin'], ['resume', 'dashboard:admin']]);
    expect(rows[0].actor).toBeTruthy();
    // The same SQL call made outside the API names no principal.
    await d.db.query(`select hc.pause()`);
    await d.db.query(`select hc.resume()`);
    expect((await d.db.query(`select principal from hc.audit_log order by id desc limit 1`)).rows[0].principal).toBeNull();
    // The audit trail as CSV.
    const csv = await d.api('/api/audit.csv');
    expect(csv.headers.get('content-type')).toContain('text/csv');
    expect(csv.headers.get('content-disposition')).toMatch(/attachment; filename="hcsync-audit-dash\.csv"/);
    const lines = (await csv.text()).trim().split('\n');
    expect(lines[0]).toBe('id,at,actor,principal,action,object_name,detail');
    expect(lines.filter((l) => /,dashboard:admin,(pause|resume),/.test(l))).toHaveLength(2);
  });

  it('a refused state change is 400 with the SQL error and its hint', async () => {
    const res = await d.api('/api/mappings/NoSuchObject/reload', { method: 'POST' });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.error).toMatch(/no mapping for object "NoSuchObject"/);
    expect(body.hint).toMatch(/Mapped objects: Account/);
    expect((await d.api('/api/write-errors/retry', { method: 'POST', json: {} })).status).toBe(400);
    expect((await d.api('/api/mappings/Bad;Name/poll', { method: 'POST' })).status).toBe(400);
  });

  it('mappings: list with counts, detail with fields, poll now is requested', async () => {
    const list = await (await d.api('/api/mappings')).json();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ object_name: 'Account', table_name: 'account', state: 'DATA_SYNCED', pg_rows: 5 });
    const one = await (await d.api('/api/mappings/account')).json();
    expect(one.object_name).toBe('Account');
    expect(one.fields.map((f: { field_name: string }) => f.field_name)).toContain('External_Id__c');
    expect((await d.api('/api/mappings/Account/poll', { method: 'POST' })).status).toBe(200);
    const audit = await d.db.query(`select principal from hc.audit_log where action like '%poll%' order by id desc limit 1`);
    expect(audit.rows[0]?.principal).toBe('dashboard:admin');
  });

  it('a write fails, shows in write errors and the log; retry by id sends it again, and it succeeds', async () => {
    // Salesforce refuses the next write call as a whole, for a reason that is not transient: the row FAILS.
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Refused once for the test', remaining: 1 });
    const { rows: [row] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Dash retry', 'dash-1') returning id`);
    const errs = await until(async () => {
      const e = await (await d.api('/api/write-errors')).json();
      return e.length ? e : undefined;
    }, 'the failed write', 60_000, 200);
    expect(errs[0]).toMatchObject({ object_name: 'Account', record_id: row.id });
    expect(errs[0].sf_message).toMatch(/INVALID_FIELD: Refused once for the test/);
    expect(Number((await (await d.api('/api/connection')).json()).errored_writes)).toBe(1);
    const logs = await (await d.api('/api/logs?level=warn&object=Account')).json();
    expect(logs.some((l: { event: string }) => l.event === 'write_failed')).toBe(true);
    expect(logs.every((l: { level: string }) => l.level === 'warn' || l.level === 'error')).toBe(true);

    const res = await d.api('/api/write-errors/retry', { method: 'POST', json: { ids: [errs[0].trigger_log_id] } });
    expect(await res.json()).toEqual({ ok: true, action: 'retry', count: 1 });
    await until(async () => (await d.db.query(`select 1 from salesforce.account where id = $1 and sfid is not null and _hc_lastop in ('INSERTED', 'SYNCED')`, [row.id])).rowCount,
      'the retried write', 60_000, 200).catch(async (e) => {
      const log = await d.db.query(`select id, state, action, sf_message from salesforce._trigger_log where record_id = $1 order by id`, [row.id]);
      const r = await d.db.query(`select sfid, _hc_lastop, _hc_err from salesforce.account where id = $1`, [row.id]);
      throw new Error(`${e.message}: ${JSON.stringify({ log: log.rows, row: r.rows })}\n${d.sidecar.output().slice(-3000)}`);
    });
    expect(await (await d.api('/api/write-errors')).json()).toEqual([]);
  }, 150_000);

  it('discard all matching a table', async () => {
    await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'dash-2'), ('INVALID', 'dash-3')`);
    const listed = await until(async () => {
      const e = await (await d.api('/api/write-errors?table=Account')).json();
      return e.length >= 2 ? e : undefined;
    }, 'two failed writes', 60_000, 200);
    const res = await d.api('/api/write-errors/discard', { method: 'POST', json: { table: 'Account' } });
    expect(await res.json()).toEqual({ ok: true, action: 'discard', count: listed.length });
    expect(await (await d.api('/api/write-errors')).json()).toEqual([]);
  }, 150_000);

  it('retry and discard by several ids: exactly those are re-queued or discarded; one id alone; an id no longer failed refuses the whole pick', async () => {
    const listedIds = async () =>
      ((await (await d.api('/api/write-errors')).json()) as Array<{ trigger_log_id: number }>).map((e) => Number(e.trigger_log_id)).sort((a, b) => a - b);
    const states = async (ids: number[]) => Object.fromEntries((await d.db.query(
      `select id, state from salesforce._trigger_log where id = any($1) union all select id, state from salesforce._trigger_log_archive where id = any($1)`, [ids],
    )).rows.map((r) => [r.id, r.state]));
    const failedOf = async (recordIds: number[], n: number) => {
      const e = await until(async () => {
        const all = await (await d.api('/api/write-errors')).json();
        return all.length === n ? all as Array<{ record_id: number; trigger_log_id: number }> : undefined;
      }, `${n} failed writes`, 60_000, 200);
      return recordIds.map((r) => Number(e.find((x) => x.record_id === r)!.trigger_log_id));
    };
    const insert = async (name: string, ext: string) =>
      (await d.db.query(`insert into salesforce.account (name, external_id__c) values ($1, $2) returning id`, [name, ext])).rows[0].id as number;
    // Two refused while Salesforce refuses every write call (a cause that then goes), three by the validation rule.
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Refused until fixed', remaining: -1 });
    let r1: number, r2: number, t1: number, t2: number;
    try {
      r1 = await insert('Many 1', 'many-1');
      r2 = await insert('Many 2', 'many-2');
      [t1, t2] = await failedOf([r1, r2], 2);
    } finally {
      d.emu.clearFaults();
    }
    const [r3, r4, r5] = [await insert('INVALID', 'many-3'), await insert('INVALID', 'many-4'), await insert('INVALID', 'many-5')];
    const [t3, t4, t5] = await failedOf([r3, r4, r5], 5);
    const audit = async (action: string) => (await d.db.query(`select principal, detail from hc.audit_log where action = $1 order by id desc limit 1`, [action])).rows[0];

    // Retry two by id: those two leave the list at once (back in the queue) and are sent; the other three stay.
    let res = await d.api('/api/write-errors/retry', { method: 'POST', json: { ids: [t1, t2] } });
    expect(await res.json()).toEqual({ ok: true, action: 'retry', count: 2 });
    expect(await listedIds()).toEqual([t3, t4, t5].sort((a, b) => a - b));
    expect(Object.values(await states([t1, t2])).some((s) => s === 'FAILED')).toBe(false);
    expect(await audit('retry')).toMatchObject({ principal: 'dashboard:admin', detail: { ids: [t1, t2], requeued: 2 } });
    await until(async () => (await d.db.query(`select count(*)::int n from salesforce.account where id = any($1) and sfid is not null`, [[r1, r2]])).rows[0].n === 2,
      'the two retried writes sent', 60_000, 200);
    // Each failed entry was re-queued, in place or (once archived) copied back as a new entry; each record's last entry succeeded.
    await until(async () => {
      const { rows } = await d.db.query(
        `select distinct on (record_id) record_id, state from (select record_id, id, state from salesforce._trigger_log where record_id = any($1) and table_name = 'account'
           union all select record_id, id, state from salesforce._trigger_log_archive where record_id = any($1) and table_name = 'account') e order by record_id, id desc`, [[r1, r2]]);
      return rows.length === 2 && rows.every((r) => r.state === 'SUCCESS');
    }, "each retried record's last write SUCCESS", 30_000, 200);
    expect(Object.values(await states([t1, t2])).every((s) => s === 'SUCCESS' || s === 'REQUEUED')).toBe(true);

    // Discard one by id: only it.
    res = await d.api('/api/write-errors/discard', { method: 'POST', json: { ids: [t3] } });
    expect(await res.json()).toEqual({ ok: true, action: 'discard', count: 1 });
    expect(await listedIds()).toEqual([t4, t5].sort((a, b) => a - b));
    expect(await audit('discard')).toMatchObject({ principal: 'dashboard:admin', detail: { ids: [t3], discarded: 1 } });

    // A pick with an id that is no longer failed (t3, discarded) is refused as a whole: t4 stays FAILED.
    res = await d.api('/api/write-errors/retry', { method: 'POST', json: { ids: [t4, t3] } });
    expect(res.status).toBe(400);
    const refused = await res.json();
    expect(refused.error).toContain('are not failed writes');
    expect(refused.hint).toMatch(/only FAILED entries/);
    expect(await listedIds()).toEqual([t4, t5].sort((a, b) => a - b));

    // Discard the other two by id.
    res = await d.api('/api/write-errors/discard', { method: 'POST', json: { ids: [t4, t5] } });
    expect(await res.json()).toEqual({ ok: true, action: 'discard', count: 2 });
    expect(await listedIds()).toEqual([]);
    expect(await audit('discard')).toMatchObject({ principal: 'dashboard:admin', detail: { ids: [t4, t5], discarded: 2 } });
    expect(await states([t3, t4, t5])).toEqual({ [t3]: 'IGNORED', [t4]: 'IGNORED', [t5]: 'IGNORED' });
    // Discarded writes are never sent; the retried ones are in Salesforce.
    const ext = d.emu.records('Account').map((r) => r.External_Id__c);
    expect(ext).toEqual(expect.arrayContaining(['many-1', 'many-2']));
    expect(ext.filter((x) => ['many-3', 'many-4', 'many-5'].includes(x as string))).toEqual([]);
  }, 150_000);

  it('export, then import: the mapping JSON round-trips and the import is audited', async () => {
    const exp = await d.api('/api/export?download=1');
    expect(exp.headers.get('content-disposition')).toContain('attachment');
    const file = await exp.json();
    expect(file.mappings.map((m: { object_name: string }) => m.object_name)).toEqual(['Account']);
    const imp = await d.api('/api/import', { method: 'POST', json: file });
    expect(imp.status).toBe(200);
    expect(await imp.json()).toMatchObject({ unchanged: ['Account'] });
    expect((await d.api('/api/import', { method: 'POST', json: { nope: 1 } })).status).toBe(400);
  });

  it('activity and API usage come back as series; the ledger shows the calls made', async () => {
    const act = await (await d.api('/api/activity?hours=24')).json();
    expect(act.length).toBeGreaterThanOrEqual(24);
    expect(act.reduce((n: number, b: { outbound_rows: string }) => n + Number(b.outbound_rows), 0)).toBeGreaterThanOrEqual(1);
    expect(act.reduce((n: number, b: { outbound_errors: string }) => n + Number(b.outbound_errors), 0)).toBeGreaterThanOrEqual(1);
    // Inbound rows count by SystemModstamp: the seeded records are older than a day, the retried row's
    // copy read back from Salesforce is not.
    expect(act.reduce((n: number, b: { inbound_rows: string }) => n + Number(b.inbound_rows), 0)).toBeGreaterThanOrEqual(1);
    const usage = await (await d.api('/api/api-usage?hours=6')).json();
    expect(usage.reduce((n: number, b: { calls: string }) => n + Number(b.calls), 0)).toBeGreaterThan(0);
    expect((await d.api('/api/api-usage?hours=0')).status).toBe(400);
  });

  it('server-sent events: an action elsewhere nudges an open stream', async () => {
    const ac = new AbortController();
    const res = await d.api('/api/events', { signal: ac.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    const read = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })().catch(() => {});
    await until(() => text.includes('event: hello'), 'the hello event', 10_000);
    await until(() => text.includes('"kind":"control"'), 'the first catch-up nudge', 10_000).catch(() => undefined);
    text = '';
    await d.db.query(`select hc.pause()`);
    await until(() => text.includes('event: nudge') && text.includes('"kind":"control"'), 'a control nudge', 10_000);
    await d.db.query(`select hc.resume()`);
    ac.abort();
    await read;
  });

  it('the OpenAPI document lists every route, and no answer carries a secret', async () => {
    const doc = await (await d.api('/api/openapi.json')).json();
    expect(doc.openapi).toBe('3.1.0');
    for (const p of ['/api/connection', '/api/connection/pause', '/api/mappings/{object}/reload', '/api/write-errors/retry', '/api/logs', '/api/audit.csv', '/api/export', '/api/import', '/api/api-usage', '/api/events']) {
      expect(doc.paths).toHaveProperty([p]);
    }
    const secrets = [ADMIN, VIEWER, d.emu.credentials.password, d.emu.credentials.clientSecret];
    for (const p of ['/api/connection', '/api/mappings', '/api/mappings/Account', '/api/audit', '/api/audit.csv', '/api/export', '/api/logs', '/api/openapi.json', '/']) {
      const body = await (await d.api(p)).text();
      for (const s of secrets) expect([p, body.includes(s)]).toEqual([p, false]);
    }
    // The sidecar's log masks both tokens in its configuration line.
    expect(d.sidecar.output()).not.toContain(VIEWER);
  });
});

describe('without HC_DASHBOARD_TOKEN', () => {
  it('a second sidecar makes a token for its run and logs the URL that carries it; the URL opens the dashboard', async () => {
    const other = spawnSidecar({ ...sidecarEnv(d.emu, d.db.url), HC_LOG_LEVEL: 'info', HC_LOG_PRETTY: '0' });
    try {
      const hit = await until(() => /"dashboard":"(http:\/\/127\.0\.0\.1:\d+)\/\?token=([\w-]+)"/.exec(other.output()), 'the dashboard URL in the log', 90_000, 100);
      const [, base, token] = hit;
      expect(token.length).toBeGreaterThanOrEqual(32);
      expect(token).not.toBe(ADMIN);
      expect((await fetch(`${base}/api/connection`)).status).toBe(401);
      const first = await fetch(`${base}/?token=${token}`, { redirect: 'manual' });
      expect(first.status).toBe(303);
      const cookie = first.headers.get('set-cookie')!.split(';')[0];
      expect(await (await fetch(`${base}/api/whoami`, { headers: { cookie } })).json()).toEqual({ role: 'admin', principal: 'dashboard:admin' });
      // The configuration line masks nothing it does not have: no token was set, none is shown there.
      expect(other.output()).toMatch(/"http":\{"host":"127\.0\.0\.1","port":0\}/);
    } finally {
      await other.kill9();
    }
  }, 120_000);
});
