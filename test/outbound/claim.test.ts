// The writer's rules in SQL alone: claiming (NEW → PENDING, one op per record in flight), merged and
// ordered condensing, field translation, completion (SUCCESS/MERGED/FAILED, sfid write-back,
// _hc_lastop), dead-claimer takeover, archive.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { describeField } from '../support/describe.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { until } from './wait.js';

const f = describeField;
const describeAccount = {
  name: 'Account',
  fields: [
    f('Id', 'id', { nillable: false, createable: false, updateable: false }),
    f('IsDeleted', 'boolean', { createable: false, updateable: false }),
    f('Name', 'string', { length: 80 }),
    f('SystemModstamp', 'datetime', { createable: false, updateable: false }),
    f('NumberOfEmployees', 'int'),
    f('Active__c', 'boolean'),
    f('Ext__c', 'string', { length: 20, externalId: true, unique: true }),
  ],
};
const fields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees', 'Active__c', 'Ext__c'];

let db: TestDb;
let sync: pg.Pool;
let connId: number;
let lock: pg.Client;
const CLAIMER = 7;

const claim = async (claimer = CLAIMER) =>
  (await sync.query('select hc.outbound_claim($1, $2, 100) as op', [connId, claimer])).rows.map((r) => r.op);
// The writer reports only {op_id, outcome, sfid, error}: what each op was, its claim recorded. (The
// results below name the action for the reader; it is taken out before they are sent.)
const complete = async (results: Record<string, unknown>[], claimer = CLAIMER) =>
  sync.query('select hc.outbound_complete($1, $2, $3)',
    [connId, claimer, JSON.stringify(results.map(({ action: _action, ...answer }) => answer))]);
const log = async () =>
  (await db.query('select id, state, action, record_id, sf_message from salesforce._trigger_log order by id')).rows;

beforeAll(async () => {
  db = await createTestDb();
  sync = syncPool(db.url, { max: 4 });
  // The database is dropped WITH (FORCE) at the end; a client still closing then hears "terminating".
  sync.on('error', () => {});
  connId = (await db.query(`select hc.create_connection('test', 'salesforce') as id`)).rows[0].id;
  const cfg = { access: 'read_write', fields: Object.fromEntries(fields.map((x) => [x, {}])) };
  await db.query('select hc.create_mapping($1, $2, $3)', ['Account', cfg, describeAccount]);
  lock = new pg.Client({ connectionString: db.url });
  await lock.connect();
  lock.on('error', () => {});
  await lock.query(`select pg_advisory_lock(hc.lock_class('writer'), $1)`, [CLAIMER]);
});
afterAll(async () => {
  await lock?.end();
  await sync?.end();
  await db?.drop();
});
beforeEach(async () => {
  await db.query(`update hc.connections set write_algorithm = 'merged', state = 'IDLE'`);
  await db.query('delete from salesforce.account; delete from salesforce._trigger_log; delete from hc._outbound_claims; delete from hc.inbound_rereads');
});

