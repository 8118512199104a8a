// Privilege escalation through name resolution. Every SECURITY DEFINER function runs as the owner, so
// whatever it resolves through a schema another role may write (a function, an operator, a relation in
// the caller's temporary schema) can be replaced by that role and then runs with the owner's rights.
// A role with CREATE on public (PostgreSQL 14's default for every role) plants exact-type overloads
// there and shadowing views in its temporary schema; then every definer function in the database is
// called, and none of the planted objects may run as anyone but the attacker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf, syncClient } from './helpers.js';
import { lockSession, syncPool } from '../../sidecar/db/pool.js';

let db: TestDb;
let as: pg.PoolClient;
// Roles are cluster-wide and test runs share servers: names of our own, dropped at the end.
const evil = `hcsync_test_evil_${randomBytes(4).toString('hex')}`;
const accountConfig = { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, Name: {}, Description: {} } };

beforeAll(async () => {
  db = await createTestDb();
  await db.query(`create role ${evil} nologin`);
  await createConnection(db);
  await createMapping(db, 'Contact', contactConfig, describe_('contact'));
  await createMapping(db, 'Account', accountConfig, describe_('account'));
  await db.query(`select hc.grant_app_access($1)`, [evil]);
  // PostgreSQL 14 grants this to every role by default (and databases upgraded from 14 keep it).
  await db.query(`grant create on schema public to ${evil}`);
  as = await db.pool.connect();
});
afterAll(async () => {
  as?.release();
  await db?.drop();
  const admin = new pg.Client({ connectionString: inject('adminUrl') });
  await admin.connect();
  await admin.query(`drop role if exists ${evil}`);
  await admin.end();
});

async function asRole<T>(role: string | null, fn: () => Promise<T>): Promise<T> {
  await as.query(role ? `set role ${role}` : 'reset role');
  try {
    return await fn();
  } finally {
    await as.query('reset role');
  }
}

async function isSuperuser(role: string): Promise<boolean> {
  return (await db.query(`select rolsuper from pg_catalog.pg_roles where rolname = $1`, [role])).rows[0].rolsuper;
}

