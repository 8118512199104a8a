#!/usr/bin/env node
// `make bench` / `make bench-quick`: runs the benchmarks one after another on one Postgres server, prints
// one table, writes the JSON record to bench/results/, and exits non-zero when any benchmark could not run
// (naming it and why). Performance is measured here and only here: the test suite never times anything.
import { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { benchmarks } from './benchmarks/index.js';
import { interruptAll, type BenchContext } from './lib/bench.js';
import { machine, versions } from './lib/machine.js';
import { startBenchServer } from './lib/postgres.js';
import { table, writeRecord, type Outcome, type RunRecord } from './lib/report.js';

const program = new Command('bench')
  .description('hcsync benchmarks: real sidecar, real Salesforce emulator, real Postgres')
  .option('--quick', 'smoke run with small sizes and short windows (under 2 minutes)', false)
  .option('--large', 'the volume runs: a 5,000,000-row initial load and 1,000,000 outbound updates (about 40 minutes)', false)
  .option('--only <names>', 'comma-separated benchmark names to run (see --list)')
  .option('--list', 'list the benchmarks and exit', false)
  .parse(process.argv);

const opts = program.opts<{ quick: boolean; large: boolean; only?: string; list: boolean }>();

async function main(): Promise<number> {
  if (opts.list) {
    for (const b of benchmarks) {
      console.log(`${b.name.padEnd(28)} ${b.title}${b.optIn ? `  (only with --only: ${b.optIn})` : ''}${b.large ? `  [--large: ${b.large}]` : ''}`);
    }
    return 0;
  }
  if (opts.quick && opts.large) {
    console.error('--quick and --large are opposites: give one of them');
    return 2;
  }
  let selected = benchmarks.filter((b) => (opts.large ? b.large : !b.optIn));
  if (opts.only) {
    const wanted = opts.only.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = wanted.filter((w) => !benchmarks.some((b) => b.name === w));
    if (unknown.length) {
      console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${benchmarks.map((b) => b.name).join(', ')}`);
      return 2;
    }
    selected = benchmarks.filter((b) => wanted.includes(b.name));
    const small = opts.large ? selected.filter((b) => !b.large) : [];
    if (small.length) {
      console.error(`--large has no larger size for: ${small.map((b) => b.name).join(', ')}; these have one: ${benchmarks.filter((b) => b.large).map((b) => b.name).join(', ')}`);
      return 2;
    }
  }

  const startedAt = new Date().toISOString();
  const resultsDir = resolve('bench/results');
  const workDir = join(resultsDir, 'work', startedAt.replace(/[:.]/g, '-'));
  mkdirSync(workDir, { recursive: true });
  const t0 = performance.now();
  const progress = (msg: string) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);

  const mach = machine();
  progress(`starting Postgres (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'})`);
  const server = await startBenchServer();
  const record: RunRecord = {
    startedAt,
    command: `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    mode: opts.quick ? 'quick' : opts.large ? 'large' : 'full',
    machine: mach,
    versions: versions(server.version),
    postgres: { kind: server.kind, settings: server.settings },
    outcomes: [],
  };
  progress(`PostgreSQL ${server.version}, node ${process.version}, hcsync ${record.versions.hcsync}, ${mach.cores} × ${mach.cpu}`);

  const ctx: BenchContext = { quick: opts.quick, large: opts.large, server, progress, workDir };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      progress(`${sig}: stopping the sidecar, the emulator and Postgres`);
      // Connections of the interrupted benchmark error out as Postgres goes: expected now, not news.
      process.on('uncaughtException', () => {});
      interruptAll();
      void server.stop().finally(() => process.exit(130));
    });
  }
  try {
    for (const b of selected) {
      progress(`── ${b.name}: ${b.title}`);
      const started = performance.now();
      const outcome: Outcome = { name: b.name, title: b.title, ok: false, seconds: 0 };
      try {
        outcome.result = await b.run({ ...ctx, progress: (m) => progress(`${b.name}: ${m}`) });
        outcome.ok = true;
      } catch (err) {
        const e = err as Error & { partial?: Outcome['result'] };
        outcome.error = e?.message ?? String(err);
        if (e?.partial) outcome.result = e.partial;
        progress(`${b.name} could not run: ${outcome.error}`);
      }
      outcome.seconds = Math.round((performance.now() - started) / 100) / 10;
      record.outcomes.push(outcome);
    }
  } finally {
    await server.stop().catch(() => {});
  }

  const file = writeRecord(resultsDir, record);
  console.log(`\nhcsync benchmarks (${record.mode}) ${startedAt}`);
  console.log(`machine: ${mach.cores} × ${mach.cpu}, ${mach.memoryGiB} GiB; node ${process.version}; PostgreSQL ${server.version} (${server.kind}); hcsync ${record.versions.hcsync}\n`);
  console.log(table(record.outcomes));
  console.log(`\nJSON: ${file}   (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  const failed = record.outcomes.filter((o) => !o.ok);
  if (failed.length) {
    console.error(`\n${failed.length} benchmark(s) could not run:`);
    for (const f of failed) console.error(`  - ${f.name}: ${f.error}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack ?? err.message : err);
    process.exit(1);
  },
);
