// Shared fixtures for the SQL contract tests: realistic describes and HC-format configs.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { TestDb } from '../support/db.js';

export type Describe = { name: string; fields: Array<Record<string, unknown>> };

export function describe_(name: 'contact' | 'account' | 'user' | 'my_obj__c'): Describe {
  return JSON.parse(readFileSync(new URL(`../fixtures/describe/${name}.json`, import.meta.url), 'utf8')) as Describe;
}

/** The Contact mapping of reference §6.2, as HC exports it. */
export const contactConfig = {
  access: 'read_write',
  sf_notify_enabled: false,
  sf_polling_seconds: 600,
  sf_max_daily_api_calls: 30000,
  fields: { Id: {}, IsDeleted: {}, SystemModstamp: {}, CreatedDate: {}, LastName: {}, AccountId: {}, External_ID__c: {} },
  indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, External_ID__c: { unique: true } },
  upsert_field: 'External_ID__c',
};

export async function createConnection(db: TestDb, name = 'my-app', schema = 'salesforce'): Promise<number> {
  const r = await db.query('select hc.create_connection($1, $2) as id', [name, schema]);
  return r.rows[0].id as number;
}

export async function createMapping(db: TestDb, object: string, config: object, describe?: Describe, connection?: string): Promise<number> {
  const r = await db.query('select hc.create_mapping($1, $2::jsonb, $3::jsonb, $4) as id', [
    object, JSON.stringify(config), describe ? JSON.stringify(describe) : null, connection ?? null,
  ]);
  return r.rows[0].id as number;
}

/** A client that writes as the sync does: xmlbinary = hex, so nothing it writes is captured. */
export async function syncClient(db: TestDb): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url, options: '-c xmlbinary=hex' });
  await c.connect();
  return c;
}

/** Runs fn and returns the error it raised (fails when it raised none). */
export async function errorOf(fn: () => Promise<unknown>): Promise<pg.DatabaseError> {
  try {
    await fn();
  } catch (e) {
    return e as pg.DatabaseError;
  }
  throw new Error('expected an error, got none');
}

export async function triggerLog(db: TestDb, schema = 'salesforce') {
  const r = await db.query(`select id, state, action, table_name, record_id, sfid, old, "values" from ${schema}._trigger_log order by id`);
  return r.rows as Array<{ id: number; state: string; action: string; table_name: string; record_id: number; sfid: string | null; old: string | null; values: string | null }>;
}

/** Parses hstore text ("k"=>"v", "n"=>NULL) into an object. */
export async function hstore(db: TestDb, text: string | null): Promise<Record<string, string | null>> {
  if (text === null) return {};
  const r = await db.query('select coalesce(jsonb_object_agg(key, value), \'{}\') as o from each($1::hstore)', [text]);
  return r.rows[0].o;
}
