// What applying the echoes of our own writes costs while a large backlog is queued: with Change Data
// Capture on, every record the writer sends comes back as a change event, and the reader applies those
// events while the writer is still working through the queue. Each batch must be checked against the
// entries of its own records only (issue: "recognise the echo against that batch's pending entries only,
// not the whole queue"). Counted, not timed: the tuples of _trigger_log the call reads inside its own
// transaction, so a loaded machine cannot make it pass or fail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, tuplesRead, type TestDb } from '../support/db.js';
import { describeField, systemFields } from '../support/describe.js';
import { syncPool } from '../../sidecar/db/pool.js';

const f = describeField;
const describeAccount = {
  name: 'Account',
  fields: [
    ...systemFields(),
    f('Name', 'string', { length: 80 }),
    f('NumberOfEmployees', 'int'),
    f('AnnualRevenue', 'currency'),
  ],
};
const fields = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees', 'AnnualRevenue'];

const QUEUED = 20_000;
const SENT = 2_000;
const BATCH = 118;
const CLAIMER = 11;

let db: TestDb;
let sync: pg.Pool;
let connId: number;
let mappingId: number;
let lock: pg.Client;
let sent: { op_id: number; record_id: number; sfid: string }[] = [];

beforeAll(async () => {
  db = await createTestDb();
  sync = syncPool(db.url, { max: 2 });
  sync.on('error', () => {});
  connId = (await db.query(`select hc.create_connection('test', 'salesforce') as id`)).rows[0].id;
  const cfg = { access: 'read_write', fields: Object.fromEntries(fields.map((x) => [x, {}])) };
  mappingId = (await db.query('select hc.create_mapping($1, $2, $3) as id', ['Account', cfg, describeAccount])).rows[0].id;
  await db.query(`update hc.connections set write_algorithm = 'ordered', state = 'IDLE'`);
  lock = new pg.Client({ connectionString: db.url });
  await lock.connect();
  lock.on('error', () => {});
  await lock.query(`select pg_advisory_lock(hc.lock_class('writer'), $1)`, [CLAIMER]);
  // Rows Salesforce has, then one application update of each: QUEUED entries queued.
  await sync.query(`insert into salesforce.account (sfid, name, _hc_lastop)
                    select '001' || lpad(i::text, 15, '0'), 'A' || i, 'SYNCED' from generate_series(1, $1) i`, [QUEUED]);
  await db.query('analyze salesforce._trigger_log');
  await db.query(`update salesforce.account set numberofemployees = id % 1000, name = 'B' || id`);
  // The writer sends the oldest SENT of them, and Salesforce answers.
  while (sent.length < SENT) {
    const ops = (await sync.query('select hc.outbound_claim($1, $2, $3) as op', [connId, CLAIMER, SENT - sent.length])).rows.map((r) => r.op);
    await sync.query('select hc.outbound_complete($1, $2, $3)',
      [connId, CLAIMER, JSON.stringify(ops.map((o) => ({ op_id: o.op_id, action: 'update', outcome: 'ok' })))]);
    sent.push(...ops);
  }
}, 300_000);
afterAll(async () => {
  await lock?.end();
  await sync?.end();
  await db?.drop();
});

/** The batch the reader builds for the echoes of `ops` (sidecar/sync/inbound/cdc.ts). */
function echoBatch(ops: typeof sent, at: Date) {
  const stamp = new Date(Math.floor(at.getTime() / 1000) * 1000).toISOString();
  const rows = ops.map((o) => ({ Id: o.sfid, Name: `B${o.record_id}`, NumberOfEmployees: o.record_id % 1000, SystemModstamp: stamp, hcsync_at: at.toISOString() }));
  return {
    epoch: null, touched: ops.map((o) => o.sfid),
    waves: [{ groups: [{ origin: 'cdc-echo', fields: Object.keys(rows[0]).sort(), rows }], deletes: [] }],
    echo: ops.map((o) => o.sfid), reread: [], read_at: at.toISOString(), channel: null, replay_id: null, watermark: at.toISOString(),
  };
}

describe('echoes of our own writes against a large queue', () => {
  it(`a batch of ${BATCH} echoes reads the queue entries of its own records only`, async () => {
    const c = await sync.connect();
    try {
      let read = 0;
      for (let i = 0; i + BATCH <= sent.length; i += BATCH) {
        const ops = sent.slice(i, i + BATCH);
        await c.query('begin');
        const before = await tuplesRead(c);
        const r = (await c.query('select hc.inbound_apply($1, $2) as r', [mappingId, JSON.stringify(echoBatch(ops, new Date()))])).rows[0].r;
        const n = (await tuplesRead(c)) - before;
        read = Math.max(read, n);
        await c.query('commit');
        expect(r).toMatchObject({ applied: BATCH, failed: 0, reread: 0 });
      }
      // Each record's entries are read a few times (its pending changes, the pending delete, the
      // conflict check): about 600 tuples. Before the pending deletes were looked up by sfid, every
      // pending entry of the table was read twice per batch: 72,486 tuples with 20,000 queued.
      expect(read).toBeLessThan(BATCH * 10);
    } finally {
      c.release();
    }
    // The echoes changed nothing the application wrote, and no entry is queued again.
    const rows = (await db.query(`select count(*)::int n from salesforce.account
                                   where id = any($1) and name = 'B' || id and numberofemployees = id % 1000`, [sent.map((o) => o.record_id)])).rows[0].n;
    expect(rows).toBe(SENT);
    expect((await db.query(`select count(*)::int n from salesforce._trigger_log where state in ('NEW', 'PENDING')`)).rows[0].n).toBe(QUEUED - SENT);
  }, 120_000);
});
