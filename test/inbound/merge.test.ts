// The inbound apply rules, in SQL alone: typing, matching by sfid then upsert field, pending local
// changes winning, pending deletes not revived, bad rows failing alone, staged (COPY) pages.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { describeField } from '../support/describe.js';
import { syncPool } from '../../sidecar/db/pool.js';

const f = describeField;
const describeAccount = {
  name: 'Account',
  fields: [
    f('Id', 'id', { nillable: false, createable: false, updateable: false }),
    f('IsDeleted', 'boolean', { createable: false, updateable: false }),
    f('Name', 'string', { length: 10 }),
    f('SystemModstamp', 'datetime', { createable: false, updateable: false }),
    f('NumberOfEmployees', 'int'),
    f('AnnualRevenue', 'currency'),
    f('Founded__c', 'date'),
    f('Active__c', 'boolean'),
    f('Type', 'picklist', { length: 40 }),
    f('ParentId', 'reference', { referenceTo: ['Account'], relationshipName: 'Parent' }),
    f('Ext__c', 'string', { length: 20, externalId: true, unique: true }),
  ],
};
const fields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees', 'AnnualRevenue', 'Founded__c', 'Active__c', 'Type', 'ParentId', 'Ext__c'];

let db: TestDb;
let sync: pg.Pool;
let mappingId: number;

const row = (id: string, extra: Record<string, unknown> = {}) => ({
  Id: id, Name: 'Acme', SystemModstamp: '2024-01-15T10:20:30.000+0000', IsDeleted: false, NumberOfEmployees: 12,
  AnnualRevenue: 1234.5, Founded__c: '2001-02-03', Active__c: true, Type: 'Customer', ParentId: null, Ext__c: null, ...extra,
});
const merge = async (rows: unknown[], origin = 'poll', flds = fields) =>
  (await sync.query('select hc.inbound_merge($1, $2, $3, $4, $5) as r', [mappingId, 'json', flds, JSON.stringify(rows), origin])).rows[0].r;

beforeAll(async () => {
  db = await createTestDb();
  sync = syncPool(db.url, { max: 2 });
  await db.query(`select hc.create_connection('test', 'salesforce')`);
  const cfg = { access: 'read_write', upsert_field: 'Ext__c', fields: Object.fromEntries(fields.map((x) => [x, {}])) };
  mappingId = (await db.query('select hc.create_mapping($1, $2, $3) as id', ['Account', cfg, describeAccount])).rows[0].id;
});
afterAll(async () => {
  await sync?.end();
  await db?.drop();
});

