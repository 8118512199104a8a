// 5. Capture overhead: what Heroku Connect's triggers (status BEFORE trigger, logger AFTER trigger writing
// _trigger_log, the NOTIFY on it) cost an application. pgbench drives the same INSERT and UPDATE scripts
// against the mapped table and against an identical plain table (same columns, defaults and indexes, no
// triggers), alternating rounds so that machine noise hits both alike; the ratio is mapped / plain TPS.
// The writer is not running, so this is the triggers' cost alone, not the sync's.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { compared, type BenchContext, type BenchResult, type Benchmark } from '../lib/bench.js';
import { accountConfig, mapAccount } from '../lib/mapping.js';
import { withRig } from '../lib/rig.js';
import { median, round } from '../lib/stats.js';

const run = promisify(execFile);

interface Load { tps: number; latencyMs: number }

async function hasPgbench(): Promise<boolean> {
  try {
    await run('pgbench', ['--version']);
    return true;
  } catch {
    return false;
  }
}

async function pgbench(url: string, script: string, seconds: number, clients: number): Promise<Load> {
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

export const capture: Benchmark = {
  name: 'capture',
  title: '5. Capture overhead (triggers)',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const seconds = ctx.quick ? 2 : 6;
    const rounds = ctx.quick ? 1 : 3;
    const clients = 2;
    const prefill = ctx.quick ? 2_000 : 20_000;
    return withRig(ctx, 'capture', { poolMax: 1 }, async ({ db, pool, describe }) => {
      const admin = await pool.connect();
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
        for (const t of [mapped, plain]) {
          await admin.query(`set xmlbinary = hex`);
          const exprs = used.map(([, e]) => e.replaceAll(':n', 'g'));
          await admin.query(
            `insert into ${t} (sfid, ${used.map(([c]) => c).join(', ')})
             select '001' || lpad(g::text, 15, '0'), ${exprs.join(', ')} from generate_series(1, ${prefill}) g`,
          );
          await admin.query(`set xmlbinary = base64`);
          await admin.query(`vacuum analyze ${t}`);
        }
        const idRange = await admin.query(`select min(id) as lo, max(id) as hi from ${mapped}`);
        const { lo, hi } = idRange.rows[0];

        const scripts = (t: string) => ({
          insert: `\\set n random(1, 100000000)\ninsert into ${t} (${used.map(([c]) => c).join(', ')}) values (${used.map(([, e]) => e).join(', ')});\n`,
          update: `\\set n random(1, 100000000)\n\\set id random(${lo}, ${hi})\nupdate ${t} set ${updateSet.map(([c, e]) => `${c} = ${e}`).join(', ')} where id = :id;\n`,
        });
        const usePgbench = await hasPgbench();
        const files: Record<string, string> = {};
        for (const [label, t] of [['mapped', mapped], ['plain', plain]] as const) {
          for (const [op, text] of Object.entries(scripts(t))) {
            const f = join(ctx.workDir, `capture-${label}-${op}.sql`);
            writeFileSync(f, text);
            files[`${label}-${op}`] = f;
          }
        }
        const load = async (label: 'mapped' | 'plain', op: 'insert' | 'update'): Promise<Load> => {
          if (usePgbench) return pgbench(db.url, files[`${label}-${op}`], seconds, clients);
          const body = scripts(label === 'mapped' ? mapped : plain)[op].split('\n').filter((l) => l && !l.startsWith('\\')).join('\n');
          return nodeLoad(db.url, (n) => body.replaceAll(':n', String(n)).replaceAll(':id', String(lo + (n % (hi - lo + 1)))), seconds, clients);
        };

        const tps: Record<string, number[]> = {};
        const lat: Record<string, number[]> = {};
        for (let r = 0; r < rounds; r++) {
          for (const op of ['insert', 'update'] as const) {
            const order: ('mapped' | 'plain')[] = r % 2 === 0 ? ['plain', 'mapped'] : ['mapped', 'plain'];
            for (const label of order) {
              const res = await load(label, op);
              (tps[`${label}-${op}`] ??= []).push(res.tps);
              (lat[`${label}-${op}`] ??= []).push(res.latencyMs);
              ctx.progress(`round ${r + 1}/${rounds} ${op} ${label}: ${Math.round(res.tps)} tps`);
            }
          }
        }
        const captured = await admin.query(`select count(*)::int as n from salesforce._trigger_log`);
        const rows = (['insert', 'update'] as const).flatMap((op) => [
          compared(`${op} TPS, mapped table`, median(tps[`mapped-${op}`]), 'tps', 'plain table', median(tps[`plain-${op}`])),
          compared(`${op} latency, mapped table`, median(lat[`mapped-${op}`]), 'ms', 'plain table', median(lat[`plain-${op}`])),
        ]);
        return {
          rows,
          config: {
            driver: usePgbench ? 'pgbench -M prepared' : 'node-postgres loop (pgbench not found)',
            clients,
            secondsPerRun: seconds,
            rounds,
            prefilledRows: prefill,
            insertedColumns: used.map(([c]) => c),
            updatedColumns: updateSet.map(([c]) => c),
            writerRunning: false,
          },
          samples: Object.fromEntries(Object.entries(tps).map(([k, v]) => [`tps ${k}`, v.map((x) => round(x))])),
          notes: [`${captured.rows[0].n} changes captured in _trigger_log during the run`],
        };
      } finally {
        admin.release();
      }
    });
  },
};
