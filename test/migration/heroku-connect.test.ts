// Moving off Heroku Connect, by the README's "Coming from Heroku Connect" steps exactly as written,
// through the built `hcsync` binary: a database laid out by Heroku Connect (its schema, tables, trigger
// log and triggers, byte for byte as HC creates them) holds changes HC had not sent yet — an INSERT, an
// UPDATE and a DELETE of Contact, and an INSERT of Lead, whose mapping the export file leaves out. Every
// one of them must reach Salesforce: none is dropped because its mapping is not there yet (it waits,
// and says so in status and diagnose), and the first load overwrites none of them.
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmulator } from '../../emulator/index.js';
import { withDatabase } from '../support/global-setup.js';
import { assertFreshBuild, cli } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { sidecarEnv, spawnSidecar, type SidecarProcess } from '../support/sidecar.js';
import { until } from '../support/until.js';

type Emulator = Awaited<ReturnType<typeof startEmulator>>;

let emu: Emulator;
let db: pg.Pool;
let dbName: string;
let url: string;
let sidecar: SidecarProcess | undefined;
const dir = tempDir('migration');

/** A mapped table and its two triggers as Heroku Connect creates them (reference §2.2, §2.4, §2.7). */
function hcTable(table: string, columns: string): string {
  return `
    create table salesforce.${table} (${columns},
      systemmodstamp timestamp without time zone, isdeleted boolean, createddate timestamp without time zone,
      sfid character varying(18) collate "ucs_basic", id serial not null, _hc_lastop character varying(32), _hc_err text,
      constraint ${table}_pkey primary key (id));
    create unique index hcu_idx_${table}_sfid on salesforce.${table} (sfid);
    create index hc_idx_${table}_systemmodstamp on salesforce.${table} (systemmodstamp);
    create function salesforce.hc_${table}_logger() returns trigger language plpgsql as $$
    declare
      trigger_row "salesforce"."_trigger_log";
      excluded_cols text[] = ARRAY['_hc_lastop', '_hc_err']::text[];
    begin
      -- VERSION 4 --
      trigger_row = ROW();
      trigger_row.id = nextval('"salesforce"."_trigger_log_id_seq"');
      trigger_row.action = TG_OP::text;
      trigger_row.table_name = TG_TABLE_NAME::text;
      trigger_row.txid = txid_current();
      trigger_row.created_at = clock_timestamp();
      trigger_row.state = 'NEW';
      IF (TG_OP = 'DELETE') THEN
        trigger_row.record_id = OLD.id;
        trigger_row.old = hstore(OLD.*) - excluded_cols;
        IF (OLD.sfid IS NOT NULL) THEN
          trigger_row.sfid = OLD.sfid;
        ELSE
          trigger_row.state = 'IGNORE';
        END IF;
      ELSEIF (TG_OP = 'INSERT') THEN
        trigger_row.record_id = NEW.id;
        trigger_row.values = hstore(NEW.*) - excluded_cols;
      ELSEIF (TG_OP = 'UPDATE') THEN
        trigger_row.record_id = NEW.id;
        trigger_row.old = hstore(OLD.*) - excluded_cols;
        trigger_row.values = (hstore(NEW.*) - hstore(trigger_row.old)) - excluded_cols;
        IF (trigger_row.values = '') THEN
          trigger_row.state = 'IGNORE';
        END IF;
        trigger_row.sfid = OLD.sfid;
      END IF;
      INSERT INTO "salesforce"."_trigger_log" VALUES (trigger_row.*);
      RETURN NULL;
    end;
    $$;
    create function salesforce.hc_${table}_status() returns trigger language plpgsql as $$
    begin
      IF (get_xmlbinary() = 'base64') THEN  -- user op
        NEW._hc_lastop = 'PENDING';
        NEW._hc_err = NULL;
        RETURN NEW;
      ELSE  -- connect op
        IF (TG_OP = 'UPDATE' AND NEW._hc_lastop IS NOT NULL AND NEW._hc_lastop != OLD._hc_lastop) THEN
          RETURN NEW;
        END IF;
        NEW._hc_lastop = 'SYNCED';
        NEW._hc_err = NULL;
        RETURN NEW;
      END IF;
    end;
    $$;
    create trigger hc_${table}_logtrigger after insert or update or delete on salesforce.${table}
      for each row when ((get_xmlbinary())::text = 'base64'::text) execute procedure salesforce.hc_${table}_logger();
    create trigger hc_${table}_status_trigger before insert or update on salesforce.${table}
      for each row execute procedure salesforce.hc_${table}_status();`;
}

