// A mapping created by SQL alone is described, validated, created and loaded; Salesforce changes then
// arrive over CDC (create, update, delete, undelete, flow automation, formula fields); a notify-off
// mapping polls; a bad field is BAD_CONFIG while the others keep syncing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../sidecar/context.js';
import { driftSweep } from '../../sidecar/sync/inbound/drift.js';
import { mappingState, setup, until, withoutChangeEvents, type Harness } from './harness.js';
import { cli } from '../support/cli.js';

let h: Harness;
let inbound: Service;

async function admin(path: string, body: unknown = {}): Promise<unknown> {
  const res = await fetch(`${h.emu.url}/__emulator/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`emulator admin ${path}: ${res.status} ${await res.text()}`);
  return res.json().catch(() => null);
}

const accountFields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'CreatedDate', 'AccountNumber', 'Type', 'AnnualRevenue',
  'NumberOfEmployees', 'Rating', 'Phone', 'ParentId', 'Last_Touched__c', 'External_Id__c', 'Description'];
const cfg = (fields: string[], extra: Record<string, unknown> = {}) => ({ access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])), ...extra });

beforeAll(async () => {
  h = await setup({ seed: { Account: 40, Contact: 30 } });
  inbound = await h.startInbound();
});
afterAll(async () => {
  await inbound?.stop();
  await h?.close();
});

describe('inbound lifecycle', () => {
  it('a mapping created by SQL alone reaches DATA_SYNCED with every Salesforce row, typed', async () => {
    await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(accountFields, { upsert_field: 'External_Id__c' })]);
    await until(async () => (await mappingState(h.db, 'Account')).state === 'DATA_SYNCED', 'Account DATA_SYNCED');
    const sfRows = (await h.sf.conn.query<Record<string, any>>(`SELECT ${accountFields.join(', ')} FROM Account`, { autoFetch: true })).records;
    const { rows } = await h.db.query('select * from salesforce.account');
    expect(rows.length).toBe(sfRows.length);
    expect(sfRows.length).toBe(40);
    const byId = new Map(rows.map((r) => [r.sfid, r]));
    for (const s of sfRows) {
      const r = byId.get(s.Id);
      expect(r, s.Id).toBeDefined();
      expect(r.name).toBe(s.Name);
      expect(r.accountnumber).toBe(s.AccountNumber ?? null);
      expect(r.type).toBe(s.Type ?? null); // picklist
      expect(r.annualrevenue).toBe(s.AnnualRevenue ?? null); // double
      expect(r.numberofemployees).toBe(s.NumberOfEmployees ?? null); // int
      expect(r.parentid).toBe(s.ParentId ?? null); // reference
      expect(r.isdeleted).toBe(false); // boolean
      // datetimes: Salesforce's instant, stored as UTC (the pool reads timestamp columns back as UTC)
      expect(r.systemmodstamp.toISOString()).toBe(new Date(s.SystemModstamp.replace(/\+0000$/, 'Z')).toISOString());
      expect(r.createddate.toISOString()).toBe(new Date(s.CreatedDate.replace(/\+0000$/, 'Z')).toISOString());
      expect(r._hc_lastop).toBe('SYNCED');
    }
    const types = await h.db.query(`select column_name, data_type from information_schema.columns where table_schema = 'salesforce' and table_name = 'account'`);
    const t = Object.fromEntries(types.rows.map((x) => [x.column_name, x.data_type]));
    expect(t).toMatchObject({ systemmodstamp: 'timestamp without time zone', isdeleted: 'boolean', numberofemployees: 'integer', annualrevenue: 'double precision', name: 'character varying' });
    const meta = await h.db.query('select org_id, details from salesforce._hcmeta');
    expect(meta.rows[0].org_id).toMatch(/^00D/);
    expect((await h.db.query('select organization_id, api_version, state from hc.connections')).rows[0]).toMatchObject({ api_version: '62.0', state: 'IDLE' });
  });

  it('creates, updates, deletes and undeletes in Salesforce reach the table over CDC', async () => {
    const created = (await h.sf.conn.sobject('Account').create({ Name: 'Inbound Co', NumberOfEmployees: 7 })) as { id: string };
    await until(async () => (await h.db.query('select name from salesforce.account where sfid = $1', [created.id])).rows[0]?.name === 'Inbound Co', 'create');
    await h.sf.conn.sobject('Account').update({ Id: created.id, NumberOfEmployees: 8, AccountNumber: 'AN-1' });
    await until(async () => (await h.db.query('select numberofemployees from salesforce.account where sfid = $1', [created.id])).rows[0]?.numberofemployees === 8, 'update');
    expect((await h.db.query('select name, accountnumber from salesforce.account where sfid = $1', [created.id])).rows[0]).toEqual({ name: 'Inbound Co', accountnumber: 'AN-1' });
    await h.sf.conn.sobject('Account').destroy(created.id);
    await until(async () => (await h.db.query('select count(*)::int n from salesforce.account where sfid = $1', [created.id])).rows[0].n === 0, 'delete');
    // Undelete (Apex/SOAP in a real org; the emulator's org does it directly): a CDC UNDELETE event.
    await admin('undelete', { ids: [created.id] });
    await until(async () => (await h.db.query('select name from salesforce.account where sfid = $1', [created.id])).rows[0]?.name === 'Inbound Co', 'undelete');
  });

  it('a field set by Salesforce automation (flow) shows up', async () => {
    const a = (await h.sf.conn.sobject('Account').create({ Name: 'Flowed', AnnualRevenue: 20_000_000 })) as { id: string };
    await until(async () => (await h.db.query('select rating from salesforce.account where sfid = $1', [a.id])).rows[0]?.rating === 'Hot', 'before-save flow');
    await h.sf.conn.sobject('Account').update({ Id: a.id, Phone: '555-0100' });
    await until(async () => (await h.db.query('select last_touched__c from salesforce.account where sfid = $1', [a.id])).rows[0]?.last_touched__c, 'after-save flow');
  });

  it('a GAP event makes the record be read again', async () => {
    const id = (await h.db.query(`select sfid from salesforce.account order by sfid limit 1`)).rows[0].sfid;
    await h.db.query(`update salesforce.account set name = 'stale' where sfid = $1`, [id]);
    await h.db.query(`delete from salesforce._trigger_log`); // pretend it was never a local change
    await admin('streaming/gap', { object: 'Account', changeType: 'GAP_UPDATE', recordIds: [id] });
    await until(async () => (await h.db.query('select name from salesforce.account where sfid = $1', [id])).rows[0]?.name !== 'stale', 'gap re-read');
  });

  it('formula fields are fetched for CDC changes', async () => {
    await h.db.query('select hc.create_mapping($1, $2)', ['Contact', cfg(['Id', 'SystemModstamp', 'IsDeleted', 'FirstName', 'LastName', 'Email', 'Email_Upper__c', 'Name'])]);
    await until(async () => (await mappingState(h.db, 'Contact')).state === 'DATA_SYNCED', 'Contact DATA_SYNCED');
    const c = (await h.sf.conn.sobject('Contact').create({ LastName: 'Formula', FirstName: 'Fay', Email: 'fay@example.com' })) as { id: string };
    await until(async () => (await h.db.query('select email_upper__c from salesforce.contact where sfid = $1', [c.id])).rows[0]?.email_upper__c === 'FAY@EXAMPLE.COM', 'formula on create');
    await h.sf.conn.sobject('Contact').update({ Id: c.id, Email: 'fay2@example.com' });
    await until(async () => (await h.db.query('select email_upper__c from salesforce.contact where sfid = $1', [c.id])).rows[0]?.email_upper__c === 'FAY2@EXAMPLE.COM', 'formula on update');
    expect((await h.db.query('select name from salesforce.contact where sfid = $1', [c.id])).rows[0].name).toBe('Fay Formula');
  });

  it('an unknown field gives BAD_CONFIG naming it; other mappings keep syncing', async () => {
    await h.db.query('select hc.create_mapping($1, $2)', ['Lead', cfg(['Id', 'SystemModstamp', 'LastName', 'Company', 'No_Such_Field__c'])]);
    const s = await until(async () => {
      const m = await mappingState(h.db, 'Lead');
      return m.state === 'BAD_CONFIG' ? m : null;
    }, 'Lead BAD_CONFIG');
    expect(s.state_message).toMatch(/No_Such_Field__c/);
    const a = (await h.sf.conn.sobject('Account').create({ Name: 'Still Syncing' })) as { id: string };
    await until(async () => (await h.db.query('select count(*)::int n from salesforce.account where sfid = $1', [a.id])).rows[0].n === 1, 'Account still syncing');
  });

  it('a notify-off mapping polls (SystemModstamp window with deletes) and poll_now runs one at once', async () => {
    await h.db.query('select hc.create_mapping($1, $2)', ['Opportunity', cfg(['Id', 'SystemModstamp', 'IsDeleted', 'Name', 'StageName', 'CloseDate', 'Amount'], { sf_notify_enabled: false, sf_polling_seconds: 3600 })]);
    await until(async () => (await mappingState(h.db, 'Opportunity')).state === 'DATA_SYNCED', 'Opportunity DATA_SYNCED');
    const o = (await h.sf.conn.sobject('Opportunity').create({ Name: 'Polled', StageName: 'Prospecting', CloseDate: '2030-01-31', Amount: 10.5 })) as { id: string };
    await h.db.query(`select hc.poll_now('Opportunity')`);
    const row = await until(async () => (await h.db.query('select name, closedate::text d, amount from salesforce.opportunity where sfid = $1', [o.id])).rows[0], 'poll_now');
    expect(row).toEqual({ name: 'Polled', d: '2030-01-31', amount: 10.5 });
    await h.sf.conn.sobject('Opportunity').destroy(o.id);
    await until(async () => {
      await h.db.query(`select hc.poll_now('Opportunity')`).catch(() => {});
      await new Promise((r) => setTimeout(r, 300));
      return (await h.db.query('select count(*)::int n from salesforce.opportunity where sfid = $1', [o.id])).rows[0].n === 0;
    }, 'polled delete');
  });

  it('the drift sweep finds and repairs rows a poll or stream missed', async () => {
    const ctx = await h.context();
    const m = (await h.db.query(`select id, object_name, table_name, config, state, requested from hc._mappings where object_name = 'Account'`)).rows[0];
    expect((await driftSweep(ctx, m)).repaired).toBe(0); // in step: one COUNT() and nothing else
    const [gone, stale] = (await h.db.query('select sfid from salesforce.account order by sfid limit 2')).rows.map((r) => r.sfid);
    // As if events had been missed: a row lost, a row stale, a row Salesforce no longer has.
    await ctx.db.query('delete from salesforce.account where sfid = $1', [gone]);
    await ctx.db.query(`update salesforce.account set name = 'stale', systemmodstamp = '2000-01-01' where sfid = $1`, [stale]);
    await ctx.db.query(`insert into salesforce.account (sfid, name, systemmodstamp) values ('001000000000BOGUS', 'ghost', now())`);
    await ctx.db.query(`insert into salesforce.account (sfid, name, systemmodstamp) values ('001000000000BOGU2', 'ghost', now())`);
    const r = await driftSweep(ctx, m);
    expect(r.repaired).toBe(4);
    expect((await h.db.query(`select count(*)::int n from salesforce.account where name in ('ghost', 'stale')`)).rows[0].n).toBe(0);
    expect((await h.db.query('select count(*)::int n from salesforce.account where sfid = $1', [gone])).rows[0].n).toBe(1);
    expect((await h.db.query(`select count(*)::int n from salesforce._trigger_log`)).rows[0].n).toBe(0); // repairs are not echoed
  });

  it('a missed create and a missed delete that cancel out in the count are caught by the daily id reconciliation', async () => {
    const ctx = await h.context();
    const m = (await h.db.query(`select id, object_name, table_name, config, state, requested from hc._mappings where object_name = 'Account'`)).rows[0];
    // Last changed long ago: the comparison itself removes it (a recent row would be re-read first).
    const victim = (await h.db.query(`select sfid from salesforce.account where systemmodstamp < now() - interval '10 minutes' order by sfid desc limit 1`)).rows[0].sfid;
    // Salesforce changes whose events never arrive: one record created, another deleted.
    const made = await withoutChangeEvents(h.emu, async () => {
      const c = (await h.sf.conn.sobject('Account').create({ Name: 'Missed Create' })) as { id: string };
      await h.sf.conn.sobject('Account').destroy(victim);
      return c.id;
    });
    const api = () => h.emu.stats().api.used;
    let used = api();
    const hourly = await driftSweep(ctx, m);
    expect(hourly).toMatchObject({ reconciled: false, repaired: 0 }); // the counts agree: blind to it
    expect(hourly.sf).toBe(hourly.pg);
    expect(api() - used).toBe(1); // one SELECT COUNT()
    // A day later the sweep also compares ids (Salesforce's listing, compared in SQL).
    await h.db.query(`update hc.sync_positions set reconciled_at = now() - interval '25 hours' where mapping_id = $1`, [m.id]);
    used = api();
    const daily = await driftSweep(ctx, m);
    expect(daily).toMatchObject({ reconciled: true, repaired: 2 });
    expect(api() - used).toBe(3); // COUNT(), one page of Id, SystemModstamp, one re-read by Id
    expect((await h.db.query('select name from salesforce.account where sfid = $1', [made])).rows[0]?.name).toBe('Missed Create');
    expect((await h.db.query('select count(*)::int n from salesforce.account where sfid = $1', [victim])).rows[0].n).toBe(0);
    const log = (await h.db.query(`select detail from hc.sync_log where event = 'drift' order by id desc limit 1`)).rows[0].detail;
    expect(log).toMatchObject({ removed: 1, missing: 1, stale: 0 }); // rows applied from change events are not stale
    // Reconciled just now: the next sweep is one COUNT() again.
    used = api();
    expect(await driftSweep(ctx, m)).toMatchObject({ reconciled: false, repaired: 0 });
    expect(api() - used).toBe(1);
    expect((await h.db.query(`select count(*)::int n from salesforce._trigger_log`)).rows[0].n).toBe(0); // repairs are not echoed
  });

  it('a field added to a running mapping is back-filled from Salesforce; a removed one is dropped', async () => {
    const base = ['Id', 'SystemModstamp', 'IsDeleted', 'FirstName', 'LastName', 'Email', 'Email_Upper__c', 'Name'];
    // Read in the same transaction: once committed, the sidecar moves on at once.
    const tx = await h.db.pool.connect();
    try {
      await tx.query('begin');
      await tx.query('select hc.update_mapping($1, $2)', ['Contact', cfg([...base, 'Title'])]);
      const st = (await tx.query(`select state from hc._mappings where object_name = 'Contact'`)).rows[0].state;
      expect(st).toMatch(/RESYNC|SCHEMA_CHANGED/); // HC's "Loading new columns"
      await tx.query('commit');
    } finally {
      tx.release();
    }
    await until(async () => (await mappingState(h.db, 'Contact')).state === 'DATA_SYNCED', 'Contact re-synced');
    const sfTitles = new Map((await h.sf.conn.query<{ Id: string; Title: string | null }>('SELECT Id, Title FROM Contact', { autoFetch: true })).records.map((r) => [r.Id, r.Title ?? null]));
    const pgTitles = (await h.db.query('select sfid, title from salesforce.contact')).rows;
    expect(pgTitles.length).toBe(sfTitles.size);
    expect(pgTitles.filter((r) => r.title !== null).length).toBeGreaterThan(0);
    for (const r of pgTitles) expect(r.title, r.sfid).toBe(sfTitles.get(r.sfid));
    // A change event now carries the new field into the new column.
    const c = pgTitles[0].sfid as string;
    await h.sf.conn.sobject('Contact').update({ Id: c, Title: 'Chief Inbound Officer' });
    await until(async () => (await h.db.query('select title from salesforce.contact where sfid = $1', [c])).rows[0]?.title === 'Chief Inbound Officer', 'new field over CDC');

    // Removing a field drops its column; change events naming it still apply the rest.
    await h.db.query('select hc.update_mapping($1, $2)', ['Contact', cfg([...base.filter((f) => f !== 'Email' && f !== 'Email_Upper__c'), 'Title'])]);
    const cols = async () => (await h.db.query(`select column_name from information_schema.columns where table_schema = 'salesforce' and table_name = 'contact'`)).rows.map((r) => r.column_name);
    await until(async () => !(await cols()).includes('email'), 'email column dropped');
    expect(await cols()).toContain('title');
    await h.sf.conn.sobject('Contact').update({ Id: c, Email: 'moved@example.com', LastName: 'Renamed' });
    await until(async () => (await h.db.query('select lastname from salesforce.contact where sfid = $1', [c])).rows[0]?.lastname === 'Renamed', 'CDC after the column was dropped');
    expect((await mappingState(h.db, 'Contact')).state).toBe('DATA_SYNCED');
    expect((await h.db.query(`select count(*)::int n from hc.sync_log where level = 'error' and mapping_id = (select id from hc._mappings where object_name = 'Contact')`)).rows[0].n).toBe(0);
    // (two re-syncs and two change events: in the full suite on two cores this took longer than the
    // default 60 s once; a wait, not a speed check)
  }, 240_000);

  it('reload refills the table, and is refused while local writes are pending', async () => {
    const before = (await h.db.query('select count(*)::int n from salesforce.account')).rows[0].n;
    await h.db.query(`update salesforce.account set accountnumber = 'LOCAL' where sfid = (select min(sfid) from salesforce.account)`);
    // Refused where the operator is, with the way out; nothing is requested of the sidecar.
    const refused = await h.db.query(`select hc.reload('Account')`).then(() => null, (e) => e);
    expect(refused?.message).toMatch(/reload of Account refused: 1 local change\(s\) .* waiting to be sent/);
    expect(refused?.hint).toMatch(/pending_writes is 0/);
    expect((await h.db.query(`select requested from hc._mappings where object_name = 'Account'`)).rows[0].requested).toBeNull();
    // The sidecar checks again when it begins (changes made between request and start).
    await h.db.query(`select hc.inbound_begin_reload(id) from hc._mappings where object_name = 'Account'`).then(
      () => expect.unreachable('begin_reload must refuse while a change is pending'),
      (e) => expect(e.message).toMatch(/waiting to be sent/),
    );
    await h.db.query(`delete from salesforce._trigger_log`);
    await h.db.query(`select hc.reload('Account')`);
    await until(async () => {
      const m = await mappingState(h.db, 'Account');
      const n = (await h.db.query(`select count(*)::int n from hc.sync_log where event = 'reload'`)).rows[0].n;
      return m.state === 'DATA_SYNCED' && n === 1;
    }, 'reload done');
    expect((await h.db.query('select count(*)::int n from salesforce.account')).rows[0].n).toBe(before);
    expect((await h.db.query(`select count(*)::int n from salesforce.account where accountnumber = 'LOCAL'`)).rows[0].n).toBe(0);
  });

  it('an abort during a reload keeps every row and its id, and mapping:reload --wait ends on ABORTED', async () => {
    const env = { DATABASE_URL: h.db.url };
    const rows = async () => (await h.db.query('select id, sfid, name from salesforce.account order by id')).rows;
    const before = await rows();
    expect(before.length).toBeGreaterThan(10);
    // Record queries (not COUNTs) are answered 30 s late: the abort arrives while the reload reads.
    const fault = (await admin('faults', { method: 'GET', path: 'q=SELECT%20Id%2C', action: 'delay', delayMs: 30_000, remaining: 100 })) as { id: number };
    const left = async () => ((await (await fetch(`${h.emu.url}/__emulator/faults`)).json()) as { id: number; remaining: number }[]).find((f) => f.id === fault.id)!.remaining;
    const waiting = cli(['mapping:reload', 'Account', '--wait'], env);
    // The mapping's work runs one piece at a time: once the reload has taken the request, the next
    // record query is the reload's.
    await until(async () => (await mappingState(h.db, 'Account')).state === 'RELOAD_TABLE' && (await left()) < 100, 'the reload reading the records');
    expect(await rows()).toEqual(before); // nothing is removed before new data replaces it
    const abort = await cli(['mapping:abort', 'Account'], env);
    await fetch(`${h.emu.url}/__emulator/faults`, { method: 'DELETE' });
    expect(abort.stderr).toBe('');
    expect(abort.code).toBe(0);
    const r = await waiting;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Account.*ABORTED/);
    expect(r.stderr).toMatch(/mapping:reload Account|hc\.reload/);
    expect((await mappingState(h.db, 'Account')).state).toBe('ABORTED');
    expect(await rows()).toEqual(before);
  }, 120_000);

  it('a reload keeps ids, refreshes values, and removes rows Salesforce no longer has only once it completes', async () => {
    const before = (await h.db.query('select id, sfid from salesforce.account order by id')).rows as { id: number; sfid: string }[];
    const [gone, changed] = [before[0].sfid, before[1].sfid];
    await withoutChangeEvents(h.emu, async () => {
      await h.sf.conn.sobject('Account').destroy(gone);
      await h.sf.conn.sobject('Account').update({ Id: changed, AccountNumber: 'RELOADED' });
    });
    const reloads = async () => Number((await h.db.query(`select count(*) n from hc.sync_log where event = 'reload'`)).rows[0].n);
    const n = await reloads();
    const r = await cli(['mapping:reload', 'Account', '--wait'], { DATABASE_URL: h.db.url });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await reloads()).toBe(n + 1);
    expect((await mappingState(h.db, 'Account')).state).toBe('DATA_SYNCED');
    const after = (await h.db.query('select id, sfid, accountnumber from salesforce.account order by id')).rows;
    expect(after.map(({ id, sfid }) => ({ id, sfid }))).toEqual(before.filter((x) => x.sfid !== gone));
    expect(after.find((x) => x.sfid === changed)?.accountnumber).toBe('RELOADED');
  });
});
