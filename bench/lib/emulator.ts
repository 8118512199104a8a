// The Salesforce emulator for a benchmark: a child process (see emulator-child.ts) reached over real HTTP
// like Salesforce, plus IPC for reading its records without spending API calls. A plain jsforce
// connection stands for "someone else writing in Salesforce" and for the raw-client baselines.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import jsforce, { type Connection } from 'jsforce';
import { onInterrupt, type BenchContext } from './bench.js';
import type { SalesforceCredentials } from './sidecar.js';

export const API_VERSION = '62.0';
const CHILD = fileURLToPath(new URL('./emulator-child.js', import.meta.url));

export interface EmulatorHandle {
  url: string;
  credentials: SalesforceCredentials;
  /** Its Pub/Sub API (TLS gRPC) and the self-signed certificate it presents. */
  pubsub?: { endpoint: string; certificate: string };
  pid: number;
  stats(): Promise<Record<string, unknown>>;
  /** The record whose `field` equals `value`, read in the emulator's memory (no API call). */
  find(object: string, field: string, value: unknown): Promise<Record<string, unknown> | null>;
  count(object: string): Promise<number>;
  /** When (wall-clock ms, sub-ms resolution) a record with field = value first existed in the org. */
  waitFor(object: string, field: string, value: unknown, timeoutMs?: number): Promise<{ at: number; record: Record<string, unknown> }>;
  /** How many records have a text `field` starting with `prefix`. */
  countWhere(object: string, field: string, prefix: string): Promise<number>;
  rssMiB(): number | undefined;
  /** The records' own cost: the heap in use after a full garbage collection, and the RSS then. RSS alone
   * keeps the peak of whatever came before (a Bulk ingest parses whole uploads). */
  memory(): Promise<{ heapUsedMiB: number; rssMiB: number }>;
  /** Samples RSS every 50 ms until stop(), which returns the peak in MiB. */
  watchPeak(): { stop(): number | undefined };
  stop(): Promise<void>;
}

function rss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

export async function emulatorProcess(ctx: Pick<BenchContext, 'progress'>): Promise<EmulatorHandle> {
  // Room for five million records (--large) in memory: the org's data lives in the emulator's heap.
  const child: ChildProcess = fork(CHILD, [], { execArgv: ['--max-old-space-size=12288', '--expose-gc'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const forget = onInterrupt(() => child.kill('SIGKILL'));
  child.once('exit', forget);
  let stderr = '';
  let stopping = false;
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let seq = 0;
  type Ready = { url: string; credentials: SalesforceCredentials; pubsub?: { endpoint: string; certificate: string } };
  const ready = new Promise<Ready>((resolve, reject) => {
    child.on('message', (m: Partial<Ready> & { ready?: boolean; id?: number; result?: unknown; error?: string }) => {
      if (m.ready) return resolve({ url: m.url!, credentials: m.credentials!, pubsub: m.pubsub });
      const p = pending.get(m.id!);
      if (!p) return;
      pending.delete(m.id!);
      if (m.error) p.reject(new Error(`emulator: ${m.error}`));
      else p.resolve(m.result);
    });
    child.once('exit', (code, signal) => {
      const err = new Error(`the emulator process exited (code ${code}${signal ? `, ${signal}` : ''}): ${stderr.trim().split('\n').slice(-10).join('\n')}`);
      // Said at once: a benchmark waiting on the sidecar (which then only sees refused connections) would
      // otherwise show nothing until its own timeout.
      if (!stopping) ctx.progress(err.message);
      reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    });
  });
  const info = await ready;
  ctx.progress(`emulator at ${info.url} (pid ${child.pid})`);
  const ask = <T>(op: string, extra: Record<string, unknown> = {}): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, op, ...extra });
    });
  const pid = child.pid!;
  return {
    url: info.url,
    credentials: info.credentials,
    pubsub: info.pubsub,
    pid,
    stats: () => ask('stats'),
    find: (object, field, value) => ask('find', { object, field, value }),
    count: (object) => ask('count', { object }),
    waitFor: (object, field, value, timeoutMs) => ask('waitFor', { object, field, value, timeoutMs }),
    countWhere: (object, field, value) => ask('countWhere', { object, field, value }),
    rssMiB: () => rss(pid),
    memory: () => ask('memory'),
    watchPeak() {
      let peak = rss(pid);
      const t = setInterval(() => {
        const v = rss(pid);
        if (v !== undefined && (peak === undefined || v > peak)) peak = v;
      }, 50);
      return {
        stop() {
          clearInterval(t);
          return peak;
        },
      };
    },
    async stop() {
      stopping = true;
      if (child.exitCode !== null) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      await Promise.race([ask('stop').catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      await gone;
    },
  };
}

/** A jsforce connection signed in to the emulator as the org's user (not the sidecar: not in its ledger). */
export async function sfConnection(emu: { credentials: SalesforceCredentials }): Promise<Connection> {
  const c = emu.credentials;
  const conn = new jsforce.Connection({
    loginUrl: c.loginUrl,
    version: API_VERSION,
    oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret, redirectUri: 'http://localhost/callback' },
  });
  await conn.login(c.username, c.password);
  return conn;
}