/** The schema Heroku Connect leaves behind (reference §2.5–§2.7): nothing of hcsync's in it. */
const HC_SCHEMA = `
  create extension if not exists hstore with schema public;
  create function public.get_xmlbinary() returns character varying language plpgsql as $$
  declare
    xmlbin varchar;
  begin
    select into xmlbin setting from pg_settings where name='xmlbinary';
    return xmlbin;
  end;
  $$;
  create schema salesforce;
  create table salesforce._hcmeta (id serial not null constraint _hcmeta_pkey primary key, hcver integer, org_id character varying(50), details text);
  insert into salesforce._hcmeta (hcver, org_id, details) values (3, null, null);
  create sequence salesforce._trigger_log_id_seq;
  create table salesforce._trigger_log (
    id integer not null default nextval('salesforce._trigger_log_id_seq') constraint _trigger_log_pkey primary key,
    txid bigint, created_at timestamp with time zone default now(), updated_at timestamp with time zone default now(),
    processed_at timestamp with time zone, processed_tx bigint, state character varying(8), action character varying(7),
    table_name character varying(128), record_id integer, sfid character varying(18), old text, "values" text,
    sf_result integer, sf_message text);
  create index _trigger_log_idx_created_at on salesforce._trigger_log (created_at);
  create index _trigger_log_idx_state_id on salesforce._trigger_log (state, id);
  create index _trigger_log_idx_state_table_name on salesforce._trigger_log (state, table_name) where state in ('NEW', 'PENDING');
  create table salesforce._trigger_log_archive (
    id integer not null constraint _trigger_log_archive_pkey primary key,
    txid bigint, created_at timestamp with time zone, updated_at timestamp with time zone,
    processed_at timestamp with time zone, processed_tx bigint, state character varying(8), action character varying(7),
    table_name character varying(128), record_id integer, sfid character varying(18), old text, "values" text,
    sf_result integer, sf_message text);
  create index _trigger_log_archive_idx_created_at on salesforce._trigger_log_archive (created_at);
  create index _trigger_log_archive_idx_record_id on salesforce._trigger_log_archive (record_id);
  create index _trigger_log_archive_idx_state_table_name on salesforce._trigger_log_archive (state, table_name) where state = 'FAILED';
  create function salesforce.tlog_notify_trigger() returns trigger language plpgsql as $$
  begin
    -- VERSION 1 --
    perform pg_notify('salesforce.hc_trigger_log', 'ping');
    return new;
  end;
  $$;
  create trigger tlog_insert_trigger after insert on salesforce._trigger_log for each row execute procedure salesforce.tlog_notify_trigger();
  ${hcTable('contact', 'firstname character varying(40), lastname character varying(80), email character varying(80)')}
  ${hcTable('lead', 'firstname character varying(40), lastname character varying(80), company character varying(255)')}`;

const contactConfig = {
  access: 'read_write', sf_notify_enabled: false, sf_polling_seconds: 600, sf_max_daily_api_calls: 30000,
  fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, CreatedDate: {}, FirstName: {}, LastName: {}, Email: {} },
  indexes: { Id: { unique: true }, SystemModstamp: { unique: false } },
};
const leadConfig = {
  access: 'read_write', sf_notify_enabled: false, sf_polling_seconds: 600, sf_max_daily_api_calls: 30000,
  fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, CreatedDate: {}, FirstName: {}, LastName: {}, Company: {} },
  indexes: { Id: { unique: true }, SystemModstamp: { unique: false } },
};
const exportFile = (mappings: { object_name: string; config: unknown }[]) => ({
  version: 1,
  connection: {
    organization_id: '00D000000000001EAA', app_name: 'my-app', exported_at: '2026-11-29T14:40:54.084290+00:00',
    features: { disable_bulk_writes: false, poll_db_no_merge: true, poll_external_ids: false, rest_count_only: false },
    api_version: '62.0', name: 'my-app', logplex_log_enabled: false,
  },
  mappings,
});

let sfRecords: (q: string) => Promise<Record<string, unknown>[]>;

