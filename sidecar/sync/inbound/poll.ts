// SystemModstamp-window reads: the poll of mappings without CDC, the catch-up after any CDC trouble, and
// hc.poll_now. One queryAll returns changed rows *and* deleted ones (IsDeleted = true, which
// hc.inbound_merge removes), so a poll costs one call per 2,000 changed rows and nothing more. The window
// starts a little before the last applied point: re-reading is harmless, applying is idempotent.
import type { SyncContext } from '../../context.js';
import { mergeRows, restQuery, soqlDateTime, type MappingRow } from './rows.js';
import { Aborted, soqlFields } from './load.js';
import { markPolled, pollWatermark, setWatermarks } from '../../db/hc/inbound.js';

/** How far before the watermark a poll starts again (long transactions commit with older stamps). */
export const POLL_OVERLAP_MS = 5_000;

/**
 * `stopped`: asked between pages; once it says so the poll ends there, unfinished, by throwing Aborted (the
 * watermark has not moved, so the next poll reads the window again): a stopping sidecar does not wait for
 * the rest of a large window.
 */
export async function pollChanges(ctx: SyncContext, m: MappingRow, origin: 'poll' | 'reread', stopped?: () => boolean): Promise<{ rows: number; deleted: number }> {
  const fields = await soqlFields(ctx, m.id);
  const wm = await pollWatermark(ctx.db, m.id);
  const hasDeleted = fields.includes('IsDeleted');
  const from = wm ? new Date(wm.getTime() - POLL_OVERLAP_MS) : null;
  const where = from ? ` WHERE SystemModstamp >= ${soqlDateTime(from)}` : '';
  const soql = `SELECT ${fields.join(', ')} FROM ${m.object_name}${where} ORDER BY SystemModstamp`;
  let max = wm;
  let rows = 0;
  let deleted = 0;
  for await (const page of restQuery(ctx.sf, soql, { scanAll: hasDeleted })) {
    if (stopped?.()) throw new Aborted();
    const r = await mergeRows(ctx.db, m.id, fields, page.records, origin);
    rows += page.records.length;
    deleted += r.deleted;
    for (const rec of page.records) {
      const s = rec.SystemModstamp ? new Date(String(rec.SystemModstamp).replace(/\+0000$/, 'Z')) : null;
      if (s && !Number.isNaN(s.getTime()) && (!max || s > max)) max = s;
    }
  }
  await setWatermarks(ctx.db, m.id, max);
  await markPolled(ctx.db, m.id);
  if (rows) ctx.log.info({ mapping: m.object_name, origin, rows, deleted }, `Polling Salesforce found ${rows} updated records`);
  else ctx.log.debug({ mapping: m.object_name, origin }, 'Polling Salesforce found 0 updated records');
  return { rows, deleted };
}
