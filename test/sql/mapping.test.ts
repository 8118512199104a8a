// Mapping DDL beyond Contact: identifiers that need quoting, config changes altered in place,
// relationship external-id columns, and configs that must be refused with a clear message.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf, triggerLog } from './helpers.js';

let db: TestDb;
beforeAll(async () => {
  db = await createTestDb();
  await createConnection(db);
});
afterAll(async () => db?.drop());

async function columnTypes(table: string) {
  const r = await db.query(
    `select attname, format_type(atttypid, atttypmod) as t from pg_attribute where attrelid = $1::regclass and attnum > 0 and not attisdropped order by attnum`,
    [table],
  );
  return Object.fromEntries(r.rows.map((x) => [x.attname, x.t]));
}

describe('identifiers that need quoting', () => {
  it('User becomes "user", with HC names for its index, triggers and functions; no isdeleted', async () => {
    await createMapping(db, 'User', { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, Username: {}, LastName: {}, AboutMe: {}, IsActive: {} } }, describe_('user'));
    expect(await columnTypes('salesforce."user"')).toEqual({
      sfid: 'character varying(18)', username: 'character varying(80)', lastname: 'character varying(80)', isactive: 'boolean',
      aboutme: 'character varying(1000)', systemmodstamp: 'timestamp without time zone', id: 'integer',
      _hc_lastop: 'character varying(32)', _hc_err: 'text',
    });
    const t = await db.query(`select tgname from pg_trigger where tgrelid = 'salesforce."user"'::regclass and not tgisinternal order by 1`);
    expect(t.rows.map((x) => x.tgname)).toEqual(['hc_user_logtrigger', 'hc_user_status_trigger', 'hcsync_noop_guard', 'hcsync_sfid_guard', 'hcsync_truncate_guard']);
    await db.query('delete from salesforce._trigger_log');
    await db.query(`insert into salesforce."user" (username, lastname) values ('a@b.c', 'Admin')`);
    expect((await triggerLog(db)).map((l) => [l.table_name, l.state])).toEqual([['user', 'NEW']]);
  });

  it('My_Obj__c with MixedCase_Field__c and a reserved-word field (Select__c)', async () => {
    await createMapping(db, 'My_Obj__c', {
      access: 'read_write',
      fields: { Id: {}, SystemModstamp: {}, Name: {}, MixedCase_Field__c: {}, Select__c: {}, Contact__c: {}, Notes__c: {}, Amount__c: {} },
      indexes: { MixedCase_Field__c: { unique: false } },
    }, describe_('my_obj__c'));
    const cols = await columnTypes('salesforce.my_obj__c');
    expect(cols).toMatchObject({ mixedcase_field__c: 'character varying(50)', select__c: 'character varying(20)', notes__c: 'text', amount__c: 'double precision', isdeleted: 'boolean' });
    const idx = await db.query(`select indexname from pg_indexes where tablename = 'my_obj__c' order by 1`);
    expect(idx.rows.map((x) => x.indexname)).toEqual(['hc_idx_my_obj__c_mixedcase_field__c', 'hc_idx_my_obj__c_systemmodstamp', 'hcu_idx_my_obj__c_sfid', 'my_obj__c_pkey']);
    await db.query(`insert into salesforce.my_obj__c (name, mixedcase_field__c) values ('n', 'v')`);
  });

  it('a second connection in its own schema works, and is deleted with its schema', async () => {
    await createConnection(db, 'second', 'sf_two');
    await createMapping(db, 'Contact', contactConfig, describe_('contact'), 'second');
    await db.query(`insert into sf_two.contact (lastname) values ('Two')`);
    const r = await db.query(`select count(*)::int as n from sf_two._trigger_log where state = 'NEW'`);
    expect(r.rows[0].n).toBe(1);
    await db.query(`select hc.delete_mapping('Contact', 'second')`);
    expect((await db.query(`select to_regclass('sf_two.contact') as t`)).rows[0].t).toBeNull();
    const e = await errorOf(() => db.query(`select hc.delete_connection('oops', 'second')`));
    expect(e.hint).toContain(`hc.delete_connection('second')`);
    await db.query(`select hc.delete_connection('second')`);
    expect((await db.query(`select to_regnamespace('sf_two') as s`)).rows[0].s).toBeNull();
  });
});

