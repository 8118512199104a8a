#!/usr/bin/env node
// The `hcsync` binary (package.json "bin"). hcsync needs Node.js 22 or newer, but `npx hcsync …` runs
// whatever node is first on PATH, and many machines still ship Node 20. When that node is too old and
// `make` has fetched a current one into .tools/node, the command is run again under it, transparently;
// otherwise it stops with the fix. This file imports nothing that needs a newer Node.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MIN_MAJOR = 22;
const major = Number(process.versions.node.split('.')[0]);

if (major >= MIN_MAJOR) {
  await import('./cli.js');
} else {
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const local = fileURLToPath(new URL('../../.tools/node/bin/node', import.meta.url));
  if (!existsSync(local)) {
    console.error(
      `hcsync needs Node.js ${MIN_MAJOR} or newer; this is ${process.version}.\n` +
        `Fix: run \`make setup\` in the hcsync checkout (it fetches Node 24 into .tools/), or install Node ${MIN_MAJOR}+.`,
    );
    process.exit(2);
  }
  const child = spawn(local, [cli, ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the whole foreground process group, the child included: let the child decide how to
  // stop, and pass on the signals a supervisor sends to this process alone.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (sig !== 'SIGINT') child.kill(sig);
    });
  }
  child.on('error', (err) => {
    console.error(`hcsync: could not start ${local}: ${err.message}`);
    process.exit(2);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}
