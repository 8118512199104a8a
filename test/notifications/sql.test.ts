// Notifications in SQL alone (sql/000045_notifications.sql): a mapping's writes that newly fail notify
// once, not once per failed row; after its failures are retried or discarded the next failure notifies
// again; the connection or a mapping entering an error state notifies; each sends NOTIFY on
// hc_notifications with the JSON payload DESIGN documents; the webhook's claim and attempt bookkeeping.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { describeField } from '../support/describe.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { until } from '../support/until.js';

const f = describeField;
const describeAccount = {
  name: 'Account',
  fields: [
    f('Id', 'id', { nillable: false, createable: false, updateable: false }),
    f('IsDeleted', 'boolean', { createable: false, updateable: false }),
    f('Name', 'string', { length: 80 }),
    f('SystemModstamp', 'datetime', { createable: false, updateable: false }),
  ],
};

let db: TestDb;
let sync: pg.Pool;
let listener: pg.Client;
let lock: pg.Client;
let connId: number;
const heard: Array<Record<string, unknown>> = [];
const CLAIMER = 9;

const claim = async () => (await sync.query('select hc.outbound_claim($1, $2, 100) as op', [connId, CLAIMER])).rows.map((r) => r.op);
const complete = (results: unknown[]) => sync.query('select hc.outbound_complete($1, $2, $3)', [connId, CLAIMER, JSON.stringify(results)]);
const notifications = async () =>
  (await db.query(`select kind, object_name, message, detail from hc.notifications order by id`)).rows;
/** Inserts `n` rows and has Salesforce refuse each create. */
async function failCreates(n: number, why = 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no') {
  for (let i = 0; i < n; i++) await db.query(`insert into salesforce.account (name) values ($1)`, [`Row ${i}`]);
  const ops = await claim();
  expect(ops).toHaveLength(n);
  await complete(ops.map((op: { op_id: number }) => ({ op_id: op.op_id, action: 'insert', outcome: 'failed', error: why })));
}

beforeAll(async () => {
  db = await createTestDb();
  sync = syncPool(db.url, { max: 2 });
  sync.on('error', () => {});
  connId = (await db.query(`select hc.create_connection('notes', 'salesforce') as id`)).rows[0].id;
  await db.query('select hc.create_mapping($1, $2, $3)', ['Account', { access: 'read_write', fields: { Id: {}, Name: {}, SystemModstamp: {}, IsDeleted: {} } }, describeAccount]);
  lock = new pg.Client({ connectionString: db.url });
  await lock.connect();
  lock.on('error', () => {});
  await lock.query(`select pg_advisory_lock(hc.lock_class('writer'), $1)`, [CLAIMER]);
  listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  listener.on('error', () => {});
  listener.on('notification', (n) => heard.push(JSON.parse(n.payload ?? '{}')));
  await listener.query('listen hc_notifications');
});
afterAll(async () => {
  await listener?.end();
  await lock?.end();
  await sync?.end();
  await db?.drop();
});
beforeEach(async () => {
  await db.query(`update hc.connections set state = 'IDLE'`);
  await db.query(`delete from salesforce.account; delete from salesforce._trigger_log; delete from hc._outbound_claims; delete from hc.notifications`);
  heard.length = 0;
});

describe('writes_failed', () => {
  it('three failed creates in one round notify once, with the count; the NOTIFY payload is the notification', async () => {
    await failCreates(3);
    const notes = await notifications();
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ kind: 'writes_failed', object_name: 'Account', detail: { count: 3 } });
    expect(notes[0].message).toBe('3 write(s) of Account to Salesforce failed: FIELD_CUSTOM_VALIDATION_EXCEPTION: no');
    await until(() => heard.length === 1, 'the NOTIFY', 5_000);
    expect(heard[0]).toMatchObject({ connection: 'notes', schema: 'salesforce', kind: 'writes_failed', object: 'Account', count: 3 });
    expect(Object.keys(heard[0]).sort()).toEqual(['at', 'connection', 'count', 'id', 'kind', 'message', 'object', 'schema']);
  });

  it('a mapping that is failing already does not notify again; retried and still failing neither; discarded, the next failure notifies', async () => {
    await failCreates(1);
    await failCreates(2, 'REQUIRED_FIELD_MISSING: again');
    expect(await notifications()).toHaveLength(1);
    // Retry one of three: the others are still FAILED, so its failing again is no news.
    const [first] = (await db.query(`select id from salesforce._trigger_log where state = 'FAILED' order by id limit 1`)).rows;
    await db.query(`select hc.retry(array[$1]::integer[])`, [first.id]);
    const ops = await claim();
    await complete(ops.map((op: { op_id: number; action: string }) => ({ op_id: op.op_id, action: op.action, outcome: 'failed', error: 'X: still' })));
    expect(await notifications()).toHaveLength(1);
    // Everything discarded: the mapping is healthy, and the next failure is news.
    await db.query(`select hc.discard(null, null, 'notes')`);
    await failCreates(1, 'INVALID_FIELD: new trouble');
    const notes = await notifications();
    expect(notes.map((n) => n.message)).toEqual([
      '1 write(s) of Account to Salesforce failed: FIELD_CUSTOM_VALIDATION_EXCEPTION: no',
      '1 write(s) of Account to Salesforce failed: INVALID_FIELD: new trouble',
    ]);
  });

  it('failures older than 24 hours do not count as failing already', async () => {
    await failCreates(1);
    await db.query(`update salesforce._trigger_log set updated_at = now() - interval '25 hours' where state = 'FAILED'`);
    await failCreates(1, 'INVALID_FIELD: a day later');
    expect((await notifications()).map((n) => n.message)).toEqual([
      '1 write(s) of Account to Salesforce failed: FIELD_CUSTOM_VALIDATION_EXCEPTION: no',
      '1 write(s) of Account to Salesforce failed: INVALID_FIELD: a day later',
    ]);
  });
});

