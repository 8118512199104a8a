// The dashboard's finer points in Chromium (headless, playwright-core) against a real sidecar, emulator
// and Postgres, with two mappings (Account read-write, Contact read-only): the Overview's state message
// when paused, with how to resume; the Mappings list's fields, pending and errored columns against a
// known queue; the per-row links to Logs and the Sync Explorer opening filtered to that mapping; Write
// errors retried and discarded by selection; and the mapping detail view's activity chart drawing what
// happened to that mapping and nothing of the other's. Every wait ends on what the page or the database
// shows, never on a reload or a sleep.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { ADMIN, startDashboard, type Dashboard } from './harness.js';
import { launchChromium, openPage } from './browser.js';
import { until } from '../support/until.js';
import { login } from '../emulator/helpers.js';

let d: Dashboard;
let chrome: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const errors: string[] = [];

beforeAll(async () => {
  d = await startDashboard();
  d.emu.seed({ Contact: 3 });
  await d.db.query(`select hc.create_mapping('Contact', $1::jsonb)`, [
    JSON.stringify({ access: 'read_only', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, CreatedDate: {}, LastName: {} } }),
  ]);
  await until(async () => (await d.db.query(`select 1 from hc.mappings where object_name = 'Contact' and state = 'DATA_SYNCED'`)).rowCount, 'Contact loaded', 120_000, 200);
  chrome = await launchChromium();
  page = await openPage(chrome.browser, errors, { url: `${d.base}/?token=${ADMIN}` });
}, 240_000);
afterAll(async () => {
  await chrome?.close();
  await d?.stop();
});

/** Opens a tab afresh: another tab first, so that the tab's panels mount and read the API again. */
const open = async (tab: string) => {
  await page.click(`nav >> text=${tab === 'Logs' ? 'Settings' : 'Logs'}`);
  await page.click(`nav >> text=${tab}`);
};
/** The Mappings tab's row of one mapping (found by its object link). */
const mappingRow = (object: string) =>
  page.locator('[data-test=mappings] tbody tr').filter({ has: page.getByRole('link', { name: object, exact: true }) });
const sent = (id: number) => d.db.query(`select 1 from salesforce.account where id = $1 and sfid is not null`, [id]).then((r) => r.rowCount);
/** The states of trigger-log entries, live or archived, by id. */
const queueStates = async (ids: number[]) => {
  const { rows } = await d.db.query(
    `select id, state from salesforce._trigger_log where id = any($1) union all
     select id, state from salesforce._trigger_log_archive where id = any($1) order by id`, [ids]);
  return Object.fromEntries(rows.map((r) => [r.id, r.state]));
};
/** Each record's trigger-log entries, live or archived, oldest first: their states. */
const recordEntries = async (recordIds: number[]) => {
  const { rows } = await d.db.query(
    `select record_id, id, state from salesforce._trigger_log where table_name = 'account' and record_id = any($1) union all
     select record_id, id, state from salesforce._trigger_log_archive where table_name = 'account' and record_id = any($1) order by id`, [recordIds]);
  const by: Record<number, string[]> = {};
  for (const r of rows) (by[r.record_id] ??= []).push(r.state);
  return by;
};
/** Waits until each record's write has failed; answers the trigger-log id of each failed write. */
const failedWrites = async (recordIds: number[]) => {
  const { rows } = await until(async () => {
    const r = await d.db.query(`select record_id, trigger_log_id from hc.write_errors where table_name = 'account' and record_id = any($1)`, [recordIds]);
    return r.rowCount === recordIds.length ? r : undefined;
  }, `${recordIds.length} failed write(s)`, 60_000, 200);
  const by = new Map<number, number>(rows.map((r) => [r.record_id, Number(r.trigger_log_id)]));
  return recordIds.map((id) => by.get(id)!);
};

