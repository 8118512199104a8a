// What the inbound tests share: a real emulator over HTTP, a cloned database with a connection, the
// inbound reader in-process (startInbound) or the whole sidecar as a process (kill -9, RSS).
import pg from 'pg';
import { startEmulator } from '../../emulator/index.js';
import { loadConfig, type Config } from '../../sidecar/config.js';
import { syncPool } from '../../sidecar/db/pool.js';
import { createLogger } from '../../sidecar/log.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';
import type { Service, SyncContext } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { spawnSidecar, type SidecarProcess, sidecarEnv } from '../support/sidecar.js';
import { assertFreshBuild } from '../support/cli.js';

export type Emulator = Awaited<ReturnType<typeof startEmulator>>;

export interface Harness {
  emu: Emulator;
  db: TestDb;
  env: Record<string, string>;
  config: Config;
  /** A jsforce connection of "another user" changing data in Salesforce (not marked client=hcsync). */
  sf: SalesforceClient;
  startInbound(): Promise<Service>;
  /** A sync context like the sidecar's (sync pool, ledgered client), to call inbound parts directly. */
  context(): Promise<SyncContext>;
  spawn(extraEnv?: Record<string, string>): SidecarProcess;
  close(): Promise<void>;
}

export async function setup(opts: { seed?: Record<string, number> } = {}): Promise<Harness> {
  const emu = await startEmulator({ seed: opts.seed ?? {} } as Parameters<typeof startEmulator>[0]);
  const db = await createTestDb();
  // The database is dropped WITH (FORCE) at the end: idle clients then get 57P01, which is expected.
  db.pool.on('error', () => {});
  const env = sidecarEnv(emu, db.url);
  const config = loadConfig(env);
  await db.query(`select hc.create_connection('test', 'salesforce')`);
  const connectionId = (await db.query(`select id from hc.connections`)).rows[0].id as number;
  const sf = await SalesforceClient.connect(config.salesforce);
  const pools: pg.Pool[] = [];
  const services: Service[] = [];
  const procs: SidecarProcess[] = [];
  return {
    emu, db, env, config, sf,
    async context() {
      const pool = syncPool(db.url);
      // An idle client's error (the forced drop at the end) is emitted on the pool: expected here.
      pool.on('error', () => {});
      pools.push(pool);
      const own = await SalesforceClient.connect(config.salesforce, { pool, connectionId });
      const log = createLogger({ level: config.log.level, pretty: false });
      return { config, db: pool, log, sf: own, connection: { id: connectionId, name: 'test', schema: 'salesforce' } };
    },
    async startInbound() {
      const ctx = await this.context();
      const s = await startInbound(ctx);
      services.push(s);
      return s;
    },
    spawn(extraEnv = {}) {
      // A stale dist/ (sql changed since the last build) would only show as a sidecar that never comes up.
      assertFreshBuild();
      const p = spawnSidecar({ ...env, ...extraEnv });
      procs.push(p);
      return p;
    },
    async close() {
      for (const p of procs) await p.kill9().catch(() => {});
      for (const s of services) await s.stop().catch(() => {});
      for (const p of pools) await p.end().catch(() => {});
      // pool.end() resolves before its connections have closed; a forced DROP DATABASE racing them makes
      // pg emit 57P01 on a client nobody listens to any more. Let them close first.
      await new Promise((r) => setTimeout(r, 300));
      await db.drop();
      await emu.stop();
    },
  };
}

import { until } from '../support/until.js';

export { until };

export async function mappingState(db: TestDb, object: string): Promise<{ state: string; state_message: string | null }> {
  const r = await db.query(`select state, state_message from hc._mappings where object_name = $1`, [object]);
  return r.rows[0];
}

/**
 * Runs `fn` with the emulator's change event bus detached: changes made meanwhile publish no event, as
 * if Salesforce had lost them (the situation GAP_OVERFLOW reports, or a missed create/delete).
 */
export async function withoutChangeEvents<T>(emu: Emulator, fn: () => Promise<T>): Promise<T> {
  const listeners = emu.server.org.listeners.splice(0);
  try {
    return await fn();
  } finally {
    emu.server.org.listeners.push(...listeners);
  }
}

export async function emulatorAdmin(emu: Emulator, path: string, body: unknown = {}): Promise<unknown> {
  const res = await fetch(`${emu.url}/__emulator/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`emulator admin ${path}: ${res.status} ${await res.text()}`);
  return res.json().catch(() => null);
}

/**
 * Maps Account with `fields` and waits until it is loaded and subscribed (the first catch-up re-read
 * done: from then on only change events apply). Then every value the table receives is noted in
 * public.applied (sfid, numberofemployees): the witness of exactly-once application. Returns the sfids.
 */
export async function mapAccountWithWitness(h: Harness, fields: string[]): Promise<string[]> {
  await h.db.query('select hc.create_mapping($1, $2)', ['Account', { access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])) }]);
  await until(async () => {
    const m = await h.db.query(`select state, last_poll_at from hc._mappings where object_name = 'Account'`);
    return m.rows[0]?.state === 'DATA_SYNCED' && m.rows[0]?.last_poll_at;
  }, 'Account loaded and subscribed', 90_000);
  const ids = (await h.db.query('select sfid from salesforce.account order by sfid')).rows.map((r) => r.sfid as string);
  await h.db.query(`create table public.applied (sfid text, n integer)`);
  await h.db.query(`create function public.note_applied() returns trigger language plpgsql as $$
    begin insert into public.applied values (new.sfid, new.numberofemployees); return new; end $$`);
  await h.db.query(`create trigger note_applied after insert or update on salesforce.account for each row execute function public.note_applied()`);
  return ids;
}
