// 1. Outbound latency: an application commits a single-row INSERT (or UPDATE) on a mapped table; how long
// until the record is in Salesforce. Start: COMMIT acknowledged to the application. End: the record (or
// the new value) first present in the emulator's memory, observed inside the emulator process every
// millisecond, so no API call is spent looking. One write at a time, a pause between writes (low rate).
// Baseline, same run: one raw jsforce create round trip from the benchmark to the same emulator.
import pg from 'pg';
import { compared, now, sleep, waitFor, type BenchContext, type BenchResult, type Benchmark } from '../lib/bench.js';
import { accountConfig } from '../lib/mapping.js';
import { withRig } from '../lib/rig.js';
import { summarize, round } from '../lib/stats.js';

export const outboundLatency: Benchmark = {
  name: 'outbound-latency',
  title: '1. Outbound latency (PG → SF)',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const samples = ctx.quick ? 15 : 100;
    const pauseMs = ctx.quick ? 30 : 100;
    return withRig(ctx, 'outlat', { poolMax: 2 }, async ({ emu, conn, describe, db, pool, startSidecar, mapSynced }) => {
      const app = new pg.Client({ connectionString: db.url, application_name: 'bench app' });
      try {
        const config = accountConfig(describe as never, { access: 'read_write', notify: true, pollingSeconds: 600 });
        const run = Date.now().toString(36);

        // Baseline: the same writes by a bare jsforce client, one at a time: create, then update.
        const raw: number[] = [];
        const rawUpd: number[] = [];
        for (let i = 0; i < samples; i++) {
          let t0 = now();
          const r = (await conn.sobject('Account').create({ Name: `Baseline ${run} ${i}`, Phone: '(415) 555-0100', BillingCity: 'San Francisco' })) as { id: string; success: boolean };
          raw.push(now() - t0);
          if (!r.success) throw new Error(`baseline create failed: ${JSON.stringify(r)}`);
          t0 = now();
          await conn.sobject('Account').update({ Id: r.id, Description: `baseline update ${i}` });
          rawUpd.push(now() - t0);
        }

        const sidecar = await startSidecar('outbound-latency');
        await mapSynced(config, { syncedMs: 120_000, caughtUpMs: 60_000 });
        await app.connect();

        const inserts: number[] = [];
        const updates: number[] = [];
        for (let i = 0; i < samples; i++) {
          const name = `Probe ${run} ${i}`;
          const ins = await app.query(
            `insert into salesforce.account (name, phone, billingcity, external_id__c) values ($1, '(415) 555-0101', 'San Francisco', gen_random_uuid()::text) returning id`,
            [name],
          );
          const t0 = now();
          const seen = await Promise.race([emu.waitFor('Account', 'Name', name, 30_000), sidecar.exited]);
          inserts.push(seen.at - t0);
          // The row has its sfid once the writer has recorded the outcome: then update it.
          const id = ins.rows[0].id as number;
          await waitFor('sfid written back', async () => ((await pool.query('select sfid from salesforce.account where id = $1', [id])).rows[0]?.sfid ? true : undefined), 30_000, 2);
          await sleep(pauseMs);
          const desc = `updated ${run} ${i}`;
          await app.query('update salesforce.account set description = $1 where id = $2', [desc, id]);
          const t1 = now();
          const upd = await Promise.race([emu.waitFor('Account', 'Description', desc, 30_000), sidecar.exited]);
          updates.push(upd.at - t1);
          await sleep(pauseMs);
        }
        const b = summarize(raw);
        const bu = summarize(rawUpd);
        const si = summarize(inserts);
        const su = summarize(updates);
        return {
          rows: [
            compared('insert → in Salesforce, p50', si.p50, 'ms', 'raw jsforce create p50', b.p50),
            compared('insert → in Salesforce, p99', si.p99, 'ms', 'raw jsforce create p99', b.p99),
            compared('update → in Salesforce, p50', su.p50, 'ms', 'raw jsforce update p50', bu.p50),
            compared('update → in Salesforce, p99', su.p99, 'ms', 'raw jsforce update p99', bu.p99),
          ],
          config: { samples, pauseMs, writeAlgorithm: 'ordered (connection default)', mapping: config, insert: si, update: su, baselineCreate: b, baselineUpdate: bu },
          samples: { insertMs: inserts.map((x) => round(x, 2)), updateMs: updates.map((x) => round(x, 2)), baselineCreateMs: raw.map((x) => round(x, 2)), baselineUpdateMs: rawUpd.map((x) => round(x, 2)) },
        };
      } finally {
        await app.end().catch(() => {});
      }
    });
  },
};
