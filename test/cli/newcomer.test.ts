// What a newcomer typing the README's commands sees: the binary as npx runs it (package.json "bin"),
// under the machine's own older Node too, piped into head, asked for its version, refused by the SQL API
// without the message saying "hcsync:" twice, and exiting with the documented codes. The other CLI tests
// run the verbs in their own process (cli()); these are the ones where the process is what is tested.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createTestDb, type TestDb } from '../support/db.js';
import { assertFreshBuild, contactConfig, hcsync } from '../support/cli.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string; bin: Record<string, string> };
const BIN = resolve(pkg.bin.hcsync);

/** The first node on a PATH without the project's .tools/ (what `npx` finds on these machines). */
function systemNode(): { path: string; major: number } | undefined {
  const r = spawnSync('sh', ['-c', 'command -v node'], { env: { PATH: '/usr/local/bin:/usr/bin:/bin' }, encoding: 'utf8' });
  const path = r.stdout.trim();
  if (!path) return undefined;
  const v = spawnSync(path, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
  return { path, major: Number(v.split('.')[0]) };
}

let db: TestDb;
beforeAll(async () => {
  assertFreshBuild();
  db = await createTestDb();
  await db.query(`select hc.create_connection('newcomer', 'salesforce')`);
});
afterAll(async () => {
  await db?.drop();
});

describe('the hcsync binary as a newcomer meets it', () => {
  it('--version prints the package version', async () => {
    const r = await hcsync(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('`hcsync sql | head -1` ends quietly: no EPIPE stack trace, exit 0', () => {
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${BIN}" sql | head -1`], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^-- hcsync install script/);
  });

  it("a refusal from the SQL API is printed once as 'hcsync: …', with its hint", async () => {
    await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'boom')`);
    const r = await hcsync(['resume'], { DATABASE_URL: db.url });
    await db.query(`select hc.set_connection_state('IDLE')`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hcsync: connection "newcomer" is not paused/);
    expect(r.stderr).not.toMatch(/hcsync: hcsync:/);
    expect(r.stderr).toContain('hint: An error state is cleared with select hc.recover();');
  });

  it('the binary exits 2 for usage and for configuration, and 3 when diagnose finds a RED check (its whole report written first)', async () => {
    const usage = await hcsync(['mapping:frobnicate']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("unknown command 'mapping:frobnicate'");
    const unset = await hcsync(['status']);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('DATABASE_URL is not set');
    // A read-write mapping without an upsert field is RED.
    await db.query(`select hc.create_mapping('Contact', $1::jsonb)`, [JSON.stringify(contactConfig)]);
    const red = await hcsync(['diagnose', '--json'], { DATABASE_URL: db.url });
    expect(red.code).toBe(3);
    expect(JSON.parse(red.stdout).red).toBeGreaterThan(0);
  });

  it("runs under the machine's older system Node by handing over to the Node that make fetched", async () => {
    const sys = systemNode();
    if (!sys || sys.major >= 22) {
      // Nothing to prove here: the system's node is already new enough.
      expect(sys === undefined || sys.major >= 22).toBe(true);
      return;
    }
    expect(existsSync(resolve('.tools/node/bin/node')), 'make setup fetches Node into .tools/ when the system one is older').toBe(true);
    const r = spawnSync(sys.path, [BIN, '--version'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
    // A long-running verb: the emulator prints its export lines and stops on SIGTERM.
    const child = spawn(sys.path, [BIN, 'emulator', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const deadline = Date.now() + 30_000;
    while (!out.includes('export SF_LOGIN_URL=') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    child.kill('SIGTERM');
    const code = await exited;
    expect(err).not.toMatch(/TypeError|reading 'bind'/);
    expect(out).toContain('export SF_LOGIN_URL=http://127.0.0.1:');
    expect(code === 0 || code === null || code === 143).toBe(true);
  });
});
