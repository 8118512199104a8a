// The sidecar as a real process (`node dist/sidecar/cli.js run`, built by `npm run build`), so that
// kill -9 is real and its memory can be read from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface SidecarProcess {
  child: ChildProcess;
  /** Everything the process wrote to stdout/stderr (JSON log lines). */
  output(): string;
  /** Peak resident set size so far (VmHWM), in MiB; undefined once the process is gone. */
  peakRssMiB(): number | undefined;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export function spawnSidecar(env: Record<string, string>): SidecarProcess {
  const child = spawn(process.execPath, [resolve('dist/sidecar/cli.js'), 'run'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    output: () => out,
    peakRssMiB() {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) / 1024 : undefined;
      } catch {
        return undefined;
      }
    },
    async kill9() {
      if (gone()) return;
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (gone()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** The environment that points a sidecar at a test database and an emulator (password sign-in). */
export function sidecarEnv(
  emu: { credentials: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string } },
  databaseUrl: string,
): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    HC_SCHEMA: 'salesforce',
    SF_LOGIN_URL: emu.credentials.loginUrl,
    SF_CLIENT_ID: emu.credentials.clientId,
    SF_CLIENT_SECRET: emu.credentials.clientSecret,
    SF_USERNAME: emu.credentials.username,
    SF_PASSWORD: emu.credentials.password,
    SF_API_VERSION: '62.0',
    HC_HTTP_PORT: '0',
    HC_LOG_LEVEL: process.env.HC_LOG_LEVEL ?? 'warn',
  };
}
