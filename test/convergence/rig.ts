// The convergence rig: a PostgreSQL server this run owns (so that it may be restarted), the Salesforce
// emulator, a connection with two read-write mappings, and the sidecar as a real process under a
// supervisor that starts it again whenever it exits (as systemd or Kubernetes would).
//
// With DATABASE_URL set (CI's second leg, a system server), the run clones a database on that server
// instead; it cannot restart a server it does not own, so the nemesis terminates every session of the
// database in place of a restart, and says so.
import { appendFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';
import { startEmulator } from '../../emulator/index.js';
import { migrate } from '../../sidecar/db/contractor.js';
import { startEmbeddedPostgres, freePort, removeDataDir, type RunningPostgres } from '../support/postgres.js';
import { spawnSidecar, sidecarEnv, type SidecarProcess } from '../support/sidecar.js';
import { assertFreshBuild } from '../support/cli.js';
import { until } from '../support/until.js';
import { withDatabase } from '../support/global-setup.js';

export type Emulator = Awaited<ReturnType<typeof startEmulator>>;

/** The mapped fields. Rating (Account) is set by a before-save flow, Last_Touched__c by an after-save flow. */
export const MAPPINGS = {
  Account: {
    table: 'account',
    key: 'Name',
    fields: ['Id', 'SystemModstamp', 'Name', 'AccountNumber', 'Phone', 'AnnualRevenue', 'NumberOfEmployees', 'Rating', 'Last_Touched__c'],
    upsert: undefined as string | undefined,
  },
  Contact: {
    table: 'contact',
    key: 'External_Id__c',
    fields: ['Id', 'SystemModstamp', 'External_Id__c', 'LastName', 'FirstName', 'Email', 'Title', 'Department'],
    upsert: 'External_Id__c' as string | undefined,
  },
} as const;
export type ObjectName = keyof typeof MAPPINGS;
export const OBJECTS = Object.keys(MAPPINGS) as ObjectName[];

export interface Rig {
  emu: Emulator;
  /** The database the sidecar syncs (a superuser URL). */
  url: string;
  env: Record<string, string>;
  /** True when this run owns the server and may restart it. */
  ownsServer: boolean;
  /** The replay id of the last change event Salesforce published for the object (undefined before any). */
  lastReplayId(object: string): number | undefined;
  /** Stops the server (fast shutdown: sessions are cut), waits `downMs`, starts it again on the same port. */
  restartPostgres(downMs: number): Promise<void>;
  postgresDown(): boolean;
  sidecar: Supervisor;
  /**
   * Stops everything. `keep`: the run failed, so its database stays for a look (the embedded server's data
   * directory, or the database on the given server), and where it is is printed.
   */
  close(opts?: { keep?: boolean }): Promise<void>;
}

export interface Supervisor {
  /** kill -9 of the running sidecar; the supervisor starts a new one after `restartAfterMs`. */
  kill9(restartAfterMs: number): Promise<boolean>;
  /** Exits the supervisor did not cause (crashes), each with the tail of the process's output. */
  crashes: { at: number; code: number | null; signal: string | null; whilePostgresDown: boolean; tail: string }[];
  starts: number;
  current(): SidecarProcess | undefined;
  stop(): Promise<void>;
}

export interface RigOptions {
  label: string;
  log?: (s: string) => void;
  conflictPolicy?: string;
  /**
   * Runs once the emulator is up and before the mappings exist: records it puts in the org reach Postgres
   * through the mappings' initial load, as an org's existing data does (the volume mode's seeding).
   */
  prepare?: (emu: Emulator) => Promise<void>;
  /** Extra mapping settings per object (the volume mode indexes Account.Name, which the applications look rows up by). */
  mappingExtras?: Partial<Record<ObjectName, Record<string, unknown>>>;
  /** How long the initial load may take (default 120 s; the volume mode scales it with its records). */
  loadTimeoutMs?: number;
}

export async function startRig(opts: RigOptions): Promise<Rig> {
  assertFreshBuild();
  const say = opts.log ?? (() => {});
  let server: RunningPostgres | undefined;
  let dataDir: string | undefined;
  let port = 0;
  let url: string;
  let adminUrl: string;
  let down = false;
  const external = process.env.DATABASE_URL;
  if (external) {
    adminUrl = external;
    const name = `hcsync_t_${Math.floor(Date.now() / 1000)}_conv${process.pid}`;
    const a = new pg.Client({ connectionString: adminUrl });
    await a.connect();
    await a.query(`create database "${name}"`);
    await a.end();
    url = withDatabase(adminUrl, name);
  } else {
    dataDir = resolve(`.data/convergence-pg-${process.pid}-${opts.label}`);
    port = await freePort();
    server = await startEmbeddedPostgres(dataDir, { fresh: true, port });
    adminUrl = server.url;
    const a = new pg.Client({ connectionString: adminUrl });
    await a.connect();
    await a.query(`create database hcsync_convergence`);
    await a.end();
    url = withDatabase(adminUrl, 'hcsync_convergence');
  }
  await migrate(url);

  const emu = await startEmulator({});
  // The last change event of each object, kept as they are published: settling compares it with the
  // reader's position every half second, and unpacking every retained event for that (emu.events()) costs
  // seconds once the org has published 100,000 of them (a seeded org's creates).
  const lastEvent = new Map<string, number>();
  emu.server.cdc.eventListeners.push((batch) => {
    for (const e of batch) lastEvent.set(e.entity, e.replayId);
  });
  if (opts.prepare) await opts.prepare(emu);
  const env = { ...sidecarEnv(emu, url), HC_LOG_LEVEL: process.env.HC_LOG_LEVEL ?? 'warn' };
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`select hc.create_connection('convergence', 'salesforce')`);
    for (const [object, m] of Object.entries(MAPPINGS)) {
      const cfg: Record<string, unknown> = { access: 'read_write', fields: Object.fromEntries(m.fields.map((f) => [f, {}])) };
      if (m.upsert) cfg.upsert_field = m.upsert;
      if (opts.conflictPolicy) cfg.conflict_policy = opts.conflictPolicy;
      Object.assign(cfg, opts.mappingExtras?.[object as ObjectName]);
      await admin.query('select hc.create_mapping($1, $2)', [object, cfg]);
    }
  } finally {
    await admin.end();
  }

  // Every sidecar process's output (at HC_LOG_LEVEL, warn unless set) goes to one file, kept with a
  // failed run's database.
  const logFile = resolve(`.data/convergence-sidecar-${process.pid}-${opts.label}.log`);
  rmSync(logFile, { force: true });
  const sidecar = supervise(env, () => down, say, logFile);
  // Both mappings loaded and subscribed before any traffic: from then on changes flow both ways.
  const watch = new pg.Client({ connectionString: url });
  await watch.connect();
  try {
    await until(async () => {
      const r = await watch.query(`select count(*) filter (where state = 'DATA_SYNCED' and last_poll_at is not null)::int n from hc._mappings`);
      return r.rows[0].n === OBJECTS.length;
    }, 'both mappings DATA_SYNCED', opts.loadTimeoutMs ?? 120_000, 200);
  } finally {
    await watch.end();
  }

  return {
    emu,
    url,
    env,
    ownsServer: Boolean(server),
    lastReplayId: (object) => lastEvent.get(object),
    postgresDown: () => down,
    async restartPostgres(downMs) {
      if (!server || !dataDir) throw new Error('restartPostgres: this run does not own the server');
      down = true;
      try {
        await server.stop();
        await new Promise((r) => setTimeout(r, downMs));
        server = await startEmbeddedPostgres(dataDir, { port });
      } finally {
        down = false;
      }
    },
    sidecar,
    async close({ keep = false } = {}) {
      await sidecar.stop();
      await emu.stop();
      if (keep) {
        console.log(`convergence: the run's database is kept for a look: ${server ? `the data directory ${dataDir} (PostgreSQL, stopped; remove it when done)` : url}; the sidecar's output: ${logFile}`);
        if (server) await server.stop().catch(() => {});
        return;
      }
      rmSync(logFile, { force: true });
      if (server) {
        await server.stop().catch(() => {});
        if (dataDir) removeDataDir(dataDir);
      } else {
        const a = new pg.Client({ connectionString: adminUrl });
        await a.connect();
        await a.query(`drop database if exists "${new URL(url).pathname.slice(1)}" with (force)`).catch(() => {});
        await a.end();
      }
    },
  };
}

