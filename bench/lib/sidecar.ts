// The sidecar as users run it: `node dist/sidecar/cli.js run`, its own process, so its memory is its own
// (peak RSS from /proc/<pid>/status VmHWM) and it competes for the CPU as it would in production.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { onInterrupt } from './bench.js';

const CLI = fileURLToPath(new URL('../../sidecar/cli.js', import.meta.url));

export interface SalesforceCredentials {
  loginUrl: string;
  clientId: string;
  clientSecret: string;
  username: string;
  password: string;
}

export interface SidecarProcess {
  pid: number;
  /** Peak resident set size so far, in MiB (VmHWM). */
  peakRssMiB(): number | undefined;
  rssMiB(): number | undefined;
  /** The last lines the process wrote, for error messages. */
  tail(lines?: number): string;
  /** Rejects when the process exits before stop() was called. */
  exited: Promise<never>;
  stop(): Promise<void>;
}

function procStatus(pid: number, key: string): number | undefined {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : undefined;
  } catch {
    return undefined;
  }
}

export function spawnSidecar(opts: {
  databaseUrl: string;
  sf: SalesforceCredentials;
  logFile: string;
  schema?: string;
  env?: Record<string, string>;
}): SidecarProcess {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: opts.databaseUrl,
    HC_SCHEMA: opts.schema ?? 'salesforce',
    SF_LOGIN_URL: opts.sf.loginUrl,
    SF_CLIENT_ID: opts.sf.clientId,
    SF_CLIENT_SECRET: opts.sf.clientSecret,
    SF_USERNAME: opts.sf.username,
    SF_PASSWORD: opts.sf.password,
    HC_HTTP_PORT: '0',
    HC_LOG_LEVEL: process.env.BENCH_SIDECAR_LOG_LEVEL ?? 'info',
    HC_LOG_PRETTY: '0',
    // The image's Node flag (Dockerfile's ENTRYPOINT): the sidecar measured is the one that ships. Given
    // as NODE_OPTIONS, not on the command line (which would win), so a benchmark's env can replace it.
    NODE_OPTIONS: '--max-semi-space-size=4',
    ...opts.env,
  };
  const child: ChildProcess = spawn(process.execPath, [CLI, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(opts.logFile);
  const recent: string[] = [];
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    for (const l of chunk.toString().split('\n')) if (l) recent.push(l);
    if (recent.length > 200) recent.splice(0, recent.length - 200);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const forget = onInterrupt(() => child.kill('SIGKILL'));
  child.once('exit', forget);
  let stopping = false;
  let lastPeak: number | undefined;
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => {
      if (!stopping) reject(new Error(`the sidecar exited (${signal ?? `code ${code}`}); its last lines:\n${recent.slice(-15).join('\n')}`));
    });
  });
  exited.catch(() => {});
  const pid = child.pid!;
  return {
    pid,
    peakRssMiB: () => (lastPeak = procStatus(pid, 'VmHWM') ?? lastPeak),
    rssMiB: () => procStatus(pid, 'VmRSS'),
    tail: (n = 15) => recent.slice(-n).join('\n'),
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stopping = true;
      lastPeak = procStatus(pid, 'VmHWM') ?? lastPeak;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
      log.end();
    },
  };
}

/** Races `work` against the sidecar dying, so a crash fails the benchmark at once with its last lines. */
export function whileAlive<T>(sidecar: SidecarProcess, work: Promise<T>): Promise<T> {
  return Promise.race([work, sidecar.exited]);
}