beforeAll(async () => {
  assertFreshBuild();
  emu = await startEmulator({ seed: { Contact: 6 } } as Parameters<typeof startEmulator>[0]);
  const { SalesforceClient } = await import('../../sidecar/salesforce/client.js');
  const { loadConfig } = await import('../../sidecar/config.js');
  const sf = await SalesforceClient.connect(loadConfig(sidecarEnv(emu, 'postgres://unused/x')).salesforce);
  sfRecords = async (q) => (await sf.conn.query<Record<string, unknown>>(q)).records;
  afterAll(() => sf.close());

  // A database Heroku Connect has been syncing: no hcsync in it.
  const adminUrl = inject('adminUrl');
  dbName = `hcsync_t_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database "${dbName}"`);
  await admin.end();
  url = withDatabase(adminUrl, dbName);
  db = new pg.Pool({ connectionString: url, max: 4 });
  db.on('error', () => {});
  await db.query(HC_SCHEMA);
  // The rows Heroku Connect wrote (its sessions run with xmlbinary = hex: not captured, SYNCED).
  const contacts = await sfRecords('SELECT Id, FirstName, LastName, Email, SystemModstamp, CreatedDate, IsDeleted FROM Contact ORDER BY Id');
  const c = await db.connect();
  try {
    await c.query('set xmlbinary = hex');
    for (const r of contacts) {
      await c.query(
        `insert into salesforce.contact (sfid, firstname, lastname, email, systemmodstamp, createddate, isdeleted)
         values ($1, $2, $3, $4, ($5::timestamptz at time zone 'UTC'), ($6::timestamptz at time zone 'UTC'), $7)`,
        [r.Id, r.FirstName, r.LastName, r.Email, r.SystemModstamp, r.CreatedDate, r.IsDeleted],
      );
    }
  } finally {
    c.release(true); // its session says hex: not back into the pool the application's writes use
  }
});

afterAll(async () => {
  await sidecar?.stop().catch(() => {});
  await db?.end().catch(() => {});
  const admin = new pg.Client({ connectionString: inject('adminUrl') });
  await admin.connect();
  await admin.query(`drop database if exists "${dbName}" with (force)`);
  await admin.end();
  await emu?.stop();
});