describe('config changes alter the table in place', () => {
  it('adds and drops columns and indexes, keeps the rows, and moves the mapping to RESYNC', async () => {
    await createMapping(db, 'Contact', contactConfig, describe_('contact'));
    await db.query(`insert into salesforce.contact (lastname, external_id__c) values ('Keep', 'e1')`);
    const cfg = { ...contactConfig, fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, LastName: {}, Email: {}, Home_Location__Latitude__s: {} },
                  indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, Email: { unique: false } } } as Record<string, unknown>;
    delete cfg.upsert_field;
    await db.query(`select hc.update_mapping('Contact', $1::jsonb)`, [JSON.stringify(cfg)]);
    const cols = await columnTypes('salesforce.contact');
    expect(Object.keys(cols).sort()).toEqual(['_hc_err', '_hc_lastop', 'email', 'home_location__latitude__s', 'id', 'isdeleted', 'lastname', 'sfid', 'systemmodstamp']);
    const idx = await db.query(`select indexname from pg_indexes where schemaname = 'salesforce' and tablename = 'contact' order by 1`);
    expect(idx.rows.map((x) => x.indexname)).toEqual(['contact_pkey', 'hc_idx_contact_email', 'hc_idx_contact_systemmodstamp', 'hcu_idx_contact_sfid']);
    expect((await db.query(`select lastname from salesforce.contact`)).rows).toEqual([{ lastname: 'Keep' }]);
    const m = await db.query(`select state, state_message, revision from hc._mappings where object_name = 'Contact' and connection_id = 1`);
    expect(m.rows[0]).toMatchObject({ state: 'RESYNC', revision: 2 });
    expect(m.rows[0].state_message).toMatch(/email/);
  });

  it('a relationship external-id column (Account__External_Id__c) is typed like the parent field and described', async () => {
    await createMapping(db, 'Account', { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, Name: {}, External_Id__c: {} }, indexes: { External_Id__c: { unique: true } } }, describe_('account'));
    await db.query(`select hc.update_mapping('Contact', $1::jsonb, $2::jsonb)`, [
      JSON.stringify({ ...contactConfig, fields: { ...contactConfig.fields, Account__External_Id__c: {} } }), JSON.stringify(describe_('contact')),
    ]);
    expect((await columnTypes('salesforce.contact')).account__external_id__c).toBe('character varying(64)');
    const f = await db.query(`select sf_type, reference_to, relationship_name, target_field, createable from hc._mapping_fields where column_name = 'account__external_id__c'`);
    expect(f.rows).toEqual([{ sf_type: 'relationship_external_id', reference_to: ['Account'], relationship_name: 'Account', target_field: 'External_Id__c', createable: true }]);
  });
});

