// The dashboard in a real browser (Debian's Chromium, headless, through playwright-core) against a real
// sidecar, emulator and Postgres: each tab, a write that fails and is retried from the page, pause and
// resume, the audit CSV download, a mapping file import, and the viewer's read-only page. Live updates
// come through server-sent events: the page is never reloaded while waiting for a change. Each tab's
// screenshot is taken too (HCSYNC_SCREENSHOTS=docs writes them to docs/, where the README shows them).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { ADMIN, VIEWER, startDashboard, type Dashboard } from './harness.js';
import { launchChromium, openPage } from './browser.js';
import { until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';
import { tmpdir } from 'node:os';

let d: Dashboard;
let chrome: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const errors: string[] = [];

beforeAll(async () => {
  d = await startDashboard();
  chrome = await launchChromium();
  page = await openPage(chrome.browser, errors);
}, 240_000);
afterAll(async () => {
  await chrome?.close();
  await d?.stop();
});

// Screenshots go to the temp directory; HCSYNC_SCREENSHOTS=docs refreshes the README's copies in docs/
// (a test run must not change tracked files).
const shotDir = process.env.HCSYNC_SCREENSHOTS === 'docs' ? 'docs' : tempDir('dashboard');
const shot = (name: string) => page.screenshot({ path: join(shotDir, `dashboard-${name}.png`) });
const state = async () => (await d.db.query(`select state from hc.connections`)).rows[0].state as string;

describe('the dashboard in Chromium', () => {
  it('opens with the printed URL: the token becomes a cookie and leaves the address bar; the overview shows the connection', async () => {
    await page.goto(`${d.base}/?token=${ADMIN}`);
    expect(page.url()).toBe(`${d.base}/`);
    await page.locator('[data-test=live]', { hasText: 'live' }).waitFor();
    await page.getByText('Activity').waitFor();
    await page.locator('.card', { hasText: 'Mappings' }).locator('.big', { hasText: '1' }).waitFor();
    expect(await page.content()).not.toContain(ADMIN);
    await shot('overview');
  });

  it('a write fails: the banner appears without a reload; retried from Write errors, it is sent', async () => {
    // Salesforce refuses the next write call as a whole, for a reason that is not transient: the row FAILS.
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Refused once for the test', remaining: 1 });
    const { rows: [row] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Browser retry', 'web-1') returning id`);
    await page.locator('[data-test=banner]', { hasText: 'write(s) to Salesforce failed' }).waitFor({ timeout: 60_000 });
    await page.click('text=Review write errors');
    const table = page.locator('[data-test=write-errors]');
    await table.getByText('Refused once for the test').waitFor();
    await shot('write-errors');
    await table.locator('tr', { hasText: 'Refused once for the test' }).getByRole('button', { name: 'Retry' }).click();
    await page.locator('[data-test=no-write-errors]').waitFor({ timeout: 60_000 });
    await until(async () => (await d.db.query(`select 1 from salesforce.account where id = $1 and sfid is not null and _hc_lastop in ('INSERTED', 'SYNCED')`, [row.id])).rowCount,
      'the retried write sent', 60_000, 200);
    await page.locator('[data-test=banner]').waitFor({ state: 'detached', timeout: 30_000 });
    expect((await d.db.query(`select principal from hc.audit_log where action = 'retry' order by id desc limit 1`)).rows[0].principal).toBe('dashboard:admin');
    // A write Salesforce's validation rule refuses stays listed for the next screenshots and tabs.
    await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'web-2')`);
    await page.locator('[data-test=write-errors]').getByText('Account name INVALID is not allowed').waitFor({ timeout: 60_000 });
  }, 180_000);

  it('mappings: the table with counts, poll now, and the detail view with its fields', async () => {
    await page.click('nav >> text=Mappings');
    const row = page.locator('[data-test=mappings] tr', { hasText: 'Account' });
    await row.getByText('Data synced', { exact: false }).or(row.locator('.badge')).first().waitFor();
    await shot('mappings');
    await row.getByRole('button', { name: 'Poll now' }).click();
    await page.locator('.notice', { hasText: 'Poll Account: done' }).waitFor();
    await row.getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Fields' }).waitFor();
    await page.locator('td', { hasText: 'External_Id__c' }).first().waitFor();
    await shot('mapping-detail');
  });

  it('logs: the failed write is there, filtered by level, mapping and type', async () => {
    await page.click('nav >> text=Logs');
    await page.selectOption('[data-test=log-level]', 'warn');
    await page.selectOption('[data-test=log-object]', 'Account');
    await page.locator('[data-test=logs] tr', { hasText: 'write_failed' }).first().waitFor();
    // The list is read again on each live nudge: wait for the filtered version rather than read it once.
    const levels = await until(async () => {
      const l = await page.locator('[data-test=logs] tbody tr td:nth-child(2)').allTextContents();
      return l.length > 0 && l.every((x) => x === 'warn' || x === 'error') && l;
    }, 'only warn and error lines listed', 15_000).catch(async () => page.locator('[data-test=logs] tbody tr td:nth-child(2)').allTextContents());
    expect(levels.length).toBeGreaterThan(0);
    expect(levels.every((l) => l === 'warn' || l === 'error')).toBe(true);
    // And by type: only the failed writes.
    await page.locator('[data-test=log-event] option[value=write_failed]').waitFor({ state: 'attached' });
    await page.selectOption('[data-test=log-event]', 'write_failed');
    await until(async () => {
      const t = await page.locator('[data-test=logs] tbody tr td:nth-child(5)').allTextContents();
      return t.length > 0 && t.every((x) => x === 'write_failed');
    }, 'only write_failed lines listed', 15_000);
    await shot('logs');
  });

  it('settings: pause and resume, download the audit CSV, import a mapping file', async () => {
    await page.click('nav >> text=Settings');
    await page.getByRole('button', { name: 'Pause' }).click();
    await until(async () => (await state()) === 'PAUSED', 'paused', 20_000);
    await page.locator('.badge', { hasText: /paused/i }).first().waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await until(async () => (await state()) !== 'PAUSED', 'resumed', 20_000);

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByText('Download CSV').click()]);
    expect(download.suggestedFilename()).toBe('hcsync-audit-dash.csv');
    const csv = readFileSync((await download.path())!, 'utf8');
    expect(csv.split('\n')[0]).toBe('id,at,actor,principal,action,object_name,detail');
    expect(csv).toMatch(/,dashboard:admin,pause,/);
    expect(csv).toMatch(/,dashboard:admin,resume,/);

    // Import: the exported file with Phone dropped from the mapping updates it.
    const exported = (await d.db.query(`select hc.export_config() as c`)).rows[0].c;
    delete exported.mappings[0].config.fields.Phone;
    const file = join(tmpdir(), `hcsync-import-${process.pid}.json`);
    writeFileSync(file, JSON.stringify(exported));
    try {
      await page.setInputFiles('[data-test=import]', file);
      await page.locator('[data-test=import-result]', { hasText: 'updated Account' }).waitFor();
    } finally {
      rmSync(file, { force: true }); // the browser has read it (it was left in the temp directory)
    }
    expect((await d.db.query(`select config->'fields' ? 'Phone' as has from hc._mappings`)).rows[0].has).toBe(false);
    expect((await d.db.query(`select principal from hc.audit_log where action like '%import%' order by id desc limit 1`)).rows[0]?.principal).toBe('dashboard:admin');
    await shot('settings');
    expect(errors).toEqual([]);
  }, 120_000);

  it('the viewer token: every tab reads, every action button is disabled', async () => {
    const viewer = await chrome.browser.newContext({ viewport: { width: 1200, height: 760 } });
    const p = await viewer.newPage();
    await p.goto(`${d.base}/?token=${VIEWER}`);
    await p.getByText('dashboard:viewer').waitFor();
    await p.click('nav >> text=Settings');
    for (const name of ['Pause', 'Resume', 'Recover from error']) expect(await p.getByRole('button', { name }).isDisabled()).toBe(true);
    await p.click('nav >> text=Mappings');
    await p.locator('[data-test=mappings] tr', { hasText: 'Account' }).waitFor();
    expect(await p.getByRole('button', { name: 'Reload' }).isDisabled()).toBe(true);
    await viewer.close();
  });

  it('without a token the page is refused', async () => {
    const anon = await chrome.browser.newContext();
    const p = await anon.newPage();
    const res = await p.goto(`${d.base}/`);
    expect(res?.status()).toBe(401);
    expect(await p.content()).toContain('needs its token');
    await anon.close();
  });
});
