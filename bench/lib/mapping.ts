// The Account mapping every sync benchmark uses: HC's export-format config with the Account-like
// fields the generator fills, plus HC's required Id, SystemModstamp, IsDeleted, CreatedDate.
import type pg from 'pg';
import { accountGenerator, type FieldInfo } from './accounts.js';

export interface MappingOptions {
  access: 'read_only' | 'read_write';
  notify: boolean;
  pollingSeconds: number;
}

export function accountConfig(describe: { fields: FieldInfo[] }, o: MappingOptions): Record<string, unknown> {
  const gen = accountGenerator(describe.fields);
  const names = new Set(describe.fields.map((f) => f.name));
  const fields: Record<string, object> = {};
  for (const f of ['Id', 'SystemModstamp', 'IsDeleted', 'CreatedDate', ...gen.columns]) if (names.has(f)) fields[f] = {};
  const upsert = o.access === 'read_write' && names.has('External_Id__c') ? { upsert_field: 'External_Id__c' } : {};
  return {
    access: o.access,
    sf_notify_enabled: o.notify,
    sf_polling_seconds: o.pollingSeconds,
    sf_max_daily_api_calls: 30000,
    fields,
    indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, ...(upsert.upsert_field ? { External_Id__c: { unique: true } } : {}) },
    ...upsert,
  };
}

/** Creates the connection (when missing) and the Account mapping; with a describe, the table too. */
export async function mapAccount(db: pg.Pool | pg.Client, config: Record<string, unknown>, describe?: unknown): Promise<number> {
  const have = await db.query(`select 1 from hc.connections where schema_name = 'salesforce'`);
  if (!have.rowCount) await db.query(`select hc.create_connection('bench', 'salesforce')`);
  const r = await db.query('select hc.create_mapping($1, $2::jsonb, $3::jsonb) as id', ['Account', JSON.stringify(config), describe === undefined ? null : JSON.stringify(describe)]);
  return r.rows[0].id as number;
}
