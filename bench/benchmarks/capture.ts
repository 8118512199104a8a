// 5. Capture overhead: what Heroku Connect's triggers (status BEFORE trigger, logger AFTER trigger writing
// _trigger_log, the NOTIFY on it) cost an application. pgbench drives the same INSERT and UPDATE scripts
// against the mapped table and against an identical plain table (same columns, defaults and indexes, no
// triggers), alternating rounds so that machine noise hits both alike; the ratio is mapped / plain TPS.
// The writer is not running, so this is the triggers' cost alone, not the sync's.
// Twice: on the benchmarks' server (fsync, synchronous_commit and full_page_writes off) and on a server of
// its own with PostgreSQL's durable defaults, as production runs. Besides the single-row scripts, one
// INSERT and one UPDATE statement of 10,000 rows each (2,000 with --quick), timed as the application
// sees them, mapped against plain.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../sidecar/demo/postgres.js';
import { migrate } from '../../sidecar/db/contractor.js';
import { compared, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { accountConfig, mapAccount } from '../lib/mapping.js';
import { withRig } from '../lib/rig.js';
import { median, round } from '../lib/stats.js';

const run = promisify(execFile);

interface Load { tps: number; latencyMs: number }

export async function hasPgbench(): Promise<boolean> {
  try {
    await run('pgbench', ['--version']);
    return true;
  } catch {
    return false;
  }
}

export async function pgbench(url: string, script: string, seconds: number, clients: number): Promise<Load> {
  const { stdout } = await run('pgbench', ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(clients), '-T', String(seconds), '-f', script, url], {
    maxBuffer: 1 << 20,
  });
  const tps = /tps = ([\d.]+)/.exec(stdout);
  const lat = /latency average = ([\d.]+) ms/.exec(stdout);
  if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
  return { tps: Number(tps[1]), latencyMs: lat ? Number(lat[1]) : NaN };
}

/** Without pgbench: the same statements from node-postgres clients in a loop (recorded in the config). */
async function nodeLoad(url: string, sql: (n: number) => string, seconds: number, clients: number): Promise<Load> {
  let done = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      while (performance.now() < end) {
        await c.query(sql(Math.floor(Math.random() * 1e8)));
        done++;
      }
      await c.end();
    }),
  );
  const tps = done / seconds;
  return { tps, latencyMs: (clients * 1000) / tps };
}

interface Measured {
  tps: Record<string, number[]>;
  lat: Record<string, number[]>;
  /** rows/s of the multi-row statements, by `${table}-${op}` */
  statement: Record<string, number[]>;
  statementRows: number;
  captured: number;
  used: string[];
  updated: string[];
  driver: string;
}

