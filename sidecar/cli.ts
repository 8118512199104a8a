#!/usr/bin/env node
// The `hcsync` command. Each verb is a thin wrapper over one call of the SQL API (the same call an
// operator can make from psql), named after the `heroku connect:*` verb it mirrors.
// Exit codes: 0 ok, 1 the operation failed (the SQL API refused it: message and hint printed),
// 2 usage or configuration (bad arguments, unreadable or invalid file, DATABASE_URL unreachable,
// schema not installed; nothing was changed), 3 diagnose found a RED check.
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { loadConfig, ConfigError } from './config.js';
import { migrate, installScript } from './db/contractor.js';
import { EXIT, UsageError, describeError, table, withAdmin } from './cli/admin.js';
import { diagnose } from './cli/diagnose.js';
import { followMappings } from './cli/follow.js';

// `hcsync sql | head` closes the pipe early: that is the reader's choice, not an error to report.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('hcsync')
  .description('Heroku-Connect-compatible Salesforce ⇄ Postgres sync')
  .version(version, '-V, --version', 'print the hcsync version')
  .option('-c, --connection <name>', 'connection name or schema (needed only when the database has several)')
  .showHelpAfterError()
  .exitOverride();

const dbUrl = () => loadConfig(process.env, { salesforce: false }).databaseUrl;
const connection = (): string | null => program.opts().connection ?? process.env.HC_CONNECTION_NAME ?? null;
const print = (v: unknown, json: boolean, text: () => string) => console.log(json ? JSON.stringify(v, null, 2) : text());

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

program
  .command('migrate')
  .description("install or upgrade hcsync's SQL in DATABASE_URL")
  .action(async () => {
    const url = dbUrl();
    await withAdmin(url, async () => {}, { migrated: false });
    const { applied } = await migrate(url);
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
    // Loaded on demand: the operator verbs never load the sync code (and start faster without it).
    const { startSidecar } = await import('./run.js');
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
    const mod = (await import(new URL('../emulator/cli.js', import.meta.url).href)) as { runEmulatorCli(argv: string[]): Promise<void> };
    await mod.runEmulatorCli(args);
  });