// The activity chart: per bucket, the colours of the bars drawn in it (inbound rows, outbound rows, read
// errors, write errors: the Overview's and the detail view's order and colours).
const KEYS = ['inbound_rows', 'outbound_rows', 'inbound_errors', 'outbound_errors'] as const;
const COLORS = ['#3b82f6', '#10b981', '#f59e0b', '#ef4444'];
type Bucket = Record<(typeof KEYS)[number], string> & { bucket: string };
const expectedBars = (series: Bucket[]) =>
  Object.fromEntries(series.map((b) => [b.bucket, KEYS.flatMap((k, j) => (Number(b[k]) > 0 ? [COLORS[j]] : []))]));
const drawnBars = (chart: Locator) =>
  chart.evaluate((svg) => Object.fromEntries([...svg.querySelectorAll('g[data-bucket]')].map((g) => [
    g.getAttribute('data-at'),
    [...g.querySelectorAll('rect:not(.hover)')].filter((r) => Number(r.getAttribute('height')) > 0).map((r) => r.getAttribute('fill')),
  ])));
const activity = async (object?: string): Promise<Bucket[]> =>
  (await d.api(`/api/activity?hours=24${object ? `&object=${object}` : ''}`)).json();

describe('dashboard details in Chromium', () => {
  it('Overview: paused, the state message says so and how to resume, without a reload; resumed, the hint goes', async () => {
    await open('Overview');
    const card = page.locator('.card').filter({ has: page.locator('[data-test=state-message]') });
    const message = card.locator('[data-test=state-message]');
    await card.locator('.badge').filter({ hasNotText: '…' }).waitFor();
    const user = (await d.db.query(`select session_user as u`)).rows[0].u;
    await d.db.query(`select hc.pause()`);
    try {
      await card.locator('.badge', { hasText: /^Paused$/ }).waitFor();
      await message.locator('[data-test=resume-hint]').waitFor();
      expect(await message.textContent()).toBe(`paused by ${user}. Nothing is synced until it resumes: Resume in Settings, or select hc.resume();`);
      expect(await message.getByRole('link', { name: 'Settings' }).getAttribute('href')).toBe('#settings');
      expect((await (await d.api('/api/connection')).json()).state_message).toBe(`paused by ${user}`);
    } finally {
      await d.db.query(`select hc.resume()`);
    }
    await message.locator('[data-test=resume-hint]').waitFor({ state: 'detached' });
    await card.locator('.badge', { hasText: /^Paused$/ }).waitFor({ state: 'detached' });
    expect(await message.textContent()).not.toMatch(/paused/i);
    expect(errors).toEqual([]);
  }, 60_000);

  it('Mappings: fields, Postgres rows, pending and errored writes per mapping, as the queue holds them; the pending writes sent, the count follows', async () => {
    // One write Salesforce refuses (its validation rule), then two that wait while the sync is paused.
    const { rows: [bad] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'cols-1') returning id`);
    await failedWrites([bad.id]);
    await d.db.query(`select hc.pause()`);
    let pending: Array<{ id: number }>;
    try {
      ({ rows: pending } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Waiting 1', 'cols-2'), ('Waiting 2', 'cols-3') returning id`));
      const { rows: [counts] } = await d.db.query(`select pending_writes, errored_writes from hc.mappings where object_name = 'Account'`);
      expect(counts).toEqual({ pending_writes: '2', errored_writes: '1' });

      await open('Mappings');
      const cells = async (object: string) => {
        const row = mappingRow(object);
        await row.waitFor();
        const t = await row.locator('td').allTextContents();
        return { fields: t[4], pg_rows: t[6], pending: t[7], errored: t[8] };
      };
      // Account: 7 fields mapped (the harness's), 5 seeded rows and the 3 inserted.
      expect(await cells('Account')).toEqual({ fields: '7', pg_rows: '8', pending: '2', errored: '1' });
      expect(await mappingRow('Account').locator('td').nth(8).getAttribute('class')).toBe('bad');
      // Contact (read only): its 5 fields, its 3 records, nothing queued.
      expect(await cells('Contact')).toEqual({ fields: '5', pg_rows: '3', pending: '0', errored: '0' });
      expect(await mappingRow('Contact').locator('td').nth(8).getAttribute('class')).toBe('');
    } finally {
      await d.db.query(`select hc.resume()`);
    }
    // Resumed, the waiting writes are sent, and the list follows without a reload; the refused one stays.
    await until(async () => (await sent(pending[0].id)) && (await sent(pending[1].id)), 'the waiting writes sent', 60_000, 200);
    await mappingRow('Account').locator('td').nth(7).filter({ hasText: /^0$/ }).waitFor({ timeout: 30_000 });
    expect(await mappingRow('Account').locator('td').nth(8).textContent()).toBe('1');
    // (the refused write is discarded, for the next tests to count their own)
    await d.db.query(`select hc.discard()`);
    await mappingRow('Account').locator('td').nth(8).filter({ hasText: /^0$/ }).waitFor({ timeout: 30_000 });
    expect(errors).toEqual([]);
  }, 120_000);

  it("Mappings: a row's Logs link opens the Logs tab filtered to that mapping, its Explorer link the Sync Explorer on that mapping", async () => {
    const { rows: ms } = await d.db.query(`select id, object_name, connection_id from hc._mappings`);
    const id = (o: string) => ms.find((m) => m.object_name === o).id;
    await d.db.query(
      `insert into hc.sync_log (connection_id, mapping_id, direction, level, event, message) values
         ($1, $2, 'inbound', 'info', 'probe_link', 'link probe: Contact'),
         ($1, $3, 'inbound', 'info', 'probe_link', 'link probe: Account'),
         ($1, null, 'inbound', 'info', 'probe_link', 'link probe: no mapping')`,
      [ms[0].connection_id, id('Contact'), id('Account')],
    );
    await open('Mappings');
    await mappingRow('Contact').getByRole('link', { name: 'Logs', exact: true }).click();
    expect(new URL(page.url()).hash).toBe('#logs/Contact');
    await page.locator('nav a.on', { hasText: /^Logs$/ }).waitFor();
    await until(async () => (await page.locator('[data-test=log-object]').inputValue()) === 'Contact', 'the Logs tab filtered to Contact', 15_000, 100);
    const logs = page.locator('[data-test=logs] tbody tr');
    await logs.filter({ hasText: 'link probe: Contact' }).waitFor();
    const mappings = await logs.locator('td:nth-child(3)').allTextContents();
    expect(mappings.length).toBeGreaterThan(0);
    expect(new Set(mappings)).toEqual(new Set(['Contact']));
    const messages = await logs.locator('td:nth-child(6)').allTextContents();
    expect(messages).not.toContain('link probe: Account');
    expect(messages).not.toContain('link probe: no mapping');

    // The explorer opens on the first mapping (Account) by itself: the link must carry Contact.
    await page.click('nav >> text=Mappings');
    await mappingRow('Contact').getByRole('link', { name: 'Explorer', exact: true }).click();
    expect(new URL(page.url()).hash).toBe('#explorer/Contact');
    await page.locator('nav a.on', { hasText: /^Sync Explorer$/ }).waitFor();
    await until(async () => (await page.locator('[data-test=explorer-object]').inputValue()) === 'Contact', 'the Sync Explorer on Contact', 15_000, 100);
    const want = (await d.db.query(`select sfid from salesforce.contact`)).rows.map((r) => r.sfid as string).sort();
    expect(want).toHaveLength(3);
    const listed = page.locator('[data-test=explorer-rows] tbody tr td:nth-child(2)');
    await until(async () => JSON.stringify((await listed.allTextContents()).sort()) === JSON.stringify(want), 'the Contact rows listed', 15_000, 100);
    expect(errors).toEqual([]);
  }, 60_000);

  it('Write errors: two of three failed writes selected and retried are sent once the cause is gone; another selection discarded is never sent', async () => {
    // Salesforce refuses every write call until the fault is cleared: two writes fail for that.
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Refused until fixed', remaining: -1 });
    let a: number, b: number;
    let ta: number, tb: number;
    try {
      ({ rows: [{ id: a }] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Selected A', 'sel-a') returning id`));
      ({ rows: [{ id: b }] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Selected B', 'sel-b') returning id`));
      [ta, tb] = await failedWrites([a, b]);
    } finally {
      d.emu.clearFaults();
    }
    // A third, refused by the validation rule: that cause stays.
    const { rows: [{ id: c }] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'sel-c') returning id`);
    const [tc] = await failedWrites([c]);
    expect(await queueStates([ta, tb, tc])).toEqual({ [ta]: 'FAILED', [tb]: 'FAILED', [tc]: 'FAILED' });

    await open('Write errors');
    const rows = page.locator('[data-test=write-errors] tbody tr');
    await until(async () => (await rows.count()) === 3, 'three listed', 15_000, 100);
    const retrySel = page.getByRole('button', { name: /^Retry selected/ });
    const discardSel = page.getByRole('button', { name: 'Discard selected' });
    expect(await retrySel.textContent()).toBe('Retry selected (0)');
    expect(await retrySel.isDisabled()).toBe(true);
    expect(await discardSel.isDisabled()).toBe(true);
    await page.getByRole('checkbox', { name: `select ${ta}`, exact: true }).check();
    await page.getByRole('checkbox', { name: `select ${tb}`, exact: true }).check();
    await retrySel.filter({ hasText: 'Retry selected (2)' }).waitFor();
    expect(await discardSel.isDisabled()).toBe(false);
    await retrySel.click();
    await page.locator('.notice', { hasText: 'Retry selected: done (2)' }).waitFor();
    // Back in the queue (the same entries, no longer FAILED), gone from the list; the third is left, unselected.
    expect(Object.values(await queueStates([ta, tb])).every((s) => s !== 'FAILED')).toBe(true);
    await page.locator(`[data-test=write-errors] tr[data-id="${ta}"]`).waitFor({ state: 'detached' });
    await page.locator(`[data-test=write-errors] tr[data-id="${tb}"]`).waitFor({ state: 'detached' });
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-id')).toBe(String(tc));
    expect(await page.getByRole('checkbox', { name: `select ${tc}`, exact: true }).isChecked()).toBe(false);
    expect(await retrySel.textContent()).toBe('Retry selected (0)');
    // The cause gone, both are sent.
    await until(async () => (await sent(a)) && (await sent(b)), 'the two retried writes sent', 60_000, 200);
    // Each one's failed entry was re-queued (in place, or copied back from the archive as a new entry
    // when the writer had archived it already), and the record's last entry is the one that succeeded.
    let last: unknown;
    await until(async () => {
      const e = last = await recordEntries([a, b]);
      return [a, b].every((r) => e[r]?.at(-1) === 'SUCCESS' && !e[r].includes('FAILED'));
    }, () => `each retried record's last write SUCCESS, not ${JSON.stringify(last)}`, 30_000, 200);
    expect(Object.values(await queueStates([ta, tb])).every((st) => st === 'SUCCESS' || st === 'REQUEUED')).toBe(true);
    expect(d.emu.records('Account').filter((r) => ['sel-a', 'sel-b'].includes(r.External_Id__c as string)).map((r) => r.Name).sort()).toEqual(['Selected A', 'Selected B']);
    const retry = (await d.db.query(`select principal, detail from hc.audit_log where action = 'retry' order by id desc limit 1`)).rows[0];
    expect(retry).toMatchObject({ principal: 'dashboard:admin', detail: { requeued: 2 } });
    expect([...retry.detail.ids].sort((x: number, y: number) => x - y)).toEqual([ta, tb].sort((x, y) => x - y));

    // The third, selected and discarded: IGNORED, never sent, the list empty.
    await page.getByRole('checkbox', { name: `select ${tc}`, exact: true }).check();
    await discardSel.click();
    await page.locator('.notice', { hasText: 'Discard selected: done (1)' }).waitFor();
    await page.locator('[data-test=no-write-errors]', { hasText: 'No failed writes.' }).waitFor();
    expect(await queueStates([tc])).toEqual({ [tc]: 'IGNORED' });
    expect(await sent(c)).toBe(0);
    expect(d.emu.records('Account').some((r) => r.External_Id__c === 'sel-c')).toBe(false);
    expect((await d.db.query(`select principal, detail from hc.audit_log where action = 'discard' order by id desc limit 1`)).rows[0])
      .toMatchObject({ principal: 'dashboard:admin', detail: { ids: [tc], discarded: 1 } });
    expect(errors).toEqual([]);
  }, 150_000);

  it("the mapping detail view: its activity chart draws that mapping's rows and errors, bucket by bucket, and none of the other mapping's", async () => {
    // Account: a write sent and a write refused in this hour. Contact (read only): a change read in.
    const { rows: [ok] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Charted', 'chart-1') returning id`);
    await until(() => sent(ok.id), 'the write sent', 60_000, 200);
    const { rows: [bad] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', 'chart-2') returning id`);
    await failedWrites([bad.id]);
    await d.db.query(`select hc.discard()`);
    const { rows: [contact] } = await d.db.query(`select id, sfid from salesforce.contact order by id limit 1`);
    const sf = await login(d.emu);
    await sf.sobject('Contact').update({ Id: contact.sfid, LastName: 'Charted' });
    await until(async () => (await d.db.query(`select 1 from salesforce.contact where id = $1 and lastname = 'Charted' and _hc_lastop = 'SYNCED'`, [contact.id])).rowCount,
      'the Contact change read in', 60_000, 200);

    const chart = page.locator('main svg.chart');
    const drawsItsSeries = (object: string) => until(async () => {
      const want = expectedBars(await activity(object));
      const got = await drawnBars(chart);
      return JSON.stringify(got) === JSON.stringify(want) && want;
    }, `${object}'s activity drawn`, 30_000, 250);

    await open('Mappings');
    await mappingRow('Account').getByRole('link', { name: 'Account', exact: true }).click();
    await page.getByRole('heading', { name: 'Activity, last 24 hours' }).waitFor();
    const account = await drawsItsSeries('Account');
    const colours = Object.values(account).flat();
    expect(Object.keys(account).length).toBeGreaterThanOrEqual(24);
    expect(colours).toContain(COLORS[1]); // rows written to Salesforce
    expect(colours).toContain(COLORS[3]); // write errors
    // Hovering the bucket of the write shows the mapping's own figures.
    const readout = page.locator('main .legend');
    await until(async () => {
      const b = (await activity('Account')).findLast((x) => Number(x.outbound_rows) > 0);
      if (!b) return false;
      await chart.locator(`g[data-at="${b.bucket}"]`).hover();
      const text = await readout.textContent();
      return text?.includes(`Postgres → Salesforce rows: ${b.outbound_rows}`) && text.includes(`Write errors: ${b.outbound_errors}`);
    }, 'the hovered bucket of the write', 30_000, 250);
    await page.mouse.move(0, 0);

    // Contact's detail: its change read in, and none of Account's writes, which the whole connection's series has.
    expect((await activity()).some((x) => Number(x.outbound_rows) > 0)).toBe(true);
    await page.click('nav >> text=Mappings');
    await mappingRow('Contact').getByRole('link', { name: 'Contact', exact: true }).click();
    await page.getByRole('heading', { name: /^Contact/ }).waitFor();
    const contactBars = Object.values(await drawsItsSeries('Contact')).flat();
    expect(contactBars).toContain(COLORS[0]);
    expect(contactBars).not.toContain(COLORS[1]);
    expect(contactBars).not.toContain(COLORS[3]);
    expect(errors).toEqual([]);
  }, 150_000);
});
