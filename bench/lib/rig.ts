// What the sync benchmarks set up and tear down alike: a database of their own, the emulator in its own
// process, a jsforce connection as the org's user with Account's describe, a pool on the database, and
// later the sidecar. Teardown runs in reverse order whatever happened (sidecar, pool, emulator, database),
// and a failure carries what was measured so far, so the table still shows it.
import pg from 'pg';
import type { Connection, DescribeSObjectResult } from 'jsforce';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, BenchResult } from './bench.js';
import { emulatorProcess, sfConnection, type EmulatorHandle } from './emulator.js';
import { mapAccount } from './mapping.js';
import type { BenchDatabase } from './postgres.js';
import { spawnSidecar, type SidecarProcess } from './sidecar.js';
import { waitCaughtUp, waitRunning, waitSynced } from './sync.js';

export interface Org {
  emu: EmulatorHandle;
  /** Signed in as the org's user: writes by "someone else" and the raw-client baselines. */
  conn: Connection;
  describe: DescribeSObjectResult;
}

export interface Rig extends Org {
  db: BenchDatabase;
  pool: pg.Pool;
  /** The running sidecar, once startSidecar() was called (the latest one when called again). */
  sidecar?: SidecarProcess;
  /**
   * Spawns the sidecar, its log in the run's work directory as `<logName>-sidecar.log` (`logFile`), and
   * waits until it runs. `env` adds to (or overrides) the sidecar's environment.
   */
  startSidecar(logName: string, env?: Record<string, string>): Promise<SidecarProcess>;
  /** The latest sidecar's log file. */
  logFile?: string;
  /** Creates the Account mapping, waits for DATA_SYNCED, then for the catch-up pass after the load. */
  mapSynced(config: Record<string, unknown>, timeouts: { syncedMs: number; caughtUpMs: number }): Promise<void>;
}

/** The emulator in its own process with a signed-in connection and Account's describe, stopped afterwards. */
export async function withOrg<T>(ctx: BenchContext, body: (org: Org) => Promise<T>): Promise<T> {
  const emu = await emulatorProcess(ctx);
  try {
    const conn = await sfConnection(emu);
    const describe = await conn.sobject('Account').describe();
    return await body({ emu, conn, describe });
  } finally {
    await emu.stop();
  }
}

/**
 * The sidecar's change stream: the emulator's Pub/Sub API (the sidecar's default), trusting its certificate;
 * BENCH_CHANGE_STREAM=cometd measures the Streaming API instead.
 */
export function changeStreamEnv(ctx: Pick<BenchContext, 'workDir'>, emu: EmulatorHandle): Record<string, string> {
  if (process.env.BENCH_CHANGE_STREAM === 'cometd' || !emu.pubsub) return { HC_CHANGE_STREAM: 'cometd' };
  const ca = join(ctx.workDir, 'pubsub-ca.pem');
  writeFileSync(ca, emu.pubsub.certificate);
  return { HC_CHANGE_STREAM: 'pubsub', SF_PUBSUB_ENDPOINT: emu.pubsub.endpoint, SF_PUBSUB_CA_FILE: ca };
}

/**
 * A database named after `label`, the org, and a pool of `poolMax` connections for `body`. When `partial`
 * is given, an error thrown by `body` carries it (the rows and configuration measured before the failure).
 */
export async function withRig<T>(
  ctx: BenchContext,
  label: string,
  opts: { poolMax: number; partial?: Pick<BenchResult, 'rows' | 'config'> },
  body: (rig: Rig) => Promise<T>,
): Promise<T> {
  const db = await ctx.server.createDatabase(label);
  try {
    return await withOrg(ctx, async (org) => {
      const pool = new pg.Pool({ connectionString: db.url, max: opts.poolMax, application_name: 'hcsync bench' });
      const rig: Rig = {
        ...org,
        db,
        pool,
        async startSidecar(logName, env) {
          rig.logFile = join(ctx.workDir, `${logName}-sidecar.log`);
          const sidecar = spawnSidecar({ databaseUrl: db.url, sf: org.emu.credentials, logFile: rig.logFile, env: { ...changeStreamEnv(ctx, org.emu), ...env } });
          rig.sidecar = sidecar;
          await waitRunning(sidecar);
          return sidecar;
        },
        async mapSynced(config, timeouts) {
          if (!rig.sidecar) throw new Error('mapSynced before startSidecar');
          await mapAccount(pool, config);
          await waitSynced(pool, 'Account', rig.sidecar, timeouts.syncedMs);
          await waitCaughtUp(pool, 'Account', rig.sidecar, timeouts.caughtUpMs);
        },
      };
      try {
        return await body(rig);
      } catch (err) {
        if (opts.partial) Object.assign(err as object, { partial: opts.partial });
        throw err;
      } finally {
        await rig.sidecar?.stop();
        await pool.end().catch(() => {});
      }
    });
  } finally {
    await db.drop().catch(() => {});
  }
}

/** sObject Collections: one call of up to 200 records (POST creates, PATCH updates by Id). */
export function collections<R = unknown>(conn: Connection, method: 'POST' | 'PATCH', records: Record<string, unknown>[], allOrNone = false): Promise<R> {
  return conn.request<R>({
    method,
    url: `/services/data/v${conn.version}/composite/sobjects`,
    body: JSON.stringify({ allOrNone, records }),
    headers: { 'Content-Type': 'application/json' },
  });
}