/** The mapped table and its plain twin in the database at `url`, the single-row rounds, then the statements. */
async function measure(ctx: BenchContext, url: string, describe: unknown, label: string, o: { seconds: number; rounds: number; clients: number; prefill: number }): Promise<Measured> {
  const admin = new pg.Client({ connectionString: url, application_name: 'hcsync bench' });
  await admin.connect();
  try {
    const config = accountConfig(describe as never, { access: 'read_write', notify: false, pollingSeconds: 600 });
    await mapAccount(admin, config, describe);
    const mapped = 'salesforce.account';
    const plain = 'public.account_plain';
    await admin.query(`create table ${plain} (like ${mapped} including all)`);
    await admin.query(`create sequence public.account_plain_id_seq owned by ${plain}.id`);
    await admin.query(`alter table ${plain} alter column id set default nextval('public.account_plain_id_seq')`);
    const cols = new Set(
      (await admin.query(`select column_name from information_schema.columns where table_schema = 'salesforce' and table_name = 'account'`)).rows.map((r) => r.column_name as string),
    );
    // What an application writes: Account-like values of realistic width.
    const insertExpr: Record<string, string> = {
      name: `'Bench Company ' || :n`,
      accountnumber: `'ACC-' || :n`,
      phone: `'(415) 555-' || lpad((:n % 10000)::text, 4, '0')`,
      website: `'https://www.bench' || :n || '.example.com'`,
      industry: `'Technology'`,
      type: `'Prospect'`,
      billingstreet: `(:n % 9999) || ' Market Street, Suite 500'`,
      billingcity: `'San Francisco'`,
      billingstate: `'CA'`,
      billingpostalcode: `'94105'`,
      billingcountry: `'United States'`,
      numberofemployees: `:n % 50000`,
      annualrevenue: `(:n % 1000000) * 100.5`,
      external_id__c: `gen_random_uuid()::text`,
      description: `'renewal contract pipeline strategic account partner expansion enterprise regional quarterly review ' || :n`,
    };
    const used = Object.entries(insertExpr).filter(([c]) => cols.has(c));
    if (!used.length) throw new Error('the mapped Account table has none of the expected columns');
    const updateSet = [
      ['phone', `'(212) 555-' || lpad((:n % 10000)::text, 4, '0')`],
      ['description', `'updated by the application, revision ' || :n`],
      ['numberofemployees', `:n % 50000`],
    ].filter(([c]) => cols.has(c));

    // Rows to update: written as the sync writes them (xmlbinary = hex), so they are not captured.
    const ranges: Record<string, { lo: number; hi: number }> = {};
    for (const t of [mapped, plain]) {
      await admin.query(`set xmlbinary = hex`);
      const exprs = used.map(([, e]) => e.replaceAll(':n', 'g'));
      await admin.query(
        `insert into ${t} (sfid, ${used.map(([c]) => c).join(', ')})
         select '001' || lpad(g::text, 15, '0'), ${exprs.join(', ')} from generate_series(1, ${o.prefill}) g`,
      );
      await admin.query(`set xmlbinary = base64`);
      await admin.query(`vacuum analyze ${t}`);
      const r = (await admin.query(`select min(id)::int as lo, max(id)::int as hi from ${t}`)).rows[0];
      ranges[t] = { lo: r.lo, hi: r.hi };
    }
    const { lo, hi } = ranges[mapped];

    const scripts = (t: string) => ({
      insert: `\\set n random(1, 100000000)\ninsert into ${t} (${used.map(([c]) => c).join(', ')}) values (${used.map(([, e]) => e).join(', ')});\n`,
      update: `\\set n random(1, 100000000)\n\\set id random(${lo}, ${hi})\nupdate ${t} set ${updateSet.map(([c, e]) => `${c} = ${e}`).join(', ')} where id = :id;\n`,
    });
    const usePgbench = await hasPgbench();
    const files: Record<string, string> = {};
    for (const [table, t] of [['mapped', mapped], ['plain', plain]] as const) {
      for (const [op, text] of Object.entries(scripts(t))) {
        const f = join(ctx.workDir, `capture-${label}-${table}-${op}.sql`);
        writeFileSync(f, text);
        files[`${table}-${op}`] = f;
      }
    }
    const load = async (table: 'mapped' | 'plain', op: 'insert' | 'update'): Promise<Load> => {
      if (usePgbench) return pgbench(url, files[`${table}-${op}`], o.seconds, o.clients);
      const sqlText = scripts(table === 'mapped' ? mapped : plain)[op].split('\n').filter((l) => l && !l.startsWith('\\')).join('\n');
      return nodeLoad(url, (n) => sqlText.replaceAll(':n', String(n)).replaceAll(':id', String(lo + (n % (hi - lo + 1)))), o.seconds, o.clients);
    };

    const tps: Record<string, number[]> = {};
    const lat: Record<string, number[]> = {};
    for (let r = 0; r < o.rounds; r++) {
      for (const op of ['insert', 'update'] as const) {
        const order: ('mapped' | 'plain')[] = r % 2 === 0 ? ['plain', 'mapped'] : ['mapped', 'plain'];
        for (const table of order) {
          const res = await load(table, op);
          (tps[`${table}-${op}`] ??= []).push(res.tps);
          (lat[`${table}-${op}`] ??= []).push(res.latencyMs);
          ctx.progress(`${label} round ${r + 1}/${o.rounds} ${op} ${table}: ${Math.round(res.tps)} tps`);
        }
      }
    }

    // One statement of many rows each (an import, a nightly UPDATE ... WHERE), as the application sees it.
    const statementRows = ctx.quick ? 2_000 : 10_000;
    const statement: Record<string, number[]> = {};
    for (let r = 0; r < o.rounds; r++) {
      const order: ('mapped' | 'plain')[] = r % 2 === 0 ? ['plain', 'mapped'] : ['mapped', 'plain'];
      for (const table of order) {
        const t = table === 'mapped' ? mapped : plain;
        const first = ranges[t].lo + ((r * statementRows) % Math.max(1, ranges[t].hi - ranges[t].lo + 1 - statementRows));
        const stmts = {
          insert: `insert into ${t} (${used.map(([c]) => c).join(', ')})
                   select ${used.map(([, e]) => e.replaceAll(':n', `(g + ${(r + 1) * 10_000_000})`)).join(', ')} from generate_series(1, ${statementRows}) g`,
          update: `update ${t} set ${updateSet.map(([c, e]) => `${c} = ${e.replaceAll(':n', `(id + ${r})`)}`).join(', ')}
                   where id between ${first} and ${first + statementRows - 1}`,
        };
        for (const op of ['insert', 'update'] as const) {
          const t0 = performance.now();
          const res = await admin.query(stmts[op]);
          const ms = performance.now() - t0;
          (statement[`${table}-${op}`] ??= []).push((res.rowCount ?? 0) / (ms / 1000));
          ctx.progress(`${label} round ${r + 1}/${o.rounds} ${statementRows}-row ${op} ${table}: ${Math.round(ms)} ms`);
        }
      }
    }
    const captured = (await admin.query(`select count(*)::int as n from salesforce._trigger_log`)).rows[0].n as number;
    return {
      tps, lat, statement, statementRows, captured,
      used: used.map(([c]) => c), updated: updateSet.map(([c]) => c),
      driver: usePgbench ? 'pgbench -M prepared' : 'node-postgres loop (pgbench not found)',
    };
  } finally {
    await admin.end();
  }
}

