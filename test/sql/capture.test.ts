// HC's capture semantics (reference §2.7): what the logger and status triggers write for each kind of change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf, hstore, syncClient, triggerLog } from './helpers.js';

let db: TestDb;
beforeAll(async () => {
  db = await createTestDb();
  await createConnection(db);
  await createMapping(db, 'Contact', { ...contactConfig, fields: { ...contactConfig.fields, Description: {} } }, describe_('contact'));
  await createMapping(db, 'Account', { access: 'read_only', fields: { Id: {}, SystemModstamp: {}, Name: {}, IsDeleted: {} } }, describe_('account'));
});
afterAll(async () => db?.drop());

async function fresh() {
  await db.query('delete from salesforce._trigger_log');
}

async function insertContact(lastname: string): Promise<number> {
  const r = await db.query('insert into salesforce.contact (lastname) values ($1) returning id', [lastname]);
  return r.rows[0].id;
}

/** A row as the sync writes it from Salesforce (xmlbinary = hex): synced, with an sfid. */
async function syncedContact(sfid: string, lastname: string): Promise<number> {
  const c = await syncClient(db);
  try {
    const r = await c.query(
      `insert into salesforce.contact (sfid, lastname, systemmodstamp, isdeleted) values ($1, $2, now(), false) returning id`,
      [sfid, lastname],
    );
    return r.rows[0].id;
  } finally {
    await c.end();
  }
}

describe('capture (read-write mapping)', () => {
  it('INSERT logs the full row, minus _hc_lastop/_hc_err, state NEW; the row is PENDING', async () => {
    await fresh();
    const id = await insertContact('Smith');
    const [log] = await triggerLog(db);
    expect(log).toMatchObject({ state: 'NEW', action: 'INSERT', table_name: 'contact', record_id: id, sfid: null, old: null });
    expect(await hstore(db, log.values)).toEqual({
      id: String(id), sfid: null, lastname: 'Smith', accountid: null, isdeleted: null, createddate: null,
      systemmodstamp: null, external_id__c: null, description: null,
    });
    const row = await db.query('select _hc_lastop, _hc_err from salesforce.contact where id = $1', [id]);
    expect(row.rows[0]).toEqual({ _hc_lastop: 'PENDING', _hc_err: null });
  });

  it('UPDATE logs only the changed keys in values, the full old row in old, and the sfid', async () => {
    const id = await syncedContact('003000000000001AAA', 'Old');
    await fresh();
    await db.query(`update salesforce.contact set lastname = 'New', description = 'x' where id = $1`, [id]);
    const [log] = await triggerLog(db);
    expect(log).toMatchObject({ state: 'NEW', action: 'UPDATE', record_id: id, sfid: '003000000000001AAA' });
    expect(await hstore(db, log.values)).toEqual({ lastname: 'New', description: 'x' });
    const old = await hstore(db, log.old);
    expect(old).toMatchObject({ id: String(id), sfid: '003000000000001AAA', lastname: 'Old' });
    expect(old).not.toHaveProperty('_hc_lastop');
    expect(old).not.toHaveProperty('_hc_err');
  });

  it('an UPDATE that changes nothing logs IGNORE', async () => {
    const id = await syncedContact('003000000000002AAA', 'Same');
    await fresh();
    await db.query(`update salesforce.contact set lastname = lastname where id = $1`, [id]);
    const [log] = await triggerLog(db);
    expect(log).toMatchObject({ state: 'IGNORE', action: 'UPDATE', record_id: id, values: '' });
  });

  it('DELETE of a synced row logs NEW with old and sfid', async () => {
    const id = await syncedContact('003000000000003AAA', 'Gone');
    await fresh();
    await db.query('delete from salesforce.contact where id = $1', [id]);
    const [log] = await triggerLog(db);
    expect(log).toMatchObject({ state: 'NEW', action: 'DELETE', record_id: id, sfid: '003000000000003AAA', values: null });
    expect(await hstore(db, log.old)).toMatchObject({ lastname: 'Gone' });
  });

  it('DELETE of a never-synced row (no sfid) logs IGNORE', async () => {
    const id = await insertContact('Local');
    await fresh();
    await db.query('delete from salesforce.contact where id = $1', [id]);
    const [log] = await triggerLog(db);
    expect(log).toMatchObject({ state: 'IGNORE', action: 'DELETE', record_id: id, sfid: null });
  });

  it('writes in a session with xmlbinary = hex are not captured and mark rows SYNCED', async () => {
    await fresh();
    const c = await syncClient(db);
    try {
      const r = await c.query(`insert into salesforce.contact (sfid, lastname) values ('003000000000004AAA', 'FromSF') returning id, _hc_lastop`);
      expect(r.rows[0]._hc_lastop).toBe('SYNCED');
      await c.query(`update salesforce.contact set lastname = 'FromSF2', _hc_err = 'old error' where id = $1`, [r.rows[0].id]);
      await c.query(`delete from salesforce.contact where id = $1`, [r.rows[0].id]);
      // A custom trigger may flip the flag for one statement (reference §8.7): then it is captured.
      await c.query('begin');
      await c.query(`set local xmlbinary = 'base64'`);
      await c.query(`insert into salesforce.contact (lastname) values ('forced')`);
      await c.query('commit');
    } finally {
      await c.end();
    }
    const log = await triggerLog(db);
    expect(log.map((l) => [l.action, l.state])).toEqual([['INSERT', 'NEW']]);
  });

  it('the status trigger keeps a value the sync sets explicitly, and resets to SYNCED otherwise', async () => {
    const id = await insertContact('Writer');
    const c = await syncClient(db);
    try {
      // The writer's write-back after creating the record in Salesforce.
      let r = await c.query(`update salesforce.contact set sfid = '003000000000005AAA', _hc_lastop = 'INSERTED' where id = $1 returning _hc_lastop`, [id]);
      expect(r.rows[0]._hc_lastop).toBe('INSERTED');
      r = await c.query(`update salesforce.contact set _hc_lastop = 'FAILED', _hc_err = '{"message":"bad"}' where id = $1 returning _hc_lastop, _hc_err`, [id]);
      expect(r.rows[0]).toEqual({ _hc_lastop: 'FAILED', _hc_err: '{"message":"bad"}' });
      // A later inbound update that does not set _hc_lastop: SYNCED, error cleared.
      r = await c.query(`update salesforce.contact set lastname = 'Polled' where id = $1 returning _hc_lastop, _hc_err`, [id]);
      expect(r.rows[0]).toEqual({ _hc_lastop: 'SYNCED', _hc_err: null });
    } finally {
      await c.end();
    }
    // An application write marks PENDING and clears the error, whatever it tries to set.
    const r = await db.query(`update salesforce.contact set lastname = 'App', _hc_lastop = 'SYNCED', _hc_err = 'x' where id = $1 returning _hc_lastop, _hc_err`, [id]);
    expect(r.rows[0]).toEqual({ _hc_lastop: 'PENDING', _hc_err: null });
  });

  it('a 1 MB text value inserts fine and the NOTIFY payload stays tiny', async () => {
    await fresh();
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const got: Array<{ channel: string; payload?: string }> = [];
    listener.on('notification', (n) => got.push({ channel: n.channel, payload: n.payload }));
    await listener.query('listen "salesforce.hc_trigger_log"');
    try {
      const big = 'x'.repeat(1024 * 1024);
      const r = await db.query('insert into salesforce.contact (lastname, description) values ($1, $2) returning id', ['Big', big]);
      const [log] = await triggerLog(db);
      expect((await hstore(db, log.values)).description).toHaveLength(1024 * 1024);
      expect(log.record_id).toBe(r.rows[0].id);
      await new Promise((res) => setTimeout(res, 200));
      expect(got).toEqual([{ channel: 'salesforce.hc_trigger_log', payload: 'ping' }]);
    } finally {
      await listener.end();
    }
  });

  it('hc_capture_insert_from_row / hc_capture_update_from_row queue changes as HC documents', async () => {
    const id = await syncedContact('003000000000006AAA', 'Requeue');
    await fresh();
    await db.query(`select salesforce.hc_capture_insert_from_row(hstore(c.*), 'contact', array['description', 'id']) from salesforce.contact c where id = $1`, [id]);
    await db.query(`select salesforce.hc_capture_update_from_row(hstore(c.*), 'contact', array['lastname']) from salesforce.contact c where id = $1`, [id]);
    const [ins, upd] = await triggerLog(db);
    expect(ins).toMatchObject({ action: 'INSERT', state: 'NEW', record_id: id });
    const iv = await hstore(db, ins.values);
    expect(iv).toHaveProperty('id');  // never excluded
    expect(iv).not.toHaveProperty('description');
    expect(iv).not.toHaveProperty('_hc_lastop');
    expect(upd).toMatchObject({ action: 'UPDATE', state: 'NEW', record_id: id, sfid: '003000000000006AAA', old: null });
    expect(await hstore(db, upd.values)).toEqual({ lastname: 'Requeue' });
    const none = await db.query(`select salesforce.hc_capture_insert_from_row('a=>1'::hstore, 'contact') as r`);
    expect(none.rows[0].r).toBeNull();
  });
});

