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
