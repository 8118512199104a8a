// The writer stamping its creates' rows with their sfids while the read side enters the same records as
// rows of its own (a re-read that finds a record created a moment ago, before the write-back: HC's
// duplicate-record race). Both enter sfids into the table's unique index; entered in opposite orders,
// each waited on the other's uncommitted key and PostgreSQL killed one (seen in CI: a deadlock between
// hc.outbound_complete and hc.inbound_merge). Both now go in sfid order. Here the writer's two rows are
// given sfids in the opposite order to their ids, the read side holds the lower sfid uncommitted, and
// enters the higher one while the writer waits on it: nobody deadlocks, the phantom rows go, the
// application's rows keep their records.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, deadlockReports, type TestDb } from '../support/db.js';
import { describeField, systemFields } from '../support/describe.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { until } from './wait.js';

const f = describeField;
const describeAccount = { name: 'Account', fields: [...systemFields(), f('Name', 'string', { length: 80 })] };
const fields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted'];
const CLAIMER = 7;
const LOW = '001000000000001AAA';
const HIGH = '001000000000009AAA';

let db: TestDb;
let sync: pg.Pool;
let lock: pg.Client;
let connId: number;
let mappingId: number;

beforeAll(async () => {
  db = await createTestDb();
  sync = syncPool(db.url, { max: 4 });
  sync.on('error', () => {});
  connId = (await db.query(`select hc.create_connection('test', 'salesforce') as id`)).rows[0].id;
  const cfg = { access: 'read_write', fields: Object.fromEntries(fields.map((x) => [x, {}])) };
  mappingId = (await db.query('select hc.create_mapping($1, $2, $3) as id', ['Account', cfg, describeAccount])).rows[0].id;
  await db.query(`update hc.connections set state = 'IDLE'`);
  lock = new pg.Client({ connectionString: db.url });
  await lock.connect();
  lock.on('error', () => {});
  await lock.query(`select pg_advisory_lock(hc.lock_class('writer'), $1)`, [CLAIMER]);
}, 60_000);
afterAll(async () => {
  await lock?.end();
  await sync?.end();
  await db?.drop();
});

const record = (id: string, name: string) => ({ Id: id, Name: name, SystemModstamp: '2026-11-30T10:00:00.000+0000', IsDeleted: false });

describe('write-back of creates against a re-read of the same records', () => {
  it('the writer and the read side enter the new sfids in one order: no deadlock, no phantom row left', async () => {
    const [a, b] = (await db.query(`insert into salesforce.account (name) values ('A'), ('B') returning id`)).rows.map((r) => r.id as number);
    const ops = (await sync.query('select hc.outbound_claim($1, $2, 10) as op', [connId, CLAIMER])).rows.map((r) => r.op);
    expect(ops.map((o) => [o.record_id, o.action])).toEqual([[a, 'insert'], [b, 'insert']]);
    // Salesforce's ids in the opposite order to the rows': a gets the higher one.
    const sfidOf = new Map([[a, HIGH], [b, LOW]]);
    const results = ops.map((o) => ({ op_id: o.op_id, outcome: 'ok', sfid: sfidOf.get(o.record_id) }));

    // The read side: a re-read finds the record with the lower id first, and enters it as a row.
    const reader = await sync.connect();
    let writer: Promise<unknown> | undefined;
    try {
      await reader.query('begin');
      await reader.query(`select hc.inbound_merge($1, 'json', $2, $3::jsonb, 'reread')`, [mappingId, fields, JSON.stringify([record(LOW, 'B')])]);
      // The writer records its results meanwhile, and waits on that uncommitted row's sfid.
      writer = sync.query('select hc.outbound_complete($1, $2, $3) as n', [connId, CLAIMER, JSON.stringify(results)]);
      writer.catch(() => {});
      await until(async () => (await db.query(
        `select count(*)::int n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'
            and query like '%outbound_complete%'`)).rows[0].n === 1, 'the writer waits on the read side', 10_000);
      // The re-read goes on to the other record. Before, the writer had entered it already (its rows in id
      // order): each session now waited on the other.
      await reader.query(`select hc.inbound_merge($1, 'json', $2, $3::jsonb, 'reread')`, [mappingId, fields, JSON.stringify([record(HIGH, 'A')])]);
      await reader.query('commit');
    } finally {
      reader.release();
    }
    expect((await writer!) as pg.QueryResult).toBeTruthy();

    await db.query('select pg_stat_force_next_flush()').catch(() => {});
    const deadlocks = (await db.query(`select deadlocks::int n from pg_stat_database where datname = current_database()`)).rows[0].n;
    expect(deadlocks, deadlockReports(db.name)).toBe(0);
    // The application's rows hold their records; the rows the re-read entered went, and their records
    // are queued to be read again (into the application's rows).
    expect((await db.query(`select id, sfid, _hc_lastop from salesforce.account order by id`)).rows).toEqual([
      { id: a, sfid: HIGH, _hc_lastop: 'INSERTED' },
      { id: b, sfid: LOW, _hc_lastop: 'INSERTED' },
    ]);
    expect((await db.query(`select sfid from hc.inbound_rereads where mapping_id = $1 order by sfid`, [mappingId])).rows.map((r) => r.sfid))
      .toEqual([LOW, HIGH]);
    expect((await db.query(`select state, count(*)::int n from salesforce._trigger_log group by state`)).rows).toEqual([{ state: 'SUCCESS', n: 2 }]);
  }, 60_000);
});
