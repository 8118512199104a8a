// The `hcsync` command line: every verb, named after the `heroku connect:*` verb it mirrors, each a thin
// wrapper over one call of the SQL API (the same call an operator can make from psql).
// Exit codes: 0 ok, 1 the operation failed (the SQL API refused it: message and hint printed),
// 2 usage or configuration (bad arguments, unreadable or invalid file, DATABASE_URL unreachable,
// schema not installed; nothing was changed), 3 diagnose found a RED check.
//
// runCli() runs one command line against the environment and streams it is given and returns the exit
// code: the binary (sidecar/cli.ts) passes its own process's, and tests run one-shot verbs in their own
// process with theirs. Settings are read from `io.env` only. `run`, `demo`, `emulator` and `logs --follow`
// keep running and answer signals: they belong to a process of their own.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { loadConfig, ConfigError, connectionSetting } from '../config.js';
import { migrate, installScript } from '../db/contractor.js';
import { EXIT, UsageError, describeError, table, withAdmin } from './admin.js';
import { diagnose } from './diagnose.js';
import { followMappings } from '../follow.js';
import { isRefusedSignIn } from '../salesforce/errors.js';
import * as ops from '../db/hc/ops.js';

/** Where a command line writes (process.stdout and process.stderr for the binary). */
export interface CliStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
  hasColors?: () => boolean;
}

export interface CliIo {
  /** The whole environment the settings are read from (process.env for the binary). */
  env: NodeJS.ProcessEnv;
  stdout: CliStream;
  stderr: CliStream;
}

let version: string | undefined;

