// The operator API: state transitions, requests for the sidecar, audit trail and NOTIFY, failed-write
// handling, and HC export files in and out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDb, type TestDb } from '../support/db.js';
import { until } from '../support/until.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf } from './helpers.js';

let db: TestDb;
beforeAll(async () => {
  db = await createTestDb();
  await createConnection(db);
  await createMapping(db, 'Contact', contactConfig, describe_('contact'));
});
afterAll(async () => db?.drop());

const state = async () => (await db.query('select state from hc.connections')).rows[0].state as string;

describe('pause / resume / recover', () => {
  it('validates transitions, audits them and nudges the sidecar on hc_control', async () => {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const got: string[] = [];
    listener.on('notification', (n) => got.push(`${n.channel}:${n.payload}`));
    await listener.query('listen hc_control');
    try {
      await db.query(`select hc.set_connection_state('IDLE')`);
      // A second resume, like a second pause, changes nothing and is not an error.
      expect((await db.query('select hc.resume() as s')).rows[0].s).toBe('IDLE');
      expect((await db.query('select hc.pause() as s')).rows[0].s).toBe('PAUSED');
      expect(await state()).toBe('PAUSED');
      const e = await errorOf(() => db.query(`select hc.reload('Contact')`));
      expect(e.code).toBe('55000');
      expect(e.hint).toMatch(/hc\.resume\(\)/);
      expect((await db.query('select hc.resume() as s')).rows[0].s).toBe('IDLE');
      await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'boom')`);
      const r = await errorOf(() => db.query('select hc.resume()'));
      expect(r.message).toMatch(/is not paused \(state SYSTEM_ERROR\)/);
      expect(r.hint).toMatch(/hc\.recover\(\)/);
      const p = await errorOf(() => db.query('select hc.pause()'));
      expect(p.message).toMatch(/state SYSTEM_ERROR, and can only be paused when idle/);
      expect(p.hint).toMatch(/hc\.recover\(\)/);
      expect((await db.query('select hc.recover() as s')).rows[0].s).toBe('RECOVERY');
      await until(async () => got.length >= 3, 'three nudges on hc_control');
      expect(got).toEqual(['hc_control:salesforce', 'hc_control:salesforce', 'hc_control:salesforce']);
      const audit = await db.query(`select action, actor from hc.audit_log where action in ('pause', 'resume', 'recover') order by id`);
      expect(audit.rows.map((r) => r.action)).toEqual(['pause', 'resume', 'recover']);
      expect(audit.rows[0].actor).toBe('postgres');
      expect((await errorOf(() => db.query(`select hc.set_connection_state('SLEEPY')`))).hint).toMatch(/Valid states: .*IDLE/);
      await db.query(`select hc.set_connection_state('IDLE')`);
    } finally {
      await listener.end();
    }
  });
});

describe('reload / poll now / abort', () => {
  it('records a request row the sidecar takes exactly once', async () => {
    const id = (await db.query(`select id from hc._mappings where object_name = 'Contact'`)).rows[0].id;
    await db.query(`select hc.set_mapping_state($1, 'DATA_SYNCED')`, [id]);
    expect((await db.query(`select hc.poll_now('contact') as r`)).rows[0].r).toBe('poll');
    expect((await db.query(`select requested from hc.mappings where object_name = 'Contact'`)).rows[0].requested).toBe('poll');
    expect((await db.query(`select hc.reload('Contact') as r`)).rows[0].r).toBe('reload');
    expect((await db.query(`select hc.abort('Contact') as r`)).rows[0].r).toBe('cancelled');
    expect((await errorOf(() => db.query(`select hc.abort('Contact')`))).message).toMatch(/nothing to abort/);
    await db.query(`select hc.reload('Contact')`);
    expect((await db.query(`select hc.take_request($1) as r`, [id])).rows[0].r).toBe('reload');
    // Taken is under way: the mapping shows RELOAD_TABLE at once (a restarted sidecar resumes it).
    expect((await db.query(`select state from hc._mappings where id = $1`, [id])).rows[0].state).toBe('RELOAD_TABLE');
    expect((await db.query(`select hc.take_request($1) as r`, [id])).rows[0].r).toBeNull();
    await db.query(`select hc.set_mapping_state($1, 'RELOAD_TABLE', 'loading')`, [id]);
    expect((await db.query(`select hc.abort('Contact') as r`)).rows[0].r).toBe('abort');
    const log = await db.query(`select event, detail from hc.sync_log where mapping_id = $1 and event = 'state' order by id`, [id]);
    expect(log.rows.map((r) => r.detail)).toContainEqual({ from: 'DATA_SYNCED', to: 'RELOAD_TABLE' });
    expect(log.rows.at(-1).detail).toEqual({ from: 'RELOAD_TABLE', to: 'RELOAD_TABLE' });
    expect((await errorOf(() => db.query(`select hc.set_mapping_state($1, 'SLEEPING')`, [id]))).message).toMatch(/not a mapping state/);
    await db.query(`select hc.set_mapping_state($1, 'DATA_SYNCED')`, [id]);
  });
});

describe('failed writes: hc.write_errors, hc.retry, hc.discard', () => {
  it('retry re-queues FAILED entries (live: back to NEW; archived: copied back, REQUEUED); discard marks IGNORED', async () => {
    await db.query('delete from salesforce._trigger_log');
    await db.query(`insert into salesforce.contact (lastname) select 'n' || g from generate_series(1, 4) g`);
    const ids = (await db.query(`select id from salesforce._trigger_log order by id`)).rows.map((r) => r.id as number);
    await db.query(`update salesforce._trigger_log set state = 'FAILED', sf_message = 'REQUIRED_FIELD_MISSING: Required fields are missing: [Email]' where id = any($1)`, [ids]);
    // One failure already moved to the archive.
    await db.query(`with m as (delete from salesforce._trigger_log where id = $1 returning *) insert into salesforce._trigger_log_archive select * from m`, [ids[3]]);

    const errs = await db.query(`select trigger_log_id, archived, object_name, sf_message from hc.write_errors order by trigger_log_id`);
    expect(errs.rows.map((r) => [r.trigger_log_id, r.archived, r.object_name])).toEqual([
      [ids[0], false, 'Contact'], [ids[1], false, 'Contact'], [ids[2], false, 'Contact'], [ids[3], true, 'Contact'],
    ]);
    expect((await db.query(`select errored_writes, pending_writes from hc.mappings`)).rows[0]).toEqual({ errored_writes: '4', pending_writes: '0' });

    const bad = await errorOf(() => db.query(`select hc.retry(array[999999])`));
    expect(bad.message).toMatch(/are not failed writes/);
    expect((await db.query(`select hc.retry(array[$1::int])`, [ids[0]])).rows[0].retry).toBe(1);
    expect((await db.query(`select hc.discard(array[$1::int])`, [ids[1]])).rows[0].discard).toBe(1);
    expect((await db.query(`select hc.retry(table_name => 'Contact')`)).rows[0].retry).toBe(2);

    const live = await db.query(`select id, state, sf_message from salesforce._trigger_log order by id`);
    expect(live.rows.map((r) => [r.id, r.state])).toEqual([[ids[0], 'NEW'], [ids[1], 'IGNORED'], [ids[2], 'NEW'], [expect.any(Number), 'NEW']]);
    expect(live.rows[0].sf_message).toBeNull();
    expect((await db.query(`select state from salesforce._trigger_log_archive where id = $1`, [ids[3]])).rows[0].state).toBe('REQUEUED');
    expect((await db.query(`select count(*)::int as n from hc.write_errors`)).rows[0].n).toBe(0);
    expect((await db.query(`select count(*)::int as n from hc.audit_log where action in ('retry', 'discard')`)).rows[0].n).toBe(3);
  });
});

describe('write algorithm', () => {
  it('switches between merged and ordered and refuses anything else', async () => {
    expect((await db.query(`select hc.set_write_algorithm('merged') as a`)).rows[0].a).toBe('merged');
    expect((await db.query(`select write_algorithm, features from hc.connections`)).rows[0]).toEqual({ write_algorithm: 'merged', features: { poll_db_no_merge: false } });
    const e = await errorOf(() => db.query(`select hc.set_write_algorithm('fast')`));
    expect(e.message).toMatch(/must be 'merged' or 'ordered', not 'fast'/);
    await db.query(`select hc.set_write_algorithm('ordered')`);
  });
});

describe('HC export files', () => {
  // Assembled from reference §6.2 (keys as HC writes them).
  const hcExport = {
    version: 1,
    connection: {
      organization_id: '00D5e000000XyZaEAK', app_name: 'my-app', exported_at: '2020-12-11T14:40:54.084290+00:00',
      features: { disable_bulk_writes: false, poll_db_no_merge: true, poll_external_ids: false, rest_count_only: false },
      api_version: '50.0', name: 'my-app', logplex_log_enabled: false,
    },
    mappings: [
      { object_name: 'Contact', config: { access: 'read_write', sf_notify_enabled: false, sf_polling_seconds: 600, sf_max_daily_api_calls: 30000,
          fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, CreatedDate: {}, LastName: {}, AccountId: {}, External_ID__c: {} },
          indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, External_ID__c: { unique: true } },
          upsert_field: 'External_ID__c' } },
      { object_name: 'Account', config: { access: 'read_only', sf_notify_enabled: true, sf_polling_seconds: 120, sf_max_daily_api_calls: 30000,
          fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, Name: {}, Industry: {} },
          indexes: { Id: { unique: true }, SystemModstamp: { unique: false } } } },
    ],
  };

  it('imports as-is (PATCH: present mappings created/updated, absent ones kept) and re-exports equivalently', async () => {
    const other = await db.query(`select hc.create_mapping('User', '{"access": "read_only", "fields": {"Id": {}, "SystemModstamp": {}}}')`);
    expect(other.rowCount).toBe(1);
    const r = await db.query('select hc.import_config($1::text) as r', [JSON.stringify(hcExport, null, 2)]);
    expect(r.rows[0].r).toEqual({ created: ['Account'], updated: [], unchanged: ['Contact'] });
    const out = (await db.query('select hc.export_config() as e')).rows[0].e;
    expect(out.version).toBe(1);
    expect(out.connection.features).toEqual(hcExport.connection.features);
    expect(out.connection.api_version).toBe('50.0');
    const byName = (ms: Array<{ object_name: string }>) => Object.fromEntries(ms.map((m) => [m.object_name, m]));
    const exported = byName(out.mappings);
    for (const m of hcExport.mappings) expect(exported[m.object_name]).toEqual(m);
    expect(Object.keys(exported).sort()).toEqual(['Account', 'Contact', 'User']);
    // Importing the export again changes nothing.
    const again = await db.query('select hc.import_config($1::jsonb) as r', [JSON.stringify(out)]);
    expect(again.rows[0].r).toEqual({ created: [], updated: [], unchanged: ['Account', 'Contact', 'User'] });
  });

  it('an import with a bad mapping changes nothing', async () => {
    const before = (await db.query('select hc.export_config() as e')).rows[0].e.mappings;
    const bad = { version: 1, mappings: [
      { object_name: 'Lead', config: { access: 'read_only', fields: { Id: {} } } },
      { object_name: 'Case', config: { access: 'write_only', fields: { Id: {} } } },
    ] };
    expect((await errorOf(() => db.query('select hc.import_config($1::jsonb)', [JSON.stringify(bad)]))).message).toMatch(/mapping Case: access/);
    expect((await db.query('select hc.export_config() as e')).rows[0].e.mappings).toEqual(before);
    expect((await errorOf(() => db.query(`select hc.import_config('{"version": 2, "mappings": []}'::jsonb)`))).message).toMatch(/unsupported export file version 2/);
  });
});

describe('views', () => {
  it('hc.status and hc.mappings summarise the connection', async () => {
    const s = (await db.query('select name, schema_name, state, mapping_count, write_algorithm from hc.status')).rows[0];
    expect(s).toEqual({ name: 'my-app', schema_name: 'salesforce', state: 'IDLE', mapping_count: '3', write_algorithm: 'ordered' });
    const m = (await db.query(`select object_name, access, state, field_count, pg_rows, pending_writes from hc.mappings where object_name = 'Contact'`)).rows[0];
    expect(m).toMatchObject({ object_name: 'Contact', access: 'read_write', field_count: '7', pg_rows: '4' });
  });
});