function supervise(env: Record<string, string>, pgDown: () => boolean, say: (s: string) => void, logFile: string): Supervisor {
  let proc: SidecarProcess | undefined;
  let stopping = false;
  let killing = false;
  let timer: NodeJS.Timeout | undefined;
  const sup: Supervisor = {
    crashes: [],
    starts: 0,
    current: () => proc,
    async kill9(restartAfterMs) {
      if (!proc || stopping) return false;
      killing = true;
      try {
        await proc.kill9();
      } finally {
        killing = false;
      }
      proc = undefined;
      schedule(restartAfterMs);
      return true;
    },
    async stop() {
      stopping = true;
      if (timer) clearTimeout(timer);
      await proc?.stop();
    },
  };
  const schedule = (ms: number) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(start, ms);
  };
  const start = () => {
    timer = undefined;
    if (stopping || proc) return;
    const p = spawnSidecar(env);
    proc = p;
    sup.starts++;
    const n = sup.starts;
    const t0 = new Date().toISOString();
    p.child.once('exit', (code, signal) => {
      try {
        appendFileSync(logFile, `== sidecar ${n}: started ${t0}, ended ${new Date().toISOString()} (code ${code}, signal ${signal}${killing ? ', kill -9' : ''})\n${p.output()}\n`);
      } catch { /* (a look aid: the run goes on without it) */ }
      if (killing || stopping || proc !== p) return;
      const whilePostgresDown = pgDown();
      sup.crashes.push({ at: Date.now(), code, signal, whilePostgresDown, tail: p.output().slice(-4000) });
      if (!whilePostgresDown) say(`sidecar exited on its own (code ${code}, signal ${signal}): ${lastError(p.output())}`);
      proc = undefined;
      schedule(1000);
    });
  };
  start();
  return sup;
}

/** The last error-level log line of a sidecar's output, shortened, to name a crash. */
export function lastError(out: string): string {
  const lines = out.trim().split('\n').filter((l) => /"level":(50|60)|Error|error/.test(l));
  return (lines.at(-1) ?? out.trim().split('\n').at(-1) ?? '').slice(0, 600);
}
