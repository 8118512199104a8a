// The HC database contract, read back from pg_catalog: what HC-era applications see must be what HC made.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf, syncClient } from './helpers.js';

let db: TestDb;
beforeAll(async () => {
  db = await createTestDb();
  await createConnection(db);
  await createMapping(db, 'Contact', contactConfig, describe_('contact'));
});
afterAll(async () => db?.drop());

async function columns(schema: string, table: string) {
  const r = await db.query(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as notnull,
            pg_get_expr(d.adbin, d.adrelid) as default
       from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum`,
    [`${schema}.${table}`],
  );
  return r.rows as Array<{ name: string; type: string; notnull: boolean; default: string | null }>;
}

async function indexes(schema: string, table: string) {
  const r = await db.query(
    `select i.relname as name, pg_get_indexdef(x.indexrelid) as def from pg_index x join pg_class i on i.oid = x.indexrelid
      where x.indrelid = $1::regclass order by 1`,
    [`${schema}.${table}`],
  );
  return Object.fromEntries(r.rows.map((x) => [x.name, (x.def as string).replace(/ ON \S+ USING/, ' USING')]));
}

describe('a Contact mapping created by hc.create_mapping', () => {
  it('has exactly HC columns and types', async () => {
    const cols = await columns('salesforce', 'contact');
    const byName = Object.fromEntries(cols.map((c) => [c.name, c.type]));
    expect(byName).toEqual({
      sfid: 'character varying(18)',
      isdeleted: 'boolean',
      accountid: 'character varying(18)',
      lastname: 'character varying(80)',
      createddate: 'timestamp without time zone',
      systemmodstamp: 'timestamp without time zone',
      external_id__c: 'character varying(255)',
      id: 'integer',
      _hc_lastop: 'character varying(32)',
      _hc_err: 'text',
    });
    const id = cols.find((c) => c.name === 'id')!;
    expect(id.notnull).toBe(true);
    expect(id.default).toBe(`nextval('salesforce.contact_id_seq'::regclass)`);
  });

  it('has exactly HC index names and definitions', async () => {
    expect(await indexes('salesforce', 'contact')).toEqual({
      contact_pkey: 'CREATE UNIQUE INDEX contact_pkey USING btree (id)',
      hcu_idx_contact_sfid: 'CREATE UNIQUE INDEX hcu_idx_contact_sfid USING btree (sfid)',
      hc_idx_contact_systemmodstamp: 'CREATE INDEX hc_idx_contact_systemmodstamp USING btree (systemmodstamp)',
      hcu_idx_contact_external_id__c: 'CREATE UNIQUE INDEX hcu_idx_contact_external_id__c USING btree (external_id__c)',
    });
    const pk = await db.query(`select conname from pg_constraint where conrelid = 'salesforce.contact'::regclass and contype = 'p'`);
    expect(pk.rows.map((r) => r.conname)).toEqual(['contact_pkey']);
  });

  it("has HC's two triggers (plus the TRUNCATE guard) with HC's timing, events and WHEN clause", async () => {
    const r = await db.query(
      `select tgname, pg_get_triggerdef(oid) as def from pg_trigger where tgrelid = 'salesforce.contact'::regclass and not tgisinternal order by 1`,
    );
    const defs = Object.fromEntries(r.rows.map((x) => [x.tgname, (x.def as string).replace('EXECUTE PROCEDURE', 'EXECUTE FUNCTION')]));
    expect(Object.keys(defs)).toEqual(['hc_contact_logtrigger', 'hc_contact_status_trigger', 'hcsync_noop_guard', 'hcsync_sfid_guard', 'hcsync_truncate_guard']);
    expect(defs.hc_contact_logtrigger).toBe(
      'CREATE TRIGGER hc_contact_logtrigger AFTER INSERT OR DELETE OR UPDATE ON salesforce.contact FOR EACH ROW ' +
        "WHEN (((get_xmlbinary())::text = 'base64'::text)) EXECUTE FUNCTION salesforce.hc_contact_logger()",
    );
    expect(defs.hc_contact_status_trigger).toBe(
      'CREATE TRIGGER hc_contact_status_trigger BEFORE INSERT OR UPDATE ON salesforce.contact FOR EACH ROW EXECUTE FUNCTION salesforce.hc_contact_status()',
    );
    expect(defs.hcsync_truncate_guard).toContain('BEFORE TRUNCATE ON salesforce.contact FOR EACH STATEMENT');
    expect(defs.hcsync_sfid_guard).toContain('BEFORE UPDATE ON salesforce.contact FOR EACH ROW WHEN');
    // Fires after HC's status trigger (triggers of one kind fire in name order).
    expect(defs.hcsync_noop_guard).toContain("BEFORE UPDATE ON salesforce.contact FOR EACH ROW WHEN (((get_xmlbinary())::text = 'base64'::text))");
  });

  it('records every mapped field with its describe metadata in hc._mapping_fields', async () => {
    const r = await db.query(`select field_name, column_name, sf_type, pg_type, length, nillable, createable, updateable,
                                     external_id, "unique", reference_to, relationship_name
                                from hc._mapping_fields order by column_name`);
    expect(r.rows.map((x) => x.column_name)).toEqual(
      ['accountid', 'createddate', 'external_id__c', 'isdeleted', 'lastname', 'sfid', 'systemmodstamp'],
    );
    const acc = r.rows.find((x) => x.field_name === 'AccountId');
    expect(acc).toMatchObject({ sf_type: 'reference', pg_type: 'character varying(18)', reference_to: ['Account'], relationship_name: 'Account', updateable: true });
    expect(r.rows.find((x) => x.field_name === 'External_ID__c')).toMatchObject({ external_id: true, unique: true, length: 255 });
    expect(r.rows.find((x) => x.field_name === 'Id')).toMatchObject({ column_name: 'sfid', createable: false });
  });
});

describe("the connection schema's HC objects", () => {
  it('_trigger_log and _trigger_log_archive have HC columns, types and defaults', async () => {
    const expected = [
      ['id', 'integer'], ['txid', 'bigint'], ['created_at', 'timestamp with time zone'], ['updated_at', 'timestamp with time zone'],
      ['processed_at', 'timestamp with time zone'], ['processed_tx', 'bigint'], ['state', 'character varying(8)'],
      ['action', 'character varying(7)'], ['table_name', 'character varying(128)'], ['record_id', 'integer'],
      ['sfid', 'character varying(18)'], ['old', 'text'], ['values', 'text'], ['sf_result', 'integer'], ['sf_message', 'text'],
    ];
    const log = await columns('salesforce', '_trigger_log');
    expect(log.map((c) => [c.name, c.type])).toEqual(expected);
    expect(Object.fromEntries(log.filter((c) => c.default).map((c) => [c.name, c.default]))).toEqual({
      id: `nextval('salesforce._trigger_log_id_seq'::regclass)`, created_at: 'now()', updated_at: 'now()',
    });
    const archive = await columns('salesforce', '_trigger_log_archive');
    expect(archive.map((c) => [c.name, c.type])).toEqual(expected);
    expect(archive.filter((c) => c.default)).toEqual([]);
  });

  it('_trigger_log indexes and trigger are HC ones (plus indexes of our own, named hcsync_*)', async () => {
    const all = await indexes('salesforce', '_trigger_log');
    const ours = Object.keys(all).filter((k) => k.startsWith('hcsync_'));
    expect(ours.sort()).toEqual(['hcsync_trigger_log_pending_sfid', 'hcsync_trigger_log_record_id']);
    expect(Object.fromEntries(Object.entries(all).filter(([k]) => !ours.includes(k)))).toEqual({
      _trigger_log_pkey: 'CREATE UNIQUE INDEX _trigger_log_pkey USING btree (id)',
      _trigger_log_idx_created_at: 'CREATE INDEX _trigger_log_idx_created_at USING btree (created_at)',
      _trigger_log_idx_state_id: 'CREATE INDEX _trigger_log_idx_state_id USING btree (state, id)',
      _trigger_log_idx_state_table_name:
        "CREATE INDEX _trigger_log_idx_state_table_name USING btree (state, table_name) WHERE ((state)::text = ANY ((ARRAY['NEW'::character varying, 'PENDING'::character varying])::text[]))",
    });
    expect(await indexes('salesforce', '_trigger_log_archive')).toEqual({
      _trigger_log_archive_pkey: 'CREATE UNIQUE INDEX _trigger_log_archive_pkey USING btree (id)',
      _trigger_log_archive_idx_created_at: 'CREATE INDEX _trigger_log_archive_idx_created_at USING btree (created_at)',
      _trigger_log_archive_idx_record_id: 'CREATE INDEX _trigger_log_archive_idx_record_id USING btree (record_id)',
      _trigger_log_archive_idx_state_table_name:
        "CREATE INDEX _trigger_log_archive_idx_state_table_name USING btree (state, table_name) WHERE ((state)::text = 'FAILED'::text)",
    });
    const t = await db.query(`select pg_get_triggerdef(oid) as def from pg_trigger where tgrelid = 'salesforce._trigger_log'::regclass and not tgisinternal`);
    expect(t.rows.map((r) => (r.def as string).replace('EXECUTE PROCEDURE', 'EXECUTE FUNCTION'))).toEqual([
      'CREATE TRIGGER tlog_insert_trigger AFTER INSERT ON salesforce._trigger_log FOR EACH ROW EXECUTE FUNCTION salesforce.tlog_notify_trigger()',
    ]);
  });

  it('_hcmeta and _sf_event_log have HC columns and indexes', async () => {
    expect((await columns('salesforce', '_hcmeta')).map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'], ['hcver', 'integer'], ['org_id', 'character varying(50)'], ['details', 'text'],
    ]);
    expect((await columns('salesforce', '_sf_event_log')).map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'], ['table_name', 'character varying(128)'], ['action', 'character varying(7)'],
      ['synced_at', 'timestamp with time zone'], ['sf_timestamp', 'timestamp with time zone'], ['sfid', 'character varying(20)'],
      ['record', 'text'], ['processed', 'boolean'],
    ]);
    expect(Object.keys(await indexes('salesforce', '_sf_event_log')).sort()).toEqual(
      ['_sf_event_log_pkey', 'idx__sf_event_log_comp_key', 'idx__sf_event_log_sfid'],
    );
  });

  it('has HC functions with HC signatures, and public.get_xmlbinary()', async () => {
    const r = await db.query(
      `select p.proname || '(' || pg_get_function_arguments(p.oid) || ') ' || pg_get_function_result(p.oid) as sig
         from pg_proc p where p.pronamespace = 'salesforce'::regnamespace order by 1`,
    );
    expect(r.rows.map((x) => x.sig)).toEqual([
      'hc_capture_insert_from_row(source_row hstore, table_name character varying, excluded_cols text[] DEFAULT ARRAY[]::text[]) integer',
      'hc_capture_update_from_row(source_row hstore, table_name character varying, columns_to_include text[] DEFAULT ARRAY[]::text[]) integer',
      'hc_contact_logger() trigger',
      'hc_contact_status() trigger',
      'tlog_notify_trigger() trigger',
    ]);
    const x = await db.query(`select public.get_xmlbinary() as v, pg_typeof(public.get_xmlbinary())::text as t`);
    expect(x.rows[0]).toEqual({ v: 'base64', t: 'character varying' });
  });

  it('maps Salesforce types per HC (sf_to_pg_type)', async () => {
    const cases: Array<[object, string | null]> = [
      [{ type: 'id' }, 'character varying(18)'],
      [{ type: 'reference', length: 18 }, 'character varying(18)'],
      [{ type: 'string', length: 121 }, 'character varying(121)'],
      [{ type: 'picklist', length: 255 }, 'character varying(255)'],
      [{ type: 'multipicklist', length: 4099 }, 'character varying(4099)'],
      [{ type: 'textarea', length: 1000 }, 'character varying(1000)'],
      [{ type: 'textarea', length: 32000 }, 'text'],
      [{ type: 'email', length: 80 }, 'character varying(80)'],
      [{ type: 'phone', length: 40 }, 'character varying(40)'],
      [{ type: 'url', length: 255 }, 'character varying(255)'],
      [{ type: 'boolean' }, 'boolean'],
      [{ type: 'int' }, 'integer'],
      [{ type: 'double' }, 'double precision'],
      [{ type: 'currency' }, 'double precision'],
      [{ type: 'percent' }, 'double precision'],
      [{ type: 'date' }, 'date'],
      [{ type: 'datetime' }, 'timestamp without time zone'],
      [{ type: 'time' }, 'time without time zone'],
      [{ type: 'picklist', name: 'CurrencyIsoCode', length: 3 }, 'character varying(3)'],
      [{ type: 'address' }, null],
      [{ type: 'location' }, null],
    ];
    for (const [field, want] of cases) {
      const r = await db.query('select hc.sf_to_pg_type($1::jsonb) as t', [JSON.stringify(field)]);
      expect([field, r.rows[0].t]).toEqual([field, want]);
    }
  });
});

describe('sfid belongs to the sync', () => {
  async function synced(sfid: string): Promise<number> {
    const c = await syncClient(db);
    try {
      return (await c.query(`insert into salesforce.contact (sfid, lastname) values ($1, 'Synced') returning id`, [sfid])).rows[0].id;
    } finally {
      await c.end();
    }
  }
  const logCount = async (id: number) =>
    (await db.query(`select count(*)::int as n from salesforce._trigger_log where table_name = 'contact' and record_id = $1`, [id])).rows[0].n as number;

  it('an application UPDATE that clears or changes sfid is refused, naming the fix; nothing is captured', async () => {
    const id = await synced('003000000000S01AAA');
    for (const set of [`sfid = null`, `sfid = '003000000000S99AAA'`, `sfid = lower(sfid), lastname = 'x'`]) {
      const e = await errorOf(() => db.query(`update salesforce.contact set ${set} where id = $1`, [id]));
      expect(e.message).toContain('sfid');
      expect(e.message).toContain('salesforce.contact');
      expect(e.hint).toContain('SET hcsync.allow_sfid_change = on');
      expect(e.hint).toContain('DELETE');
    }
    expect((await db.query(`select sfid, lastname from salesforce.contact where id = $1`, [id])).rows).toEqual([{ sfid: '003000000000S01AAA', lastname: 'Synced' }]);
    expect(await logCount(id)).toBe(0);
  });

  it('an application role (no rights in hc) gets the same refusal, not a permission error', async () => {
    const role = `hcsync_test_sfid_${Math.random().toString(16).slice(2, 10)}`;
    await db.query(`create role ${role} nologin`);
    const id = await synced('003000000000S06AAA');
    const c = await db.pool.connect();
    try {
      await db.query(`select hc.grant_app_access($1)`, [role]);
      await c.query(`set role ${role}`);
      const e = await errorOf(() => c.query(`update salesforce.contact set sfid = null where id = $1`, [id]));
      expect(e.message).toContain('changing sfid of salesforce.contact');
      expect(e.hint).toContain('hcsync.allow_sfid_change');
      await c.query(`update salesforce.contact set lastname = 'By role' where id = $1`, [id]);
    } finally {
      await c.query('reset role');
      c.release();
      await db.query(`select hc.revoke_app_access($1)`, [role]);
      await db.query(`drop owned by ${role}`);
      await db.query(`drop role ${role}`);
    }
  });

  it('other application writes to the row, sfid unchanged or assigned itself, go through and are captured', async () => {
    const id = await synced('003000000000S02AAA');
    await db.query(`update salesforce.contact set lastname = 'Changed', sfid = sfid where id = $1`, [id]);
    expect(await logCount(id)).toBe(1);
    // An application INSERT naming its sfid is HC's contract (HC sends it as an update of that record).
    await db.query(`insert into salesforce.contact (sfid, lastname) values ('003000000000S03AAA', 'Own')`);
  });

  it('the sync writes sfid back (xmlbinary = hex); an operator may change it with hcsync.allow_sfid_change', async () => {
    const id = (await db.query(`insert into salesforce.contact (lastname) values ('New') returning id`)).rows[0].id;
    const c = await syncClient(db);
    try {
      await c.query(`update salesforce.contact set sfid = '003000000000S04AAA', _hc_lastop = 'INSERTED' where id = $1`, [id]);
    } finally {
      await c.end();
    }
    const op = await db.pool.connect();
    try {
      await op.query('begin');
      await op.query('set local hcsync.allow_sfid_change = on');
      await op.query(`update salesforce.contact set sfid = '003000000000S05AAA' where id = $1`, [id]);
      await op.query('commit');
      // Off again after the transaction: the next change is refused.
      const e = await errorOf(() => op.query(`update salesforce.contact set sfid = null where id = $1`, [id]));
      expect(e.hint).toContain('hcsync.allow_sfid_change');
    } finally {
      op.release();
    }
    expect((await db.query(`select sfid from salesforce.contact where id = $1`, [id])).rows[0].sfid).toBe('003000000000S05AAA');
  });
});

describe('an application UPDATE that changes nothing', () => {
  async function synced(sfid: string, lastop = 'SYNCED', err: string | null = null): Promise<number> {
    const c = await syncClient(db);
    try {
      return (
        await c.query(`insert into salesforce.contact (sfid, lastname) values ($1, 'Same') returning id`, [sfid]).then(async (r) => {
          await c.query(`update salesforce.contact set _hc_lastop = $2, _hc_err = $3 where id = $1`, [r.rows[0].id, lastop, err]);
          return r;
        })
      ).rows[0].id;
    } finally {
      await c.end();
    }
  }
  const row = async (id: number) => (await db.query(`select _hc_lastop, _hc_err from salesforce.contact where id = $1`, [id])).rows[0];
  const log = async (id: number) =>
    (await db.query(`select action, state from salesforce._trigger_log where table_name = 'contact' and record_id = $1 order by id`, [id])).rows;

  it('keeps the row SYNCED (HC logs it IGNORE and nothing would ever send it, yet marked it PENDING)', async () => {
    const id = await synced('003000000000N01AAA');
    await db.query(`update salesforce.contact set lastname = lastname where id = $1`, [id]);
    expect(await log(id)).toEqual([{ action: 'UPDATE', state: 'IGNORE' }]);
    expect(await row(id)).toEqual({ _hc_lastop: 'SYNCED', _hc_err: null });
  });

  it('keeps a FAILED row FAILED with its error; a real change still marks it PENDING', async () => {
    const id = await synced('003000000000N02AAA', 'FAILED', 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no');
    await db.query(`update salesforce.contact set lastname = 'Same', _hc_err = null where id = $1`, [id]);
    expect(await row(id)).toEqual({ _hc_lastop: 'FAILED', _hc_err: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: no' });
    await db.query(`update salesforce.contact set lastname = 'Different' where id = $1`, [id]);
    expect(await row(id)).toEqual({ _hc_lastop: 'PENDING', _hc_err: null });
    expect((await log(id)).map((l) => l.state)).toEqual(['IGNORE', 'NEW']);
  });

  it('tells "nothing changed" for a column type without an equality operator too (an application column of type point)', async () => {
    await db.query('alter table salesforce.contact add column app_spot point');
    try {
      const id = await synced('003000000000N03AAA');
      await db.query(`update salesforce.contact set app_spot = point(1, 2) where id = $1`, [id]);
      expect(await row(id)).toEqual({ _hc_lastop: 'PENDING', _hc_err: null });
      await synced('003000000000N04AAA');
      const same = (await db.query(`select id from salesforce.contact where sfid = '003000000000N04AAA'`)).rows[0].id as number;
      const c = await syncClient(db);
      try {
        await c.query(`update salesforce.contact set app_spot = point(1, 2) where id = $1`, [same]);
      } finally {
        await c.end();
      }
      await db.query(`update salesforce.contact set app_spot = point(1, 2) where id = $1`, [same]);
      expect(await row(same)).toEqual({ _hc_lastop: 'SYNCED', _hc_err: null });
    } finally {
      await db.query('alter table salesforce.contact drop column app_spot');
    }
  });
});
