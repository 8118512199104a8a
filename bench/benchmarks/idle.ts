// 6. Idle cost: Salesforce API calls per hour spent by a running sidecar with a synced, CDC-enabled
// mapping while nothing changes anywhere. Measured from the ledger (hc.api_calls, every HTTP call the
// sidecar makes that counts against the org's allowance) over a window after the load, extrapolated to an
// hour, next to the schedule docs/DESIGN.md documents (drift sweep: 1 call per mapping per hour;
// streaming long-polls are not counted against the REST allowance). The emulator's own request count
// over the window is shown too, streaming included.
import { accountGenerator } from '../lib/accounts.js';
import { compared, sleep, type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { accountConfig } from '../lib/mapping.js';
import { collections, withRig } from '../lib/rig.js';
import { whileAlive } from '../lib/sidecar.js';

/** The documented idle schedule with CDC on: the drift sweep, once per mapping per HC_DRIFT_SECONDS (3600). */
const DOCUMENTED_CALLS_PER_HOUR_PER_MAPPING = 1;

export const idle: Benchmark = {
  name: 'idle',
  title: '6. Idle API cost (CDC on)',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const windowSeconds = ctx.quick ? 15 : 120;
    const records = ctx.quick ? 200 : 1_000;
    const rows: Row[] = [];
    const config: Record<string, unknown> = { windowSeconds, records, mappings: 1 };
    return withRig(ctx, 'idle', { poolMax: 2, partial: { rows, config } }, async ({ emu, conn, describe, pool, startSidecar, mapSynced }) => {
      const gen = accountGenerator(describe.fields as never, 6);
      for (let i = 0; i < records; i += 200) {
        const batch = Array.from({ length: Math.min(200, records - i) }, (_, k) => ({ attributes: { type: 'Account' }, ...gen.row(i + k + 1) }));
        await collections(conn, 'POST', batch, true);
      }
      const mapping = accountConfig(describe as never, { access: 'read_write', notify: true, pollingSeconds: 600 });
      config.mapping = mapping;
      const sidecar = await startSidecar('idle');
      await mapSynced(mapping, { syncedMs: 120_000, caughtUpMs: 60_000 });
      await sleep(3000); // settle: the load's last calls reach the ledger, the subscription is up
      const mark = (await pool.query<{ id: number | null }>('select max(id) as id from hc.api_calls')).rows[0].id ?? 0;
      const before = await emu.stats();
      ctx.progress(`watching an idle sidecar for ${windowSeconds} s`);
      await whileAlive(sidecar, sleep(windowSeconds * 1000));
      const after = await emu.stats();
      await sleep(1000); // the ledger writes every 500 ms
      const calls = (await pool.query<{ kind: string; n: number }>('select kind, count(*)::int as n from hc.api_calls where id > $1 group by kind', [mark])).rows;
      const total = calls.reduce((a, c) => a + c.n, 0);
      const perHour = (total * 3600) / windowSeconds;
      rows.push(
        compared('API calls per hour, idle, CDC on', perHour, 'calls/h', 'documented drift schedule', DOCUMENTED_CALLS_PER_HOUR_PER_MAPPING, `${total} calls in ${windowSeconds} s${calls.length ? ` (${calls.map((c) => `${c.kind} ${c.n}`).join(', ')})` : ''}, extrapolated`),
      );
      const diff = numericDiff(before, after);
      if (Object.keys(diff).length) config.emulatorCountersDuringWindow = diff;
      const counted = diff['api.used'] ?? 0;
      rows.push({ metric: 'API calls per hour, as the emulator counted them', value: (counted * 3600) / windowSeconds, unit: 'calls/h', note: `${counted} in ${windowSeconds} s: cross-check of the ledger` });
      if (process.env.BENCH_CHANGE_STREAM !== 'cometd' && emu.pubsub) {
        // The sidecar's default stream: one Subscribe stream, kept open; the API sends keepalives when idle.
        const keepalives = diff['pubsub.keepalives'] ?? 0;
        rows.push({ metric: 'Pub/Sub keepalives per hour (not API calls)', value: (keepalives * 3600) / windowSeconds, unit: 'msg/h', note: `one open Subscribe stream (${diff['pubsub.subscribes'] ?? 0} opened in the window), not counted against the allowance` });
      } else {
        const connects = diff['notCounted.streamingConnects'] ?? 0;
        rows.push({ metric: 'CometD /meta/connect per hour (not API calls)', value: (connects * 3600) / windowSeconds, unit: 'req/h', note: 'streaming long-polls, not counted against the allowance' });
      }
      config.ledgerCallsByKind = Object.fromEntries(calls.map((c) => [c.kind, c.n]));
      return { rows, config };
    });
  },
};

/** Differences of the numeric counters of two stats snapshots (nested objects flattened with dots). */
function numericDiff(a: unknown, b: unknown, prefix = ''): Record<string, number> {
  const out: Record<string, number> = {};
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return out;
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) {
    const prev = (a as Record<string, unknown>)[k];
    if (typeof v === 'number' && typeof prev === 'number' && v !== prev) out[prefix + k] = v - prev;
    else if (v && typeof v === 'object') Object.assign(out, numericDiff(prev, v, `${prefix}${k}.`));
  }
  return out;
}