describe('the capture trigger', () => {
  it("does not run an application role's hstore(rowtype) overload as the owner (the reported escalation)", async () => {
    const r = await db.query(`insert into salesforce.account (name) values ('Acme') returning id`);
    await asRole(evil, async () => {
      await as.query(`create function public.hstore(salesforce.account) returns public.hstore language plpgsql as $$
        begin execute 'alter role ${evil} superuser'; return public.hstore(array['id'], array[$1.id::text]); end $$`);
      try {
        await as.query(`update salesforce.account set description = 'x' where id = $1`, [r.rows[0].id]);
      } finally {
        await as.query(`drop function public.hstore(salesforce.account)`);
      }
    });
    expect(await isSuperuser(evil)).toBe(false);
    const log = await db.query(`select action, state, "values" from salesforce._trigger_log where record_id = $1 order by id`, [r.rows[0].id]);
    expect(log.rows.map((x) => [x.action, x.state])).toEqual([['INSERT', 'NEW'], ['UPDATE', 'NEW']]);
    expect(log.rows[1].values).toBe('"description"=>"x"');
  });

  it('binds the hstore extension when the mapping is applied, even while an overload is already there', async () => {
    // Detached (drop_table => false) and taken over again: the capture cast is made anew while the
    // attacker's exact-type overload for the table's row type already exists in public.
    const cfg = { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, Name: {} } };
    await createMapping(db, 'My_Obj__c', cfg, describe_('my_obj__c'));
    await db.query(`select hc.delete_mapping('My_Obj__c', null, false)`);
    await asRole(evil, async () => {
      await as.query(`create function public.hstore(salesforce.my_obj__c) returns public.hstore language plpgsql as $$
        begin execute 'alter role ${evil} superuser'; return public.hstore(array['id'], array[$1.id::text]); end $$`);
    });
    try {
      await createMapping(db, 'My_Obj__c', cfg, describe_('my_obj__c'));
      await db.query(`select hc.grant_app_access($1)`, [evil]);
      await asRole(evil, async () => {
        await as.query(`insert into salesforce.my_obj__c (name) values ('x')`);
        await as.query(`update salesforce.my_obj__c set name = 'y'`);
      });
      expect(await isSuperuser(evil)).toBe(false);
      const log = await db.query(`select action, "values" from salesforce._trigger_log where table_name = 'my_obj__c' order by id`);
      expect(log.rows.map((x) => x.action)).toEqual(['INSERT', 'UPDATE']);
      expect(log.rows[0].values).toMatch(/"name"=>"x"/);
      expect(log.rows[1].values).toBe('"name"=>"y"');
    } finally {
      await db.query(`drop function public.hstore(salesforce.my_obj__c)`);
      await db.query(`select hc.delete_mapping('My_Obj__c')`);
    }
  });

  it('writes the hstore text hstore(record) writes, byte for byte', async () => {
    // Keys of every length order by length then bytes; quotes, backslashes, commas, parentheses,
    // blanks, empty strings, NULLs and multi-byte text are quoted and escaped as hstore_out does.
    await db.query(`alter table salesforce.account add column "we""ird, (key)" text, add column "ä" integer, add column flags boolean[]`);
    const image = async (id: number) =>
      (await db.query(`select (public.hstore(a) - array['_hc_lastop', '_hc_err'])::text as t from salesforce.account a where id = $1`, [id])).rows[0].t as string;
    try {
      const values = ['plain', 'with "quotes" and \\ backslash \\\\', 'a,b (c) d', '  ', '', 'NULL', 'ü日本\u00e9', '\\"', null];
      for (const v of values) {
        const id = (await db.query(
          `insert into salesforce.account (name, description, "we""ird, (key)", "ä", flags) values ($1::text, $2, $1::text, 7, '{t,NULL}') returning id`,
          [v, v === null ? 'x' : v + v],
        )).rows[0].id as number;
        const before = await image(id);
        await db.query(`update salesforce.account set description = $2, "ä" = null where id = $1`, [id, v]);
        const after = await image(id);
        await db.query(`delete from salesforce.account where id = $1`, [id]);
        const diff = (await db.query(`select (($2::text::public.hstore - $1::text::public.hstore) - array['_hc_lastop', '_hc_err'])::text as t`, [before, after])).rows[0].t;
        const log = await db.query(`select action, old, "values" from salesforce._trigger_log where record_id = $1 order by id`, [id]);
        expect(log.rows).toEqual([
          { action: 'INSERT', old: null, values: before },
          { action: 'UPDATE', old: before, values: diff },
          { action: 'DELETE', old: after, values: null },
        ]);
      }
    } finally {
      await db.query(`delete from salesforce.account`);
      await db.query(`alter table salesforce.account drop column "we""ird, (key)", drop column "ä", drop column flags`);
    }
  });
});

