// `make demo` as a person meets it: the demo process (fresh data directory, free ports) reaches "ready",
// then every printed thing to try is run exactly as printed, in a shell, and does what it says.
// /metrics of the demo's sidecar is scraped before and after, and the outbound numbers move.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { assertFreshBuild, CLI } from '../support/cli.js';

const dataDir = mkdtempSync(join(tmpdir(), 'hcsync-demo-'));
// As root, Postgres runs as the postgres user, who must be able to enter the directory (like .data/).
chmodSync(dataDir, 0o755);
let demo: ChildProcess;
let out = '';
let exited: Promise<number | null>;

/** The "$ command" lines of a numbered thing to try. */
function commands(n: number): string[] {
  const section = out.split(/\n(?=\d\. )/).find((s) => s.startsWith(`${n}. `));
  if (!section) throw new Error(`thing to try ${n} not printed:\n${out}`);
  return section.split('\n').filter((l) => l.trimStart().startsWith('$ ')).map((l) => l.trimStart().slice(2));
}

/**
 * The PATH of a newcomer's other terminal: without the Node that make fetched into .tools/ (make puts it
 * first for its own commands only), so `npx hcsync` runs under the machine's own, older Node, as printed.
 */
const terminalPath = (process.env.PATH ?? '').split(':').filter((p) => !p.includes('.tools/node')).join(':');

function sh(command: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', command], { cwd: resolve('.'), encoding: 'utf8', env: { ...process.env, PATH: terminalPath, PGCONNECT_TIMEOUT: '10' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Re-runs a printed command until its output satisfies `ok` (the "watch it arrive" of the demo). */
async function watch(command: string, ok: (stdout: string) => boolean, seconds = 60): Promise<string> {
  const until = Date.now() + seconds * 1000;
  let last = '';
  while (Date.now() < until) {
    const r = sh(command);
    last = r.stdout + r.stderr;
    if (r.code === 0 && ok(r.stdout)) return r.stdout;
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error(`never satisfied: ${command}\nlast output:\n${last}`);
}

async function scrape(): Promise<string> {
  const url = /sidecar\s+(http:\/\/\S+\/metrics)/.exec(out)?.[1];
  if (!url) throw new Error('the demo printed no metrics URL');
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return res.text();
}
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + '{') && labels.split(',').every((kv) => l.includes(kv)));
  return line ? Number(line.split(' ').at(-1)) : NaN;
}

/** Starts `hcsync demo` on the test's data directory and resolves at "ready". */
async function startDemo(): Promise<void> {
  out = '';
  demo = spawn(process.execPath, [CLI, 'demo', '--data', dataDir], {
    env: { ...process.env, HC_DEMO_PG_PORT: '0', HC_DEMO_SF_PORT: '0', HC_HTTP_PORT: '0', HC_LOG_PRETTY: '0', DATABASE_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, like a command in a terminal: Ctrl-C there signals the whole group.
    detached: true,
  });
  exited = new Promise((r) => demo.once('exit', (code) => r(code)));
  demo.stdout!.on('data', (d) => (out += d));
  demo.stderr!.on('data', (d) => (out += d));
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`demo not ready after 240 s:\n${out}`)), 240_000);
    const check = () => {
      if (/^ready$/m.test(out)) {
        clearTimeout(t);
        res();
      }
    };
    demo.stdout!.on('data', check);
    demo.once('exit', (code) => rej(new Error(`demo exited (${code}) before ready:\n${out}`)));
  });
}

beforeAll(async () => {
  assertFreshBuild();
  await startDemo();
}, 300_000);