/** package.json's version, found from here both in the source tree and in dist/. */
function packageVersion(): string {
  if (version) return version;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'hcsync') return (version = pkg.version);
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('hcsync: package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Colours in help and errors, as commander decides them, but from `env` rather than process.env. */
function colours(env: NodeJS.ProcessEnv, stream: CliStream): boolean {
  if (env.NO_COLOR || env.FORCE_COLOR === '0' || env.FORCE_COLOR === 'false') return false;
  if (env.FORCE_COLOR || env.CLICOLOR_FORCE !== undefined) return true;
  return Boolean(stream.isTTY && stream.hasColors?.());
}

/** `--config` / `import` input: inline JSON or a file name; any problem is a usage error naming the fix. */
function readJson(arg: string, what: string): unknown {
  const inline = arg.trim().startsWith('{');
  let text = arg;
  if (!inline) {
    try {
      text = readFileSync(arg, 'utf8');
    } catch (e) {
      throw new UsageError(`${what}: cannot read ${arg} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): give an existing file`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${what}: ${inline ? 'the argument' : arg} is not valid JSON (${(e as Error).message}): fix the file, nothing was changed`);
  }
}

/** --polling: whole seconds in the range the SQL API accepts, or a usage error naming it. */
function pollingSeconds(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > 86_400) throw new UsageError(`--polling is whole seconds from 1 to 86400 (e.g. 600): got ${v}`);
  return n;
}

/** The failed writes a retry or discard applies to: ids, a table, or --all; never nothing by accident. */
function failedSelection(ids: string[], opts: { table?: string; all?: boolean }): { ids: number[] | null; table: string | null } {
  const nums = ids.map((i) => Number(i));
  if (nums.some((n) => !Number.isInteger(n) || n <= 0)) throw new UsageError(`trigger log ids are whole numbers (see hcsync write-errors): got ${ids.join(' ')}`);
  if (!nums.length && !opts.table && !opts.all) throw new UsageError('name the failed writes: trigger log ids (from hcsync write-errors), --table TABLE, or --all');
  return { ids: nums.length ? nums : null, table: opts.table ?? null };
}

/** The program for one command line; `result.code` is what a verb that ends normally exits with. */
function buildProgram(io: CliIo, result: { code: number }): Command {
  const program = new Command('hcsync')
    .description('Heroku-Connect-compatible Salesforce ⇄ Postgres sync')
    .version(packageVersion(), '-V, --version', 'print the hcsync version')
    .option('-c, --connection <name>', 'connection name or schema (needed only when the database has several)')
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      getOutHelpWidth: () => (io.stdout.isTTY ? io.stdout.columns : undefined) ?? 80,
      getErrHelpWidth: () => (io.stderr.isTTY ? io.stderr.columns : undefined) ?? 80,
      getOutHasColors: () => colours(io.env, io.stdout),
      getErrHasColors: () => colours(io.env, io.stderr),
    })
    .showHelpAfterError()
    .exitOverride();

  const say = (line: string) => void io.stdout.write(line + '\n');
  const warn = (line: string) => void io.stderr.write(line + '\n');
  const dbUrl = () => loadConfig(io.env, { salesforce: false }).databaseUrl;
  const connection = (): string | null => program.opts().connection ?? connectionSetting(io.env);
  const print = (v: unknown, json: boolean, text: () => string) => say(json ? JSON.stringify(v, null, 2) : text());

  program
    .command('migrate')
    .description("install or upgrade hcsync's SQL in DATABASE_URL")
    .action(async () => {
      const url = dbUrl();
      await withAdmin(url, async () => {}, { migrated: false });
      const { applied } = await migrate(url);
      say(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date');
    });

  program
    .command('sql')
    .description('print the full install script (apply with psql -v ON_ERROR_STOP=1 -f)')
    .action(() => {
      io.stdout.write(installScript());
    });

  program
    .command('run')
    .description('run the sidecar: Salesforce ⇄ Postgres sync, /healthz and /metrics')
    .action(async () => {
      const config = loadConfig(io.env);
      // Loaded on demand: the operator verbs never load the sync code (and start faster without it).
      const { startSidecar } = await import('../run.js');
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

  program
    .command('emulator')
    .description('run the Salesforce org emulator (see hcsync emulator --help)')
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action(async (args: string[]) => {
      // Imported by URL so the sidecar build does not depend on the emulator's source being present.
      const mod = (await import(new URL('../../emulator/cli.js', import.meta.url).href)) as { runEmulatorCli(argv: string[]): Promise<void> };
      await mod.runEmulatorCli(args);
    });

  program
    .command('demo')
    .description('embedded Postgres + Salesforce emulator + sidecar + live traffic (what make demo runs)')
    .option('--data <dir>', 'where the demo keeps its data (default: HC_DEMO_DATA, or .data)')
    .option('--no-traffic', 'do not generate changes')
    .action(async (opts: { data?: string; traffic: boolean }) => {
      const { runDemo } = await import('../demo/index.js');
      await runDemo({ dataDir: opts.data, traffic: opts.traffic });
    });

  for (const verb of ['info', 'status']) {
    program
      .command(verb)
      .description('connections and mappings: state, rows, pending and errored writes (hc.status, hc.mappings)')
      .option('--json', 'machine-readable output')
      .action(async (opts: { json?: boolean }) => {
        await withAdmin(dbUrl(), async (c) => {
          const conn = connection();
          const status = await ops.connectionStatus(c, conn);
          const mappings = await ops.mappingsOf(c, conn);
          // Which connections a sidecar is running for: the state in hc.status is what the last one left,
          // so without a sidecar "IDLE" must not read as "syncing".
          const leaders = await ops.runningSidecars(c);
          const running = new Set(leaders.map((l) => l.connection_name));
          const connections = status.map((s) => ({ ...s, sidecar_running: running.has(s.name) }));
          const idle = connections.filter((s) => !s.sidecar_running).map((s) => s.name);
          print({ connections, mappings }, Boolean(opts.json), () =>
            [
              table(connections),
              ...(idle.length ? [`\nno sidecar is running for ${idle.join(', ')}: nothing syncs, and the state above is what the last one left (start one: hcsync run)`] : []),
              '',
              table(mappings.map(({ config: _c, ...m }) => m)),
            ].join('\n'),
          );
        });
      });
  }

  // Connection-level control: pause, resume, recover (HC's connect:pause|resume|recover).
  for (const [verb, control, what] of [
    ['pause', ops.pauseConnection, 'stop syncing both ways; changes keep queueing in _trigger_log'],
    ['resume', ops.resumeConnection, 'sync again from where it stopped'],
    ['recover', ops.recoverConnection, 'clear an error state and let the sidecar retry'],
  ] as const) {
    program
      .command(verb)
      .description(what)
      .action(async () => {
        await withAdmin(dbUrl(), async (c) => {
          await control(c, connection());
          for (const r of await ops.connectionStates(c, connection())) say(`${r.name}: ${r.state}`);
        });
      });
  }

  // The API budget governor (sql/000060_budget.sql): what it acts on, and its settings (hc.set_api_budget).
  program
    .command('budget')
    .description("the org's daily API use, hcsync's calls and forecast, each mapping's cap and what waits; the options change the governor's settings (hc.set_api_budget)")
    .option('--slow-percent <n>', 'background reads run less often from this share of the daily allowance (1-100; default 70)')
    .option('--pause-percent <n>', 'background reads wait from this share (1-100; default 90)')
    .option('--slow-factor <n>', 'how many times less often they run when slowed (2-100; default 4)')
    .option('--pause-writes <on|off>', 'whether writes wait too at the paused level (default off)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { slowPercent?: string; pausePercent?: string; slowFactor?: string; pauseWrites?: string; json?: boolean }) => {
      // Whole numbers here; their ranges are the database's to check (one rule, and its message).
      const whole = (flag: string, v: string | undefined): number | null => {
        if (v === undefined) return null;
        if (!/^\d{1,9}$/.test(v.trim())) throw new UsageError(`${flag} is a whole number (a percentage, or the slow-down factor): got ${v}`);
        return Number(v);
      };
      const slow = whole('--slow-percent', opts.slowPercent);
      const pause = whole('--pause-percent', opts.pausePercent);
      const factor = whole('--slow-factor', opts.slowFactor);
      let pauseWrites: boolean | null = null;
      if (opts.pauseWrites !== undefined) {
        const v = opts.pauseWrites.trim().toLowerCase();
        if (['on', 'true', 'yes'].includes(v)) pauseWrites = true;
        else if (['off', 'false', 'no'].includes(v)) pauseWrites = false;
        else throw new UsageError(`--pause-writes is on or off: got ${opts.pauseWrites}`);
      }
      await withAdmin(dbUrl(), async (c) => {
        const conn = connection();
        if (slow !== null || pause !== null || factor !== null || pauseWrites !== null) {
          await ops.setApiBudget(c, conn, { slowPercent: slow, pausePercent: pause, slowFactor: factor, pauseWrites });
        }
        const budget = await ops.apiBudget(c, conn);
        const mappings = await ops.apiBudgetMappings(c, conn);
        const waits = await ops.apiBudgetWaits(c, conn);
        const n = (v: unknown) => (v === null || v === undefined ? '?' : Number(v).toLocaleString('en-US'));
        print({ budget, mappings, waits }, Boolean(opts.json), () =>
          [
            ...budget.flatMap((b) => [
              `${b.connection_name}: ${b.level} · org use ${n(b.used)} of ${n(b.allowance)}${b.used_percent === null ? ' (not reported in the last 24 hours)' : ` (${b.used_percent} %)`}` +
                ` · hcsync ${n(b.own_calls_24h)} calls in 24 h, ${n(b.own_calls_1h)} in the last hour · forecast ${n(b.forecast_used)}${b.forecast_percent === null ? '' : ` (${b.forecast_percent} %)`}`,
              `  ${b.message ?? 'nothing is held back'}`,
              `  slow from ${b.slow_percent} %, paused from ${b.pause_percent} %, ${b.slow_factor}× slower, writes ${b.pause_writes ? 'wait' : 'go on'} at the paused level`,
            ]),
            '',
            table(mappings),
            '',
            waits.length ? table(waits) : 'nothing waits',
          ].join('\n'),
        );
      });
    });

  program
    .command('export')
    .argument('[file]', 'write the configuration here (default: standard output)')
    .description("the connection's mappings in Heroku Connect's export format (hc.export_config())")
    .action(async (file?: string) => {
      await withAdmin(dbUrl(), async (c) => {
        const text = JSON.stringify(await ops.exportConfig(c, connection()), null, 2) + '\n';
        if (file) {
          writeFileSync(file, text);
          warn(`wrote ${file}`);
        } else io.stdout.write(text);
      });
    });

  program
    .command('import')
    .argument('<file>', "a Heroku Connect export (connect:export) or hcsync export")
    .description('create or change the mappings in the file; mappings not in it are kept (hc.import_config())')
    .action(async (file: string) => {
      const config = readJson(file, 'import') as { connection?: { name?: unknown; app_name?: unknown } };
      const { schema } = loadConfig(io.env, { salesforce: false });
      await withAdmin(dbUrl(), async (c) => {
        // Moving from Heroku Connect, the database has no connection yet: the import makes it from the
        // file's connection block, in HC_SCHEMA (what `hcsync run` will look for), together with the mappings.
        const r = await ops.inTransaction(c, async () => {
          if (await ops.noConnections(c)) {
            const block = config?.connection ?? {};
            const name = connection() ?? [block.name, block.app_name].find((x): x is string => typeof x === 'string' && x !== '') ?? schema;
            await ops.createConnection(c, name, schema);
            warn(`created connection ${name} (schema ${schema})`);
          }
          return ops.importConfig(c, config, connection());
        });
        say(typeof r === 'object' && r !== null ? JSON.stringify(r) : `imported ${file}`);
      });
    });

  program
    .command('mapping:create')
    .argument('<object>', 'Salesforce object API name, e.g. Contact')
    .description('map an object (hc.create_mapping()); the sidecar describes it, creates the table and loads it')
    .option('--config <json|file>', "the mapping config in Heroku Connect's format (access, fields, indexes, upsert_field …)")
    .option('--access <access>', 'read_only or read_write (without --config)', 'read_only')
    .option('--fields <list>', 'comma-separated field API names (without --config)')
    .option('--upsert-field <field>', 'unique External ID field used to match records (without --config)')
    .option('--polling <seconds>', 'poll interval (without --config)')
    .option('--wait', 'follow the initial load until the mapping is DATA_SYNCED (needs hcsync run)')
    .action(async (object: string, opts: { config?: string; access: string; fields?: string; upsertField?: string; polling?: string; wait?: boolean }) => {
      let config: Record<string, unknown>;
      if (opts.config) {
        config = readJson(opts.config, '--config') as Record<string, unknown>;
      } else {
        if (!opts.fields) throw new UsageError('mapping:create needs --config <json|file> or --fields Name,Email__c,…');
        const fields = ['Id', 'SystemModstamp', 'IsDeleted', 'CreatedDate', ...opts.fields.split(',').map((f) => f.trim()).filter(Boolean)];
        config = {
          access: opts.access,
          fields: Object.fromEntries([...new Set(fields)].map((f) => [f, {}])),
          indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, ...(opts.upsertField ? { [opts.upsertField]: { unique: true } } : {}) },
          ...(opts.upsertField ? { upsert_field: opts.upsertField } : {}),
          sf_notify_enabled: false,
          sf_polling_seconds: opts.polling ? pollingSeconds(opts.polling) : 600,
          sf_max_daily_api_calls: 30000,
        };
        if (opts.upsertField) (config.fields as Record<string, object>)[opts.upsertField] = {};
      }
      await withAdmin(dbUrl(), async (c) => {
        const id = await ops.createMapping(c, object, config, connection());
        say(`mapping ${object} created (id ${id}); the sidecar creates and loads its table`);
        if (opts.wait) await followMappings(c, { objects: [object], connection: connection(), say });
      });
    });

  program
    .command('mapping:delete')
    .argument('<object>')
    .description('remove a mapping and drop its table (hc.delete_mapping())')
    .requiredOption('--confirm <object>', 'repeat the object name: the table and its rows are dropped')
    .option('--keep-table', 'keep the table and its rows, stop syncing it')
    .action(async (object: string, opts: { confirm: string; keepTable?: boolean }) => {
      if (opts.confirm.toLowerCase() !== object.toLowerCase()) throw new UsageError(`--confirm ${opts.confirm} does not match ${object}: nothing was deleted`);
      await withAdmin(dbUrl(), async (c) => {
        await ops.deleteMapping(c, object, connection(), !opts.keepTable);
        say(`mapping ${object} deleted${opts.keepTable ? ' (table kept)' : ''}`);
      });
    });

  for (const [verb, fn, request, what] of [
    ['mapping:reload', 'hc.reload', ops.requestReload, 'reload the table from Salesforce'],
    ['mapping:poll', 'hc.poll_now', ops.requestPoll, 'poll Salesforce for changes now'],
    ['mapping:abort', 'hc.abort', ops.requestAbort, 'abort the running load or poll'],
  ] as const) {
    program
      .command(verb)
      .argument('<object>')
      .description(`${what} (${fn}())`)
      .option('--wait', verb === 'mapping:abort'
        ? 'follow it until the load or poll has stopped (ABORTED) (needs hcsync run)'
        : 'follow it until the mapping is DATA_SYNCED again; fails if it is aborted meanwhile (needs hcsync run)')
      .action(async (object: string, opts: { wait?: boolean }) => {
        await withAdmin(dbUrl(), async (c) => {
          const r = await request(c, object, connection());
          say(`${object}: ${r === 'cancelled' ? 'pending request cancelled' : `${r} requested`}`);
          if (opts.wait) {
            await followMappings(c, { objects: [object], connection: connection(), say, aborted: verb === 'mapping:abort' ? 'done' : 'fail' });
          }
        });
      });
  }

  program
    .command('mapping:state')
    .argument('<object>')
    .description("a mapping's state, e.g. DATA_SYNCED")
    .option('--json', 'the whole hc.mappings row')
    .action(async (object: string, opts: { json?: boolean }) => {
      await withAdmin(dbUrl(), async (c) => {
        // hc._mapping raises "no mapping for object …" with the mapped objects as hint.
        const m = await ops.mappingById(c, await ops.mappingId(c, object, connection()));
        print(m, Boolean(opts.json), () => m!.state);
      });
    });

  program
    .command('state')
    .description("the connection's state, e.g. IDLE (heroku connect:state)")
    .action(async () => {
      await withAdmin(dbUrl(), async (c) => {
        say(await ops.connectionState(c, connection()));
      });
    });

  program
    .command('mapping:update')
    .argument('<object>')
    .description("change a mapping's config (hc.update_mapping()); the sidecar alters the table, keeping its rows")
    .requiredOption('--config <json|file>', "the whole mapping config in Heroku Connect's format")
    .option('--wait', 'follow it until the mapping is DATA_SYNCED again (needs hcsync run)')
    .action(async (object: string, opts: { config: string; wait?: boolean }) => {
      const config = readJson(opts.config, '--config');
      await withAdmin(dbUrl(), async (c) => {
        await ops.updateMapping(c, object, config, connection());
        say(`mapping ${object} updated`);
        if (opts.wait) await followMappings(c, { objects: [object], connection: connection(), say });
      });
    });

  for (const [verb, fn, apply, what, done] of [
    ['retry', 'hc.retry', ops.retryFailedWrites, 'send failed writes again (FAILED back to NEW, archived ones re-queued)', 're-queued'],
    ['discard', 'hc.discard', ops.discardFailedWrites, 'give up failed writes: mark them IGNORED, nothing is sent', 'discarded'],
  ] as const) {
    program
      .command(verb)
      .argument('[ids...]', 'trigger log ids, as hcsync write-errors lists them')
      .description(`${what} (${fn}())`)
      .option('--table <table>', 'every failed write of this table')
      .option('--all', 'every failed write of the connection')
      .action(async (ids: string[], opts: { table?: string; all?: boolean }) => {
        const sel = failedSelection(ids, opts);
        await withAdmin(dbUrl(), async (c) => {
          const n = await apply(c, sel, connection());
          say(`${n} ${n === 1 ? 'write' : 'writes'} ${done}`);
        });
      });
  }

  program
    .command('logs')
    .description("the sync log (hc.sync_log): loads, polls, write failures, state changes")
    .option('--mapping <object>', 'only this object')
    .option('--level <level>', 'debug, info, warn or error: this level and above', 'info')
    .option('-n, --lines <n>', 'how many of the latest entries', '50')
    .option('-f, --follow', 'keep printing new entries as they come (Ctrl-C to stop)')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { mapping?: string; level: string; lines: string; follow?: boolean; json?: boolean }) => {
      const levels = ['debug', 'info', 'warn', 'error'];
      if (!levels.includes(opts.level)) throw new UsageError(`--level must be one of ${levels.join(', ')}: got ${opts.level}`);
      const lines = Number(opts.lines);
      if (!Number.isInteger(lines) || lines < 0) throw new UsageError(`--lines is a whole number: got ${opts.lines}`);
      await withAdmin(dbUrl(), async (c) => {
        const mappingId = opts.mapping ? await ops.mappingId(c, opts.mapping, connection()) : null;
        const connectionId = await ops.connectionId(c, connection());
        const wanted = levels.slice(levels.indexOf(opts.level));
        const read = async (after: number | null, limit: number | null) =>
          (await ops.syncLog(c, { connectionId, levels: wanted, mappingId, after, limit })).reverse();
        const show = (r: ops.SyncLogRow) =>
          say(
            opts.json
              ? JSON.stringify(r)
              : `${(r.at as Date).toISOString()} ${String(r.level).toUpperCase().padEnd(5)} ${r.object_name ?? '-'} ${r.event}${r.message ? `: ${r.message}` : ''}`,
          );
        let last = 0;
        for (const r of await read(null, lines)) {
          show(r);
          last = Number(r.id);
        }
        if (!opts.follow) return;
        if (!last) last = await ops.lastSyncLogId(c);
        let stop = false;
        const quit = () => (stop = true);
        process.once('SIGINT', quit);
        process.once('SIGTERM', quit);
        while (!stop) {
          for (const r of await read(last, null)) {
            show(r);
            last = Number(r.id);
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      });
    });

  program
    .command('notifications')
    .description('notifications: writes newly failing, the connection or a mapping in an error state; still active or not, and webhook delivery (hc.notifications_list)')
    .option('-n, --lines <n>', 'how many of the latest', '20')
    .option('--json', 'machine-readable output')
    .action(async (opts: { lines: string; json?: boolean }) => {
      const n = Number(opts.lines);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`--lines is a whole number from 1 to 1000: got ${opts.lines}`);
      await withAdmin(dbUrl(), async (c) => {
        const rows = await ops.notifications(c, n, connection());
        print({ count: rows.length, results: rows }, Boolean(opts.json), () => table(rows, ['id', 'at', 'kind', 'object_name', 'active', 'webhook', 'message']));
      });
    });

  program
    .command('write-errors')
    .description('writes Salesforce rejected in the last 24 hours (hc.write_errors)')
    .option('--mapping <object>', 'only this object')
    .option('--json', 'machine-readable output')
    .action(async (opts: { mapping?: string; json?: boolean }) => {
      await withAdmin(dbUrl(), async (c) => {
        if (opts.mapping) await ops.assertMapped(c, opts.mapping, connection());
        const rows = await ops.recentWriteErrors(c, opts.mapping ?? null, connection());
        print({ count: rows.length, results: rows }, Boolean(opts.json), () => table(rows));
      });
    });

  program
    .command('conflicts')
    .description('conflicts between Postgres and Salesforce (hc.conflicts): parked ones wait for `hcsync resolve`')
    .option('--mapping <object>', 'only this object')
    .option('--all', 'resolved ones too (the latest 200)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { mapping?: string; all?: boolean; json?: boolean }) => {
      await withAdmin(dbUrl(), async (c) => {
        if (opts.mapping) await ops.assertMapped(c, opts.mapping, connection());
        const rows = await ops.conflicts(c, connection(), opts.mapping ?? null, Boolean(opts.all));
        print({ count: rows.length, results: rows }, Boolean(opts.json), () =>
          table(rows.map((r) => ({ ...r, pg_values: JSON.stringify(r.pg_values), sf_values: JSON.stringify(r.sf_values) })),
                ['id', 'object_name', 'sfid', 'kind', 'fields', 'policy', 'winner', 'pg_values', 'sf_values', 'detected_at']));
      });
    });

  program
    .command('resolve')
    .argument('<id>', 'the conflict id, as hcsync conflicts lists it')
    .argument('<choice>', `pg (Postgres's values), sf (Salesforce's), or a JSON object of chosen values, e.g. '{"Phone": "555-0100"}'`)
    .description("resolve a parked conflict: the chosen values reach the side that lost through the normal paths (hc.resolve_conflict)")
    .action(async (id: string, choice: string) => {
      if (!/^[1-9][0-9]*$/.test(id)) throw new UsageError(`the conflict id is a whole number, as hcsync conflicts lists it: got ${id}`);
      if (choice !== 'pg' && choice !== 'sf') {
        let parsed: unknown;
        try {
          parsed = JSON.parse(choice);
        } catch {
          parsed = undefined;
        }
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
          throw new UsageError(`the choice is pg, sf or a JSON object of values such as '{"Phone": "555-0100"}': got ${choice}`);
        }
      }
      await withAdmin(dbUrl(), async (c) => {
        const r = await ops.resolveConflict(c, id, choice);
        say(`conflict ${r.id} (${r.object_name} ${r.sfid}, ${r.fields.length ? r.fields.join(', ') : r.kind}) resolved: ${r.winner === 'values' ? 'chosen values' : r.winner === 'pg' ? "Postgres's values" : "Salesforce's values"}`);
      });
    });

  program
    .command('sf')
    .argument('<method>', 'GET, POST, PATCH or DELETE')
    .argument('<path>', 'REST path under the pinned API version, e.g. /sobjects/Account/001…, or a full /services/… path')
    .argument('[body]', 'JSON body')
    .description('one authenticated Salesforce REST call with the configured SF_* credentials (counted in hc.api_calls)')
    .action(async (method: string, path: string, body?: string) => {
      const config = loadConfig(io.env);
      const payload = body === undefined ? undefined : JSON.stringify(readJson(body, 'body'));
      const m = method.toUpperCase();
      if (!['GET', 'POST', 'PATCH', 'PUT', 'DELETE'].includes(m)) throw new UsageError(`method ${method} is not one of GET, POST, PATCH, PUT, DELETE`);
      const { adminPool } = await import('../db/pool.js');
      const { SalesforceClient } = await import('../salesforce/client.js');
      const { request, restPath } = await import('../salesforce/rest.js');
      const pool = adminPool(config.databaseUrl, { max: 1, application_name: 'hcsync cli' });
      try {
        const connectionId = await ops.connectionIdBySchema(pool, config.schema).catch(() => undefined);
        const sf = await SalesforceClient.connect(config.salesforce, { pool: connectionId !== undefined ? pool : undefined, connectionId });
        try {
          const url = restPath(sf, path);
          const res = await request(sf, m as 'GET', path, payload);
          say(res === undefined || res === null || res === '' ? `${m} ${url}: ok` : JSON.stringify(res, null, 2));
        } finally {
          await sf.close();
        }
      } finally {
        await pool.end();
      }
    });

  program
    .command('diagnose')
    .description('check the database, the schema, the mappings and the org: RED / YELLOW / GREEN per check')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const url = dbUrl();
      const checks = await withAdmin(url, (c) => diagnose(url, c, io.env), { migrated: false });
      const count = (s: string) => checks.filter((c) => c.status === s).length;
      print({ checks, red: count('RED'), yellow: count('YELLOW'), green: count('GREEN'), skipped: count('SKIPPED') }, Boolean(opts.json), () =>
        [...checks.map((c) => `${c.status.padEnd(7)} ${c.scope}${c.subject ? ` ${c.subject}` : ''} · ${c.rule}: ${c.message}`),
          `\n${count('RED')} red, ${count('YELLOW')} yellow, ${count('GREEN')} green, ${count('SKIPPED')} skipped`].join('\n'),
      );
      if (count('RED')) result.code = EXIT.red;
    });

  return program;
}

/**
 * Runs `hcsync …args` (the words after `hcsync`) and resolves with its exit code instead of exiting.
 * Errors are printed to `io.stderr` the way an operator reads them: `hcsync: …` with the SQL API's
 * hint, a configuration problem with its fix.
 */
export async function runCli(args: string[], io: CliIo): Promise<number> {
  const result = { code: EXIT.ok as number };
  const warn = (line: string) => void io.stderr.write(line + '\n');
  try {
    await buildProgram(io, result).parseAsync(args, { from: 'user' });
    return result.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; commander already printed its message for the rest.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof ConfigError) {
      warn(err.message);
      return EXIT.usage;
    }
    // Salesforce refused the SF_* credentials (invalid_grant, invalid_client …): a configuration problem
    // like any other setting, so exit 2 (a transient sign-in failure is retried and never ends here).
    if (isRefusedSignIn(err)) {
      warn(`hcsync: ${err.message}\nSalesforce refused the credentials: fix the SF_* settings (see README, Configuration).`);
      return EXIT.usage;
    }
    const { message, code } = describeError(err);
    // The SQL API's own messages already start with "hcsync: ".
    warn(`hcsync: ${message.replace(/^hcsync: /, '')}`);
    return code;
  }
}