describe('columns the application added to a mapped table are its own', () => {
  const base = { access: 'read_write', fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, LastName: {}, Email: {}, Title: {} } };
  const cfg = (fields: string[]) => ({ ...base, fields: Object.fromEntries(fields.map((f) => [f, {}])) });

  it('survive update_mapping, a changed import and a fresh describe; only columns the mapping made are dropped', async () => {
    await createConnection(db, 'appcols', 'sf_appcols');
    await createMapping(db, 'Contact', base, describe_('contact'), 'appcols');
    await db.query(`alter table sf_appcols.contact add column app_note text, add column loyalty_tier integer`);
    await db.query(`insert into sf_appcols.contact (lastname, title, app_note, loyalty_tier) values ('Keep', 'Dr', 'VIP since 2019', 3)`);

    // A field removed from the config: its column goes, the application's stay with their data.
    const r1 = await db.query(`select hc.update_mapping('Contact', $1::jsonb, null, 'appcols')`, [JSON.stringify(cfg(['Id', 'IsDeleted', 'SystemModstamp', 'LastName', 'Email']))]);
    expect(r1.rows).toHaveLength(1);
    let cols = Object.keys(await columnTypes('sf_appcols.contact'));
    expect(cols).not.toContain('title');
    expect(cols).toEqual(expect.arrayContaining(['app_note', 'loyalty_tier', 'id', 'sfid', '_hc_lastop', '_hc_err', 'systemmodstamp', 'isdeleted']));
    const ddl = await db.query(`select detail from hc.sync_log where event = 'ddl' and connection_id = (select id from hc.connections where name = 'appcols') order by id desc limit 1`);
    expect(ddl.rows[0].detail.dropped).toEqual(['title']);

    // A changed import (HC's config:import) adds Phone: nothing of the application's is touched.
    await db.query(`select hc.import_config($1::jsonb, 'appcols')`, [JSON.stringify({ version: 1, mappings: [{ object_name: 'Contact', config: cfg(['Id', 'IsDeleted', 'SystemModstamp', 'LastName', 'Phone']) }] })]);
    // SCHEMA_CHANGED: the sidecar applies a fresh describe.
    const id = (await db.query(`select m.id from hc._mappings m join hc.connections c on c.id = m.connection_id where c.name = 'appcols'`)).rows[0].id;
    const r3 = await db.query('select hc.apply_mapping_ddl($1, $2::jsonb) as r', [id, JSON.stringify(describe_('contact'))]);
    expect(r3.rows[0].r.dropped).toEqual([]);
    cols = Object.keys(await columnTypes('sf_appcols.contact'));
    expect(cols).toEqual(expect.arrayContaining(['app_note', 'loyalty_tier', 'phone']));
    expect(cols).not.toContain('email');
    expect((await db.query(`select lastname, app_note, loyalty_tier from sf_appcols.contact`)).rows).toEqual([{ lastname: 'Keep', app_note: 'VIP since 2019', loyalty_tier: 3 }]);
    await db.query(`select hc.delete_connection('appcols')`);
  });

  it('a field added to the config whose column the application already has is refused, not retyped over its data', async () => {
    await createConnection(db, 'appcols2', 'sf_appcols2');
    await createMapping(db, 'Contact', base, describe_('contact'), 'appcols2');
    await db.query(`alter table sf_appcols2.contact add column phone text`);
    const long = 'call after six, ask for the night desk, extension 4411, never before noon';
    await db.query(`insert into sf_appcols2.contact (lastname, phone) values ('App', $1)`, [long]);
    const withPhone = JSON.stringify(cfg(['Id', 'IsDeleted', 'SystemModstamp', 'LastName', 'Email', 'Title', 'Phone']));
    const e = await errorOf(() => db.query(`select hc.update_mapping('Contact', $1::jsonb, $2::jsonb, 'appcols2')`, [withPhone, JSON.stringify(describe_('contact'))]));
    expect(e.code).toBe('22023');
    expect(e.message).toContain('phone');
    expect(e.hint).toMatch(/rename/i);
    // Without a describe the mapping waits for one (the sidecar then reports BAD_CONFIG with the same message).
    await db.query(`select hc.update_mapping('Contact', $1::jsonb, null, 'appcols2')`, [withPhone]);
    expect((await db.query(`select phone, format_type(atttypid, atttypmod) as t from sf_appcols2.contact,
                              pg_attribute where attrelid = 'sf_appcols2.contact'::regclass and attname = 'phone'`)).rows).toEqual([{ phone: long, t: 'text' }]);
    await db.query(`select hc.delete_connection('appcols2')`);
  });

  it('a Heroku Connect table taken over keeps columns the config does not map', async () => {
    await createConnection(db, 'adopt', 'sf_adopt');
    await db.query(`create table sf_adopt.contact (id serial primary key, sfid varchar(18), _hc_lastop varchar(32), _hc_err text,
                    systemmodstamp timestamp, isdeleted boolean, lastname varchar(80), app_score integer)`);
    await db.query(`insert into sf_adopt.contact (lastname, app_score) values ('Old', 42)`);
    await createMapping(db, 'Contact', cfg(['Id', 'IsDeleted', 'SystemModstamp', 'LastName']), describe_('contact'), 'adopt');
    expect((await db.query(`select lastname, app_score from sf_adopt.contact`)).rows).toEqual([{ lastname: 'Old', app_score: 42 }]);
    await db.query(`select hc.delete_connection('adopt')`);
  });
});

