// The operator's verbs for conflicts, run in the test's process as the binary runs them: `hcsync conflicts`
// lists the parked ones, `hcsync resolve <id> pg|sf|{json}` decides one (hc.resolve_conflict), and a bad
// choice is a usage error (exit 2) that changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { describeField } from '../support/describe.js';
import { cli } from '../support/cli.js';
import { syncPool } from '../../sidecar/db/pool.js';

const f = describeField;
const describeAccount = {
  name: 'Account',
  fields: [
    f('Id', 'id', { nillable: false, createable: false, updateable: false }),
    f('Name', 'string', { length: 40 }),
    f('SystemModstamp', 'datetime', { createable: false, updateable: false }),
    f('Phone', 'phone', { length: 40 }),
  ],
};

let db: TestDb;
let sync: pg.Pool;
let env: Record<string, string>;
const SFID = '001000000000001AAA';

beforeAll(async () => {
  db = await createTestDb();
  env = { DATABASE_URL: db.url };
  sync = syncPool(db.url, { max: 1 });
  await db.query(`select hc.create_connection('test', 'salesforce')`);
  const cfg = { access: 'read_write', fields: { Id: {}, Name: {}, SystemModstamp: {}, Phone: {} } };
  const m = (await db.query('select hc.create_mapping($1, $2, $3) as id', ['Account', cfg, describeAccount])).rows[0].id;
  await sync.query('select hc.inbound_merge($1, $2, $3, $4, $5)', [m, 'json', ['Id', 'Name', 'SystemModstamp', 'Phone'],
    JSON.stringify([{ Id: SFID, Name: 'Acme', SystemModstamp: '2024-01-15T10:20:30.000Z', Phone: 'agreed' }]), 'poll']);
  await db.query(`update salesforce.account set phone = 'mine' where sfid = $1`, [SFID]);
  await sync.query('select hc.inbound_apply($1, $2)', [m, { touched: [SFID], waves: [{ groups: [{ origin: 'cdc', fields: ['Id', 'Phone', 'hcsync_at'], rows: [{ Id: SFID, Phone: 'theirs', hcsync_at: new Date().toISOString() }] }], deletes: [] }] }]);
});
afterAll(async () => {
  await sync?.end();
  await db?.drop();
});

describe('hcsync conflicts / resolve', () => {
  it('lists the parked conflict, refuses a bad choice, resolves it with chosen values', async () => {
    const listed = JSON.parse((await cli(['conflicts', '--json'], env)).stdout);
    expect(listed.count).toBe(1);
    expect(listed.results[0]).toMatchObject({ object_name: 'Account', sfid: SFID, kind: 'update', fields: 'Phone', policy: 'manual', winner: 'parked',
                                              pg_values: { phone: 'mine' }, sf_values: { phone: 'theirs' } });
    const text = await cli(['conflicts'], env);
    expect(text.stdout).toMatch(/Phone.*manual.*parked/);
    const id = String(listed.results[0].id);

    const bad = await cli(['resolve', id, 'maybe'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/pg, sf or a JSON object/);
    const missing = await cli(['resolve', id, '{"Name": "x"}'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/give a value for each of them/);

    const ok = await cli(['resolve', id, '{"Phone": "agreed-now"}'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`conflict ${id} \\(Account ${SFID}, Phone\\) resolved: chosen values`));
    expect((await db.query(`select phone from salesforce.account where sfid = $1`, [SFID])).rows[0].phone).toBe('agreed-now');
    // What Salesforce must get is queued like any change.
    expect((await db.query(`select "values" from salesforce._trigger_log where state = 'NEW' order by id desc limit 1`)).rows[0].values).toBe('"phone"=>"agreed-now"');
    expect(JSON.parse((await cli(['conflicts', '--json'], env)).stdout).count).toBe(0);
    const all = JSON.parse((await cli(['conflicts', '--all', '--json'], env)).stdout);
    expect(all.results[0]).toMatchObject({ winner: 'values', resolution: 'operator' });
    expect((await cli(['resolve', id, 'pg'], env)).stderr).toMatch(/resolved already/);
  });
});
