// The README's own commands, typed exactly as printed, in a shell whose PATH is the machine's (its older
// Node and npm, not the project's .tools/): `npx hcsync …` must work there (sidecar/bin.ts hands over to
// the Node that make fetched). The command is read from README.md, so a change of the README is tested as
// it reads. (newcomer.test.ts runs the binary with the system Node directly; this goes through npx.)
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assertFreshBuild } from '../support/cli.js';

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const readme = readFileSync('README.md', 'utf8');

/** The README's command that starts with `prefix`, up to the closing backquote. */
function printed(prefix: string): string {
  const m = new RegExp('`(?:[^`]*&& )?(' + prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '[^`]*)`').exec(readme);
  if (!m) throw new Error(`README.md no longer prints a command starting with ${prefix}`);
  return m[1];
}

describe("the README's commands, as printed, with the machine's own Node on PATH", () => {
  const hasNpx = spawnSync('sh', ['-c', 'command -v npx'], { env: { PATH: SYSTEM_PATH } }).status === 0;

  it.skipIf(!hasNpx)('npx hcsync emulator --seed …: prints its export lines and stops on SIGTERM', async () => {
    assertFreshBuild();
    const cmd = printed('npx hcsync emulator');
    expect(cmd).toMatch(/^npx hcsync emulator --seed /);
    // Its own process group, so the signal reaches npx and the node it started.
    const child = spawn('bash', ['-c', `exec ${cmd}`], { env: { ...process.env, PATH: SYSTEM_PATH }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const deadline = Date.now() + 90_000;
    while (!out.includes('export SF_LOGIN_URL=') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    process.kill(-child.pid!, 'SIGTERM');
    const code = await exited;
    expect(err).not.toMatch(/TypeError|reading 'bind'|Error:/);
    expect(out).toContain('export SF_LOGIN_URL=http://127.0.0.1:');
    expect(code === 0 || code === null || code === 143).toBe(true);
  }, 120_000);
});