describe('bad configs raise errors that say what to do', () => {
  it('unknown access mode', async () => {
    const e = await errorOf(() => createMapping(db, 'Lead', { access: 'read_mostly', fields: { Id: {} } }));
    expect(e.code).toBe('22023');
    expect(e.message).toContain('access must be "read_only" or "read_write", not "read_mostly"');
    expect(e.hint).toContain('read_only');
  });

  it('malformed JSON in an import', async () => {
    const e = await errorOf(() => db.query(`select hc.import_config('{"version": 1, "mappings": [')`));
    expect(e.message).toMatch(/the import is not valid JSON/);
    expect(e.hint).toMatch(/export/);
  });

  it('config that is not an object, and fields that are not an object', async () => {
    expect((await errorOf(() => db.query(`select hc.create_mapping('Lead', '"read_only"')`))).message).toMatch(/must be a JSON object, not string/);
    expect((await errorOf(() => createMapping(db, 'Lead', { access: 'read_only', fields: ['Id'] }))).message).toMatch(/"fields" must be a non-empty object/);
    expect((await errorOf(() => createMapping(db, 'Lead', { access: 'read_only', fields: { Id: {} }, sf_polling_seconds: 'often' }))).message).toMatch(/sf_polling_seconds/);
  });

  it('numeric settings out of range, naming the range (a poll interval past Node\'s timer limit polled back to back)', async () => {
    const base = { access: 'read_only', fields: { Id: {}, SystemModstamp: {} } };
    for (const [key, value] of [['sf_polling_seconds', 3_000_000], ['sf_polling_seconds', 86_401], ['sf_polling_seconds', 0], ['sf_polling_seconds', 1.5],
                                ['sf_max_daily_api_calls', -5], ['sf_max_daily_api_calls', 0], ['sf_max_daily_api_calls', 2.5],
                                ['sf_max_daily_api_calls', 2_147_483_648], ['sf_max_daily_api_calls', '30000']] as const) {
      const e = await errorOf(() => createMapping(db, 'Lead', { ...base, [key]: value }));
      expect([key, value, e.code]).toEqual([key, value, '22023']);
      expect(e.message).toContain(key);
      expect(e.message).toMatch(/from 1 to [\d,]+/);
      expect(e.hint).toBeTruthy();
    }
    // The same checks guard update_mapping and import_config.
    const bad = { ...contactConfig, sf_polling_seconds: 2_147_484 };
    expect((await errorOf(() => db.query(`select hc.update_mapping('Contact', $1::jsonb)`, [JSON.stringify(bad)]))).message).toContain('sf_polling_seconds');
    const file = { version: 1, mappings: [{ object_name: 'Contact', config: { ...contactConfig, sf_max_daily_api_calls: -1 } }] };
    expect((await errorOf(() => db.query(`select hc.import_config($1::jsonb)`, [JSON.stringify(file)]))).message).toContain('sf_max_daily_api_calls');
    // The bounds themselves are accepted.
    await createMapping(db, 'Lead', { ...base, sf_polling_seconds: 86_400, sf_max_daily_api_calls: 2_147_483_647 });
    await createMapping(db, 'Opportunity', { ...base, sf_polling_seconds: 1, sf_max_daily_api_calls: 1 });
    await db.query(`select hc.delete_mapping('Lead')`);
    await db.query(`select hc.delete_mapping('Opportunity')`);
  });

  it('connection settings in an import: feature flags are true or false, the API version looks like 62.0', async () => {
    const file = (connection: object) => JSON.stringify({ version: 1, connection, mappings: [] });
    let e = await errorOf(() => db.query(`select hc.import_config($1::jsonb, 'my-app')`, [file({ features: { poll_db_no_merge: 'sometimes' } })]));
    expect([e.code, e.message]).toEqual(['22023', expect.stringContaining('poll_db_no_merge')]);
    expect(e.hint).toMatch(/true or false/);
    e = await errorOf(() => db.query(`select hc.import_config($1::jsonb, 'my-app')`, [file({ features: { disable_bulk_writes: 1 } })]));
    expect(e.message).toContain('disable_bulk_writes');
    e = await errorOf(() => db.query(`select hc.import_config($1::jsonb, 'my-app')`, [file({ api_version: 'latest' })]));
    expect([e.code, e.message]).toEqual(['22023', expect.stringContaining('api_version')]);
    e = await errorOf(() => db.query(`select hc.import_config($1::jsonb, 'my-app')`, [file({ features: ['poll_db_no_merge'] })]));
    expect(e.message).toContain('features');
    await db.query(`select hc.import_config($1::jsonb, 'my-app')`, [file({ api_version: '50.0', features: { poll_db_no_merge: true, rest_count_only: false } })]);
  });

  it('a mapping that does not exist', async () => {
    for (const call of [`select hc.reload('Opportunity')`, `select hc.delete_mapping('Opportunity')`, `select hc.poll_now('Opportunity')`]) {
      const e = await errorOf(() => db.query(call));
      expect(e.code).toBe('42704');
      expect(e.message).toContain('has no mapping for object "Opportunity"');
      expect(e.hint).toMatch(/Mapped objects: .*Contact/);
    }
  });

  it('a field the object does not have, naming the field and close matches', async () => {
    const id = await createMapping(db, 'Case', { access: 'read_only', fields: { Id: {}, SystemModstamp: {} } });
    const wrong = await errorOf(() => db.query('select hc.apply_mapping_ddl($1, $2::jsonb)', [id, JSON.stringify(describe_('account'))]));
    expect(wrong.message).toContain('the describe is for Account, but the mapping is for Case');
    const bad = await errorOf(() => createMapping(db, 'Lead', { access: 'read_only', fields: { Id: {}, LastNme: {} } }, { ...describe_('contact'), name: 'Lead' }));
    expect(bad.message).toContain('Lead has no field "LastNme"');
    expect(bad.hint).toContain('LastName');
  });

  it('a compound field, pointing at its components', async () => {
    const e = await errorOf(() => createMapping(db, 'Lead', { access: 'read_only', fields: { Id: {}, MailingAddress: {} } }, { ...describe_('contact'), name: 'Lead' }));
    expect(e.message).toContain('field Lead.MailingAddress has Salesforce type address');
    expect(e.hint).toContain('MailingStreet');
  });

  it('an ambiguous connection argument', async () => {
    await createConnection(db, 'other', 'sf_other');
    const e = await errorOf(() => db.query(`select hc.pause()`));
    expect(e.message).toMatch(/2 connections exist \(my-app, other\)/);
    expect(e.hint).toMatch(/connection_name/);
    await db.query(`select hc.delete_connection('other')`);
  });

  it('a pre-existing table that is not an HC table is not taken over', async () => {
    await db.query(`create table salesforce.lead (id serial primary key, name text)`);
    const e = await errorOf(() => createMapping(db, 'Lead', { access: 'read_only', fields: { Id: {}, SystemModstamp: {} } }, { ...describe_('contact'), name: 'Lead' }));
    expect(e.message).toMatch(/already exists and is not a Heroku Connect table/);
  });
});
