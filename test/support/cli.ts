// The `hcsync` command line in tests, two ways. cli() runs a one-shot verb inside the test's own process
// (runCli, from the source): the same program, environment and output as the binary's, without a Node
// start for each command. hcsync() runs the built binary (dist/sidecar/cli.js) as a real process, for what
// only a process shows: the binary's exit status, signals, pipes, the Node hand-over, and the verbs that
// keep running (run, demo, emulator, logs --follow).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import { format } from 'node:util';

const require = createRequire(import.meta.url);

export const CLI = resolve('dist/sidecar/cli.js');

/** A read-write Contact mapping in Heroku Connect's config format, as the CLI tests create it. */
export const contactConfig = {
  access: 'read_write',
  fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, CreatedDate: {}, LastName: {}, Email: {} },
  indexes: { Id: { unique: true }, SystemModstamp: { unique: false } },
  sf_notify_enabled: false,
  sf_polling_seconds: 600,
  sf_max_daily_api_calls: 30000,
};

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** The environment both run with: `env` added to a clean one (PATH and HOME only), logs at warn. */
function cleanEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: process.env.HOME, HC_LOG_LEVEL: 'warn', ...env };
}

/** Verbs that keep running and stop on a signal (logs too with --follow): they need a process of their own. */
const LONG_RUNNING = new Set(['run', 'demo', 'emulator']);

/** In-process runs going on now: whatever is written to the console meanwhile is theirs too. */
const running = new Set<CliResult>();
let restoreConsole: (() => void) | undefined;

/**
 * Anything a verb writes past the streams it was given (console, process.stdout or process.stderr) is
 * what the binary would have printed as well: it goes into the result, so an in-process run never shows
 * less than a process would. It is still passed on.
 */
function catchStrayOutput(): () => void {
  const out = process.stdout.write;
  const err = process.stderr.write;
  const methods = ['log', 'info', 'debug', 'warn', 'error'] as const;
  const saved = methods.map((m) => console[m]);
  const add = (to: 'stdout' | 'stderr', chunk: unknown) => {
    for (const r of running) r[to] += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString();
  };
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => (add('stdout', chunk), out.call(process.stdout, chunk as string, ...(rest as [])))) as typeof out;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => (add('stderr', chunk), err.call(process.stderr, chunk as string, ...(rest as [])))) as typeof err;
  methods.forEach((m, i) => {
    console[m] = (...args: unknown[]) => {
      add(m === 'log' || m === 'info' || m === 'debug' ? 'stdout' : 'stderr', format(...args) + '\n');
      saved[i].apply(console, args);
    };
  });
  return () => {
    process.stdout.write = out;
    process.stderr.write = err;
    methods.forEach((m, i) => (console[m] = saved[i]));
  };
}

/**
 * Runs the one-shot verb `hcsync ...args` in this process, with `env` added to a clean environment as
 * hcsync() does: exit code, standard output and standard error as the binary gives them.
 */
export async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const verb = args.find((a, i) => !a.startsWith('-') && !['-c', '--connection'].includes(args[i - 1]));
  if ((verb && LONG_RUNNING.has(verb)) || (verb === 'logs' && (args.includes('--follow') || args.includes('-f')))) {
    throw new Error(`hcsync ${args.join(' ')} keeps running: run it as a process, with hcsync()`);
  }
  // Loaded on first use: files that only start the binary do not load the program.
  const { runCli } = await import('../../sidecar/cli/program.js');
  const result: CliResult = { code: null, stdout: '', stderr: '' };
  if (!running.size) restoreConsole = catchStrayOutput();
  running.add(result);
  try {
    result.code = await runCli(args, {
      env: cleanEnv(env),
      stdout: { write: (s: string) => (result.stdout += s) },
      stderr: { write: (s: string) => (result.stderr += s) },
    });
  } finally {
    running.delete(result);
    if (!running.size) restoreConsole?.();
  }
  return result;
}

/** Runs `hcsync ...args` as a real process, with `env` added to a clean environment (PATH and HOME only). */
export function hcsync(args: string[], env: Record<string, string | undefined> = {}, opts: { input?: string; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: cleanEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Tests of the binary are only meaningful against a build of the current source: say so at once. */
export function assertFreshBuild(): void {
  const { readdirSync, readFileSync, existsSync } = require('node:fs') as typeof import('node:fs');
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (make setup) first`);
  for (const f of [...readdirSync('sql').filter((x) => x.endsWith('.sql')), ...readdirSync('sql/functions').map((x) => `functions/${x}`)]) {
    const built = resolve('dist/sql', f);
    if (!existsSync(built) || readFileSync(built, 'utf8') !== readFileSync(resolve('sql', f), 'utf8')) {
      throw new Error(`dist/sql/${f} is not the current sql/${f}: run npm run build (make setup) first`);
    }
  }
}
