// Identifier fuzz: every object name length Salesforce allows (1 to 60: a namespaced custom object is
// ns__Name__c with a 15-character namespace and a 40-character name), reserved words, names that need
// quoting, mixed case, long field names, odd connection names and schema names. Postgres keeps 63 bytes
// of an identifier and silently cuts the rest, so every name the mapping DDL derives (triggers, their
// functions, indexes, the primary key, the id sequence) must stay unique within 63 bytes, and keep
// Heroku Connect's exact name whenever it fits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { describeField } from '../support/describe.js';
import { createConnection, createMapping, errorOf, syncClient } from './helpers.js';

let db: TestDb;
let as: pg.PoolClient;
let sync: pg.Client;
// Roles are cluster-wide and test runs share servers: a name of our own, dropped at the end.
const app = `hcsync_test_ident_${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  db = await createTestDb();
  await db.query(`create role ${app} nologin`);
  await createConnection(db);
  // Registered before the mappings exist: every table created later is granted to it, sequence included.
  await db.query(`select hc.grant_app_access($1)`, [app]);
  as = await db.pool.connect();
  sync = await syncClient(db);
});
afterAll(async () => {
  as?.release();
  await sync?.end();
  await db?.drop();
  const admin = new pg.Client({ connectionString: inject('adminUrl') });
  await admin.connect();
  await admin.query(`drop role if exists ${app}`);
  await admin.end();
});

const WORDS = 'SelectOrderGroupUserTableFromWhereCheckLimitDefaultColumnIndexAnalyseCollateWindow';
const SNAKE = 'Select_Order_Group_User_Table_From_Where_Check_Limit_Default_Column_Index_Analyse';

/** A name of exactly n characters from the pattern, never ending in "_" (Salesforce refuses that). */
function cut(pattern: string, n: number): string {
  const s = pattern.slice(0, n);
  return s.endsWith('_') ? `${s.slice(0, -1)}x` : s;
}

/** Object API names of every length 1..60, rotating standard-style, custom and namespaced custom. */
function objectNames(): string[] {
  const names: string[] = [];
  for (let n = 1; n <= 60; n++) {
    if (n < 4) names.push(cut(WORDS, n));
    else if (n < 12 || n % 3 === 0) names.push(`${cut(SNAKE, n - 3)}__c`);
    else if (n % 3 === 1) names.push(`Acme__${cut(SNAKE, n - 9)}__c`);
    else names.push(cut(WORDS, n));
  }
  // Both variants at the lengths that broke, and a pair of 60-character names that differ only in
  // their last letter before __c (so any 63-byte cut of a derived name would collide).
  for (const n of [57, 58, 59, 60]) names.push(`${cut(SNAKE, n - 3)}__c`, `Acme__${cut(SNAKE, n - 9)}__c`);
  names.push(`Zq__${'Ab'.repeat(25)}cdA__c`, `Zq__${'Ab'.repeat(25)}cdB__c`);
  // Standard objects whose table name is a reserved word.
  names.push('Order', 'Group', 'Case', 'User_x', 'Select__c');
  return [...new Set(names)];
}

const FIELD_A = `Acme__${cut(SNAKE, 47)}A__c`; // 57 characters
const FIELD_B = `Acme__${cut(SNAKE, 47)}B__c`;

function describeOf(object: string) {
  return {
    name: object,
    fields: [
      describeField('Id', 'id', { length: 18, nillable: false, createable: false, updateable: false }),
      describeField('IsDeleted', 'boolean', { nillable: false, createable: false, updateable: false }),
      describeField('Name', 'string', { length: 80 }),
      describeField(FIELD_A, 'string', { length: 40 }),
      describeField(FIELD_B, 'string', { length: 40 }),
      describeField('SystemModstamp', 'datetime', { nillable: false, createable: false, updateable: false }),
    ],
  };
}

function configOf() {
  return {
    access: 'read_write',
    fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, Name: {}, [FIELD_A]: {}, [FIELD_B]: {} },
    indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, [FIELD_A]: { unique: false }, [FIELD_B]: { unique: true } },
  };
}

const fits = (name: string) => Buffer.byteLength(name) <= 63;
const q = (s: string) => `"${s.replace(/"/g, '""')}"`;

