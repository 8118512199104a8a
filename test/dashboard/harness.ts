// A real sidecar process (dist/), the emulator and a test database, with the dashboard's two tokens set:
// what the dashboard API tests and the browser tests run against.
import { createTestDb, type TestDb } from '../support/db.js';
import { assertFreshBuild } from '../support/cli.js';
import { sidecarEnv, spawnSidecar, type SidecarProcess } from '../support/sidecar.js';
import { until } from '../support/until.js';
import { startEmulator, type Emulator } from '../../emulator/index.js';

export const ADMIN = 'admin-token-0123456789abcdef';
export const VIEWER = 'viewer-token-0123456789abcdef';

export interface Dashboard {
  db: TestDb;
  emu: Emulator;
  sidecar: SidecarProcess;
  base: string;
  /** fetch with the admin token (Bearer) and the CSRF header; `as` picks another token or none. */
  api(path: string, init?: RequestInit & { as?: string | null; csrf?: boolean; json?: unknown }): Promise<Response>;
  stop(): Promise<void>;
}

/** `env`: more settings for the sidecar (HC_NOTIFY_WEBHOOK_URL, say). */
export async function startDashboard(env: Record<string, string> = {}): Promise<Dashboard> {
  assertFreshBuild();
  const db = await createTestDb();
  const emu = await startEmulator({ seed: { Account: 5 } });
  await db.query(`select hc.create_connection('dash', 'salesforce')`);
  await db.query(`select hc.create_mapping('Account', $1::jsonb)`, [
    JSON.stringify({
      access: 'read_write',
      fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, CreatedDate: {}, Name: {}, Phone: {}, External_Id__c: {} },
      indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, External_Id__c: { unique: true } },
      upsert_field: 'External_Id__c',
    }),
  ]);
  const sidecar = spawnSidecar({
    ...sidecarEnv(emu, db.url),
    HC_LOG_LEVEL: 'info',
    HC_LOG_PRETTY: '0',
    HC_DASHBOARD_TOKEN: ADMIN,
    HC_DASHBOARD_VIEWER_TOKEN: VIEWER,
    ...env,
  });
  let base = '';
  try {
    await until(() => {
      const hit = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"http listening"/.exec(sidecar.output());
      if (hit) base = hit[1];
      return hit;
    }, 'the sidecar to listen', 120_000, 100);
    await until(async () => (await db.query(`select 1 from hc.mappings where state = 'DATA_SYNCED'`)).rowCount, 'Account loaded', 120_000, 200);
  } catch (e) {
    await sidecar.kill9();
    throw new Error(`${(e as Error).message}\n${sidecar.output().slice(-3000)}`);
  }
  return {
    db,
    emu,
    sidecar,
    base,
    api(path, init = {}) {
      const { as = ADMIN, csrf = true, json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (as) headers.set('authorization', `Bearer ${as}`);
      if (csrf && rest.method && rest.method !== 'GET') headers.set('x-hcsync-csrf', '1');
      if (json !== undefined) headers.set('content-type', 'application/json');
      return fetch(base + path, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
    },
    async stop() {
      await sidecar.kill9();
      await emu.stop();
      await db.drop();
    },
  };
}

/** Parks a conflict on one Account record, the way test/conflicts/policies.test.ts forces one with the
 * sync paused: the mapping's conflict_policy is manual, Phone is changed in Postgres and (by another
 * Salesforce session) in Salesforce while paused, then the sync resumes and the reader meets the local
 * change still waiting. Returns the record and its hc.conflicts row. */
export async function parkConflict(d: Dashboard, pgPhone: string, sfPhone: string): Promise<{ id: number; sfid: string; conflict: Record<string, any> }> {
  const cfg = (await d.db.query(`select config from hc._mappings where object_name = 'Account'`)).rows[0].config;
  if (cfg.conflict_policy !== 'manual') {
    await d.db.query(`select hc.update_mapping('Account', $1)`, [{ ...cfg, conflict_policy: 'manual' }]);
  }
  const { rows: [row] } = await d.db.query(
    `select id, sfid from salesforce.account a
      where sfid is not null and _hc_lastop = 'SYNCED'
        and not exists (select 1 from hc.conflicts k where k.sfid = a.sfid) order by id limit 1`,
  );
  if (!row) throw new Error('no synced Account row without a conflict is left to park one on');
  const { login } = await import('../emulator/helpers.js');
  const other = await login(d.emu);
  // The change stream is live first (a sidecar just started may not have subscribed yet, and a change
  // made before it does is not an event it reads): a Salesforce change of the record reaches the row.
  const probe = `${sfPhone}-probe`;
  await other.sobject('Account').update({ Id: row.sfid, Phone: probe });
  await until(async () => (await d.db.query(`select phone from salesforce.account where id = $1`, [row.id])).rows[0].phone === probe,
    'a Salesforce change read into the row', 90_000, 200);
  await d.db.query(`select hc.pause()`);
  try {
    await d.db.query(`update salesforce.account set phone = $2 where id = $1`, [row.id, pgPhone]);
    await other.sobject('Account').update({ Id: row.sfid, Phone: sfPhone });
  } finally {
    await d.db.query(`select hc.resume()`);
  }
  const conflict = await until(async () => (await d.db.query(`select * from hc.conflicts where sfid = $1`, [row.sfid])).rows[0], `a conflict of ${row.sfid}`, 90_000, 200);
  return { ...row, conflict };
}