describe('Coming from Heroku Connect (README steps)', () => {
  it('every change Heroku Connect had not sent reaches Salesforce, and the first load overwrites none', async () => {
    const rows = (await db.query('select id, sfid, lastname from salesforce.contact order by sfid')).rows as { id: number; sfid: string; lastname: string }[];
    const [updated, deleted, untouched, inFlight] = rows;
    // The application's changes while Heroku Connect was paused (its triggers capture them, state NEW).
    await db.query(`update salesforce.contact set lastname = 'Pending-Update' where sfid = $1`, [updated.sfid]);
    await db.query(`delete from salesforce.contact where sfid = $1`, [deleted.sfid]);
    const inserted = (await db.query(`insert into salesforce.contact (firstname, lastname) values ('Ada', 'Pending-Insert') returning id`)).rows[0].id as number;
    const lead = (await db.query(`insert into salesforce.lead (lastname, company) values ('Pending-Lead', 'Acme') returning id`)).rows[0].id as number;
    // And one that Heroku Connect's writer had taken (PENDING) when it was stopped, its answer never recorded.
    await db.query(`update salesforce.contact set lastname = 'Pending-In-Flight' where sfid = $1`, [inFlight.sfid]);
    await db.query(`update salesforce._trigger_log set state = 'PENDING' where record_id = $1`, [inFlight.id]);
    expect((await db.query(`select action, table_name, state from salesforce._trigger_log order by id`)).rows).toEqual([
      { action: 'UPDATE', table_name: 'contact', state: 'NEW' },
      { action: 'DELETE', table_name: 'contact', state: 'NEW' },
      { action: 'INSERT', table_name: 'contact', state: 'NEW' },
      { action: 'INSERT', table_name: 'lead', state: 'NEW' },
      { action: 'UPDATE', table_name: 'contact', state: 'PENDING' },
    ]);

    // 1. heroku connect:export gives the mapping file (Contact only here).
    const file = join(dir, 'my-app-resource.json');
    writeFileSync(file, JSON.stringify(exportFile([{ object_name: 'Contact', config: contactConfig }]), null, 2));
    // 2. hcsync migrate, hcsync import <app>-<resource>.json
    const env = sidecarEnv(emu, url);
    const migrate = await cli(['migrate'], env);
    expect(migrate.stderr).toBe('');
    expect(migrate.code).toBe(0);
    const imported = await cli(['import', file], env);
    expect(imported.stderr).toBe('created connection my-app (schema salesforce)\n');
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ created: ['Contact'] });
    expect((await db.query('select name, schema_name, write_algorithm from hc.connections')).rows).toEqual([
      { name: 'my-app', schema_name: 'salesforce', write_algorithm: 'ordered' },
    ]);
    // 3. Pause Heroku Connect, start hcsync run.
    sidecar = spawnSidecar(env);

    const entries = async () => (await db.query(`select table_name, action, state, sf_message from salesforce._trigger_log order by id`)).rows;
    await until(async () => (await entries()).filter((e) => e.table_name === 'contact').every((e) => e.state === 'SUCCESS'),
      'the Contact changes sent', 90_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await entries())}\n${sidecar?.output().slice(-3000)}`);
    });
    // In Salesforce: the update, the delete, the insert (once).
    const sf = await sfRecords(`SELECT Id, LastName FROM Contact ORDER BY Id`);
    expect(sf.find((r) => r.Id === updated.sfid)?.LastName).toBe('Pending-Update');
    expect(sf.find((r) => r.Id === deleted.sfid)).toBeUndefined();
    expect(sf.filter((r) => r.LastName === 'Pending-Insert')).toHaveLength(1);
    expect(sf.find((r) => r.Id === untouched.sfid)?.LastName).toBe(untouched.lastname);
    expect(sf.find((r) => r.Id === inFlight.sfid)?.LastName).toBe('Pending-In-Flight');
    // In Postgres, once loaded: the rows kept their ids and the application's values; the deleted row
    // did not come back; the inserted row holds its record's Id.
    await until(async () => (await db.query(`select state from hc._mappings where object_name = 'Contact'`)).rows[0]?.state === 'DATA_SYNCED', 'Contact loaded', 60_000);
    const pgRows = (await db.query('select id, sfid, lastname from salesforce.contact order by id')).rows;
    expect(pgRows.find((r) => r.id === updated.id)).toMatchObject({ sfid: updated.sfid, lastname: 'Pending-Update' });
    expect(pgRows.find((r) => r.sfid === deleted.sfid)).toBeUndefined();
    expect(pgRows.find((r) => r.id === inserted)).toMatchObject({ sfid: sf.find((r) => r.LastName === 'Pending-Insert')!.Id, lastname: 'Pending-Insert' });
    expect(pgRows).toHaveLength(rows.length); // one deleted, one inserted, no duplicate

    // The Lead change has no mapping yet: it waits (NEW, never IGNORED), and status and diagnose say so.
    expect((await entries()).filter((e) => e.table_name === 'lead')).toEqual([{ table_name: 'lead', action: 'INSERT', state: 'NEW', sf_message: null }]);
    const status = JSON.parse((await cli(['status', '--json'], env)).stdout);
    expect(status.connections[0]).toMatchObject({ name: 'my-app', unmapped_writes: 1 });
    const diagnose = JSON.parse((await cli(['diagnose', '--json'], env)).stdout);
    expect(diagnose.checks).toContainEqual(expect.objectContaining({ status: 'YELLOW', rule: 'UNMAPPED_WRITES', message: expect.stringMatching(/^1 change\(s\) .* no mapping: lead \(1\)/) }));

    // Importing its mapping sends it.
    const leadFile = join(dir, 'my-app-lead.json');
    writeFileSync(leadFile, JSON.stringify(exportFile([{ object_name: 'Lead', config: leadConfig }])));
    const again = await cli(['import', leadFile], env);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    await until(async () => (await entries()).every((e) => e.state === 'SUCCESS'), 'the Lead change sent', 90_000);
    const leads = await sfRecords(`SELECT Id, LastName, Company FROM Lead WHERE LastName = 'Pending-Lead'`);
    expect(leads).toHaveLength(1);
    expect((await db.query('select sfid from salesforce.lead where id = $1', [lead])).rows[0].sfid).toBe(leads[0].Id);
    expect(JSON.parse((await cli(['status', '--json'], env)).stdout).connections[0].unmapped_writes).toBe(0);
  }, 300_000);
});