function rowsOf(m: Measured, suffix: string): Row[] {
  return (['insert', 'update'] as const).flatMap((op) => [
    compared(`${op} TPS, mapped table${suffix}`, median(m.tps[`mapped-${op}`]), 'tps', 'plain table', median(m.tps[`plain-${op}`])),
    compared(`${op} latency, mapped table${suffix}`, median(m.lat[`mapped-${op}`]), 'ms', 'plain table', median(m.lat[`plain-${op}`])),
    compared(`one ${op.toUpperCase()} of ${m.statementRows.toLocaleString('en-US')} rows, mapped table${suffix}`, median(m.statement[`mapped-${op}`]), 'rows/s',
      'plain table', median(m.statement[`plain-${op}`])),
  ]);
}

export const capture: Benchmark = {
  name: 'capture',
  title: '5. Capture overhead (triggers)',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const o = { seconds: ctx.quick ? 2 : 6, rounds: ctx.quick ? 1 : 3, clients: 2, prefill: ctx.quick ? 2_000 : 20_000 };
    return withRig(ctx, 'capture', { poolMax: 1 }, async ({ db, describe }) => {
      const fast = await measure(ctx, db.url, describe, 'fast', o);
      // The same on a server with PostgreSQL's durable defaults (fsync, synchronous_commit and
      // full_page_writes on): a commit waits for its WAL flush on both tables.
      const server = await startEmbeddedPostgres(resolve('.data/bench-pg-durable'), { fresh: true, durable: true });
      let durable: Measured;
      let durableSettings: Record<string, string>;
      try {
        const c = new pg.Client({ connectionString: server.url });
        await c.connect();
        try {
          await c.query('create database capture');
          durableSettings = Object.fromEntries((await c.query(
            `select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'full_page_writes')`)).rows.map((r) => [r.name, r.setting]));
        } finally {
          await c.end();
        }
        const url = new URL(server.url);
        url.pathname = '/capture';
        await migrate(url.toString());
        durable = await measure(ctx, url.toString(), describe, 'durable', { ...o, rounds: ctx.quick ? 1 : 2 });
      } finally {
        await server.stop();
      }
      const durableLabel = ' (durable)';
      return {
        rows: [...rowsOf(fast, ''), ...rowsOf(durable, durableLabel)],
        config: {
          driver: fast.driver,
          clients: o.clients,
          secondsPerRun: o.seconds,
          rounds: o.rounds,
          durableRounds: ctx.quick ? 1 : 2,
          durableServer: durableSettings,
          prefilledRows: o.prefill,
          statementRows: fast.statementRows,
          insertedColumns: fast.used,
          updatedColumns: fast.updated,
          writerRunning: false,
        },
        samples: Object.fromEntries([
          ...Object.entries(fast.tps).map(([k, v]) => [`tps ${k}`, v.map((x) => round(x))]),
          ...Object.entries(fast.statement).map(([k, v]) => [`statement rows/s ${k}`, v.map((x) => round(x))]),
          ...Object.entries(durable.tps).map(([k, v]) => [`durable tps ${k}`, v.map((x) => round(x))]),
          ...Object.entries(durable.statement).map(([k, v]) => [`durable statement rows/s ${k}`, v.map((x) => round(x))]),
        ]),
        notes: [`${fast.captured} changes captured in _trigger_log during the run (${durable.captured} on the durable server)`],
      };
    });
  },
};
