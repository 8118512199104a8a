// hc.import_config from psql (the README's SQL API) in a database that has hcsync's SQL but no
// connection yet, as after `hcsync migrate` on a Heroku Connect database: the file's connection block
// makes the connection, in Heroku Connect's schema, together with the mappings; all or nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';

let db: TestDb;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => db?.drop());

const contact = { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, LastName: {} } };
const file = (mappings: unknown[]) => ({
  version: 1,
  connection: { name: 'my-app', app_name: 'my-app', organization_id: '00D000000000001EAA', api_version: '62.0', features: { poll_db_no_merge: false } },
  mappings,
});

describe('hc.import_config without a connection', () => {
  it('a bad file creates nothing, not even the connection', async () => {
    const e = await db.query('select hc.import_config($1::jsonb)', [JSON.stringify(file([{ object_name: 'Contact', config: { ...contact, access: 'write' } }]))]).then(() => null, (x) => x);
    expect(e?.message).toMatch(/access/);
    expect((await db.query('select count(*)::int n from hc.connections')).rows[0].n).toBe(0);
  });

  it('creates the connection from the connection block, in schema salesforce, with the mappings', async () => {
    const r = await db.query('select hc.import_config($1::jsonb) as r', [JSON.stringify(file([{ object_name: 'Contact', config: contact }]))]);
    expect(r.rows[0].r).toEqual({ created: ['Contact'], updated: [], unchanged: [] });
    expect((await db.query('select name, schema_name, write_algorithm from hc.connections')).rows).toEqual([
      { name: 'my-app', schema_name: 'salesforce', write_algorithm: 'merged' },
    ]);
    expect((await db.query(`select to_regclass('salesforce._trigger_log') is not null as ok`)).rows[0].ok).toBe(true);
    // Once there is one, a file naming another app imports into it, and makes no second connection.
    const again = await db.query('select hc.import_config($1::jsonb) as r', [JSON.stringify({ ...file([{ object_name: 'Contact', config: contact }]), connection: { name: 'other' } })]);
    expect(again.rows[0].r).toEqual({ created: [], updated: [], unchanged: ['Contact'] });
    expect((await db.query('select count(*)::int n from hc.connections')).rows[0].n).toBe(1);
  });
});