async function derivedObjects(schema: string, table: string) {
  const rel = `${q(schema)}.${q(table)}`;
  const triggers = (await db.query(
    `select t.tgname::text as name, p.proname::text as fn, pg_get_triggerdef(t.oid) as def
       from pg_trigger t join pg_proc p on p.oid = t.tgfoid where t.tgrelid = $1::regclass and not t.tgisinternal order by 1`, [rel])).rows;
  const indexes = (await db.query(
    `select i.relname::text as name, x.indisunique as unique, x.indisprimary as primary,
            (select string_agg(a.attname, ',') from pg_attribute a where a.attrelid = x.indrelid and a.attnum = any(x.indkey)) as cols
       from pg_index x join pg_class i on i.oid = x.indexrelid where x.indrelid = $1::regclass order by 1`, [rel])).rows;
  const seq = (await db.query(`select pg_get_serial_sequence($1, 'id') as s`, [rel])).rows[0].s as string | null;
  return { triggers, indexes, seq };
}

describe('object names of every length 1..60', () => {
  const names = objectNames();

  it('each gets its own triggers, functions, indexes and sequence, with HC names whenever they fit', async () => {
    expect(names.filter((n) => n.length === 60).length).toBeGreaterThanOrEqual(4);
    for (let n = 1; n <= 60; n++) expect(names.some((x) => x.length === n)).toBe(true);
    for (const object of names) {
      await createMapping(db, object, configOf(), describeOf(object));
      const t = object.toLowerCase();
      const { triggers, indexes, seq } = await derivedObjects('salesforce', t);
      const fa = FIELD_A.toLowerCase();
      const fb = FIELD_B.toLowerCase();
      const log = triggers.find((x) => x.def.includes('AFTER INSERT OR DELETE OR UPDATE'));
      const status = triggers.find((x) => x.def.includes('BEFORE INSERT OR UPDATE'));
      expect([object, triggers.length]).toEqual([object, 5]);
      // The no-op guard must fire after HC's status trigger: BEFORE triggers fire in name order.
      expect([object, (status?.name ?? '') < 'hcsync_noop_guard']).toEqual([object, true]);
      expect([object, log?.fn !== status?.fn, Boolean(log && status)]).toEqual([object, true, true]);
      expect(triggers.map((x) => x.name).sort()).toEqual(expect.arrayContaining(['hcsync_noop_guard', 'hcsync_sfid_guard', 'hcsync_truncate_guard']));
      for (const [got, hc] of [[log?.name, `hc_${t}_logtrigger`], [status?.name, `hc_${t}_status_trigger`],
                               [log?.fn, `hc_${t}_logger`], [status?.fn, `hc_${t}_status`]]) {
        if (fits(hc!)) expect(got).toBe(hc);
        else expect([object, fits(got!)]).toEqual([object, true]);
      }
      const byCols = Object.fromEntries(indexes.map((x) => [x.cols, x]));
      expect([object, Object.keys(byCols).sort()]).toEqual([object, ['id', fa, fb, 'sfid', 'systemmodstamp'].sort()]);
      expect(byCols.id.primary && byCols.sfid.unique && byCols[fb].unique && !byCols[fa].unique && !byCols.systemmodstamp.unique).toBe(true);
      for (const [cols, hc] of [['id', `${t}_pkey`], ['sfid', `hcu_idx_${t}_sfid`], ['systemmodstamp', `hc_idx_${t}_systemmodstamp`],
                                [fa, `hc_idx_${t}_${fa}`], [fb, `hcu_idx_${t}_${fb}`]]) {
        if (fits(hc)) expect(byCols[cols].name).toBe(hc);
      }
      expect(seq).not.toBeNull();
    }
    // Nothing else in the schema was replaced: one logger and one status function per table.
    const fns = await db.query(`select count(*)::int as n from pg_proc where pronamespace = 'salesforce'::regnamespace and proname like 'hc\\_%' and proname not like 'hc\\_capture\\_%'`);
    expect(fns.rows[0].n).toBe(names.length * 2);
  });

  it('application writes to each are captured (as a registered application role), sync writes are not', async () => {
    for (const object of names) {
      const t = object.toLowerCase();
      const rel = `salesforce.${q(t)}`;
      await as.query(`set role ${app}`);
      let id: number;
      try {
        const r = await as.query(`insert into ${rel} (name) values ($1) returning id, _hc_lastop`, [object]);
        expect([object, r.rows[0]._hc_lastop]).toEqual([object, 'PENDING']);
        id = r.rows[0].id;
      } finally {
        await as.query('reset role');
      }
      await sync.query(`update ${rel} set sfid = $1, _hc_lastop = 'INSERTED' where id = $2`, [`a00${String(id).padStart(15, '0')}`, id]);
      await as.query(`set role ${app}`);
      try {
        await as.query(`update ${rel} set name = 'changed' where id = $1`, [id]);
      } finally {
        await as.query('reset role');
      }
      const log = await db.query(`select action, state from salesforce._trigger_log where table_name = $1 and record_id = $2 order by id`, [t, id]);
      expect([object, log.rows]).toEqual([object, [{ action: 'INSERT', state: 'NEW' }, { action: 'UPDATE', state: 'NEW' }]]);
    }
  });

  it('a role registered after the mappings exist gets every table and its sequence, and loses them again', async () => {
    const late = `${app}_late`;
    await db.query(`create role ${late} nologin`);
    try {
      await db.query(`select hc.grant_app_access($1)`, [late]);
      for (const object of names.filter((n) => n.length >= 57)) {
        const rel = `salesforce.${q(object.toLowerCase())}`;
        await as.query(`set role ${late}`);
        try {
          await as.query(`insert into ${rel} (name) values ('late')`);
        } finally {
          await as.query('reset role');
        }
      }
      await db.query(`select hc.revoke_app_access($1)`, [late]);
      const e = await errorOf(async () => {
        await as.query(`set role ${late}`);
        try {
          await as.query(`insert into salesforce.${q(names.find((n) => n.length === 58)!.toLowerCase())} (name) values ('gone')`);
        } finally {
          await as.query('reset role');
        }
      });
      expect(e.code).toBe('42501');
    } finally {
      await db.query(`drop owned by ${late}`);
      await db.query(`drop role ${late}`);
    }
  });

  it('a long-named mapping is detached and deleted cleanly', async () => {
    const [keep, drop] = names.filter((n) => n.length === 60);
    await db.query(`select hc.delete_mapping($1, null, false)`, [keep]);
    const kept = await derivedObjects('salesforce', keep.toLowerCase());
    expect(kept.triggers).toEqual([]);
    await db.query(`select hc.delete_mapping($1)`, [drop]);
    expect((await db.query(`select to_regclass($1) as r`, [`salesforce.${drop.toLowerCase()}`])).rows[0].r).toBeNull();
    const fns = await db.query(`select count(*)::int as n from pg_proc where pronamespace = 'salesforce'::regnamespace and proname like 'hc\\_%' and proname not like 'hc\\_capture\\_%'`);
    expect(fns.rows[0].n).toBe((names.length - 2) * 2);
  });
});