describe('outbound claim and complete', () => {
  it('merged: an insert and its updates condense into one create with the newest values', async () => {
    const id = (await db.query(`insert into salesforce.account (name, numberofemployees, active__c) values ('A', 1, true) returning id`)).rows[0].id;
    await db.query(`update salesforce.account set numberofemployees = 5 where id = $1`, [id]);
    await db.query(`update salesforce.account set name = 'B' where id = $1`, [id]);
    const ops = await claim();
    expect(ops).toHaveLength(1);
    expect(ops[0]).toMatchObject({ action: 'insert', object: 'Account', record_id: id, body: { Name: 'B', NumberOfEmployees: 5, Active__c: true } });
    expect(ops[0].body).not.toHaveProperty('Id');
    expect(ops[0].body).not.toHaveProperty('SystemModstamp');
    expect((await log()).map((r) => r.state)).toEqual(['PENDING', 'PENDING', 'PENDING']);
    // A second claimer finds nothing: the record is in flight.
    expect(await claim(CLAIMER + 1)).toHaveLength(0);
    await complete([{ op_id: ops[0].op_id, action: 'insert', outcome: 'ok', sfid: '001000000000001AAA' }]);
    expect((await log()).map((r) => r.state)).toEqual(['MERGED', 'MERGED', 'SUCCESS']);
    const row = (await db.query('select sfid, _hc_lastop, _hc_err from salesforce.account where id = $1', [id])).rows[0];
    expect(row).toEqual({ sfid: '001000000000001AAA', _hc_lastop: 'INSERTED', _hc_err: null });
  });

  it('ordered: one op per entry, a record’s later entries wait for its earlier one', async () => {
    await db.query(`update hc.connections set write_algorithm = 'ordered'`);
    const id = (await db.query(`insert into salesforce.account (name, sfid) values ('A', '001000000000002AAA') returning id`)).rows[0].id;
    await db.query(`delete from salesforce._trigger_log`);
    await db.query(`update salesforce.account set name = 'B' where id = $1`, [id]);
    await db.query(`update salesforce.account set numberofemployees = 3 where id = $1`, [id]);
    let ops = await claim();
    expect(ops).toHaveLength(1);
    expect(ops[0]).toMatchObject({ action: 'update', sfid: '001000000000002AAA', body: { Name: 'B' } });
    expect(ops[0].body).not.toHaveProperty('NumberOfEmployees');
    await complete([{ op_id: ops[0].op_id, action: 'update', outcome: 'ok' }]);
    // A newer change is queued: the row stays PENDING.
    expect((await db.query('select _hc_lastop from salesforce.account')).rows[0]._hc_lastop).toBe('PENDING');
    ops = await claim();
    expect(ops[0]).toMatchObject({ action: 'update', body: { NumberOfEmployees: 3 } });
    await complete([{ op_id: ops[0].op_id, action: 'update', outcome: 'ok' }]);
    expect((await db.query('select _hc_lastop from salesforce.account')).rows[0]._hc_lastop).toBe('UPDATED');
  });

  it('insert then delete before sync sends nothing', async () => {
    const id = (await db.query(`insert into salesforce.account (name) values ('gone') returning id`)).rows[0].id;
    await db.query(`delete from salesforce.account where id = $1`, [id]);
    expect(await claim()).toHaveLength(0);
    expect((await log()).map((r) => r.state)).toEqual(['IGNORED', 'IGNORE']);
  });

  for (const algorithm of ['merged', 'ordered']) {
    it(`${algorithm}: a failed create, then the application changes the row: the create is sent again with the new values`, async () => {
      await db.query(`update hc.connections set write_algorithm = $1`, [algorithm]);
      const id = (await db.query(`insert into salesforce.account (name) values ('bad') returning id`)).rows[0].id;
      const [op] = await claim();
      await complete([{ op_id: op.op_id, action: 'insert', outcome: 'failed', error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no' }]);
      const row = (await db.query('select _hc_lastop, _hc_err from salesforce.account where id = $1', [id])).rows[0];
      expect(row).toEqual({ _hc_lastop: 'FAILED', _hc_err: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no' });
      expect((await log())[0]).toMatchObject({ state: 'FAILED', sf_message: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no' });
      // The application fixes the row: the row reads PENDING, so something must send it.
      await db.query(`update salesforce.account set name = 'good' where id = $1`, [id]);
      await db.query(`update salesforce.account set numberofemployees = 4 where id = $1`, [id]);
      let ops = await claim();
      expect(ops).toHaveLength(1);
      expect(ops[0]).toMatchObject({ action: 'insert', record_id: id, adopted: false, body: { Name: 'good', NumberOfEmployees: 4 } });
      // Refused again: the row says so again (not PENDING with nothing queued).
      await complete([{ op_id: ops[0].op_id, action: 'insert', outcome: 'failed', error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: still no' }]);
      expect((await db.query('select _hc_lastop, _hc_err from salesforce.account where id = $1', [id])).rows[0])
        .toEqual({ _hc_lastop: 'FAILED', _hc_err: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: still no' });
      if (algorithm === 'ordered') {
        // The second update is its own entry: it carries the create now.
        ops = await claim();
        expect(ops).toMatchObject([{ action: 'insert', record_id: id, body: { Name: 'good', NumberOfEmployees: 4 } }]);
        await complete([{ op_id: ops[0].op_id, action: 'insert', outcome: 'failed', error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: still no' }]);
      }
      expect(await claim()).toHaveLength(0);
      await db.query(`update salesforce.account set name = 'better' where id = $1`, [id]);
      ops = await claim();
      expect(ops).toMatchObject([{ action: 'insert', record_id: id, body: { Name: 'better' } }]);
      await complete([{ op_id: ops[0].op_id, action: 'insert', outcome: 'ok', sfid: '001000000000004AAA' }]);
      expect((await db.query('select sfid, _hc_lastop, _hc_err from salesforce.account where id = $1', [id])).rows[0])
        .toEqual({ sfid: '001000000000004AAA', _hc_lastop: 'INSERTED', _hc_err: null });
      expect((await db.query(`select count(*)::int n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n).toBe(0);
      // hc.retry of the old FAILED insert now updates that record; it is never created twice.
      await db.query('select hc.retry()');
      ops = await claim();
      expect(ops.every((o: { action: string; sfid: string }) => o.action === 'update' && o.sfid === '001000000000004AAA')).toBe(true);
    });
  }

  it('a failed create sent again after a change, its answer lost, then the row deleted: the record is looked up and deleted', async () => {
    const id = (await db.query(`insert into salesforce.account (name) values ('bad') returning id`)).rows[0].id;
    const [op] = await claim();
    await complete([{ op_id: op.op_id, action: 'insert', outcome: 'failed', error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no' }]);
    await db.query(`update salesforce.account set name = 'good' where id = $1`, [id]);
    const [again] = await claim();
    expect(again).toMatchObject({ action: 'insert', record_id: id });
    await sync.query('select hc.outbound_attempt($1, $2, $3)', [connId, CLAIMER, JSON.stringify([again])]);
    await complete([{ op_id: again.op_id, action: 'insert', outcome: 'retry', error: 'socket hang up' }]);
    await db.query(`delete from salesforce.account where id = $1`, [id]);
    const [del] = await claim();
    expect(del).toMatchObject({ action: 'delete', record_id: id, sfid: null, attempts: [{ sent: { Name: 'good' } }] });
    await complete([{ op_id: del.op_id, action: 'delete', outcome: 'ok', sfid: '001000000000005AAA' }]);
    expect((await db.query('select count(*)::int n from hc._outbound_attempts where record_id = $1', [id])).rows[0].n).toBe(0);
    expect(await claim()).toHaveLength(0);
  });

  it('a failed create, its row deleted before any change: nothing is sent', async () => {
    await db.query(`update hc.connections set write_algorithm = 'ordered'`);
    const id = (await db.query(`insert into salesforce.account (name) values ('bad') returning id`)).rows[0].id;
    const [op] = await claim();
    await complete([{ op_id: op.op_id, action: 'insert', outcome: 'failed', error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no' }]);
    await db.query(`update salesforce.account set name = 'good' where id = $1`, [id]);
    await db.query(`delete from salesforce.account where id = $1`, [id]);
    expect(await claim()).toHaveLength(0);
    expect((await log()).map((r) => r.state)).toEqual(['FAILED', 'IGNORED', 'IGNORE']);
  });

  it('a value the claim cannot convert fails its row alone, with the error in _hc_err; the other rows are claimed', async () => {
    // The application retypes a mapped column and writes a value Salesforce's int field cannot take.
    await db.query(`alter table salesforce.account alter column numberofemployees type text`);
    try {
      const good = (await db.query(`insert into salesforce.account (name, numberofemployees) values ('fine', '12') returning id`)).rows[0].id;
      const bad = (await db.query(`insert into salesforce.account (name, numberofemployees) values ('vague', 'many') returning id`)).rows[0].id;
      const synced = (await db.query(`insert into salesforce.account (name, sfid) values ('synced', '001000000000030AAA') returning id`)).rows[0].id;
      await db.query(`update salesforce._trigger_log set state = 'SUCCESS' where record_id = $1`, [synced]);
      await db.query(`update salesforce.account set numberofemployees = 'lots' where id = $1`, [synced]);
      await db.query(`update salesforce.account set name = 'fine too' where id = $1`, [good]);
      const ops = await claim();
      expect(ops.map((o: { record_id: number }) => o.record_id)).toEqual([good]);
      expect(ops[0]).toMatchObject({ action: 'insert', body: { Name: 'fine too', NumberOfEmployees: 12 } });
      for (const id of [bad, synced]) {
        const row = (await db.query('select _hc_lastop, _hc_err from salesforce.account where id = $1', [id])).rows[0];
        expect(row._hc_lastop).toBe('FAILED');
        expect(row._hc_err).toMatch(/numberofemployees.*NumberOfEmployees.*invalid input syntax/);
        const entries = (await db.query('select state, sf_message from salesforce._trigger_log where record_id = $1 and state <> $2', [id, 'SUCCESS'])).rows;
        expect(entries.map((e) => e.state)).toEqual(['FAILED']);
        expect(entries[0].sf_message).toBe(row._hc_err);
      }
      expect((await db.query(`select count(*)::int n from hc.sync_log where event = 'write_failed' and detail->>'record_id' = $1`, [String(bad)])).rows[0].n).toBe(1);
      // The writer goes on: the good row completes, and nothing else is left to claim.
      await complete([{ op_id: ops[0].op_id, action: 'insert', outcome: 'ok', sfid: '001000000000031AAA' }]);
      expect(await claim()).toHaveLength(0);
      // Once the application fixes the value, the row goes again.
      await db.query(`update salesforce.account set numberofemployees = '40' where id = $1`, [synced]);
      const [again] = await claim();
      expect(again).toMatchObject({ action: 'update', record_id: synced, body: { NumberOfEmployees: 40 } });
    } finally {
      await db.query('delete from salesforce.account');
      await db.query(`alter table salesforce.account alter column numberofemployees type integer using numberofemployees::integer`);
    }
  });

  it('entries of a dead claimer go back to NEW; paused claims nothing', async () => {
    await db.query(`insert into salesforce.account (name) values ('x')`);
    const ops = await claim(99); // claimer 99 holds no lock: it is dead
    expect(ops).toHaveLength(1);
    expect((await log())[0].state).toBe('PENDING');
    await db.query(`update hc.connections set state = 'PAUSED'`);
    expect(await claim()).toHaveLength(0);
    expect((await log())[0].state).toBe('NEW');
    await db.query(`update hc.connections set state = 'IDLE'`);
    // A call of the dead claimer may still be running in Salesforce: its record waits a moment
    // (hc._outbound_holds), then goes.
    expect(await claim()).toHaveLength(0);
    expect((await db.query(`select count(*)::int n from hc._outbound_holds where until > now()`)).rows[0].n).toBe(1);
    await db.query(`update hc._outbound_holds set until = now()`);
    expect(await claim()).toHaveLength(1);
  });

  it('write-back race: a read-side row for the new record, committed while the write-back waits, gives way', async () => {
    const id = (await db.query(`insert into salesforce.account (name) values ('raced') returning id`)).rows[0].id;
    const [op] = await claim();
    const sfid = '001000000000010AAA';
    const echo = await sync.connect();
    const writer = await sync.connect();
    try {
      // The read side inserts the CDC echo of our create as a row of its own and has not committed yet.
      await echo.query('begin');
      await echo.query(`insert into salesforce.account (name, sfid) values ('raced', $1)`, [sfid]);
      const writerPid = (await writer.query('select pg_backend_pid() as p')).rows[0].p;
      const done = writer.query('select hc.outbound_complete($1, $2, $3)', [connId, CLAIMER,
        JSON.stringify([{ op_id: op.op_id, action: 'insert', outcome: 'ok', sfid }])]);
      // The write-back waits on the uncommitted row's sfid; then the read side commits.
      await until(async () => (await db.query(`select wait_event_type = 'Lock' as w from pg_stat_activity where pid = $1`, [writerPid])).rows[0]?.w,
        'the write-back waiting on the uncommitted row');
      await echo.query('commit');
      await done;
    } finally {
      echo.release();
      writer.release();
    }
    const rows = (await db.query(`select id, sfid, _hc_lastop from salesforce.account where name = 'raced'`)).rows;
    expect(rows).toEqual([{ id, sfid, _hc_lastop: 'INSERTED' }]);
    expect((await log())[0].state).toBe('SUCCESS');
  });

  it('a read-side row for our create that the application changed since is still not its own: not held, and it gives way on write-back', async () => {
    // The 30-minute soak: a create's answer was lost, the read side stored the record as a second row,
    // and the application (finding its records by name) changed both rows. That row then counted as the
    // application's: the lost-create lookup left the record alone and the row was created again, a
    // duplicate in both systems.
    const id = (await db.query(`insert into salesforce.account (name) values ('twin') returning id`)).rows[0].id;
    const [op] = await claim();
    const sfid = '001000000000011AAA';
    const echo = (await sync.query(`insert into salesforce.account (name, sfid) values ('twin', $1) returning id`, [sfid])).rows[0].id;
    await db.query(`update salesforce.account set numberofemployees = 12 where name = 'twin'`);
    const held = async () => (await sync.query(`select hc.outbound_held_sfids($1, 'account', $2) as h`, [connId, [sfid]])).rows[0].h;
    expect(await held()).toEqual([]);
    await complete([{ op_id: op.op_id, action: 'insert', outcome: 'ok', sfid }]);
    const rows = (await db.query(`select id, sfid from salesforce.account where name = 'twin' order by id`)).rows;
    expect(rows).toEqual([{ id, sfid }]);
    expect(echo).not.toBe(id);
    // What that row got from Salesforce (a flow's values on save) went with it: the record is read again.
    expect((await db.query(`select sfid from hc.inbound_rereads`)).rows).toEqual([{ sfid }]);
    // The change made to that row is still sent, to the same record.
    const next = await claim();
    expect(next.some((o: { sfid?: string; action: string }) => o.action === 'update' && o.sfid === sfid)).toBe(true);
    // An application's own row is held, whatever it was changed to.
    expect(await held()).toEqual([sfid]);
  });

  it('a row whose write-back fails (a trigger of the app raises) fails alone, keeps its sfid, and the retry updates that record', async () => {
    await db.query(`create function salesforce.refuse_boom() returns trigger language plpgsql as $$
                      begin if new.name = 'boom' then raise exception 'boom rows are read-only'; end if; return new; end $$`);
    await db.query(`create trigger refuse_boom before update on salesforce.account for each row execute function salesforce.refuse_boom()`);
    try {
      const ids = (await db.query(`insert into salesforce.account (name) values ('ok 1'), ('boom'), ('ok 2') returning id`)).rows.map((r) => r.id);
      const ops = await claim();
      expect(ops).toHaveLength(3);
      const sfids = ['001000000000011AAA', '001000000000012AAA', '001000000000013AAA'];
      await complete(ops.map((o: { op_id: number }, i: number) => ({ op_id: o.op_id, action: 'insert', outcome: 'ok', sfid: sfids[i] })));
      // The trigger refuses even the FAILED marker on that row; the log entry carries the outcome.
      const rows = (await db.query('select id, sfid, _hc_lastop from salesforce.account order by id')).rows;
      expect(rows.map((r) => [r.sfid, r._hc_lastop])).toEqual([[sfids[0], 'INSERTED'], [null, 'PENDING'], [sfids[2], 'INSERTED']]);
      const l = await log();
      expect(l.map((r) => r.state)).toEqual(['SUCCESS', 'FAILED', 'SUCCESS']);
      expect(l[1].sf_message).toMatch(/^WRITE_BACK_FAILED: .*001000000000012AAA.*boom rows are read-only/);
      expect((await db.query('select sfid from salesforce._trigger_log where record_id = $1', [ids[1]])).rows[0].sfid).toBe(sfids[1]);
      await db.query('drop trigger refuse_boom on salesforce.account');
      // A change of the row sends it as an update of the record Salesforce made (the entry keeps its Id).
      await db.query(`update salesforce.account set numberofemployees = 9 where id = $1`, [ids[1]]);
      const [changed] = await claim();
      expect(changed).toMatchObject({ action: 'insert', adopted: true, sfid: sfids[1], record_id: ids[1], body: { NumberOfEmployees: 9 } });
      await sync.query('select hc.outbound_release($1, $2)', [connId, CLAIMER]);
      await db.query(`delete from salesforce._trigger_log where record_id = $1 and action = 'UPDATE'`, [ids[1]]);
      await db.query('select hc.retry()');
      const [again] = await claim();
      // The record exists: the retry updates it and reports the insert, instead of creating it twice.
      expect(again).toMatchObject({ action: 'insert', adopted: true, sfid: sfids[1], record_id: ids[1] });
      await complete([{ op_id: again.op_id, action: 'insert', outcome: 'ok', sfid: sfids[1] }]);
      expect((await db.query('select sfid, _hc_lastop from salesforce.account where id = $1', [ids[1]])).rows[0])
        .toEqual({ sfid: sfids[1], _hc_lastop: 'INSERTED' });
    } finally {
      await db.query('drop trigger if exists refuse_boom on salesforce.account; drop function if exists salesforce.refuse_boom()');
    }
  });

  it('the echo of a create whose sfid is not written back yet is recognised while its attempt is recorded', async () => {
    const mappingId = (await db.query(`select id from hc._mappings where object_name = 'Account'`)).rows[0].id;
    await db.query(`insert into salesforce.account (name, sfid) values ('held', '001000000000020AAA')`);
    await db.query(`insert into salesforce.account (name) values ('new one')`);
    const pending = async () =>
      (await db.query('select hc.outbound_echo_pending($1, $2) as ids', [mappingId, ['001000000000020AAA', '001000000000021AAA']])).rows[0].ids;
    expect(await pending()).toEqual([]); // nothing in flight: an unknown record is someone else's
    const ops = (await claim()).filter((o: { action: string }) => o.action === 'insert');
    await sync.query('select hc.outbound_attempt($1, $2, $3)', [connId, CLAIMER,
      JSON.stringify(ops.map((o: { op_id: number; table: string; record_id: number; object: string; body: unknown }) => o))]);
    expect(await pending()).toEqual(['001000000000021AAA']);
    await complete(ops.map((o: { op_id: number }) => ({ op_id: o.op_id, action: 'insert', outcome: 'ok', sfid: '001000000000021AAA' })));
    expect(await pending()).toEqual([]);
  });

  it('a writer whose round failed before completing gets its own claims back on its next claim', async () => {
    await db.query(`insert into salesforce.account (name) values ('x')`);
    expect(await claim()).toHaveLength(1);
    expect(await claim()).toHaveLength(1);
    expect((await log())[0].state).toBe('PENDING');
  });

  it('processed entries move to the archive', async () => {
    await db.query(`insert into salesforce.account (name) values ('x')`);
    const [op] = await claim();
    await complete([{ op_id: op.op_id, action: 'insert', outcome: 'ok', sfid: '001000000000003AAA' }]);
    await sync.query('select hc.outbound_archive($1, 31)', [connId]);
    expect(await log()).toHaveLength(0);
    const a = (await db.query('select state, sfid from salesforce._trigger_log_archive where id = $1', [op.op_id])).rows[0];
    expect(a).toEqual({ state: 'SUCCESS', sfid: '001000000000003AAA' });
  });
});
