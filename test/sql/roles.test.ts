// Application roles write mapped tables and are captured, but cannot touch the queue, hc.* or another
// connection; the admin role drives the control API but cannot write hc.* behind its back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf } from './helpers.js';

let db: TestDb;
let as: pg.PoolClient;
// Roles are cluster-wide and test runs share servers: a name of our own, dropped at the end.
const app = `hcsync_test_app_${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  db = await createTestDb();
  await db.query(`create role ${app} nologin`);
  await createConnection(db);
  await createConnection(db, 'other', 'sf_other');
  await createMapping(db, 'Contact', contactConfig, describe_('contact'), 'my-app');
  await createMapping(db, 'Contact', contactConfig, describe_('contact'), 'other');
  await db.query(`select hc.grant_app_access($1, 'my-app')`, [app]);
  as = await db.pool.connect();
});
afterAll(async () => {
  as?.release();
  await db?.drop();
  const admin = new pg.Client({ connectionString: inject('adminUrl') });
  await admin.connect();
  await admin.query(`drop role if exists ${app}`);
  await admin.end();
});

async function asRole<T>(role: string, fn: () => Promise<T>): Promise<T> {
  await as.query(`set role ${role}`);
  try {
    return await fn();
  } finally {
    await as.query('reset role');
  }
}

describe('an application role', () => {
  it('writes mapped tables and its writes are captured, 1 MB values included', async () => {
    await asRole(app, async () => {
      const r = await as.query(`insert into salesforce.contact (lastname, external_id__c) values ('App', $1) returning id, _hc_lastop`, ['x'.repeat(200)]);
      expect(r.rows[0]._hc_lastop).toBe('PENDING');
      await as.query(`update salesforce.contact set lastname = $1 where id = $2`, ['y'.repeat(80), r.rows[0].id]);
      await as.query(`delete from salesforce.contact where id = $1`, [r.rows[0].id]);
      const seen = await as.query(`select action, state from salesforce._trigger_log order by id`);
      expect(seen.rows).toEqual([{ action: 'INSERT', state: 'NEW' }, { action: 'UPDATE', state: 'NEW' }, { action: 'DELETE', state: 'IGNORE' }]);
    });
  });

  it('cannot change _trigger_log or its archive', async () => {
    await asRole(app, async () => {
      for (const sql of [
        `update salesforce._trigger_log set state = 'SUCCESS'`,
        `delete from salesforce._trigger_log`,
        `insert into salesforce._trigger_log (state) values ('NEW')`,
        `update salesforce._trigger_log_archive set state = 'NEW'`,
        `select salesforce.hc_capture_insert_from_row('id=>1'::hstore, 'contact')`,
        `truncate salesforce.contact`,
      ]) {
        const e = await errorOf(() => as.query(sql));
        expect([sql, e.code]).toEqual([sql, '42501']);
      }
    });
  });

  it('cannot read or change hc.* nor call the control API', async () => {
    await asRole(app, async () => {
      for (const sql of [`select * from hc.connections`, `update hc._mappings set state = 'DATA_SYNCED'`, `select hc.pause('my-app')`,
                         `select * from hc.mappings`, `insert into hc.audit_log (action) values ('x')`]) {
        expect([sql, (await errorOf(() => as.query(sql))).code]).toEqual([sql, '42501']);
      }
    });
  });

  it("cannot touch another connection's schema", async () => {
    await asRole(app, async () => {
      expect((await errorOf(() => as.query(`insert into sf_other.contact (lastname) values ('x')`))).code).toBe('42501');
      expect((await errorOf(() => as.query(`select * from sf_other._trigger_log`))).code).toBe('42501');
    });
  });

  it('gets DML on tables mapped after the grant', async () => {
    await createMapping(db, 'Account', { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, Name: {} } }, describe_('account'), 'my-app');
    await asRole(app, async () => {
      await as.query(`insert into salesforce.account (name) values ('Later')`);
    });
  });
});

describe('the admin role', () => {
  it('calls the control API and reads hc.* but cannot write hc.* tables directly', async () => {
    await db.query(`select hc.set_connection_state('IDLE', null, 'my-app')`);
    await asRole('hcsync_admin', async () => {
      expect((await as.query(`select hc.pause('my-app') as s`)).rows[0].s).toBe('PAUSED');
      expect((await as.query(`select hc.resume('my-app') as s`)).rows[0].s).toBe('IDLE');
      expect((await as.query(`select count(*)::int as n from hc.mappings`)).rows[0].n).toBe(3);
      expect((await as.query(`select count(*)::int as n from hc.write_errors`)).rows[0].n).toBe(0);
      expect((await as.query(`select count(*)::int as n from salesforce._trigger_log`)).rows[0].n).toBeGreaterThan(0);
      expect((await errorOf(() => as.query(`update hc.connections set state = 'IDLE'`))).code).toBe('42501');
      expect((await errorOf(() => as.query(`delete from hc.audit_log`))).code).toBe('42501');
      const audit = await as.query(`select actor from hc.audit_log where action = 'pause' order by id desc limit 1`);
      expect(audit.rows[0].actor).toBe('postgres'); // session_user: who logged in, not the role they switched to
    });
  });

  it('an unknown role is refused with a hint', async () => {
    const e = await errorOf(() => db.query(`select hc.grant_app_access('no_such_role_xyz', 'my-app')`));
    expect(e.message).toMatch(/role "no_such_role_xyz" does not exist/);
    expect(e.hint).toMatch(/CREATE ROLE/);
  });
});

// Every function a role may execute, against the list it should have. A new function is executable by
// the owner alone until it is classified here and granted in sql/000099_privileges.sql. Names are shown
// with the connection schema as <schema> and the mapped table as <t>.
describe('executable functions per role', () => {
  const operatorApi = [
    'hc.abort(text,text)', 'hc.create_connection(text,text)', 'hc.create_mapping(text,jsonb,jsonb,text)',
    'hc.delete_connection(text,text)', 'hc.delete_mapping(text,text,boolean)', 'hc.discard(integer[],text,text)',
    'hc.grant_app_access(text,text)', 'hc.import_config(jsonb,text)', 'hc.import_config(text,text)', 'hc.pause(text)',
    'hc.poll_now(text,text)', 'hc.recover(text)', 'hc.reload(text,text)', 'hc.resolve_conflict(bigint,jsonb)', 'hc.resolve_conflict(bigint,text)', 'hc.resume(text)', 'hc.retry(integer[],text,text)',
    'hc.revoke_app_access(text,text)', 'hc.set_api_budget(text,integer,integer,integer,boolean)', 'hc.set_write_algorithm(text,text)', 'hc.uninstall_script()', 'hc.update_mapping(text,jsonb,jsonb,text)',
  ];
  // Reads: the views call _mapping_counts, _failed_writes and _unmapped_writes; the CLI resolves names with _connection, _mapping,
  // and reads connections, mappings, the sync log, conflicts and the governor's waits through _connections, _mapping_rows,
  // _sync_log, _sync_log_last_id, _conflicts_of, _api_budget_waits.
  const reads = ['hc._connection(text)', 'hc._connections(text,text,integer)', 'hc._mapping_rows(integer,integer)',
    'hc._sync_log(integer,integer,text,integer,text,text[],text,text,bigint,bigint)', 'hc._sync_log_last_id()',
    'hc._conflicts_of(integer,text,text,boolean,bigint)', 'hc._api_budget_waits(text)', 'hc.api_budget_metrics()', 'hc._failed_writes(hc.connections)', 'hc._mapping(text,text)', 'hc._mapping_counts(integer)', 'hc._unmapped_writes(hc.connections)', 'hc.diagnose()', 'hc.export_config(text)', 'hc.metrics()', 'hc.notifications_list(integer,text)'];
  // HC's loop-prevention flag: every session's triggers call it.
  const everyone = ['public.get_xmlbinary()'];
  const allowed: Record<string, string[]> = {
    hcsync_admin: [...operatorApi, ...reads, ...everyone].sort(),
    hcsync_viewer: [...reads, ...everyone].sort(),
    app: [...everyone],
    public: [...everyone],
  };

  async function executable(role: string): Promise<string[]> {
    const r = await db.query(
      `select distinct regexp_replace(regexp_replace(n.nspname || '.' || regexp_replace(p.oid::regprocedure::text, '^[^(]*\\.', ''), '^(salesforce|sf_other)\\.', '<schema>.'),
                                      '^<schema>\\.hc_(contact|account)_(logger|status)\\(', '<schema>.hc_<t>_\\2(') as fn
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('hc', 'public', 'salesforce', 'sf_other')
          and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
          and has_function_privilege($1, p.oid, 'EXECUTE')
        order by 1`, [role]);
    return r.rows.map((x) => x.fn);
  }

  it('each role may execute exactly its allow-list (the sync process is the owner: all of them)', async () => {
    const nobody = `hcsync_test_nobody_${randomBytes(4).toString('hex')}`;
    await db.query(`create role ${nobody} nologin`);
    try {
      const got: Record<string, string[]> = {
        hcsync_admin: await executable('hcsync_admin'),
        hcsync_viewer: await executable('hcsync_viewer'),
        app: await executable(app),
        public: await executable(nobody),
      };
      expect(got).toEqual(allowed);
    } finally {
      await db.query(`drop role ${nobody}`);
    }
  });

  it("the operator cannot call the sync's own functions", async () => {
    await asRole('hcsync_admin', async () => {
      for (const sql of [`select hc.set_mapping_state(1, 'DATA_SYNCED')`, `select hc.set_connection_state('IDLE')`,
                         `select hc.bind_org(1, '00D000000000001', '62.0')`, `select hc.take_request(1)`,
                         `select hc.apply_mapping_ddl(1, '{}')`, `select hc.outbound_release(1, 1)`]) {
        expect([sql, (await errorOf(() => as.query(sql))).code]).toEqual([sql, '42501']);
      }
    });
  });

  it('the viewer reads the status, mappings, write errors, logs and diagnose, and changes nothing', async () => {
    await asRole('hcsync_viewer', async () => {
      for (const sql of [`select * from hc.status`, `select * from hc.mappings`, `select * from hc.write_errors`, `select * from hc.diagnose()`,
                         `select * from hc.metrics()`, `select * from hc.audit_log`, `select * from hc.api_calls`, `select * from salesforce._trigger_log`,
                         `select hc.export_config('my-app')`, `select count(*) from salesforce.contact`]) {
        await as.query(sql);
      }
      for (const sql of [`select hc.pause('my-app')`, `select hc.reload('Contact', 'my-app')`, `update salesforce.contact set lastname = 'x'`,
                         `delete from hc.audit_log`]) {
        expect([sql, (await errorOf(() => as.query(sql))).code]).toEqual([sql, '42501']);
      }
    });
  });
});
