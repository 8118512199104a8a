#!/usr/bin/env node
// The `hcsync` binary: the command line of this process, run by sidecar/cli/program.ts (which has the
// verbs and the exit codes: 0 ok, 1 the operation failed, 2 usage or configuration, 3 diagnose found a
// RED check).
import { runCli } from './cli/program.js';
import { EXIT } from './cli/admin.js';

// `hcsync sql | head` closes the pipe early: that is the reader's choice, not an error to report.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const code = await runCli(process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr });
// A verb that succeeded (or diagnose's RED, a result like any other) lets the process end by itself:
// `run` keeps serving, and what was written is flushed. A failure stops at once, whatever a half-started
// verb left open.
if (code === EXIT.ok || code === EXIT.red) process.exitCode = code;
else process.exit(code);
