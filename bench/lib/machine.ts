// Where and with what the numbers were produced: they mean nothing without it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  loadAverage1m: number;
  os: string;
}

export interface Versions {
  node: string;
  postgres: string;
  jsforce: string;
  hcsync: string;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return undefined;
  }
}

/** The commit, marked "+dirty" when tracked files differ from it (the numbers then belong to no commit). */
export function hcsyncVersion(): string {
  const sha = git(['rev-parse', '--short=12', 'HEAD']) ?? 'unknown';
  const dirty = git(['status', '--porcelain', '--untracked-files=no']);
  return dirty ? `${sha}+dirty` : sha;
}

function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url);
    const path = require.resolve(`${name}/package.json`);
    return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function versions(postgres: string): Versions {
  return { node: process.version, postgres, jsforce: packageVersion('jsforce'), hcsync: hcsyncVersion() };
}
