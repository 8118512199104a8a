// A child pointing at its parent by external id (contact.account__external_id__c) waits while the parent
// is not in Salesforce yet: its create failed, or it is queued in the same batch. It never fails with
// Salesforce's "no such parent"; once the parent is created (after hc.retry) the child goes. Both
// write algorithms.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../sidecar/context.js';
import { setup, until, queueEmpty, type Harness } from './harness.js';

let h: Harness;
let writer: Service | undefined;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged' });
  const describe_ = await h.ctx.sf.conn.sobject('Contact').describe();
  const fields = ['Id', 'LastName', 'AccountId', 'Account__External_Id__c', 'SystemModstamp'];
  await h.db.query('select hc.create_mapping($1, $2, $3)', ['Contact', { access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])) }, describe_]);
  writer = await h.startWriter();
});
afterAll(async () => {
  await h?.close();
});

const contact = async (lastname: string) => (await h.db.query('select * from salesforce.contact where lastname = $1', [lastname])).rows[0];
const states = async (table: string, recordId: number) =>
  (await h.db.query(`select state from (select * from salesforce._trigger_log union all select * from salesforce._trigger_log_archive) l
                      where table_name = $1 and record_id = $2 order by id`, [table, recordId])).rows.map((r) => r.state);

describe.each(['merged', 'ordered'] as const)('a child of a parent Salesforce does not have yet (%s)', (algorithm) => {
  it('waits while the parent failed, and goes once the retried parent is created', async () => {
    await h.db.query('select hc.set_write_algorithm($1)', [algorithm]);
    const ext = `P-${algorithm}`;
    // Parent and child in one transaction: one batch. The parent's name breaks a validation rule.
    const client = await h.db.pool.connect();
    let parentId: number;
    try {
      await client.query('begin');
      parentId = (await client.query(`insert into salesforce.account (name, external_id__c) values ('INVALID', $1) returning id`, [ext])).rows[0].id;
      await client.query(`insert into salesforce.contact (lastname, account__external_id__c) values ($1, $2)`, [`Kid ${algorithm}`, ext]);
      await client.query('commit');
    } finally {
      client.release();
    }
    await until(async () => (await states('account', parentId)).includes('FAILED'), 'parent failed', 20_000);
    // A later, unrelated row goes through: the writer has had its rounds, and the child still waits.
    const other = (await h.db.query(`insert into salesforce.account (name) values ($1) returning id`, [`Unrelated ${algorithm}`])).rows[0].id;
    await until(async () => (await states('account', other)).includes('SUCCESS'), 'an unrelated row sent', 20_000);
    const kid = await contact(`Kid ${algorithm}`);
    expect(kid.sfid).toBeNull();
    expect(await states('contact', kid.id)).toEqual(['NEW']);
    expect(h.emu.records('Contact').filter((r) => r.LastName === `Kid ${algorithm}`)).toHaveLength(0);
    // The wait is told, once (the writer has claimed several times by now), naming the parent.
    const told = (await h.db.query(`select message, detail from hc.sync_log where event = 'waiting_for_parent' and (detail->>'record_id')::int = $1`, [kid.id])).rows;
    expect(told).toHaveLength(1);
    expect(told[0].detail).toMatchObject({ table: 'contact', parent_table: 'account', parent_column: 'external_id__c', parent_value: ext });
    expect(told[0].message).toMatch(new RegExp(`contact id ${kid.id} waits for its parent: account row with external_id__c = ${ext}`));

    // Fix the parent and retry it: the parent is created, then the child, linked to it.
    await h.db.query(`update salesforce.account set name = $1 where id = $2`, [`Parent ${algorithm}`, parentId]);
    await h.db.query('select hc.retry()');
    await until(() => queueEmpty(h.db), 'parent and child sent', 20_000);
    const parent = (await h.db.query('select sfid from salesforce.account where id = $1', [parentId])).rows[0];
    const child = await contact(`Kid ${algorithm}`);
    expect(child.sfid).toMatch(/^003/);
    expect(await states('contact', child.id)).toEqual(['SUCCESS']);
    const [rec] = h.emu.records('Contact').filter((r) => r.Id === child.sfid);
    expect(rec.AccountId).toBe(parent.sfid);
  });
});
