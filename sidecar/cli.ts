#!/usr/bin/env node
// The `hcsync` command: thin verbs over the SQL API and the sidecar.
import { Command } from 'commander';
import { loadConfig, ConfigError } from './config.js';
import { migrate, installScript, SchemaError } from './db/contractor.js';
import { startSidecar } from './run.js';

const program = new Command('hcsync').description('Heroku-Connect-compatible Salesforce ⇄ Postgres sync').showHelpAfterError();

program
  .command('migrate')
  .description('install or upgrade hcsync\'s SQL in DATABASE_URL')
  .action(async () => {
    const config = loadConfig(process.env, { salesforce: false });
    const { applied } = await migrate(config.databaseUrl);
    console.log(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date');
  });

program
  .command('sql')
  .description('print the full install script (apply with psql -v ON_ERROR_STOP=1 -f)')
  .action(() => {
    process.stdout.write(installScript());
  });

program
  .command('run')
  .description('run the sidecar: Salesforce ⇄ Postgres sync, /healthz and /metrics')
  .action(async () => {
    const config = loadConfig();
    const sidecar = await startSidecar(config);
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      await sidecar.stop();
      process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof SchemaError) {
    console.error(err.message);
    process.exit(2);
  }
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
