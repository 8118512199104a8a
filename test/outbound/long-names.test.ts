// End to end with the longest names Salesforce allows: a namespaced custom object of 60 characters
// (15-character namespace, 40-character name) with a 60-character field. The sync describes it, builds
// the table, loads it; application writes are captured and reach Salesforce; Salesforce's changes come
// back. Derived names (hc_<t>_logger, hc_<t>_status, …) pass 63 bytes here and must not collide. Case
// (table "case") and fields named Check and Default are reserved words in Postgres (not in SOQL,
// where Salesforce forbids its own keywords as names): quoted everywhere, as is the schema "select".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { defaultOrg, startEmulator, type OrgDefinition } from '../../emulator/index.js';
import { loadConfig } from '../../sidecar/config.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { createLogger } from '../../sidecar/log.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';
import type { Service, SyncContext } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { startOutbound } from '../../sidecar/sync/outbound/index.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { sidecarEnv } from '../support/sidecar.js';
import { until } from '../support/until.js';

const OBJECT = 'Acmecorporation__Customer_Loyalty_Programme_Enrolment_Rec__c';
const FIELD = 'Acmecorporation__Preferred_Contact_Channel_For_Renewal_No__c';
const TABLE = OBJECT.toLowerCase();
// The connection's schema is a reserved word too, and its name needs quoting in any SQL text.
const SCHEMA = 'select';
const NAME = `it's "odd"`;
const COLUMN = FIELD.toLowerCase();

let emu: Awaited<ReturnType<typeof startEmulator>>;
let db: TestDb;
let pool: pg.Pool;
let other: SalesforceClient;
const services: Service[] = [];
const clients: SalesforceClient[] = [];

beforeAll(async () => {
  expect([OBJECT.length, FIELD.length]).toEqual([60, 60]);
  const base = defaultOrg as OrgDefinition;
  const org: OrgDefinition = {
    ...base,
    objects: [...base.objects, {
      name: OBJECT, keyPrefix: 'a0L', custom: true,
      fields: [{ name: 'Name', type: 'string', length: 80, nillable: false, nameField: true }, { name: FIELD, type: 'string', length: 40 },
               { name: 'Check', type: 'int' }, { name: 'Default', type: 'string', length: 20 }],
    }],
  };
  emu = await startEmulator({ org });
  db = await createTestDb();
  db.pool.on('error', () => {});
  const config = loadConfig(sidecarEnv(emu, db.url));
  const connectionId = (await db.query(`select hc.create_connection($1, $2) as id`, [NAME, SCHEMA])).rows[0].id as number;
  other = await SalesforceClient.connect(config.salesforce);
  await other.conn.sobject(OBJECT).create({ Name: 'Before the load', [FIELD]: 'email' });
  pool = syncPool(db.url);
  pool.on('error', () => {});
  const own = await SalesforceClient.connect(config.salesforce, { pool, connectionId });
  clients.push(own, other);
  const ctx: SyncContext = { config, db: pool, log: createLogger({ level: config.log.level, pretty: false }), sf: own,
                             connection: { id: connectionId, name: NAME, schema: SCHEMA } };
  // No describe given: the sync describes the object itself.
  await db.query('select hc.create_mapping($1, $2)', [OBJECT, { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, Name: {}, [FIELD]: {}, Check: {}, Default: {} }, indexes: { [FIELD]: { unique: false }, Check: { unique: false } } }]);
  await db.query('select hc.create_mapping($1, $2)', ['Case', { access: 'read_write', fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, Subject: {}, Status: {} } }]);
  services.push(await startInbound(ctx), await startOutbound(ctx, { maxBackoffMs: 500 }));
}, 120_000);

afterAll(async () => {
  for (const s of services) await s.stop().catch(() => {});
  for (const c of clients) await c.close().catch(() => {});
  await pool?.end();
  await db?.drop();
  await emu?.stop();
});

describe('a 60-character namespaced custom object', () => {
  it('is loaded, its application writes reach Salesforce, and Salesforce changes come back', async () => {
    await until(async () => (await db.query(`select count(*)::int as n from hc._mappings where state = 'DATA_SYNCED'`)).rows[0].n === 2, 'the mappings to load');
    const rel = `"${SCHEMA}".${TABLE}`;
    expect((await db.query(`select name, ${COLUMN} as v from ${rel}`)).rows).toEqual([{ name: 'Before the load', v: 'email' }]);

    // Application INSERT → created in Salesforce, sfid written back.
    const id = (await db.query(`insert into ${rel} (name, ${COLUMN}, "check", "default") values ('From Postgres', 'phone', 3, 'none') returning id`)).rows[0].id;
    const sfid = await until(async () => (await db.query(`select sfid from ${rel} where id = $1`, [id])).rows[0]?.sfid as string | null, 'the create to reach Salesforce');
    expect(emu.record(sfid)).toMatchObject({ Name: 'From Postgres', [FIELD]: 'phone', Check: 3, Default: 'none' });

    // Application UPDATE → updated in Salesforce.
    await db.query(`update ${rel} set ${COLUMN} = 'post' where id = $1`, [id]);
    await until(() => emu.record(sfid)?.[FIELD] === 'post', 'the update to reach Salesforce');
    await until(async () => (await db.query(`select count(*)::int as n from "${SCHEMA}"._trigger_log where table_name = $1 and state in ('NEW', 'PENDING')`, [TABLE])).rows[0].n === 0, 'the queue to empty');
    const log = await db.query(`select action, state from (select * from "${SCHEMA}"._trigger_log union all select * from "${SCHEMA}"._trigger_log_archive) l
                                 where table_name = $1 and record_id = $2 order by id`, [TABLE, id]);
    expect(log.rows).toEqual([{ action: 'INSERT', state: 'SUCCESS' }, { action: 'UPDATE', state: 'SUCCESS' }]);

    // A change made in Salesforce arrives in the row.
    await other.conn.sobject(OBJECT).update({ Id: sfid, Name: 'Renamed in Salesforce', Default: 'some' });
    await until(async () => (await db.query(`select name, "default" from ${rel} where id = $1`, [id])).rows[0]?.default === 'some', 'the Salesforce change to arrive');

    // Case: its table is "case", a reserved word.
    const caseId = (await db.query(`insert into "${SCHEMA}"."case" (subject) values ('Printer on fire') returning id`)).rows[0].id;
    const caseSfid = await until(async () => (await db.query(`select sfid from "${SCHEMA}"."case" where id = $1`, [caseId])).rows[0]?.sfid as string | null, 'the case to reach Salesforce');
    expect(emu.record(caseSfid)).toMatchObject({ Subject: 'Printer on fire' });
    await other.conn.sobject('Case').update({ Id: caseSfid, Status: 'Closed' });
    await until(async () => (await db.query(`select status from "${SCHEMA}"."case" where id = $1`, [caseId])).rows[0]?.status === 'Closed', 'the case change to arrive');
  }, 180_000);
});