program
  .command('demo')
  .description('embedded Postgres + Salesforce emulator + sidecar + live traffic (what make demo runs)')
  .option('--data <dir>', 'where the demo keeps its data', process.env.HC_DEMO_DATA ?? '.data')
  .option('--no-traffic', 'do not generate changes')
  .action(async (opts: { data: string; traffic: boolean }) => {
    const { runDemo } = await import('./demo/index.js');
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
        const status = (await c.query('select * from hc.status where $1::text is null or name = $1 or schema_name = $1', [conn])).rows;
        const mappings = (
          await c.query(
            'select * from hc.mappings where $1::text is null or connection_name = $1 or schema_name = $1 order by connection_name, object_name',
            [conn],
          )
        ).rows;
        // Which connections a sidecar is running for: the state in hc.status is what the last one left,
        // so without a sidecar "IDLE" must not read as "syncing".
        const leaders = (await c.query('select connection_name, pid, application_name from hc.inbound_leaders where pid is not null')).rows;
        const running = new Set(leaders.map((l) => l.connection_name as string));
        const connections = status.map((s) => ({ ...s, sidecar_running: running.has(s.name) }));
        const idle = connections.filter((s) => !s.sidecar_running).map((s) => s.name as string);
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
for (const [verb, fn, what] of [
  ['pause', 'hc.pause', 'stop syncing both ways; changes keep queueing in _trigger_log'],
  ['resume', 'hc.resume', 'sync again from where it stopped'],
  ['recover', 'hc.recover', 'clear an error state and let the sidecar retry'],
] as const) {
  program
    .command(verb)
    .description(what)
    .action(async () => {
      await withAdmin(dbUrl(), async (c) => {
        await c.query(`select ${fn}($1)`, [connection()]);
        const s = await c.query('select name, state from hc.connections where $1::text is null or name = $1 or schema_name = $1', [connection()]);
        for (const r of s.rows) console.log(`${r.name}: ${r.state}`);
      });
    });
}

program
  .command('export')
  .argument('[file]', 'write the configuration here (default: standard output)')
  .description("the connection's mappings in Heroku Connect's export format (hc.export_config())")
  .action(async (file?: string) => {
    await withAdmin(dbUrl(), async (c) => {
      const { rows } = await c.query('select hc.export_config($1) as config', [connection()]);
      const text = JSON.stringify(rows[0].config, null, 2) + '\n';
      if (file) {
        writeFileSync(file, text);
        console.error(`wrote ${file}`);
      } else process.stdout.write(text);
    });
  });

program
  .command('import')
  .argument('<file>', "a Heroku Connect export (connect:export) or hcsync export")
  .description('create or update the mappings in the file; mappings not in it are kept (hc.import_config())')
  .action(async (file: string) => {
    const config = readJson(file, 'import') as { connection?: { name?: unknown; app_name?: unknown } };
    const { schema } = loadConfig(process.env, { salesforce: false });
    await withAdmin(dbUrl(), async (c) => {
      // Moving from Heroku Connect, the database has no connection yet: the import makes it from the
      // file's connection block, in HC_SCHEMA (what `hcsync run` will look for), together with the mappings.
      await c.query('begin');
      try {
        if ((await c.query('select not exists (select 1 from hc.connections) as none')).rows[0].none) {
          const block = config?.connection ?? {};
          const name = connection() ?? [block.name, block.app_name].find((x): x is string => typeof x === 'string' && x !== '') ?? schema;
          await c.query('select hc.create_connection($1, $2)', [name, schema]);
          console.error(`created connection ${name} (schema ${schema})`);
        }
        const { rows } = await c.query('select hc.import_config($1::jsonb, $2) as result', [JSON.stringify(config), connection()]);
        await c.query('commit');
        const r = rows[0].result;
        console.log(typeof r === 'object' && r !== null ? JSON.stringify(r) : `imported ${file}`);
      } catch (e) {
        await c.query('rollback').catch(() => {});
        throw e;
      }
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
      const { rows } = await c.query('select hc.create_mapping($1, $2::jsonb, null, $3) as id', [object, JSON.stringify(config), connection()]);
      console.log(`mapping ${object} created (id ${rows[0].id}); the sidecar creates and loads its table`);
      if (opts.wait) await followMappings(c, { objects: [object], connection: connection(), say: console.log });
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
      await c.query('select hc.delete_mapping($1, $2, $3)', [object, connection(), !opts.keepTable]);
      console.log(`mapping ${object} deleted${opts.keepTable ? ' (table kept)' : ''}`);
    });
  });

for (const [verb, fn, what] of [
  ['mapping:reload', 'hc.reload', 'reload the table from Salesforce'],
  ['mapping:poll', 'hc.poll_now', 'poll Salesforce for changes now'],
  ['mapping:abort', 'hc.abort', 'abort the running load or poll'],
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
        const { rows } = await c.query(`select ${fn}($1, $2) as r`, [object, connection()]);
        console.log(`${object}: ${rows[0].r === 'cancelled' ? 'pending request cancelled' : `${rows[0].r} requested`}`);
        if (opts.wait) {
          await followMappings(c, { objects: [object], connection: connection(), say: console.log, aborted: verb === 'mapping:abort' ? 'done' : 'fail' });
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
      const m = (await c.query('select (hc._mapping($1, $2)).id', [object, connection()])).rows[0];
      const { rows } = await c.query('select * from hc.mappings where mapping_id = $1', [m.id]);
      print(rows[0], Boolean(opts.json), () => rows[0].state);
    });
  });

program
  .command('state')
  .description("the connection's state, e.g. IDLE (heroku connect:state)")
  .action(async () => {
    await withAdmin(dbUrl(), async (c) => {
      const { rows } = await c.query('select (hc._connection($1)).state', [connection()]);
      console.log(rows[0].state);
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
      await c.query('select hc.update_mapping($1, $2::jsonb, null, $3)', [object, JSON.stringify(config), connection()]);
      console.log(`mapping ${object} updated`);
      if (opts.wait) await followMappings(c, { objects: [object], connection: connection(), say: console.log });
    });
  });

/** The failed writes a retry or discard applies to: ids, a table, or --all; never nothing by accident. */
function failedSelection(ids: string[], opts: { table?: string; all?: boolean }): { ids: number[] | null; table: string | null } {
  const nums = ids.map((i) => Number(i));
  if (nums.some((n) => !Number.isInteger(n) || n <= 0)) throw new UsageError(`trigger log ids are whole numbers (see hcsync write-errors): got ${ids.join(' ')}`);
  if (!nums.length && !opts.table && !opts.all) throw new UsageError('name the failed writes: trigger log ids (from hcsync write-errors), --table TABLE, or --all');
  return { ids: nums.length ? nums : null, table: opts.table ?? null };
}

for (const [verb, fn, what, done] of [
  ['retry', 'hc.retry', 'send failed writes again (FAILED back to NEW, archived ones re-queued)', 're-queued'],
  ['discard', 'hc.discard', 'give up failed writes: mark them IGNORED, nothing is sent', 'discarded'],
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
        const { rows } = await c.query(`select ${fn}($1::integer[], $2, $3) as n`, [sel.ids, sel.table, connection()]);
        console.log(`${rows[0].n} ${rows[0].n === 1 ? 'write' : 'writes'} ${done}`);
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
      const mappingId = opts.mapping ? (await c.query('select (hc._mapping($1, $2)).id', [opts.mapping, connection()])).rows[0].id : null;
      const conn = (await c.query('select (hc._connection($1)).id', [connection()])).rows[0].id as number;
      const wanted = levels.slice(levels.indexOf(opts.level));
      const read = async (after: number | null, limit: number | null) =>
        (
          await c.query(
            `select l.id, l.at, l.level, l.direction, m.object_name, l.event, l.message, l.detail
               from hc.sync_log l left join hc._mappings m on m.id = l.mapping_id
              where l.connection_id = $1 and l.level = any ($2) and ($3::int is null or l.mapping_id = $3)
                and ($4::bigint is null or l.id > $4)
              order by l.id desc limit $5`,
            [conn, wanted, mappingId, after, limit],
          )
        ).rows.reverse();
      const show = (r: Record<string, unknown>) =>
        console.log(
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
      if (!last) last = Number((await c.query('select coalesce(max(id), 0) as id from hc.sync_log')).rows[0].id);
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
  .command('write-errors')
  .description('writes Salesforce rejected in the last 24 hours (hc.write_errors)')
  .option('--mapping <object>', 'only this object')
  .option('--json', 'machine-readable output')
  .action(async (opts: { mapping?: string; json?: boolean }) => {
    await withAdmin(dbUrl(), async (c) => {
      if (opts.mapping) await c.query('select hc._mapping($1, $2)', [opts.mapping, connection()]);
      const { rows } = await c.query(
        `select * from hc.write_errors
          where ($1::text is null or lower(object_name) = lower($1))
            and ($2::text is null or connection_name = $2 or schema_name = $2)
            and created_at > now() - interval '24 hours'
          order by created_at desc`,
        [opts.mapping ?? null, connection()],
      );
      print({ count: rows.length, results: rows }, Boolean(opts.json), () => table(rows));
    });
  });

program
  .command('sf')
  .argument('<method>', 'GET, POST, PATCH or DELETE')
  .argument('<path>', 'REST path under the pinned API version, e.g. /sobjects/Account/001…, or a full /services/… path')
  .argument('[body]', 'JSON body')
  .description('one authenticated Salesforce REST call with the configured SF_* credentials (counted in hc.api_calls)')
  .action(async (method: string, path: string, body?: string) => {
    const config = loadConfig();
    const payload = body === undefined ? undefined : JSON.stringify(readJson(body, 'body'));
    const m = method.toUpperCase();
    if (!['GET', 'POST', 'PATCH', 'PUT', 'DELETE'].includes(m)) throw new UsageError(`method ${method} is not one of GET, POST, PATCH, PUT, DELETE`);
    const { adminPool } = await import('./db/pool.js');
    const { SalesforceClient } = await import('./salesforce/client.js');
    const pool = adminPool(config.databaseUrl, { max: 1, application_name: 'hcsync cli' });
    try {
      const conn = await pool.query('select id from hc.connections where schema_name = $1', [config.schema]).catch(() => ({ rows: [] as { id: number }[] }));
      const sf = await SalesforceClient.connect(config.salesforce, { pool: conn.rows[0] ? pool : undefined, connectionId: conn.rows[0]?.id });
      try {
        const url = path.startsWith('/services/') ? path : `${sf.basePath}${path.startsWith('/') ? '' : '/'}${path}`;
        const res = await sf.conn.request({ method: m as 'GET', url, body: payload, headers: payload ? { 'content-type': 'application/json' } : {} });
        console.log(res === undefined || res === null || res === '' ? `${m} ${url}: ok` : JSON.stringify(res, null, 2));
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
    const checks = await withAdmin(url, (c) => diagnose(url, c), { migrated: false });
    const count = (s: string) => checks.filter((c) => c.status === s).length;
    print({ checks, red: count('RED'), yellow: count('YELLOW'), green: count('GREEN'), skipped: count('SKIPPED') }, Boolean(opts.json), () =>
      [...checks.map((c) => `${c.status.padEnd(7)} ${c.scope}${c.subject ? ` ${c.subject}` : ''} · ${c.rule}: ${c.message}`),
        `\n${count('RED')} red, ${count('YELLOW')} yellow, ${count('GREEN')} green, ${count('SKIPPED')} skipped`].join('\n'),
    );
    if (count('RED')) process.exitCode = EXIT.red;
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Help and version are not errors; commander already printed its message for the rest.
    process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(EXIT.usage);
  }
  const { message, code } = describeError(err);
  // The SQL API's own messages already start with "hcsync: ".
  console.error(`hcsync: ${message.replace(/^hcsync: /, '')}`);
  process.exit(code);
});
