// The sidecar as a real process (`node dist/sidecar/cli.js run`, built by `npm run build`), so that
// kill -9 is real and its memory can be read from /proc.
import { afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const caFiles = new Set<string>();
// vitest ends its worker processes without an 'exit' event, which left one of these files behind per
// test file: they go when the test file is done.
afterAll(() => {
  for (const file of caFiles) rmSync(file, { force: true });
  caFiles.clear();
});

/** The emulator's certificate as a PEM file (SF_PUBSUB_CA_FILE), removed after the test file. */
function caFile(pem: string): string {
  const file = join(tmpdir(), `hcsync-pubsub-ca-${process.pid}-${createHash('sha256').update(pem).digest('hex').slice(0, 12)}.pem`);
  if (!existsSync(file)) {
    writeFileSync(file, pem);
    caFiles.add(file);
    process.once('exit', () => rmSync(file, { force: true }));
  }
  return file;
}

/**
 * The change stream the tests' sidecars use: HCSYNC_TEST_STREAM=cometd runs them over CometD, anything else
 * over the Pub/Sub API (the default), so every inbound test can be run on both.
 */
export const TEST_STREAM: 'pubsub' | 'cometd' = process.env.HCSYNC_TEST_STREAM === 'cometd' ? 'cometd' : 'pubsub';

/** Subscriptions the emulator served over the stream in use (CometD subscribes or Pub/Sub Subscribe streams). */
export function streamSubscribes(emu: { stats(): { notCounted: { streamingSubscribes: number }; pubsub: { subscribes: number } } }): number {
  const s = emu.stats();
  return TEST_STREAM === 'cometd' ? s.notCounted.streamingSubscribes : s.pubsub.subscribes;
}

/** A stored replay id as a number: Pub/Sub's are 8 bytes in 16 hex digits, CometD's decimal. */
export function replayNumber(id: string | null | undefined): number {
  if (id == null) return NaN;
  return /^[0-9a-f]{16}$/.test(id) ? Number(BigInt('0x' + id)) : Number(id);
}

export function testStreamEnv(emu: { pubsubEndpoint?: string; certificate?: string }): Record<string, string> {
  if (TEST_STREAM === 'cometd' || !emu.pubsubEndpoint || !emu.certificate) return { HC_CHANGE_STREAM: 'cometd' };
  return pubsubStreamEnv(emu);
}

/** The emulator's Pub/Sub API as the sidecar's change stream, whatever HCSYNC_TEST_STREAM says. */
export function pubsubStreamEnv(emu: { pubsubEndpoint?: string; certificate?: string }): Record<string, string> {
  if (!emu.pubsubEndpoint || !emu.certificate) throw new Error('the emulator serves no Pub/Sub API');
  return { HC_CHANGE_STREAM: 'pubsub', SF_PUBSUB_ENDPOINT: emu.pubsubEndpoint, SF_PUBSUB_CA_FILE: caFile(emu.certificate) };
}

/** The environment that points a sidecar at a test database and an emulator (password sign-in). */
export function sidecarEnv(
  emu: { credentials: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string }; pubsubEndpoint?: string; certificate?: string },
  databaseUrl: string,
): Record<string, string> {
  return {
    ...testStreamEnv(emu),
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
