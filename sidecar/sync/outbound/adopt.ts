// Exactly-once creates without an external ID. Before a create is sent, hc.outbound_attempt records
// the row, the time and the exact field values. When a claim hands back an insert with attempts, the
// earlier create may or may not have reached Salesforce. One SOQL query per object finds the records
// the integration user created since the earliest attempt (minus clock skew); a record whose values
// equal what was sent, and whose Id no row holds yet, is that create: its Id is adopted instead of
// creating the record again.
import type { Connection } from 'jsforce';
import type pg from 'pg';
import type { Op } from './salesforce.js';

const SKEW_MS = 120_000;

function same(sent: unknown, got: unknown): boolean {
  if (sent === null || sent === undefined) return got === null || got === undefined || got === '';
  if (got === null || got === undefined) return false;
  if (typeof sent === 'number' || typeof got === 'number') return Number(sent) === Number(got);
  if (typeof sent === 'boolean' || typeof got === 'boolean') return String(sent) === String(got);
  const a = String(sent);
  const b = String(got);
  if (a === b) return true;
  if (/^\d{4}-\d{2}-\d{2}T/.test(a) && /^\d{4}-\d{2}-\d{2}T/.test(b)) return Date.parse(a) === Date.parse(b.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return false;
}

function soqlDateTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Marks ops whose earlier create is found in Salesforce as adopted (sfid set). Returns how many. */
export async function adoptLostCreates(conn: Connection, db: pg.Pool, connectionId: number, ops: Op[]): Promise<number> {
  const lost = ops.filter((o) => o.action === 'insert' && !o.adopted && !o.upsert_field && o.attempts.length);
  if (!lost.length) return 0;
  const userId = conn.userInfo?.id;
  let adopted = 0;
  const byObject = new Map<string, Op[]>();
  for (const o of lost) byObject.set(o.object, [...(byObject.get(o.object) ?? []), o]);
  for (const [object, list] of byObject) {
    const fields = new Set<string>();
    for (const o of list) for (const a of o.attempts) {
      for (const [k, v] of Object.entries(a.sent)) if (v === null || typeof v !== 'object') fields.add(k);
    }
    const since = Math.min(...list.flatMap((o) => o.attempts.map((a) => Date.parse(a.started_at)))) - SKEW_MS;
    const where = [`CreatedDate >= ${soqlDateTime(since)}`];
    if (userId) where.push(`CreatedById = '${userId}'`);
    const soql = `SELECT Id, CreatedDate${[...fields].filter((f) => f !== 'Id').map((f) => `, ${f}`).join('')} FROM ${object} WHERE ${where.join(' AND ')} ORDER BY CreatedDate`;
    const res = await conn.query<Record<string, unknown>>(soql, { autoFetch: true, maxFetch: 100_000 });
    const candidates = res.records;
    if (!candidates.length) continue;
    // Ids an application row already holds are taken (a row the read side stored for the lost create
    // itself is not: see hc.outbound_held_sfids).
    const tables = [...new Set(list.map((o) => o.table))];
    const taken = new Set<string>();
    for (const t of tables) {
      const r = await db.query('select hc.outbound_held_sfids($1, $2, $3) as held', [connectionId, t, candidates.map((c) => c.Id)]);
      for (const id of r.rows[0].held as string[]) taken.add(id);
    }
    for (const o of list) {
      const hit = candidates.find(
        (c) =>
          !taken.has(String(c.Id)) &&
          o.attempts.some(
            (a) =>
              Date.parse(String(c.CreatedDate).replace(/([+-]\d{2})(\d{2})$/, '$1:$2')) >= Date.parse(a.started_at) - SKEW_MS &&
              Object.entries(a.sent).every(([k, v]) => (v !== null && typeof v === 'object') || same(v, c[k])),
          ),
      );
      if (hit) {
        taken.add(String(hit.Id));
        o.adopted = true;
        o.sfid = String(hit.Id);
        adopted++;
      }
    }
  }
  return adopted;
}