describe("Heroku Connect's re-queue functions", () => {
  const requeue = (id: number | string, sfid: string) =>
    `select salesforce.hc_capture_update_from_row($1::text::public.hstore, 'account') as id` + `/* ${id} ${sfid} */`;
  const literal = (id: number | string, sfid: string) => `"id"=>"${id}", "name"=>"Forged", "sfid"=>"${sfid}"`;

  it('are the owner\'s alone: the operator and application roles cannot queue a write', async () => {
    const id = (await db.query(`insert into salesforce.account (name) values ('Real') returning id`)).rows[0].id;
    for (const role of ['hcsync_admin', evil]) {
      await asRole(role, async () => {
        const e = await errorOf(() => as.query(requeue(id, '001000000000001AAA'), [literal(id, '001000000000001AAA')]));
        expect([role, e.code]).toEqual([role, '42501']);
      });
    }
  });

  it('refuse a row that does not exist, an sfid the row does not have, and a table that is not mapped', async () => {
    const sync = await syncClient(db);
    const id = (await sync.query(`insert into salesforce.account (sfid, name) values ('001000000000002AAA', 'Synced') returning id`)).rows[0].id;
    await sync.end();
    const before = Number((await db.query(`select count(*) from salesforce._trigger_log`)).rows[0].count);
    const missing = await errorOf(() => db.query(requeue(999999, '001000000000002AAA'), [literal(999999, '001000000000002AAA')]));
    expect(missing.message).toMatch(/salesforce\.account has no row with id 999999/);
    expect(missing.hint).toMatch(/hstore\(t\.\*\)/);
    const other = await errorOf(() => db.query(requeue(id, '001000000000009AAA'), [literal(id, '001000000000009AAA')]));
    expect(other.message).toMatch(/sfid 001000000000009AAA, but the row's sfid is 001000000000002AAA/);
    const table = await errorOf(() => db.query(`select salesforce.hc_capture_insert_from_row($1::text::public.hstore, '_hcmeta')`, [`"id"=>"1"`]));
    expect(table.message).toMatch(/_hcmeta is not a mapped table/);
    expect(Number((await db.query(`select count(*) from salesforce._trigger_log`)).rows[0].count)).toBe(before);
    // The row as it is: queued.
    const ok = await db.query(requeue(id, '001000000000002AAA'), [literal(id, '001000000000002AAA')]);
    expect(ok.rows[0].id).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// The attack on every SECURITY DEFINER function.

/** Plants, as the attacker: a canary table, exact-type overloads in public of the pg_catalog functions
 *  and operators that take text (for varchar arguments), hstore(<row type>) for every mapped table, and
 *  temporary views that shadow every pg_catalog relation. Each records who ran it when that is not the
 *  attacker. */
let planted: Promise<void> | undefined;
function plant(): Promise<void> {
  planted ??= plantOnce();
  return planted;
}
async function plantOnce() {
  await asRole(evil, async () => {
    await as.query(`create table public.hcsync_pwned (who text, what text)`);
    await as.query(`grant insert, select on public.hcsync_pwned to public`);
    await as.query(`create function public.hcsync_canary(what text) returns boolean language plpgsql as $$
      begin
        if current_user::text <> '${evil}' then insert into public.hcsync_pwned values (current_user, what); end if;
        return true;
      end $$`);
    await as.query(`grant execute on function public.hcsync_canary(text) to public`);
    await as.query(`do $plant$
      declare f record; o record; t record; n integer := 0;
      begin
        -- pg_catalog functions of text arguments, overloaded for varchar.
        for f in select p.proname, p.pronargs, format_type(p.prorettype, null) as ret
                   from pg_catalog.pg_proc p join pg_catalog.pg_type rt on rt.oid = p.prorettype
                  where p.pronamespace = 'pg_catalog'::regnamespace and p.prokind = 'f' and not p.proretset
                    and p.pronargs between 1 and 3 and p.provariadic = 0 and rt.typtype <> 'p'
                    and p.proargtypes::oid[] <@ array['text'::regtype::oid]
                    and p.proname not like 'hcsync%'
        loop
          begin
            execute format('create function public.%I(%s) returns %s language sql as %L',
              f.proname, array_to_string(array_fill('varchar'::text, array[f.pronargs]), ', '), f.ret,
              format('select public.hcsync_canary(%L); select pg_catalog.%I(%s)', f.proname || '(varchar)', f.proname,
                     (select string_agg('$' || i || '::text', ', ') from generate_series(1, f.pronargs) i)));
            n := n + 1;
          exception when others then null;
          end;
        end loop;
        -- pg_catalog operators on (text, text), overloaded for (varchar, varchar).
        for o in select op.oid, op.oprname, format_type(op.oprresult, null) as ret from pg_catalog.pg_operator op
                  where op.oprnamespace = 'pg_catalog'::regnamespace and op.oprleft = 'text'::regtype and op.oprright = 'text'::regtype
        loop
          execute format('create function public.hcsync_op_%s(varchar, varchar) returns %s language sql as %L', o.oid, o.ret,
            format('select public.hcsync_canary(%L); select $1::text operator(pg_catalog.%s) $2::text', 'operator ' || o.oprname, o.oprname));
          execute format('create operator public.%s (leftarg = varchar, rightarg = varchar, function = public.hcsync_op_%s)', o.oprname, o.oid);
        end loop;
        -- hstore(<row type>) for every mapped table: an exact match for hstore(old.*).
        for t in select c.oid::regclass as rel, c.relname from pg_catalog.pg_class c
                  where c.oid in ('salesforce.account'::regclass, 'salesforce.contact'::regclass)
        loop
          execute format('create function public.hstore(%s) returns public.hstore language plpgsql as %L', t.rel,
            format('begin perform public.hcsync_canary(%L); return public.hstore(array[''id''], array[$1.id::text]); end', 'hstore(' || t.relname || ')'));
        end loop;
        -- Temporary views shadowing pg_catalog's relations (pg_temp is searched first for relations
        -- unless the search_path lists it).
        for t in select c.relname from pg_catalog.pg_class c where c.relnamespace = 'pg_catalog'::regnamespace and c.relkind in ('r', 'v')
        loop
          begin
            execute format('create temporary view %I as select * from pg_catalog.%I where public.hcsync_canary(%L)', t.relname, t.relname, 'pg_temp.' || t.relname);
            execute format('grant select on pg_temp.%I to public', t.relname);
          exception when others then null;  -- (pg_statistic's anyarray columns cannot be in a view)
          end;
        end loop;
      end $plant$`);
  });
}

/** How each SECURITY DEFINER function is called, and by whom (null: the owner, as the sync calls it).
 *  A definer function without an entry fails the test: add how it is called here. */
type Recipe = { role: string | null; sql: string; params?: unknown[]; pre?: string };
function recipeFor(fn: string, ids: { account: number; contact: number }): Recipe | undefined {
  const account = JSON.stringify(describe_('account'));
  const m = fn.match(/^(\w+)\.hc_(\w+)_logger\(\)$/);
  if (m) {
    const t = `${m[1]}.${m[2]}`;
    return { role: evil, pre: `select hc.grant_app_access('${evil}', '${m[1]}')`,
             sql: `insert into ${t} (systemmodstamp) values (now()); update ${t} set systemmodstamp = now() where id = (select max(id) from ${t}); delete from ${t} where id = (select max(id) from ${t})` };
  }
  const cap = fn.match(/^(\w+)\.hc_capture_(insert|update)_from_row\(/);
  if (cap) {
    return { role: null, pre: `insert into ${cap[1]}.account (name) values ('Requeued')`,
             sql: `select ${cap[1]}.hc_capture_${cap[2]}_from_row(('"id"=>"' || (select max(id) from ${cap[1]}.account) || '", "name"=>"x"')::public.hstore, 'account')` };
  }
  const admin = 'hcsync_admin';
  // Connection running, Contact loaded, nothing of it waiting to be sent: reload and poll go ahead.
  const synced = `select hc.set_connection_state('IDLE', null, 'my-app'); select hc.set_mapping_state(${ids.contact}, 'DATA_SYNCED');
    update salesforce._trigger_log set state = 'SUCCESS' where table_name = 'contact' and state in ('NEW', 'PENDING')`;
  const parked = (sfValue: string) => `set hcsync.allow_sfid_change = on;
    update salesforce.account set sfid = '001000000000077AAA' where name = 'Acme' and sfid is null;
    insert into hc.conflicts (connection_id, mapping_id, object_name, table_name, record_id, sfid, kind, fields, columns, pg_values, sf_values, policy)
    select m.connection_id, m.id, 'Account', 'account', a.id, a.sfid, 'update', '{Name}', '{name}', jsonb_build_object('name', a.name),
           jsonb_build_object('name', '${sfValue}'), 'manual'
      from hc._mappings m, salesforce.account a where m.id = ${ids.account} and a.sfid = '001000000000077AAA'`;
  const recipes: Record<string, Recipe> = {
    'hc.create_connection(text,text)': { role: admin, sql: `select hc.create_connection('evil-two', 'sf_two')` },
    'hc.create_mapping(text,jsonb,jsonb,text)': { role: admin, sql: `select hc.create_mapping('Account', $1::jsonb, $2::jsonb, 'evil-two')`, params: [JSON.stringify(accountConfig), account] },
    'hc.update_mapping(text,jsonb,jsonb,text)': { role: admin, sql: `select hc.update_mapping('Account', $1::jsonb, null, 'evil-two')`, params: [JSON.stringify({ ...accountConfig, fields: { ...accountConfig.fields, Phone: {} } })] },
    'hc.apply_mapping_ddl(integer,jsonb)': { role: null, sql: `select hc.apply_mapping_ddl($1, $2::jsonb)`, params: [ids.account, account] },
    'hc.delete_mapping(text,text,boolean)': { role: admin, sql: `select hc.delete_mapping('Account', 'evil-two')` },
    'hc.delete_connection(text,text)': { role: admin, sql: `select hc.delete_connection('evil-two')` },
    'hc.set_mapping_state(integer,text,text)': { role: null, sql: `select hc.set_mapping_state($1, 'DATA_SYNCED', 'ok')`, params: [ids.contact] },
    'hc.set_connection_state(text,text,text)': { role: null, sql: `select hc.set_connection_state('IDLE', null, 'my-app')` },
    'hc.pause(text)': { role: admin, sql: `select hc.pause('my-app')` },
    'hc.resume(text)': { role: admin, sql: `select hc.resume('my-app')` },
    'hc.recover(text)': { role: admin, pre: `select hc.set_connection_state('SYSTEM_ERROR', 'x', 'my-app')`, sql: `select hc.recover('my-app')` },
    'hc.reload(text,text)': { role: admin, pre: synced, sql: `select hc.reload('Contact', 'my-app')` },
    'hc.poll_now(text,text)': { role: admin, pre: synced, sql: `select hc.poll_now('Contact', 'my-app')` },
    'hc.abort(text,text)': { role: admin, sql: `select hc.abort('Contact', 'my-app')` },
    'hc.take_request(integer)': { role: null, sql: `select hc.take_request($1)`, params: [ids.contact] },
    'hc.set_write_algorithm(text,text)': { role: admin, sql: `select hc.set_write_algorithm('merged', 'my-app')` },
    'hc.set_api_budget(text,integer,integer,integer,boolean)': { role: admin, sql: `select hc.set_api_budget('my-app', 60, 85, 3, false)` },
    'hc._failed_writes(hc.connections)': { role: admin, sql: `select * from hc.write_errors` },
    'hc._mapping_counts(integer)': { role: admin, sql: `select * from hc.mappings` },
    'hc.retry(integer[],text,text)': { role: admin, sql: `select hc.retry(null, 'account', 'my-app')` },
    'hc.discard(integer[],text,text)': { role: admin, sql: `select hc.discard(null, 'account', 'my-app')` },
    'hc.export_config(text)': { role: admin, sql: `select hc.export_config('my-app')` },
    'hc.import_config(jsonb,text)': { role: admin, sql: `select hc.import_config(hc.export_config('my-app'), 'my-app')` },
    'hc.import_config(text,text)': { role: admin, sql: `select hc.import_config(hc.export_config('my-app')::text, 'my-app')` },
    'hc.grant_app_access(text,text)': { role: admin, sql: `select hc.grant_app_access('${evil}', 'my-app')` },
    'hc.revoke_app_access(text,text)': { role: admin, sql: `select hc.revoke_app_access('${evil}', 'evil-two')` },
    // A parked conflict of the Account row, resolved for Salesforce (text) and with chosen values (jsonb).
    'hc.resolve_conflict(bigint,text)': { role: admin, pre: parked('sf-phone'), sql: `select hc.resolve_conflict((select max(id) from hc.conflicts), 'sf')` },
    'hc.resolve_conflict(bigint,jsonb)': { role: admin, pre: parked('sf-phone-2'), sql: `select hc.resolve_conflict((select max(id) from hc.conflicts), '{"Name": "chosen"}'::jsonb)` },
  };
  return recipes[fn];
}

async function definerFunctions(): Promise<string[]> {
  const r = await db.query(`select p.oid::regprocedure::text as fn from pg_catalog.pg_proc p
     where p.prosecdef and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
     order by 1`);
  return r.rows.map((x) => x.fn);
}

describe('every SECURITY DEFINER function', () => {
  it('pins search_path to pg_catalog, pg_temp and names no schema another role may write', async () => {
    const r = await db.query(`
      with writable as (
        select n.nspname from pg_catalog.pg_namespace n
         where exists (select 1 from pg_catalog.pg_roles r
                        where not r.rolsuper and r.oid <> n.nspowner and pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE')))
      select p.oid::regprocedure::text as fn, p.proconfig,
             (select pg_catalog.array_agg(w.nspname order by w.nspname) from writable w
               -- (a cast to the extension's hstore type names a type, which nothing can overload)
               where pg_catalog.regexp_replace(p.prosrc, '::' || (select e.extnamespace::regnamespace::text from pg_catalog.pg_extension e where e.extname = 'hstore') || '\\.hstore\\M', '', 'g')
                     ~* ('(^|[^a-z0-9_$])"?' || w.nspname || '"?\\s*\\.')) as names_writable
        from pg_catalog.pg_proc p
       where p.prosecdef and not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
       order by 1`);
    expect(r.rows.length).toBeGreaterThan(20);
    const bad = r.rows.filter((x) => !(x.proconfig ?? []).includes('search_path=pg_catalog, pg_temp') || x.names_writable !== null);
    expect(bad).toEqual([]);
  });

  it('runs none of the objects a role with CREATE on public plants, whoever calls it', async () => {
    const acc = (await db.query(`select mapping_id from hc.mappings where object_name = 'Account'`)).rows[0].mapping_id;
    const con = (await db.query(`select mapping_id from hc.mappings where object_name = 'Contact'`)).rows[0].mapping_id;
    await db.query(`insert into salesforce.account (name) values ('Acme')`);
    await db.query(`insert into salesforce.contact (lastname) values ('Smith')`);
    // A failed write for retry/discard to pick.
    await db.query(`update salesforce._trigger_log set state = 'FAILED', sf_message = 'x' where table_name = 'account'`);
    await plant();

    // Definer functions made while the attack runs (the second connection's) are attacked too.
    const order = ['hc.create_connection(text,text)', 'hc.create_mapping(text,jsonb,jsonb,text)', 'hc.update_mapping(text,jsonb,jsonb,text)'];
    const done = new Set<string>();
    const findings: Array<{ fn: string; who: string; what: string }> = [];
    const missing: string[] = [];
    const errors: string[] = [];
    const run = async (fn: string) => {
      const recipe = recipeFor(fn, { account: acc, contact: con });
      if (!recipe) return missing.push(fn);
      done.add(fn);
      if (recipe.pre) await db.query(recipe.pre);
      await as.query(`delete from public.hcsync_pwned`);
      await asRole(recipe.role, async () => {
        await as.query(recipe.sql, recipe.params).catch((e: Error) => errors.push(`${fn}: ${e.message}`));
      });
      const seen = await as.query(`select who, what from public.hcsync_pwned`);
      for (const s of seen.rows) findings.push({ fn, who: s.who, what: s.what });
    };
    for (const fn of order) await run(fn);
    for (const fn of await definerFunctions()) {
      if (!done.has(fn) && fn !== 'hc.delete_connection(text,text)' && fn !== 'hc.delete_mapping(text,text,boolean)') await run(fn);
    }
    await run('hc.delete_mapping(text,text,boolean)');
    await run('hc.delete_connection(text,text)');

    expect(missing, 'definer functions without a recipe in this test: add how each is called').toEqual([]);
    expect(findings).toEqual([]);
    expect(await isSuperuser(evil)).toBe(false);
    // The calls must reach the functions' work, not stop at a refusal.
    expect(errors).toEqual([]);
  });
});

describe('hc.diagnose', () => {
  // Operators' sessions (psql, the CLI) still resolve names in public, and Heroku Connect's contract keeps
  // the hstore extension there: a public schema other roles may create objects in is RED.
  async function writableCheck(d: TestDb) {
    const r = await d.query(`select status, message from hc.diagnose() where rule = 'WRITABLE_SCHEMAS'`);
    return r.rows[0] as { status: string; message: string };
  }

  it("is RED while roles other than public's owner may create objects in it, on each version's defaults", async () => {
    const d = await createTestDb();
    try {
      // The template database was made by CREATE DATABASE, so public carries the server's default.
      await d.query(`revoke create on schema public from ${evil}`).catch(() => {});
      const version = Number((await d.query(`show server_version_num`)).rows[0].server_version_num);
      const byDefault = await writableCheck(d);
      expect(byDefault.status).toBe(version < 150000 ? 'RED' : 'GREEN');

      await d.query(`grant create on schema public to public`);
      const open = await writableCheck(d);
      expect(open.status).toBe('RED');
      expect(open.message).toMatch(/public.*PUBLIC/);
      expect(open.message).toMatch(/REVOKE CREATE ON SCHEMA public FROM PUBLIC/);

      await d.query(`revoke create on schema public from public`);
      await d.query(`grant create on schema public to ${evil}`);
      const one = await writableCheck(d);
      expect(one.status).toBe('RED');
      expect(one.message).toContain(evil);

      await d.query(`revoke create on schema public from ${evil}`);
      expect((await writableCheck(d)).status).toBe('GREEN');

      // hc and the connection schemas hold what runs as the owner.
      await d.query(`select hc.create_connection('c', 'sf_c')`);
      await d.query(`grant create on schema sf_c to ${evil}`);
      const conn = await writableCheck(d);
      expect(conn.status).toBe('RED');
      expect(conn.message).toContain(`sf_c (${evil})`);
      await d.query(`revoke create on schema sf_c from ${evil}`);
      expect((await writableCheck(d)).status).toBe('GREEN');
    } finally {
      await d.drop();
    }
  });
});

// The sync's own functions are not SECURITY DEFINER, but the sync's sessions run as the owner: whatever
// they resolve through public runs with the owner's rights just the same.
describe("the sync's own functions", () => {
  it('pin search_path to pg_catalog, pg_temp', async () => {
    const r = await db.query(`select p.oid::regprocedure::text as fn, p.proconfig from pg_catalog.pg_proc p
       where p.pronamespace = 'hc'::regnamespace and (p.proname ~ '^_?(inbound|outbound)_' or p.proname = 'bind_org')
       order by 1`);
    expect(r.rows.length).toBeGreaterThan(20);
    expect(r.rows.filter((x) => !(x.proconfig ?? []).includes('search_path=pg_catalog, pg_temp'))).toEqual([]);
  });

  it('run none of the objects a role with CREATE on public plants, and still sync right (write, its outcome, change events)', async () => {
    const acc = (await db.query(`select m.id from hc._mappings m join hc.connections c on c.id = m.connection_id
       where c.name = 'my-app' and m.object_name = 'Account'`)).rows[0].id;
    const conn = (await db.query(`select id from hc.connections where name = 'my-app'`)).rows[0].id;
    await db.query(`select hc.set_connection_state('IDLE', null, 'my-app')`);
    await db.query(`select hc.set_mapping_state($1, 'DATA_SYNCED')`, [acc]);
    await db.query(`delete from salesforce._trigger_log`);
    await db.query(`delete from hc._outbound_claims where connection_id = $1`, [conn]);
    await plant();
    await as.query(`delete from public.hcsync_pwned`);
    // An application change (captured), then the sync's round trip, as the sidecar makes it.
    const row = (await db.query(`insert into salesforce.account (name, description) values ('Widget', 'a "quoted" => value') returning id`)).rows[0].id;
    const sync = await syncClient(db);
    try {
      await sync.query(`select hc.outbound_new_claimer()`);
      const ops = (await sync.query(`select hc.outbound_claim($1, 41, 100) as op`, [conn])).rows.map((x) => x.op);
      expect(ops.map((o) => [o.table, o.record_id, o.action, o.body])).toEqual([
        ['account', row, 'insert', { Name: 'Widget', Description: 'a "quoted" => value' }]]);
      await sync.query(`select hc.outbound_attempt($1, 41, $2)`, [conn, JSON.stringify(ops)]);
      const sfid = '001000000000041AAA';
      await sync.query(`select hc.outbound_complete($1, 41, $2)`, [conn, JSON.stringify([{ op_id: ops[0].op_id, outcome: 'ok', sfid, action: 'insert' }])]);
      expect((await sync.query(`select hc.outbound_echo_pending($1, $2)`, [acc, [sfid]])).rows[0].outbound_echo_pending).toEqual([]);
      expect((await sync.query(`select hc.outbound_held_sfids($1, 'account', $2)`, [conn, [sfid]])).rows[0].outbound_held_sfids).toEqual([sfid]);
      await sync.query(`select hc.outbound_release($1, 41)`, [conn]);
      await sync.query(`select hc.outbound_archive($1, 31, 0)`, [conn]);
      // Change events: an update of that record, a new record, the delete of the new one.
      const other = '001000000000042AAA';
      const merged = (await sync.query(`select hc.inbound_merge($1, 'json', $2, $3::jsonb, 'cdc') as r`, [acc, ['Id', 'Name', 'SystemModstamp'],
        JSON.stringify([{ Id: sfid, Name: 'Widget Co', SystemModstamp: '2026-01-02T03:04:05.000Z' },
                        { Id: other, Name: 'Other', SystemModstamp: '2026-01-02T03:04:05.000Z' }])])).rows[0].r;
      expect(merged).toMatchObject({ applied: 2, failed: 0 });
      await sync.query(`select hc.inbound_apply($1, $2::jsonb)`, [acc, JSON.stringify({ touched: [sfid, other], echo: [sfid] })]);
      await sync.query(`select hc.inbound_delete($1, $2, 'cdc')`, [acc, [other]]);
    } finally {
      await sync.end();
    }
    const seen = await as.query(`select who, what from public.hcsync_pwned`);
    expect(seen.rows).toEqual([]);
    expect(await isSuperuser(evil)).toBe(false);
    const rows = (await db.query(`select sfid, name, description, _hc_lastop from salesforce.account where sfid in ('001000000000041AAA', '001000000000042AAA') or id = $1 order by id`, [row])).rows;
    expect(rows).toEqual([{ sfid: '001000000000041AAA', name: 'Widget Co', description: 'a "quoted" => value', _hc_lastop: 'SYNCED' }]);
    const log = (await db.query(`select state, action from salesforce._trigger_log_archive where record_id = $1`, [row])).rows;
    expect(log).toEqual([{ state: 'SUCCESS', action: 'INSERT' }]);
  });

  it("run the sidecar's own statements in sessions that resolve nothing through public", async () => {
    await plant();
    // Untyped parameters prefer a text overload: these take the sidecar's own statements (a writer's
    // claimer lock, the drift sweep's REST listing) when public is on the session's search_path.
    await asRole(evil, async () => {
      await as.query(`create or replace function public.pg_advisory_lock(text, text) returns void language plpgsql as $$
        begin perform public.hcsync_canary('pg_advisory_lock(text, text)'); end $$`);
      await as.query(`create or replace function public.jsonb_to_recordset(text) returns setof record language plpgsql as $$
        begin perform public.hcsync_canary('jsonb_to_recordset(text)'); return query select * from pg_catalog.jsonb_to_recordset($1::jsonb) as x("Id" text); end $$`);
    });
    await as.query(`delete from public.hcsync_pwned`);
    const pool = syncPool(db.url, { max: 1 });
    pool.on('error', () => {});
    const lock = lockSession(db.url, 'hcsync test lock', () => {});
    const paths: string[] = [];
    try {
      await lock.connect();
      await lock.query(`select pg_advisory_lock(hc.lock_class('writer'), $1)`, [99]);
      const listed = await pool.query(`select x."Id" from jsonb_to_recordset($1) as x("Id" text)`, [JSON.stringify([{ Id: '001000000000043AAA' }])]);
      expect(listed.rows).toEqual([{ Id: '001000000000043AAA' }]);
      for (const c of [pool, lock]) paths.push((await c.query('show search_path')).rows[0].search_path);
    } finally {
      await lock.end();
      await pool.end();
    }
    expect((await as.query(`select who, what from public.hcsync_pwned`)).rows).toEqual([]);
    expect(await isSuperuser(evil)).toBe(false);
    expect(paths).toEqual(['pg_catalog,pg_temp', 'pg_catalog,pg_temp']);
  });
});
