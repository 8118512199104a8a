// 5b. What the capture's cost is made of: the same single-row INSERT and UPDATE scripts as 5 (pgbench,
// 2 clients), on the mapped table alone, with its triggers switched on one layer at a time, on the
// benchmarks' server. Each layer's TPS against the table with no trigger at all, in the same run (layers
// alternate within each round, so noise hits them alike), and the latency each layer adds:
//   no trigger → + HC's status trigger (BEFORE) → + hcsync's guards (sfid, no-op UPDATE; BEFORE UPDATE)
//   → + HC's logger (AFTER: hstore of the row, one _trigger_log row), its NOTIFY trigger off
//   → + the NOTIFY trigger on _trigger_log (as shipped)
//   → as shipped without hcsync's two indexes on _trigger_log → and without HC's three secondary ones.
// The last two drop indexes from this benchmark's scratch database: they price index upkeep, they are not
// configurations anyone should run. Opt-in (--only capture-profile): it explains 5, it does not measure
// anything 5 lacks.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { compared, CannotRun, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { accountConfig, mapAccount } from '../lib/mapping.js';
import { withRig } from '../lib/rig.js';
import { median, round } from '../lib/stats.js';
import { hasPgbench, pgbench } from './capture.js';

interface Layer {
  name: string;
  /** Statements that set the table up for this layer (layers apply in order, each on top of the last). */
  sql: string[];
}

