// Runs the built `hcsync` binary (dist/sidecar/cli.js) as a real process: what an operator types.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';

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

/** Runs `hcsync ...args` with `env` added to a clean environment (PATH and HOME only). */
export function hcsync(args: string[], env: Record<string, string | undefined> = {}, opts: { input?: string; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, HC_LOG_LEVEL: 'warn', ...env },
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
  for (const f of readdirSync('sql')) {
    const built = resolve('dist/sql', f);
    if (!existsSync(built) || readFileSync(built, 'utf8') !== readFileSync(resolve('sql', f), 'utf8')) {
      throw new Error(`dist/sql/${f} is not the current sql/${f}: run npm run build (make setup) first`);
    }
  }
}