describe('field names of every length 1..60', () => {
  it('each is a column with its own index, and a write to all of them is captured whole', async () => {
    const object = `Acme__${cut(SNAKE, 51)}__c`.replace('Acme__S', 'Acme__W'); // 60 characters, a table of its own
    const fields: string[] = [];
    for (let n = 1; n <= 60; n++) fields.push(n < 4 ? cut(WORDS, n) : n % 2 ? `${cut(SNAKE, n - 3)}__c` : `Acme__${cut(WORDS, Math.max(1, n - 9))}__c`.slice(0, n));
    expect(new Set(fields.map((f) => f.toLowerCase())).size).toBe(60);
    const describe = {
      name: object,
      fields: [
        describeField('Id', 'id', { length: 18, nillable: false, createable: false, updateable: false }),
        describeField('IsDeleted', 'boolean', { nillable: false, createable: false, updateable: false }),
        describeField('SystemModstamp', 'datetime', { nillable: false, createable: false, updateable: false }),
        ...fields.map((f) => describeField(f, 'string', { length: 10 })),
      ],
    };
    const config = {
      access: 'read_write',
      fields: Object.fromEntries(['Id', 'IsDeleted', 'SystemModstamp', ...fields].map((f) => [f, {}])),
      indexes: Object.fromEntries(fields.map((f, i) => [f, { unique: i % 2 === 0 }])),
    };
    await createMapping(db, object, config, describe);
    const t = object.toLowerCase();
    const { indexes } = await derivedObjects('salesforce', t);
    const byCols = Object.fromEntries(indexes.map((x) => [x.cols, x]));
    for (const [i, f] of fields.entries()) {
      const col = f.toLowerCase();
      expect([f, byCols[col]?.unique]).toEqual([f, i % 2 === 0]);
      const hc = `${i % 2 === 0 ? 'hcu_idx_' : 'hc_idx_'}${t}_${col}`;
      if (fits(hc)) expect(byCols[col].name).toBe(hc);
    }
    expect(indexes).toHaveLength(fields.length + 3);
    const cols = fields.map((f) => q(f.toLowerCase()));
    const id = (await db.query(`insert into salesforce.${q(t)} (${cols.join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')}) returning id`,
      fields.map((_, i) => `v${i + 1}`))).rows[0].id;
    const log = await db.query(`select "values" from salesforce._trigger_log where table_name = $1 and record_id = $2`, [t, id]);
    const values = (await db.query(`select (each($1::hstore)).*`, [log.rows[0].values])).rows as Array<{ key: string; value: string | null }>;
    const got = Object.fromEntries(values.map((r) => [r.key, r.value]));
    for (const [i, f] of fields.entries()) expect([f, got[f.toLowerCase()]]).toEqual([f, `v${i + 1}`]);
  });
});

