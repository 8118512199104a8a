// The dashboard's panels in Chromium (headless, playwright-core) against a real sidecar, emulator and
// Postgres, one test per panel or action, each setting up what it looks at and leaving the page where
// any other test can start: the org's API use drawn against its daily allowance, the Logs tab's filters
// and live lines, Write errors retried or discarded by filter, the activity period and hover values,
// a mapping's reload, abort and delete, recovery from an error state, and the mapping JSON export.
// Nothing waits by reloading the page or by sleeping: every wait ends on what the page or the database
// shows. Screenshots as in dashboard.test.ts (HCSYNC_SCREENSHOTS=docs writes them to docs/).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { ADMIN, parkConflict, startDashboard, type Dashboard } from './harness.js';
import { launchChromium, openPage } from './browser.js';
import { until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';

let d: Dashboard;
let chrome: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const errors: string[] = [];

beforeAll(async () => {
  d = await startDashboard();
  chrome = await launchChromium();
  page = await openPage(chrome.browser, errors, { ignore: /status of (400|404)/, url: `${d.base}/?token=${ADMIN}` });
}, 240_000);
afterAll(async () => {
  await chrome?.close();
  await d?.stop();
});

const shotDir = process.env.HCSYNC_SCREENSHOTS === 'docs' ? 'docs' : tempDir('dashboard-panels');
const shot = async (name: string, fullPage = false) => {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.locator('.notice').last().waitFor({ state: 'detached', timeout: 15_000 }).catch(() => {});
  await page.mouse.move(0, 0);
  await page.screenshot({ path: join(shotDir, `dashboard-${name}.png`), fullPage });
};
/** Opens a tab afresh: another tab first, so that the tab's panels mount and read the API again. */
const open = async (tab: string) => {
  await page.click(`nav >> text=${tab === 'Logs' ? 'Settings' : 'Logs'}`);
  await page.click(`nav >> text=${tab}`);
};
const n = (s: string) => s.replace(/[,.\s\u202f]/g, '');

describe('dashboard panels in Chromium', () => {
  it("Overview: the org's API use is drawn against its daily allowance and the budget's thresholds; hovering a bucket shows the figures", async () => {
    d.emu.setDailyApiLimit(15_000, 5_000);
    // The next call's Sforce-Limit-Info brings the new figures into the ledger (hc.api_calls).
    expect((await d.api('/api/mappings/Account/poll', { method: 'POST' })).status).toBe(200);
    await until(async () => (await d.db.query(`select allowance from hc.api_budget`)).rows[0].allowance === 15_000, 'the allowance reported', 60_000, 200);
    const budget = await (await d.api('/api/api-budget')).json();
    expect(budget).toMatchObject({ allowance: 15_000, level: 'normal', slow_percent: 70, pause_percent: 90 });
    expect(budget.used).toBeGreaterThanOrEqual(5_000);

    await open('Overview');
    const chart = page.locator('[data-test=allowance-chart]');
    await chart.locator('[data-test=allowance-line][data-value="15000"]').waitFor();
    expect(n((await chart.locator('[data-test=allowance-line]').textContent())!)).toBe('dailyallowance15000');
    expect(await chart.locator('[data-test=slow-line]').getAttribute('data-value')).toBe('10500');
    expect(await chart.locator('[data-test=paused-line]').getAttribute('data-value')).toBe('13500');
    // The card: the org's use of the allowance, as a share.
    const card = page.locator('[data-test=api-budget]');
    await card.locator('.big', { hasText: /15[,.\s\u202f]?000/ }).waitFor();
    expect(n((await card.locator('.big').textContent())!)).toMatch(/^5\d{3}\/15000\d+%$/);
    // The bucket of now holds the figure Salesforce reported, below the allowance line.
    const last = chart.locator('g[data-bucket]').last();
    await last.hover();
    const readout = page.locator('[data-test=allowance-readout]');
    await readout.getByText(/of 15[,.\s\u202f]?000 \(3\d(\.\d)? %\)/).waitFor();
    const bar = last.locator('rect:not(.hover)');
    const line = chart.locator('[data-test=allowance-line] line');
    expect(Number(await bar.getAttribute('y'))).toBeGreaterThan(Number(await line.getAttribute('y1')));
    await shot('api-usage', true);
    expect(errors).toEqual([]);
  }, 120_000);
  it('Overview: the change events delivered in the last 24 hours, as the database counts them', async () => {
    // A row of the application's: its create's change event comes back to the sidecar and is counted.
    await d.db.query(`insert into salesforce.account (name) values ('Counted event')`);
    const delivered = async () => Number((await d.db.query('select events_delivered_24h n from hc.status')).rows[0].n);
    await until(async () => (await delivered()) > 0, 'the event counted', 60_000, 200);
    const conn = await (await d.api('/api/connection')).json();
    expect(Number(conn.events_delivered_24h)).toBeGreaterThan(0);
    // (the count is flushed with the API-call ledger and sends no nudge: the tab reads it when it opens)
    let last = -1;
    await until(async () => { const now = await delivered(); const steady = now === last; last = now; return steady; }, 'the count steady', 30_000, 1000);
    await open('Overview');
    const card = page.locator('[data-test=events-delivered] .big');
    await until(async () => Number(n((await card.textContent()) ?? '')) === (await delivered()), 'the card shows the count', 30_000, 200);
    expect(errors).toEqual([]);
  });

  it('Logs: filtered by type (the event) as well as by mapping and level', async () => {
    const { rows: [m] } = await d.db.query(`select id, connection_id from hc._mappings where object_name = 'Account'`);
    await d.db.query(
      `insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message) values
         ($1, $2, 'outbound', 'warn', 'probe_type_a', 'type filter: A warn'),
         ($1, $2, 'outbound', 'info', 'probe_type_a', 'type filter: A info'),
         ($1, null, 'inbound', 'warn', 'probe_type_b', 'type filter: B warn')`,
      [m.connection_id, m.id],
    );
    await open('Logs');
    // The types offered are those logged this week, with their counts.
    await page.locator('[data-test=log-event] option', { hasText: 'probe_type_a (2 this week)' }).waitFor({ state: 'attached' });
    const messages = () => page.locator('[data-test=logs] tbody tr td:nth-child(6)').allTextContents();
    const listed = (want: string[]) =>
      until(async () => JSON.stringify(await messages()) === JSON.stringify(want), `the log listing ${want.join(', ')}`, 15_000, 100);
    await page.selectOption('[data-test=log-event]', 'probe_type_a');
    await listed(['type filter: A info', 'type filter: A warn']);
    await page.selectOption('[data-test=log-level]', 'warn');
    await listed(['type filter: A warn']);
    await page.selectOption('[data-test=log-event]', 'probe_type_b');
    await listed(['type filter: B warn']);
    // B was logged for no mapping: filtered to Account, nothing is left.
    await page.selectOption('[data-test=log-object]', 'Account');
    await page.getByText('Nothing logged for this filter.').waitFor();
    await page.selectOption('[data-test=log-event]', 'probe_type_a');
    await listed(['type filter: A warn']);
    expect(errors).toEqual([]);
  });
  it('Write errors: filtered by mapping and message text, then all that match discarded, or retried, in one click; audited with the principal', async () => {
    await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'panel-1'), ('INVALID', 'panel-2')`);
    await until(async () => (await d.db.query(`select count(*)::int n from hc.write_errors`)).rows[0].n === 2, 'two refused writes', 60_000, 200);
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Refused for the panel', remaining: 1 });
    const { rows: [once] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Panel once', 'panel-3') returning id`);
    await until(async () => (await d.db.query(`select count(*)::int n from hc.write_errors`)).rows[0].n === 3, 'three failed writes', 60_000, 200);

    await open('Write errors');
    const rows = page.locator('[data-test=write-errors] tbody tr');
    await until(async () => (await rows.count()) === 3, 'three listed', 15_000, 100);
    await page.fill('[data-test=errors-match]', 'NOT ALLOWED');
    await page.locator('[data-test=errors-matching]', { hasText: '2 failed write(s) match' }).waitFor();
    await until(async () => (await rows.count()) === 2, 'two match', 15_000, 100);
    await shot('write-errors-filter');
    let asked = '';
    page.once('dialog', (dialog) => {
      asked = dialog.message();
      void dialog.accept();
    });
    await page.getByRole('button', { name: 'Discard all that match (2)' }).click();
    await page.locator('[data-test=no-write-errors]', { hasText: 'No failed write matches.' }).waitFor();
    expect(asked).toBe('Discard the 2 failed write(s) whose message contains "NOT ALLOWED"? Nothing of them is sent.');
    const discard = (await d.db.query(`select principal, detail from hc.audit_log where action = 'discard' order by id desc limit 1`)).rows[0];
    expect(discard).toMatchObject({ principal: 'dashboard:admin', detail: { discarded: 2 } });
    expect(discard.detail.ids).toHaveLength(2);

    // The other one, by mapping and message: retried, and sent.
    await page.fill('[data-test=errors-match]', 'refused for the');
    await page.selectOption('[data-test=errors-object]', 'Account');
    await page.locator('[data-test=errors-matching]', { hasText: '1 failed write(s) match' }).waitFor();
    await page.getByRole('button', { name: 'Retry all that match (1)' }).click();
    await until(async () => (await d.db.query(`select 1 from salesforce.account where id = $1 and sfid is not null`, [once.id])).rowCount, 'the retried write sent', 60_000, 200);
    await page.fill('[data-test=errors-match]', '');
    await page.selectOption('[data-test=errors-object]', '');
    await page.locator('[data-test=no-write-errors]', { hasText: 'No failed writes.' }).waitFor();
    expect((await d.db.query(`select principal from hc.audit_log where action = 'retry' order by id desc limit 1`)).rows[0].principal).toBe('dashboard:admin');
    expect(errors).toEqual([]);
  }, 150_000);
  it('Conflicts: a parked conflict appears without a reload, with both values; resolved from the page for Postgres, both sides then hold its value', async () => {
    await open('Conflicts');
    await page.locator('[data-test=no-conflicts]').or(page.locator('[data-test=conflicts]')).first().waitFor();
    const { id, sfid, conflict } = await parkConflict(d, 'pg-page', 'sf-page');
    const kid = Number(conflict.id);
    const row = page.locator(`[data-test=conflicts] tr[data-id="${kid}"]`);
    await row.locator('[data-test=outcome]', { hasText: 'parked' }).waitFor({ timeout: 60_000 });
    expect(await row.locator('[data-test=pg-values]').textContent()).toBe('phone: pg-page');
    expect(await row.locator('[data-test=sf-values]').textContent()).toBe('phone: sf-page');
    expect(await row.locator('td').nth(8).textContent()).toBe('manual');
    await page.locator('[data-test=parked-count]', { hasText: '1' }).waitFor();
    await shot('conflicts');
    // Nothing is overwritten while it is parked.
    expect((await d.db.query(`select phone from salesforce.account where id = $1`, [id])).rows[0].phone).toBe('pg-page');

    let asked = '';
    page.once('dialog', (dialog) => {
      asked = dialog.message();
      void dialog.accept();
    });
    await row.getByRole('button', { name: 'Keep Postgres' }).click();
    await row.locator('[data-test=outcome]', { hasText: 'by ' }).waitFor();
    expect(asked).toMatch(new RegExp(`^Resolve conflict ${kid} \\(Account ${sfid}\\) for Postgres: Phone takes Postgres's value, written to Salesforce\\?$`));
    expect(await row.locator('[data-test=outcome]').textContent()).toMatch(/^Postgresby .*\(dashboard:admin\), /);
    await until(async () => (await d.db.query(`select phone from salesforce.account where id = $1`, [id])).rows[0].phone === 'pg-page'
      && d.emu.records('Account').find((r) => r.Id === sfid)?.Phone === 'pg-page', 'both sides hold pg-page', 60_000, 200);
    await page.locator('[data-test=parked-count]').waitFor({ state: 'detached' });
    expect((await d.db.query(`select principal from hc.audit_log where action = 'resolve_conflict' order by id desc limit 1`)).rows[0].principal).toBe('dashboard:admin');
    expect(errors).toEqual([]);
  }, 180_000);
  it('Overview: the period selector changes the activity buckets, and hovering a bucket shows its values', async () => {
    const { rows: [r] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Activity', 'act-1') returning id`);
    await until(async () => (await d.db.query(`select 1 from salesforce.account where id = $1 and sfid is not null`, [r.id])).rowCount, 'the write sent', 60_000, 200);
    await open('Overview');
    const bars = page.locator('[data-test=activity-chart] g[data-bucket]');
    const period = page.locator('.period');
    // 24 hours: hourly buckets; 6 hours: 5-minute ones; 7 days: daily ones (each range counts the bucket of now).
    const buckets = (lo: number, hi: number) => until(async () => { const c = await bars.count(); return c >= lo && c <= hi; }, `${lo} to ${hi} buckets`, 15_000, 100);
    await buckets(24, 25);
    await period.getByRole('button', { name: '7 days' }).click();
    await buckets(7, 8);
    expect(await period.locator('button.on').textContent()).toBe('7 days');
    await period.getByRole('button', { name: '6 hours' }).click();
    await buckets(72, 73);
    // The bucket holding the write: hovering it shows what the API counts for it.
    const readout = page.locator('[data-test=activity-readout]');
    await until(async () => {
      const series = await (await d.api('/api/activity?hours=6')).json();
      const b = series.findLast((x: { outbound_rows: number }) => Number(x.outbound_rows) > 0);
      if (!b) return false;
      await page.locator(`[data-test=activity-chart] g[data-at="${b.bucket}"]`).hover();
      const text = await readout.textContent();
      return text?.includes(`Postgres → Salesforce rows: ${b.outbound_rows}`) && text.includes(`Salesforce → Postgres rows: ${b.inbound_rows}`)
        && text.includes(`Write errors: ${b.outbound_errors}`);
    }, 'the hovered bucket\'s values shown', 30_000, 250);
    await page.mouse.move(0, 0);
    await readout.getByText('Salesforce → Postgres rows', { exact: true }).waitFor();
    expect(errors).toEqual([]);
  }, 120_000);

  it('Logs: a new sync-log line appears without a reload', async () => {
    await open('Logs');
    await page.locator('[data-test=logs] tbody tr').first().waitFor();
    const { rows: [m] } = await d.db.query(`select id, connection_id from hc._mappings where object_name = 'Account'`);
    const message = `a live line ${Date.now()}`;
    const url = page.url();
    await d.db.query(`insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message) values ($1, $2, 'inbound', 'info', 'probe_live', $3)`,
      [m.connection_id, m.id, message]);
    await page.locator('[data-test=logs] tbody tr').first().getByText(message).waitFor();
    expect(page.url()).toBe(url);
    expect(errors).toEqual([]);
  });

  it('Mappings: reload runs to the end; a second reload is aborted from its row, and a poll brings the mapping back', async () => {
    const st = async () => (await d.db.query(`select state from hc._mappings where object_name = 'Account'`)).rows[0].state as string;
    const principal = async (action: string) => (await d.db.query(`select principal from hc.audit_log where action = $1 order by id desc limit 1`, [action])).rows[0]?.principal;
    await open('Mappings');
    const row = page.locator('[data-test=mappings] tbody tr', { hasText: 'Account' });
    const badge = row.locator('.badge');
    await badge.filter({ hasText: /^OK$/ }).waitFor();
    await row.getByRole('button', { name: 'Reload' }).click();
    await page.locator('.notice', { hasText: 'Reload Account: done' }).waitFor();
    expect(await principal('reload')).toBe('dashboard:admin');
    await until(async () => (await d.db.query(`select 1 from hc.audit_log where action = 'reload'`)).rowCount && (await st()) === 'DATA_SYNCED'
      && (await d.db.query(`select requested from hc._mappings where object_name = 'Account'`)).rows[0].requested === null, 'the reload done', 60_000, 200);
    await badge.filter({ hasText: /^OK$/ }).waitFor();

    // Salesforce answers queries slowly, so the next reload is still running when it is aborted.
    d.emu.injectFault({ kind: 'any', path: '/query', action: 'delay', delayMs: 3000, remaining: -1 });
    try {
      await row.getByRole('button', { name: 'Reload' }).click();
      await badge.filter({ hasText: 'Reloading' }).waitFor({ timeout: 60_000 });
      await row.getByRole('button', { name: 'Abort' }).click();
      await page.locator('.notice', { hasText: 'Abort Account: done' }).waitFor();
      await badge.filter({ hasText: 'Aborted' }).waitFor({ timeout: 60_000 });
      expect(await st()).toBe('ABORTED');
      expect(await principal('abort')).toBe('dashboard:admin');
      expect(Number((await d.db.query(`select count(*) from salesforce.account`)).rows[0].count)).toBeGreaterThanOrEqual(5); // rows kept
    } finally {
      d.emu.clearFaults();
    }
    await row.getByRole('button', { name: 'Poll now' }).click();
    await badge.filter({ hasText: /^OK$/ }).waitFor({ timeout: 60_000 });
    expect(errors).toEqual([]);
  }, 180_000);

  it('Mappings: delete asks first; cancelled, nothing happens; confirmed, the mapping and its table are gone', async () => {
    d.emu.seed({ Contact: 2 });
    await d.db.query(`select hc.create_mapping('Contact', $1::jsonb)`, [JSON.stringify({ access: 'read_only', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, CreatedDate: {}, LastName: {} } })]);
    await until(async () => (await d.db.query(`select 1 from hc.mappings where object_name = 'Contact' and state = 'DATA_SYNCED'`)).rowCount, 'Contact loaded', 60_000, 200);
    await open('Mappings');
    const row = page.locator('[data-test=mappings] tbody tr', { hasText: 'Contact' });
    await row.waitFor();
    const asked: string[] = [];
    page.once('dialog', (dialog) => { asked.push(dialog.message()); void dialog.dismiss(); });
    await row.getByRole('button', { name: 'Delete' }).click();
    await until(() => asked.length === 1, 'the confirmation asked', 10_000, 50);
    expect(asked[0]).toBe('Delete the mapping Contact? Its table contact and its rows are dropped; Salesforce is not touched.');
    expect((await d.db.query(`select 1 from hc._mappings where object_name = 'Contact'`)).rowCount).toBe(1);
    expect((await d.db.query(`select 1 from hc.audit_log where action = 'delete_mapping'`)).rowCount).toBe(0);

    page.once('dialog', (dialog) => { asked.push(dialog.message()); void dialog.accept(); });
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.locator('.notice', { hasText: 'Delete Contact: done' }).waitFor();
    await row.waitFor({ state: 'detached' });
    expect(asked).toHaveLength(2);
    expect((await d.db.query(`select 1 from hc._mappings where object_name = 'Contact'`)).rowCount).toBe(0);
    await until(async () => (await d.db.query(`select to_regclass('salesforce.contact') is null as gone`)).rows[0].gone, 'the table dropped', 30_000, 200);
    expect((await d.db.query(`select principal from hc.audit_log where action = 'delete_mapping' order by id desc limit 1`)).rows[0].principal).toBe('dashboard:admin');
    expect(errors).toEqual([]);
  }, 120_000);

  it('Settings: a connection in an error state is shown so, and "Recover from error" brings it back', async () => {
    await d.db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'simulated: the sync stopped on an unexpected error', 'dash')`);
    await open('Settings');
    await page.locator('.badge.error', { hasText: 'Unexpected error' }).first().waitFor();
    // The banner says so (the notification of the state entered).
    const banner = page.locator('[data-test=banner]', { hasText: /The connection (dash )?is in an error state/ });
    await banner.waitFor();
    await page.getByRole('button', { name: 'Recover from error' }).click();
    await page.locator('.notice', { hasText: 'Recover: done' }).waitFor();
    expect((await d.db.query(`select principal, detail from hc.audit_log where action = 'recover' order by id desc limit 1`)).rows[0])
      .toMatchObject({ principal: 'dashboard:admin', detail: { from: 'SYSTEM_ERROR' } });
    // RECOVERY, then IDLE once the sidecar's next Salesforce call succeeds.
    await until(async () => (await d.db.query(`select state from hc.connections`)).rows[0].state === 'IDLE', 'the connection recovered', 60_000, 200);
    await page.locator('.badge.error').first().waitFor({ state: 'detached' });
    await banner.waitFor({ state: 'detached' });
    expect(errors).toEqual([]);
  }, 120_000);

  it('Settings: "Export JSON" downloads the mapping file the database exports', async () => {
    await open('Settings');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByText('Export JSON').click()]);
    expect(download.suggestedFilename()).toBe('hcsync-dash.json');
    const { readFileSync } = await import('node:fs');
    const file = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    const want = (await d.db.query(`select hc.export_config() as c`)).rows[0].c;
    for (const f of [file, want]) delete f.connection.exported_at;
    expect(file).toEqual(want);
    expect(file.mappings.map((m: { object_name: string }) => m.object_name)).toContain('Account');
    expect(errors).toEqual([]);
  });
});