afterAll(async () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    // Ctrl-C first, so the demo's Postgres goes with it; SIGKILL only if it hangs.
    demo.kill('SIGINT');
    const t = setTimeout(() => demo.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(t);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('make demo', () => {
  it('prints what runs, the psql string and five things to try', () => {
    expect(out).toMatch(/postgres\s+postgres:\/\/\S+\/hcsync_demo/);
    expect(out).toMatch(/salesforce\s+http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toMatch(/connect:\s+psql "postgres:\/\//);
    // The dashboard URL with its token, as printed, opens the dashboard.
    const url = /dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{16,})/.exec(out)?.[1];
    expect(url).toBeDefined();
    expect(out).toContain(`6. Watch, retry and pause it all in the dashboard`);
    for (const n of [1, 2, 3, 4, 5]) expect(commands(n).length).toBeGreaterThan(0);
  });

  it('the printed dashboard URL opens the dashboard: the token becomes a cookie, the page and the API answer', async () => {
    const url = /dashboard\s+(http:\/\/127\.0\.0\.1:\d+)\/\?token=([\w-]{16,})/.exec(out)!;
    const first = await fetch(`${url[1]}/?token=${url[2]}`, { redirect: 'manual' });
    expect(first.status).toBe(303);
    const cookie = first.headers.get('set-cookie')!.split(';')[0];
    expect((await fetch(`${url[1]}/`, { headers: { cookie } })).status).toBe(200);
    expect((await (await fetch(`${url[1]}/api/connection`, { headers: { cookie } })).json()).schema_name).toBe('salesforce');
    expect((await fetch(`${url[1]}/api/connection`)).status).toBe(401);
  });

  it('1. a row inserted in Postgres gets its sfid from Salesforce, and /metrics counts it', async () => {
    const before = await scrape();
    const [insert, select] = commands(1);
    expect(sh(select).stdout).toContain('(0 rows)');
    expect(sh(insert)).toMatchObject({ code: 0, stdout: 'INSERT 0 1\n' });
    const row = await watch(select, (s) => /\| 003\w{15} \|/.test(s));
    expect(row).toMatch(/\| (SYNCED|INSERTED|UPDATED)/);
    const after = await scrape();
    expect(sample(after, 'hcsync_rows_synced', 'direction="outbound"')).toBeGreaterThan(sample(before, 'hcsync_rows_synced', 'direction="outbound"'));
    // The API-call ledger is written in batches: the call shows up in /metrics shortly after.
    const calls = (t: string) => t.split('\n').filter((l) => l.startsWith('hcsync_api_calls_24h{')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    const until = Date.now() + 30_000;
    while (calls(await scrape()) <= calls(before) && Date.now() < until) await new Promise((r) => setTimeout(r, 300));
    expect(calls(await scrape())).toBeGreaterThan(calls(before));
  });

  it('2. breaking the validation rule puts the error in _hc_err', async () => {
    const [update, select] = commands(2);
    expect(sh(update)).toMatchObject({ code: 0, stdout: 'UPDATE 1\n' });
    const row = await watch(select, (s) => s.includes('FAILED'));
    expect(row).toContain('FIELD_CUSTOM_VALIDATION_EXCEPTION: Number of employees cannot be negative.');
  });

  it('3. pause, the mappings, resume', () => {
    const [cmd] = commands(3);
    const r = sh(cmd);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('PAUSED');
    expect(r.stdout).toMatch(/Account\s+\| DATA_SYNCED\s+\|\s+2000 \|/);
    expect(r.stdout).toMatch(/Contact\s+\| DATA_SYNCED/);
    expect(r.stdout).toMatch(/resume\s*\n-+\n IDLE/);
  });

  it('4. a change made in Salesforce arrives in Postgres', async () => {
    // (run by the machine's own Node where make fetched a newer one: the terminal a newcomer opens)
    if ((process.env.PATH ?? '').includes('.tools/node')) expect(sh('node -p process.versions.node').stdout.trim()).not.toBe(process.versions.node);
    const [patch, select] = commands(4);
    const r = sh(patch);
    expect(r.stderr.replace(/npm warn.*\n/g, '')).toBe('');
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^PATCH \/services\/data\/v\d+\.0\/sobjects\/Account\/001\w+: ok$/m);
    await watch(select, (s) => s.includes('+1 415 555 0100'));
  });

  it('5. the write error is listed, and diagnose flags the Account mapping RED (exit 3)', async () => {
    const [errors, doctor] = commands(5);
    const e = sh(errors);
    expect(e.code).toBe(0);
    expect(e.stdout).toContain('Number of employees cannot be negative.');
    const d = sh(doctor);
    expect(d.code).toBe(3);
    expect(d.stdout).toMatch(/^RED\s+mapping Account · UPSERT_FIELD/m);
    expect(d.stdout).toMatch(/^GREEN\s+salesforce \S+ · API_LIMITS/m);
    expect(d.stdout).toMatch(/^YELLOW\s+mapping Contact · CALCULATED_FIELDS: formula field\(s\) Email_Upper__c/m);
  });

  it('Ctrl-C stops everything cleanly (exit 0)', async () => {
    // What a terminal does: SIGINT to every process of the foreground group, not just the demo's.
    process.kill(-demo.pid!, 'SIGINT');
    expect(await exited).toBe(0);
    expect(out).toMatch(/stopping …\nstopped\n?$/);
    // Postgres of the demo is gone too: nothing answers on its port.
    const url = /postgres\s+(postgres:\/\/\S+)/.exec(out)![1];
    const r = sh(`psql "${url}" -c "select 1"`);
    expect(r.code).not.toBe(0);
  });

  it('a second run reuses the data: no reload, the earlier changes are there', async () => {
    await startDemo();
    expect(out).not.toContain('did not stop cleanly');
    expect(out).not.toContain('migrated');
    const [, select] = commands(1);
    expect(sh(select).stdout).toMatch(/\| 003\w{15} \|/);
    const [, phone] = commands(4);
    expect(sh(phone).stdout).toContain('+1 415 555 0100');
  }, 300_000);

  it('after a crash (kill -9) the next run starts from fresh data and reaches ready', async () => {
    demo.kill('SIGKILL');
    await exited;
    await startDemo();
    expect(out).toContain('the previous demo did not stop cleanly: starting from fresh data');
    const [, select] = commands(1);
    expect(sh(select).stdout).toContain('(0 rows)');
    const [, phone] = commands(4);
    expect(sh(phone).stdout).not.toContain('+1 415 555 0100');
    demo.kill('SIGINT');
    expect(await exited).toBe(0);
  }, 300_000);
});
