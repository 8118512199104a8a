// A change event that names a record by the external id of a row our writer created and has not stamped
// with its sfid yet (an upsert mapping: the echo of our own create, arriving before the write-back) is
// adopted by that row. A local change of the row still waiting to be sent is newer than the event and
// must be kept, as it is for rows matched by sfid. Found by the convergence test's full mix: the echo of
// the create put the inserted Department back over the application's later one, the application then
// wrote the inserted value again, which captured nothing (the row already held it), and the later
// value won in the end: the application's last write was lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { describeField } from '../support/describe.js';
import { syncPool } from '../../sidecar/db/pool.js';

const f = describeField;
const describeContact = {
  name: 'Contact',
  fields: [
    f('Id', 'id', { nillable: false, createable: false, updateable: false }),
    f('LastName', 'string', { length: 80 }),
    f('Department', 'string', { length: 80 }),
    f('SystemModstamp', 'datetime', { createable: false, updateable: false }),
    f('Ext__c', 'string', { length: 20, externalId: true, unique: true }),
  ],
};
const fields = ['Id', 'LastName', 'Department', 'SystemModstamp', 'Ext__c'];

let db: TestDb;
let sync: pg.Pool;
let mappingId: number;

beforeAll(async () => {
  db = await createTestDb();
  sync = syncPool(db.url, { max: 2 });
  await db.query(`select hc.create_connection('test', 'salesforce')`);
  const cfg = { access: 'read_write', upsert_field: 'Ext__c', fields: Object.fromEntries(fields.map((x) => [x, {}])) };
  mappingId = (await db.query('select hc.create_mapping($1, $2, $3) as id', ['Contact', cfg, describeContact])).rows[0].id;
});
afterAll(async () => {
  await sync?.end();
  await db?.drop();
});

const apply = async (origin: string, row: Record<string, unknown>) =>
  (await sync.query('select hc.inbound_apply($1, $2) as r', [mappingId, JSON.stringify({
    touched: [row.Id],
    waves: [{ groups: [{ origin, fields: Object.keys(row).sort(), rows: [row] }], deletes: [] }],
    echo: origin === 'cdc-echo' ? [row.Id] : [],
  })])).rows[0].r;

describe('the echo of our own create, matched by external id before the write-back', () => {
  it('keeps a newer local change that is still to be sent, and adopts the record', async () => {
    const id = (await db.query(`insert into salesforce.contact (lastname, department, ext__c) values ('Lovelace', 'Marketing', 'E-1') returning id`)).rows[0].id;
    // The insert was sent (SUCCESS, its answer not yet written back); the application then changed Department.
    await db.query(`update salesforce._trigger_log set state = 'SUCCESS', processed_at = now() where record_id = $1`, [id]);
    await db.query(`update salesforce.contact set department = 'Support' where id = $1`, [id]);
    await apply('cdc-echo', { Id: '003000000000001AAA', LastName: 'Lovelace', Department: 'Marketing', Ext__c: 'E-1', SystemModstamp: '2026-11-30T10:00:00.000+0000', hcsync_at: new Date().toISOString() });
    const r = (await db.query(`select sfid, department from salesforce.contact where id = $1`, [id])).rows[0];
    expect(r.sfid).toBe('003000000000001AAA');
    expect(r.department).toBe('Support');
  });

  it('a value Salesforce rewrote in the echo of a sent create is read again, not lost', async () => {
    await db.query(`delete from hc.inbound_rereads`);
    const id = (await db.query(`insert into salesforce.contact (lastname, department, ext__c) values ('Hopper', 'Sales', 'E-2') returning id`)).rows[0].id;
    await db.query(`update salesforce._trigger_log set state = 'SUCCESS', processed_at = now() where record_id = $1`, [id]);
    await apply('cdc-echo', { Id: '003000000000002AAA', LastName: 'Hopper', Department: 'SALES (normalised)', Ext__c: 'E-2', hcsync_at: new Date().toISOString() });
    expect((await db.query(`select sfid from salesforce.contact where id = $1`, [id])).rows[0].sfid).toBe('003000000000002AAA');
    expect((await db.query(`select sfid from hc.inbound_rereads where mapping_id = $1`, [mappingId])).rows.map((x) => x.sfid)).toEqual(['003000000000002AAA']);
  });
});
