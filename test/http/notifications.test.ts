// Notifications end to end, against a real sidecar, emulator and Postgres: a write Salesforce refuses
// is news once; the sidecar POSTs it to the webhook (HC_NOTIFY_WEBHOOK_URL), which refuses the first
// attempt, so it is retried and both attempts are recorded in hc.notification_deliveries (with the
// webhook's origin only: its path is its secret). The API lists it as active until the write is retried
// and sent; `hcsync notifications` shows the same; the viewer reads it, no token gets 401.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VIEWER, startDashboard, type Dashboard } from '../dashboard/harness.js';
import { until } from '../support/until.js';
import { cli as inProcess } from '../support/cli.js';

const SECRET_PATH = '/hooks/T000/B000/secret-path-0123456789';
let d: Dashboard;
let hook: Server;
let hookUrl = '';
const received: Array<{ path: string; body: Record<string, any>; answered: number }> = [];

beforeAll(async () => {
  // The webhook: the first POST gets 500, the rest 204.
  hook = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const answered = received.length === 0 ? 500 : 204;
      received.push({ path: req.url ?? '', body: JSON.parse(text), answered });
      res.writeHead(answered).end(answered === 500 ? 'busy' : undefined);
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}${SECRET_PATH}`;
  d = await startDashboard({ HC_NOTIFY_WEBHOOK_URL: hookUrl, HC_NOTIFY_WEBHOOK_ATTEMPTS: '3' });
}, 240_000);
afterAll(async () => {
  await d?.stop();
  await new Promise((r) => hook?.close(r));
});

describe('notifications', () => {
  it('a refused write notifies: webhook retried after a 500 and delivered, both attempts recorded; active until retried and sent', async () => {
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Refused for the notification test', remaining: 1 });
    const { rows: [row] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Notify me', 'note-1') returning id`);

    const notes = await until(async () => {
      const n = await (await d.api('/api/notifications')).json();
      return n.length ? n : undefined;
    }, 'the notification', 60_000, 200);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ kind: 'writes_failed', object_name: 'Account', active: true });
    expect(notes[0].message).toMatch(/^1 write\(s\) of Account to Salesforce failed: INVALID_FIELD: Refused for the notification test/);

    await until(() => received.length >= 2, 'the webhook retried', 30_000, 100);
    expect(received.map((r) => r.answered)).toEqual([500, 204]);
    expect(received[1].path).toBe(SECRET_PATH);
    expect(received[1].body).toMatchObject({
      text: expect.stringContaining('hcsync dash: 1 write(s) of Account to Salesforce failed'),
      notification: { connection: 'dash', schema: 'salesforce', kind: 'writes_failed', object: 'Account', count: 1 },
    });
    const deliveries = await until(async () => {
      const r = await d.db.query(`select attempt, target, status, ok from hc.notification_deliveries order by id`);
      return r.rows.length >= 2 ? r.rows : undefined;
    }, 'two deliveries recorded', 10_000, 100);
    const origin = new URL(hookUrl).origin;
    expect(deliveries).toEqual([
      { attempt: 1, target: origin, status: 500, ok: false },
      { attempt: 2, target: origin, status: 204, ok: true },
    ]);
    expect((await (await d.api('/api/notifications')).json())[0].webhook).toBe('delivered');
    // The webhook's path (its secret) is in no log line.
    expect(d.sidecar.output()).not.toContain(SECRET_PATH);
    expect(d.sidecar.output()).toContain(`"webhookUrl":"${origin}/***"`);

    // The CLI shows the same.
    const cli = await inProcess(['notifications', '--json'], { DATABASE_URL: d.db.url });
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout).results[0]).toMatchObject({ kind: 'writes_failed', active: true, webhook: 'delivered', attempts: 2 });
    const text = await inProcess(['notifications'], { DATABASE_URL: d.db.url });
    expect(text.stdout).toMatch(/writes_failed\s+Account\s+true\s+delivered/);

    // The viewer reads it; no token gets 401.
    expect((await d.api('/api/notifications', { as: VIEWER })).status).toBe(200);
    expect((await d.api('/api/notifications', { as: null })).status).toBe(401);

    // Retried and sent: the notification is no longer active, and nothing more is sent.
    const [err] = await (await d.api('/api/write-errors')).json();
    await d.api('/api/write-errors/retry', { method: 'POST', json: { ids: [err.trigger_log_id] } });
    await until(async () => (await d.db.query(`select 1 from salesforce.account where id = $1 and sfid is not null`, [row.id])).rowCount, 'the retried write', 60_000, 200);
    await until(async () => (await (await d.api('/api/notifications')).json())[0].active === false, 'inactive', 10_000, 100);
    expect(received).toHaveLength(2);
  }, 180_000);

  it('the connection entering an error state is news too, and reaches the webhook', async () => {
    await d.db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'made up for the test')`);
    await until(() => received.some((r) => r.body.notification.kind === 'connection_error'), 'the connection_error webhook', 30_000, 100);
    const n = (await (await d.api('/api/notifications')).json())[0];
    expect(n).toMatchObject({ kind: 'connection_error', active: true });
    expect(n.message).toContain('made up for the test');
    await d.api('/api/connection/recover', { method: 'POST' });
  }, 60_000);
});
