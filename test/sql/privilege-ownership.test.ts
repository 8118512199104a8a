// The operator role may create and delete connections and mappings, but what it removes is only what
// hcsync made: never an application's schema, nor an application's table that happens to carry a
// mapped object's name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf } from './helpers.js';

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
const schemaExists = async (name: string) => (await db.query(`select to_regnamespace($1) is not null as e`, [name])).rows[0].e as boolean;

describe('hc.create_connection / hc.delete_connection', () => {
  it("refuses an application's schema instead of adopting it, so deleting the connection cannot drop it", async () => {
    await db.query(`create schema appdata; create table appdata.orders (id serial primary key, total numeric); insert into appdata.orders (total) values (42)`);
    const e = await errorOf(() => as.query(`select hc.create_connection('grab', 'appdata')`));
    expect(e.message).toMatch(/schema "appdata" already exists and is not a Heroku Connect schema/);
    expect(e.message).toContain('orders');
    expect(e.hint).toMatch(/new schema name/);
    expect((await db.query(`select count(*)::int as n from hc.connections where name = 'grab'`)).rows[0].n).toBe(0);
    expect((await db.query(`select total::int from appdata.orders`)).rows).toEqual([{ total: 42 }]);
  });

  it('adopts a Heroku Connect schema and, deleting the connection, leaves what hcsync did not make', async () => {
    // A Heroku Connect database: HC's objects, a mapped table, and a table of the application's own.
    await db.query(`select hc._install_connection_objects('hc_old')`);
    await db.query(`create table hc_old.contact (id serial primary key, sfid varchar(18), _hc_lastop varchar(32), _hc_err text,
                    systemmodstamp timestamp, isdeleted boolean, lastname varchar(80), createddate timestamp, accountid varchar(18), external_id__c varchar(255))`);
    await db.query(`create table hc_old.app_notes (id serial primary key, note text); insert into hc_old.app_notes (note) values ('keep me')`);
    await as.query(`select hc.create_connection('old', 'hc_old')`);
    await db.query(`select hc.create_mapping('Contact', $1::jsonb, $2::jsonb, 'old')`, [JSON.stringify(contactConfig), JSON.stringify(describe_('contact'))]);
    await as.query(`select hc.delete_connection('old')`);
    expect(await schemaExists('hc_old')).toBe(true);
    expect((await db.query(`select note from hc_old.app_notes`)).rows).toEqual([{ note: 'keep me' }]);
    // The connection's own objects go: the mapped table it took over and HC's queue.
    expect(await exists('hc_old.contact')).toBe(false);
    expect(await exists('hc_old._trigger_log')).toBe(false);
  });

  it('drops a schema it created, but not an application table added to it later', async () => {
    await as.query(`select hc.create_connection('mine', 'sf_mine')`);
    await db.query(`select hc.create_mapping('Contact', $1::jsonb, $2::jsonb, 'mine')`, [JSON.stringify(contactConfig), JSON.stringify(describe_('contact'))]);
    await db.query(`create table sf_mine.app_extra (id int); insert into sf_mine.app_extra values (7)`);
    await as.query(`select hc.delete_connection('mine')`);
    expect((await db.query(`select id from sf_mine.app_extra`)).rows).toEqual([{ id: 7 }]);
    expect(await exists('sf_mine.contact')).toBe(false);
    await db.query(`drop table sf_mine.app_extra`);
    // Now empty: a second create and delete removes the schema.
    await as.query(`select hc.create_connection('mine2', 'sf_mine2')`);
    await as.query(`select hc.delete_connection('mine2')`);
    expect(await schemaExists('sf_mine2')).toBe(false);
  });
});

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
