// The demo's own PostgreSQL server (sidecar/demo/postgres.ts), where a newcomer's machine makes it hard:
// as root, with the data directory inside a 0700 directory (a checkout under /root), where the
// `postgres` user it must run as cannot reach; and stopped after it has already gone.
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { removeDataDir, startEmbeddedPostgres, postmasterPid } from '../support/postgres.js';

const root = mkdtempSync(join(tmpdir(), 'hcsync-private-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function one(url: string, sql: string): Promise<unknown> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows[0];
  } finally {
    await c.end();
  }
}

describe('the embedded PostgreSQL server', () => {
  it('starts with its data directory inside a 0700 directory, keeps data across restarts, and is removed whole', async () => {
    chmodSync(root, 0o700);
    const dir = join(root, 'checkout', '.data', 'pg');
    let server = await startEmbeddedPostgres(dir, { fresh: true });
    try {
      await one(server.url, 'create table kept as select 42 as v');
    } finally {
      await server.stop();
    }
    server = await startEmbeddedPostgres(dir);
    try {
      expect(await one(server.url, 'select v from kept')).toEqual({ v: 42 });
      expect(postmasterPid(dir)).toBeGreaterThan(0);
    } finally {
      await server.stop();
    }
    const real = lstatSync(dir).isSymbolicLink() ? (await import('node:fs')).readlinkSync(dir) : dir;
    // Only root runs the server as another user; then the data lives where that user can reach it.
    if (process.getuid?.() === 0) expect(real).toMatch(/^\/var\/tmp\/hcsync-data-/);
    removeDataDir(dir);
    expect(existsSync(dir) || existsSync(real)).toBe(false);
  }, 120_000);

  it('stop() returns at once when the server has already gone (a terminal Ctrl-C, a crash)', async () => {
    const dir = join(root, 'gone');
    const server = await startEmbeddedPostgres(dir, { fresh: true });
    const pid = postmasterPid(dir);
    process.kill(pid, 'SIGINT');
    for (let i = 0; i < 200; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await server.stop();
    removeDataDir(dir);
  }, 120_000);
});