describe('inbound_merge', () => {
  it('types every value and stores datetimes as UTC', async () => {
    const r = await merge([row('001000000000001AAA', { SystemModstamp: '2024-01-15T12:20:30.000+0200' }), row('001000000000002AAA', { Name: null, NumberOfEmployees: null, Active__c: false })]);
    expect(r).toMatchObject({ applied: 2, failed: 0 });
    const { rows } = await db.query(`select sfid, name, systemmodstamp::text ts, numberofemployees, annualrevenue, founded__c::text d, active__c, type, _hc_lastop
                                     from salesforce.account order by sfid`);
    expect(rows[0]).toMatchObject({ sfid: '001000000000001AAA', name: 'Acme', ts: '2024-01-15 10:20:30', numberofemployees: 12, annualrevenue: 1234.5, d: '2001-02-03', active__c: true, type: 'Customer', _hc_lastop: 'SYNCED' });
    expect(rows[1]).toMatchObject({ name: null, numberofemployees: null, active__c: false });
    const log = await db.query(`select count(*)::int n from salesforce._trigger_log`);
    expect(log.rows[0].n).toBe(0); // sync session: never captured
  });

  it('a row that does not fit fails alone, with its id, and the rest of the batch lands', async () => {
    const r = await merge([row('001000000000003AAA', { Name: 'much too long a name' }), row('001000000000004AAA', { NumberOfEmployees: 'many' }), row('001000000000005AAA')]);
    expect(r).toMatchObject({ applied: 1, failed: 2 });
    const logged = await db.query(`select detail->>'sfid' sfid, message from hc.sync_log where event = 'row_failed' order by id`);
    expect(logged.rows.map((x) => x.sfid)).toEqual(['001000000000003AAA', '001000000000004AAA']);
    expect(logged.rows[0].message).toMatch(/Fix:/);
    expect((await db.query(`select count(*)::int n from salesforce.account where sfid = '001000000000005AAA'`)).rows[0].n).toBe(1);
  });

  it('adopts a locally inserted row by its upsert field instead of duplicating it', async () => {
    await db.query(`insert into salesforce.account (name, ext__c) values ('Local', 'EXT-1')`);
    await db.query(`update salesforce._trigger_log set state = 'SUCCESS'`);
    await merge([row('001000000000006AAA', { Name: 'FromSF', Ext__c: 'EXT-1' })]);
    const { rows } = await db.query(`select sfid, name from salesforce.account where ext__c = 'EXT-1'`);
    expect(rows).toEqual([{ sfid: '001000000000006AAA', name: 'FromSF' }]);
  });

  it('keeps a column with a pending local change and records the conflict (parked: manual is the default); other columns update', async () => {
    await db.query(`update salesforce.account set name = 'Mine' where sfid = '001000000000001AAA'`); // NEW entry
    await merge([row('001000000000001AAA', { Name: 'Theirs', NumberOfEmployees: 99, SystemModstamp: '2024-01-16T00:00:00.000Z' })], 'cdc');
    const { rows } = await db.query(`select name, numberofemployees from salesforce.account where sfid = '001000000000001AAA'`);
    expect(rows[0]).toEqual({ name: 'Mine', numberofemployees: 99 });
    const c = await db.query(`select * from hc.conflicts`);
    expect(c.rows).toHaveLength(1);
    expect(c.rows[0]).toMatchObject({ sfid: '001000000000001AAA', kind: 'update', columns: ['name'], fields: ['Name'], policy: 'manual', winner: null, resolved_at: null,
                                      pg_values: { name: 'Mine' }, sf_values: { name: 'Theirs' }, base_values: { name: 'Acme' } });
    expect((await db.query(`select count(*)::int n from hc.sync_log where event = 'conflict'`)).rows[0].n).toBe(0);
  });

  it('does not bring back a row whose local delete is pending', async () => {
    await db.query(`delete from salesforce.account where sfid = '001000000000002AAA'`);
    const r = await merge([row('001000000000002AAA', { Name: 'Back' })], 'cdc');
    expect(r.skipped_deleted).toBe(1);
    expect((await db.query(`select count(*)::int n from salesforce.account where sfid = '001000000000002AAA'`)).rows[0].n).toBe(0);
  });

  it('applies a partial (CDC UPDATE) row to the named columns only, and deletes IsDeleted rows', async () => {
    await merge([{ Id: '001000000000005AAA', Type: 'Partner' }], 'cdc', ['Id', 'Type']);
    const { rows } = await db.query(`select name, type from salesforce.account where sfid = '001000000000005AAA'`);
    expect(rows[0]).toEqual({ name: 'Acme', type: 'Partner' });
    const r = await merge([row('001000000000005AAA', { IsDeleted: true })]);
    expect(r.deleted).toBe(1);
  });

  it('does not let an older full row overwrite a newer one', async () => {
    await merge([row('001000000000007AAA', { Name: 'New', SystemModstamp: '2024-02-01T00:00:00.000Z' })]);
    await merge([row('001000000000007AAA', { Name: 'Old', SystemModstamp: '2024-01-01T00:00:00.000Z' })]);
    expect((await db.query(`select name from salesforce.account where sfid = '001000000000007AAA'`)).rows[0].name).toBe('New');
  });

  it('merges a staged text page (Bulk CSV shape), empty strings as NULL', async () => {
    const c = await sync.connect();
    try {
      await c.query('begin');
      await c.query(`create temp table stage (${fields.map((x) => `"${x}" text`).join(', ')}) on commit drop`);
      await c.query(`insert into stage values ('001000000000008AAA', 'Staged', '2024-03-01T00:00:00.000Z', 'false', '', '', '', 'true', '', '', '')`);
      const r = (await c.query(`select hc.inbound_merge($1, 'stage', $2) r`, [mappingId, fields])).rows[0].r;
      await c.query('commit');
      expect(r.applied).toBe(1);
    } finally {
      c.release();
    }
    const { rows } = await db.query(`select name, numberofemployees, type, active__c from salesforce.account where sfid = '001000000000008AAA'`);
    expect(rows[0]).toEqual({ name: 'Staged', numberofemployees: null, type: null, active__c: true });
  });

  it('binds the org once and refuses another', async () => {
    const conn = (await db.query(`select id from hc.connections`)).rows[0].id;
    await sync.query('select hc.bind_org($1, $2, $3)', [conn, '00D000000000001AAA', '62.0']);
    await sync.query('select hc.bind_org($1, $2, $3)', [conn, '00D000000000001', '62.0']);
    await expect(sync.query('select hc.bind_org($1, $2, $3)', [conn, '00D000000000002AAA', '62.0'])).rejects.toThrow(/belongs to Salesforce org 00D000000000001/);
    const meta = (await db.query('select org_id, details from salesforce._hcmeta')).rows[0];
    expect(meta.org_id).toMatch(/^00D000000000001/);
  });

  it('one inbound leader per connection; a replaced leader cannot commit a batch', async () => {
    const conn = (await db.query(`select id from hc.connections`)).rows[0].id;
    const a = await sync.connect();
    const b = await sync.connect();
    try {
      const first = Number((await a.query('select hc.inbound_try_lead($1) e', [conn])).rows[0].e);
      expect((await b.query('select hc.inbound_try_lead($1) e', [conn])).rows[0].e).toBeNull(); // a leads
      expect((await db.query('select pid, epoch from hc.inbound_leaders')).rows[0]).toMatchObject({ pid: (await a.query('select pg_backend_pid() p')).rows[0].p, epoch: first });
      // a batch of the leader commits under its epoch
      await a.query('begin');
      await a.query('select hc.inbound_fence($1, $2)', [conn, first]);
      await a.query('commit');
      // a's session-level lock goes (as when its session ends); b takes over with a new epoch
      await a.query('select pg_advisory_unlock_all()');
      const second = Number((await b.query('select hc.inbound_try_lead($1) e', [conn])).rows[0].e);
      expect(second).toBe(first + 1);
      // the old leader's next batch is refused inside its transaction, so nothing it did commits
      await a.query('begin');
      await expect(a.query('select hc.inbound_fence($1, $2)', [conn, first])).rejects.toThrow(/no longer the inbound leader/);
      await a.query('rollback');
    } finally {
      await b.query('select pg_advisory_unlock_all()');
      a.release();
      b.release();
    }
  });
});
