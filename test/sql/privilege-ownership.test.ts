// The operator role may create and delete connections and mappings, but what it removes is only what
// hcsync made: never an application's schema, nor an application's table that happens to carry a
// mapped object's name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_ } from './helpers.js';

let db: TestDb;
let as: pg.PoolClient;
beforeAll(async () => {
  db = await createTestDb();
  await createConnection(db);
  as = await db.pool.connect();
  await as.query('set role hcsync_admin');
});
afterAll(async () => {
  as?.release();
  await db?.drop();
});

const exists = async (name: string) => (await db.query(`select to_regclass($1) is not null as e`, [name])).rows[0].e as boolean;

describe('hc.delete_mapping', () => {
  it("leaves an application's table of the same name that the mapping never built", async () => {
    await db.query(`create table salesforce.app_private (id serial primary key, secret text); insert into salesforce.app_private (secret) values ('s')`);
    await as.query(`select hc.create_mapping('App_Private', '{"access": "read_only", "fields": {"Id": {}, "Name": {}}}')`);
    await as.query(`select hc.delete_mapping('App_Private')`);
    expect((await db.query(`select secret from salesforce.app_private`)).rows).toEqual([{ secret: 's' }]);
  });

  it('drops the table it built (Heroku Connect does the same)', async () => {
    await createMapping(db, 'Contact', contactConfig, describe_('contact'));
    await as.query(`select hc.delete_mapping('Contact')`);
    expect(await exists('salesforce.contact')).toBe(false);
  });
});
