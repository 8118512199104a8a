// What the outbound tests share: a real emulator over HTTP, a cloned database with a connection and an
// Account mapping built from the emulator's own describe, and the writer running in-process (or the
// sidecar as a process, for kill -9).
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import jsforce from 'jsforce';
import pg from 'pg';
import { startEmulator } from '../../emulator/index.js';
import { loadConfig, type Config } from '../../sidecar/config.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { createLogger } from '../../sidecar/log.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';
import type { Service, SyncContext } from '../../sidecar/context.js';
import { startOutbound, type OutboundOptions } from '../../sidecar/sync/outbound/index.js';
import { sidecarEnv } from '../support/sidecar.js';
import { createTestDb, type TestDb } from '../support/db.js';
export { until } from './wait.js';

export type Emulator = Awaited<ReturnType<typeof startEmulator>>;

export const ACCOUNT_FIELDS = ['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'CreatedDate', 'NumberOfEmployees', 'AccountNumber', 'Phone', 'External_Id__c'];

export interface Harness {
  emu: Emulator;
  db: TestDb;
  config: Config;
  env: Record<string, string>;
  ctx: SyncContext;
  connectionId: number;
  /** Records of an object in the emulator, read over the real API. */
  sfRecords(soql: string): Promise<Record<string, unknown>[]>;
  startWriter(opts?: OutboundOptions): Promise<Service>;
  close(): Promise<void>;
}

export async function setup(opts: { algorithm?: 'merged' | 'ordered'; upsert?: boolean; accountFields?: string[] } = {}): Promise<Harness> {
  // A Pub/Sub keepalive every 2 s instead of Salesforce's 270 s: the keepalive moves the reader's position
  // over events that were not its own (creates sent before it subscribed), and tests wait for that position.
  const emu = await startEmulator({ pubsubKeepaliveMs: 2000 });
  const db = await createTestDb();
  const env = sidecarEnv(emu, db.url);
  const config = loadConfig(env);
  const pool = syncPool(db.url);
  // The test database is force-dropped at the end: a client still closing then hears "terminating".
  pool.on('error', () => {});
  const connectionId = (await db.query(`select hc.create_connection('test', 'salesforce') as id`)).rows[0].id as number;
  await db.query(`update hc.connections set state = 'IDLE'`);
  if (opts.algorithm) await db.query('select hc.set_write_algorithm($1)', [opts.algorithm]);
  const sf = await SalesforceClient.connect(config.salesforce, { pool, connectionId });
  const describe = await sf.conn.sobject('Account').describe();
  const cfg: Record<string, unknown> = { access: 'read_write', fields: Object.fromEntries((opts.accountFields ?? ACCOUNT_FIELDS).map((f) => [f, {}])) };
  if (opts.upsert) cfg.upsert_field = 'External_Id__c';
  await db.query('select hc.create_mapping($1, $2, $3)', ['Account', cfg, describe]);
  const log = createLogger({ level: config.log.level, pretty: false });
  const ctx: SyncContext = { config, db: pool, log, sf, connection: { id: connectionId, name: 'test', schema: 'salesforce' } };
  const services: Service[] = [];
  return {
    emu, db, config, env, ctx, connectionId,
    async sfRecords(soql) {
      return (await sf.conn.query<Record<string, unknown>>(soql, { autoFetch: true, maxFetch: 1_000_000 })).records;
    },
    async startWriter(o) {
      const s = await startOutbound(ctx, { maxBackoffMs: 500, ...o });
      services.push(s);
      return s;
    },
    async close() {
      for (const s of services) await s.stop().catch(() => {});
      await sf.close();
      await pool.end();
      await db.drop();
      await emu.stop();
    },
  };
}

/** Someone else in Salesforce: a second login, whose changes are not marked client=hcsync. */
export async function otherUser(emu: Emulator): Promise<jsforce.Connection> {
  const c = new jsforce.Connection({
    loginUrl: emu.credentials.loginUrl,
    version: '62.0',
    oauth2: { loginUrl: emu.credentials.loginUrl, clientId: emu.credentials.clientId, clientSecret: emu.credentials.clientSecret, redirectUri: 'http://localhost/cb' },
  });
  await c.login(emu.credentials.username, emu.credentials.password);
  return c;
}

export async function queueEmpty(db: TestDb): Promise<boolean> {
  const r = await db.query(`select count(*)::int n from salesforce._trigger_log where state in ('NEW', 'PENDING')`);
  return r.rows[0].n === 0;
}

/** The sidecar as a real process (`node dist/sidecar/cli.js run`). */
export function spawnSidecar(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [resolve('dist/sidecar/cli.js'), 'run'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', process.env.HCSYNC_TEST_SIDECAR_LOG ? 'inherit' : 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (d) => process.env.HCSYNC_TEST_SIDECAR_LOG && process.stderr.write(d));
  return child;
}

export function pgClient(url: string): pg.Client {
  return new pg.Client({ connectionString: url });
}