describe('error states', () => {
  it('the connection entering an error state notifies once; a message change within errors does not; leaving and re-entering does', async () => {
    await db.query(`select hc.set_connection_state('UNAUTHORIZED', 'invalid_grant: expired', 'notes')`);
    await db.query(`select hc.set_connection_state('UNAUTHORIZED', 'invalid_grant: expired again', 'notes')`);
    await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'boom', 'notes')`);
    expect(await notifications()).toHaveLength(1);
    expect((await notifications())[0]).toMatchObject({
      kind: 'connection_error', object_name: null,
      message: 'The connection notes is in an error state: Salesforce authorization expired (UNAUTHORIZED). invalid_grant: expired',
    });
    await db.query(`select hc.set_connection_state('IDLE', null, 'notes')`);
    await db.query(`select hc.set_connection_state('DB_UNAVAILABLE', null, 'notes')`);
    expect((await notifications()).map((n) => n.kind)).toEqual(['connection_error', 'connection_error']);
    // Paused is not an error.
    await db.query(`select hc.set_connection_state('IDLE', null, 'notes')`);
    await db.query(`select hc.pause('notes')`);
    expect(await notifications()).toHaveLength(2);
    await db.query(`select hc.resume('notes')`);
  });

  it('a mapping entering an error state notifies, naming the object', async () => {
    const { id } = (await db.query(`select id from hc._mappings`)).rows[0];
    await db.query(`select hc.set_mapping_state($1, 'SYNC_REMOVED', 'Account was removed from the org')`, [id]);
    // Out of the error the way the lifecycle allows (hc.mapping_states.next): a config change, then loaded.
    await db.query(`select hc.set_mapping_state($1, 'SCHEMA_CHANGED')`, [id]);
    await db.query(`select hc.set_mapping_state($1, 'DATA_SYNCED')`, [id]);
    const notes = await notifications();
    expect(notes).toEqual([expect.objectContaining({
      kind: 'mapping_error', object_name: 'Account',
      message: 'The mapping Account is in an error state: Orphaned (object removed in Salesforce) (SYNC_REMOVED). Account was removed from the org',
    })]);
    // Listed with whether the condition still holds: the mapping is fine again.
    const list = (await db.query(`select kind, active, webhook from hc.notifications_list(10, 'notes')`)).rows;
    expect(list).toEqual([{ kind: 'mapping_error', active: false, webhook: 'not sent' }]);
  });
});

describe('retention', () => {
  it('notifications older than 90 days, and their deliveries, go when the next one is recorded', async () => {
    await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'old', 'notes')`);
    const [old] = (await db.query(`update hc.notifications set at = now() - interval '91 days' returning id`)).rows;
    await sync.query(`select hc.notification_attempt($1, 'http://hook.example', 200, null, 5, true, 3)`, [old.id]);
    await db.query(`select hc.set_connection_state('IDLE', null, 'notes')`);
    await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'new', 'notes')`);
    expect((await db.query(`select message from hc.notifications`)).rows.map((r) => r.message)).toEqual([expect.stringContaining('new')]);
    expect((await db.query(`select count(*)::int as n from hc.notification_deliveries where notification_id = $1`, [old.id])).rows[0].n).toBe(0);
  });
});

describe('webhook bookkeeping', () => {
  it('a claim leases; a failed attempt is due again after the backoff; the last attempt gives up; every attempt is recorded', async () => {
    await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'x', 'notes')`);
    const [n] = (await sync.query(`select * from hc.notification_claim($1, 10, 60)`, [connId])).rows;
    expect(n.kind).toBe('connection_error');
    expect((await sync.query(`select * from hc.notification_claim($1, 10, 60)`, [connId])).rows).toHaveLength(0);
    let r = (await sync.query(`select * from hc.notification_attempt($1, 'http://hook.example', 500, 'HTTP 500', 12, false, 2, 0.05)`, [n.id])).rows[0];
    expect(r).toMatchObject({ attempts: 1, delivered_at: null, gave_up_at: null });
    await until(async () => (await sync.query(`select * from hc.notification_claim($1, 10, 60)`, [connId])).rowCount === 1, 'due again', 5_000, 20);
    r = (await sync.query(`select * from hc.notification_attempt($1, 'http://hook.example', null, 'ECONNREFUSED', 3, false, 2, 0.05)`, [n.id])).rows[0];
    expect(r.gave_up_at).not.toBeNull();
    expect((await sync.query(`select * from hc.notification_claim($1, 10, 60)`, [connId])).rows).toHaveLength(0);
    const deliveries = (await db.query(`select attempt, target, status, error, ok from hc.notification_deliveries where notification_id = $1 order by attempt`, [n.id])).rows;
    expect(deliveries).toEqual([
      { attempt: 1, target: 'http://hook.example', status: 500, error: 'HTTP 500', ok: false },
      { attempt: 2, target: 'http://hook.example', status: null, error: 'ECONNREFUSED', ok: false },
    ]);
    expect((await db.query(`select webhook from hc.notifications_list(10, 'notes')`)).rows[0].webhook).toBe('gave up');
  });
});
