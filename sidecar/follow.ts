// Following long operations (initial load, reload) from hc.mappings: state, rows and the progress the
// sidecar records (rows/total, rate, ETA), printed when they change, until the mappings are DATA_SYNCED.
// The CLI's --wait and the demo's first load both follow this way.
import { mappingProgress, reloadStatement, type MappingProgress as Row } from './db/hc/ops.js';
import type { Session } from './db/hc/base.js';

function describe(r: Row): string {
  const p = r.progress;
  const loading = r.state !== 'DATA_SYNCED' && p && typeof p.rows === 'number' && typeof p.total === 'number';
  const detail = loading
    ? `${p!.rows}/${p!.total} rows${p!.rate_per_s ? `, ${p!.rate_per_s}/s` : ''}${p!.eta_s != null ? `, ETA ${p!.eta_s}s` : ''}`
    : `${r.pg_rows ?? 0} rows`;
  // The sidecar's note (a refused reload, a load problem) is part of what the operator must see.
  return `${r.object_name} ${r.state} (${detail})${r.requested ? ` [${r.requested} requested]` : ''}${r.state_message ? ` — ${r.state_message}` : ''}`;
}

/**
 * Resolves when every mapping named (all when none) is DATA_SYNCED with no request pending; throws
 * naming the mapping when one reaches an error state, or ends ABORTED (an abort stopped the load or
 * reload being followed). Following an abort (`aborted: 'done'`), ABORTED is the end it waits for.
 * `say` gets one line per change.
 */
export async function followMappings(
  c: Session,
  opts: { objects?: string[]; connection?: string | null; say: (line: string) => void; aborted?: 'fail' | 'done' },
): Promise<void> {
  let last = '';
  let waitingSince = Date.now();
  let hinted = false;
  for (;;) {
    const rows = await mappingProgress(c, opts.objects?.map((o) => o.toLowerCase()) ?? null, opts.connection ?? null);
    const line = rows.map(describe).join(', ');
    if (line !== last) {
      opts.say(line);
      last = line;
      waitingSince = Date.now();
    }
    const bad = rows.find((r) => r.state_category === 'error');
    if (bad) throw new Error(`mapping ${bad.object_name} is in state ${bad.state}${bad.state_message ? `: ${bad.state_message}` : ''}`);
    // ABORTED with nothing requested: the work being followed was stopped and will not resume by itself.
    const stopped = rows.find((r) => r.state === 'ABORTED' && !r.requested);
    if (stopped && opts.aborted !== 'done') {
      throw new Error(
        `mapping ${stopped.object_name} is ABORTED${stopped.state_message ? ` (${stopped.state_message})` : ''}: the load did not complete ` +
          `and the table keeps the rows it had. Start it again with hcsync mapping:reload ${stopped.object_name} (${reloadStatement(stopped.object_name)}).`,
      );
    }
    const done = (r: Row) => !r.requested && (r.state === 'DATA_SYNCED' || (opts.aborted === 'done' && r.state === 'ABORTED'));
    if (rows.length && rows.every(done)) return;
    if (!hinted && Date.now() - waitingSince > 15_000 && rows.some((r) => r.requested)) {
      opts.say('  (no change for 15 s: is `hcsync run` running for this database?)');
      hinted = true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