export const captureProfile: Benchmark = {
  name: 'capture-profile',
  title: '5b. Capture cost by trigger and index (profile of 5)',
  optIn: 'it explains 5, layer by layer',
  async run(ctx: BenchContext): Promise<BenchResult> {
    if (!(await hasPgbench())) throw new CannotRun('pgbench is not on PATH (Debian: postgresql-client)');
    const o = { seconds: ctx.quick ? 2 : 6, rounds: ctx.quick ? 1 : 3, clients: 2, prefill: ctx.quick ? 2_000 : 20_000 };
    return withRig(ctx, 'capprof', { poolMax: 1 }, async ({ db, describe }) => {
      const admin = new pg.Client({ connectionString: db.url, application_name: 'hcsync bench' });
      await admin.connect();
      try {
        await mapAccount(admin, accountConfig(describe as never, { access: 'read_write', notify: false, pollingSeconds: 600 }), describe);
        const t = 'salesforce.account';
        await admin.query(`set xmlbinary = hex`);
        await admin.query(
          `insert into ${t} (sfid, name, phone, description, numberofemployees)
           select '001' || lpad(g::text, 15, '0'), 'Bench Company ' || g, '(415) 555-0100', 'prefilled ' || g, g % 50000
             from generate_series(1, ${o.prefill}) g`,
        );
        await admin.query(`set xmlbinary = base64`);
        await admin.query(`vacuum analyze ${t}`);
        const { lo, hi } = (await admin.query(`select min(id)::int as lo, max(id)::int as hi from ${t}`)).rows[0];
        const triggers = (await admin.query<{ tgname: string }>(`select tgname from pg_trigger where tgrelid = '${t}'::regclass and not tgisinternal`)).rows.map((r) => r.tgname);
        const named = (pattern: RegExp) => {
          const hit = triggers.filter((n) => pattern.test(n));
          if (!hit.length) throw new Error(`no trigger on ${t} matches ${pattern} (has: ${triggers.join(', ')})`);
          return hit;
        };
        const enable = (names: string[]) => names.map((n) => `alter table ${t} enable trigger "${n}"`);
        const layers: Layer[] = [
          { name: 'no trigger', sql: [`alter table ${t} disable trigger user`, `alter table salesforce._trigger_log disable trigger tlog_insert_trigger`] },
          { name: "+ HC's status trigger", sql: enable(named(/_status_trigger$/)) },
          { name: "+ hcsync's sfid and no-op guards", sql: enable(named(/^hcsync_(sfid|noop)_guard$/)) },
          { name: "+ HC's logger (writes _trigger_log), no NOTIFY", sql: enable(named(/_logtrigger$/)) },
          { name: '+ NOTIFY on _trigger_log: as shipped', sql: [`alter table salesforce._trigger_log enable trigger tlog_insert_trigger`] },
          { name: "as shipped without hcsync's 2 _trigger_log indexes", sql: ['drop index salesforce.hcsync_trigger_log_record_id', 'drop index salesforce.hcsync_trigger_log_pending_sfid'] },
          { name: "… and without HC's 3 secondary _trigger_log indexes", sql: ['drop index salesforce._trigger_log_idx_created_at', 'drop index salesforce._trigger_log_idx_state_id', 'drop index salesforce._trigger_log_idx_state_table_name'] },
        ];
        const files = {
          insert: join(ctx.workDir, 'capture-profile-insert.sql'),
          update: join(ctx.workDir, 'capture-profile-update.sql'),
        };
        writeFileSync(files.insert, `\\set n random(1, 100000000)\ninsert into ${t} (name, phone, website, description, numberofemployees, external_id__c) values ('Bench Company ' || :n, '(415) 555-' || lpad((:n % 10000)::text, 4, '0'), 'https://www.bench' || :n || '.example.com', 'renewal contract pipeline strategic account partner expansion ' || :n, :n % 50000, gen_random_uuid()::text);\n`);
        writeFileSync(files.update, `\\set n random(1, 100000000)\n\\set id random(${lo}, ${hi})\nupdate ${t} set phone = '(212) 555-' || lpad((:n % 10000)::text, 4, '0'), description = 'updated by the application, revision ' || :n, numberofemployees = :n % 50000 where id = :id;\n`);

        // Layers build on each other and indexes once dropped stay dropped, so each round walks the layers
        // in order; the rounds repeat that walk on a table rebuilt to the state of the first layer.
        const tps: Record<string, number[]> = {};
        const lat: Record<string, number[]> = {};
        const dropped: string[] = []; // hc._install_queue creates the missing indexes, and only those
        for (let r = 0; r < o.rounds; r++) {
          // Back to the first layer: indexes dropped by the previous round are created again.
          if (dropped.length) await admin.query(`select hc._install_queue('salesforce')`);
          for (const layer of layers) {
            for (const q of layer.sql) {
              await admin.query(q);
              if (q.startsWith('drop index')) dropped.push(q);
            }
            for (const op of ['insert', 'update'] as const) {
              const res = await pgbench(db.url, files[op], o.seconds, o.clients);
              (tps[`${layer.name}|${op}`] ??= []).push(res.tps);
              (lat[`${layer.name}|${op}`] ??= []).push(res.latencyMs);
              ctx.progress(`round ${r + 1}/${o.rounds} ${op} ${layer.name}: ${Math.round(res.tps)} tps`);
            }
          }
        }
        const rows: Row[] = [];
        for (const op of ['insert', 'update'] as const) {
          const base = median(tps[`no trigger|${op}`]);
          let prev = median(lat[`no trigger|${op}`]);
          for (const layer of layers) {
            const v = median(tps[`${layer.name}|${op}`]);
            const l = median(lat[`${layer.name}|${op}`]);
            rows.push(compared(`${op} TPS: ${layer.name}`, v, 'tps', 'the same table, no trigger', base, layer === layers[0] ? undefined : `latency ${round(l, 3)} ms, ${l - prev >= 0 ? '+' : ''}${round((l - prev) * 1000, 0)} µs for this layer`));
            prev = l;
          }
        }
        return {
          rows,
          config: { clients: o.clients, secondsPerRun: o.seconds, rounds: o.rounds, prefilledRows: o.prefill, layers: layers.map((l) => l.name), triggers },
          samples: Object.fromEntries(Object.entries(tps).map(([k, v]) => [`tps ${k}`, v.map((x) => round(x))])),
        };
      } finally {
        await admin.end();
      }
    });
  },
};