describe('capture (read-only mapping)', () => {
  it('logs READONLY for every change, never IGNORE', async () => {
    await fresh();
    const r = await db.query(`insert into salesforce.account (name) values ('Acme') returning id`);
    await db.query(`update salesforce.account set name = name`);
    await db.query(`delete from salesforce.account`);
    const log = await triggerLog(db);
    expect(log.map((l) => [l.action, l.state, l.record_id])).toEqual([
      ['INSERT', 'READONLY', r.rows[0].id], ['UPDATE', 'READONLY', r.rows[0].id], ['DELETE', 'READONLY', r.rows[0].id],
    ]);
  });

  it('switching the mapping to read_write swaps the logger in place', async () => {
    await db.query(`select hc.update_mapping('Account', '{"access": "read_write", "fields": {"Id": {}, "SystemModstamp": {}, "Name": {}, "IsDeleted": {}}}')`);
    await fresh();
    await db.query(`insert into salesforce.account (name) values ('Acme RW')`);
    expect((await triggerLog(db)).map((l) => l.state)).toEqual(['NEW']);
  });
});

describe('TRUNCATE of a mapped table', () => {
  it('is refused with an error that says what to do', async () => {
    const err = await errorOf(() => db.query('truncate salesforce.contact'));
    expect(err.message).toMatch(/TRUNCATE of synced table salesforce\.contact is refused/);
    expect(err.hint).toMatch(/hcsync\.allow_truncate = on/);
    expect(err.hint).toMatch(/hc\.reload\('contact'\)/);
  });

  it('is allowed when the session sets hcsync.allow_truncate = on', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('set hcsync.allow_truncate = on');
      await c.query('truncate salesforce.contact');
    } finally {
      await c.query('reset hcsync.allow_truncate');
      c.release();
    }
    expect((await db.query('select count(*)::int as n from salesforce.contact')).rows[0].n).toBe(0);
  });
});