describe('names that cannot be identifiers are refused with the rule', () => {
  it('object and field names with quotes, spaces or past 63 bytes', async () => {
    for (const bad of ['My"Obj__c', 'My Obj__c', 'Obj;drop', `${'A'.repeat(61)}__c`]) {
      const e = await errorOf(() => createMapping(db, bad, { access: 'read_only', fields: { Id: {}, SystemModstamp: {} } }));
      expect([bad, e.code]).toEqual([bad, '22023']);
      expect(e.hint).toMatch(/API name/);
    }
    const long = `${'F'.repeat(61)}__c`;
    const e = await errorOf(() => createMapping(db, 'Lead', { access: 'read_only', fields: { Id: {}, SystemModstamp: {}, [long]: {} } }));
    expect(e.code).toBe('22023');
    expect(e.message).toContain(long);
    expect(e.hint).toMatch(/63/);
  });
});

describe('connection names and schema names', () => {
  const object = `Acme__${cut(SNAKE, 51)}__c`; // 60 characters

  it('odd connection names and the longest schema names work end to end, the wake-up included', async () => {
    const cases: Array<[string, string]> = [
      [`it's "quoted"; drop table x`, 'select'],
      ['Ünïcödé connection ✓', 'order$1'],
      ['x'.repeat(200), 's'.repeat(48)],
      ['  spaced  ', '_'],
    ];
    for (const [name, schema] of cases) {
      await createConnection(db, name, schema);
      await createMapping(db, object, configOf(), describeOf(object), name);
      const listener = await syncClient(db);
      try {
        const heard = new Promise<string>((resolve) => {
          listener.on('notification', (n) => resolve(n.channel));
          setTimeout(() => resolve('nothing heard within 10 s'), 10_000).unref();
        });
        await listener.query(`listen ${q(`${schema}.hc_trigger_log`)}`);
        await db.query(`insert into ${q(schema)}.${q(object.toLowerCase())} (name) values ('x')`);
        expect(await heard).toBe(`${schema}.hc_trigger_log`);
      } finally {
        await listener.end();
      }
      const n = await db.query(`select count(*)::int as n from ${q(schema)}._trigger_log where state = 'NEW'`);
      expect([name, n.rows[0].n]).toEqual([name, 1]);
      const st = await db.query(`select hc.pause($1)`, [name]);
      expect(st.rows).toHaveLength(1);
      await db.query(`select hc.delete_connection($1, $1)`, [name]);
      expect((await db.query(`select to_regnamespace($1) as s`, [q(schema)])).rows[0].s).toBeNull();
    }
  });

  it('a schema name whose wake-up channel would pass 63 bytes, or that is not lower case, is refused', async () => {
    for (const schema of ['s'.repeat(49), 'Salesforce', 'sales force', 'a"b']) {
      const e = await errorOf(() => createConnection(db, `c-${schema}`, schema));
      expect([schema, e.code]).toEqual([schema, '22023']);
      expect(e.hint).toMatch(/48|lower-case/);
    }
  });
});
