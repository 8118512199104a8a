// Exactly-once creates. Before a create is sent, hc.outbound_attempt records the row, the time and the
// exact field values. When a claim hands back an op with attempts, the earlier create may or may not
// have reached Salesforce:
//   * an insert without an external id: one SOQL query per object finds the records the integration user
//     created since the earliest attempt (minus clock skew) whose Id no row holds yet. Salesforce
//     automation may have rewritten some of the sent values on save, so a record is that create when it
//     still holds most of them (see evidence()); the best matches are paired first, one record per op.
//     Its Id is adopted instead of creating the record again (the op is sent as an update of it);
//   * a delete of a row deleted before its create's outcome was known: the record is found the same way
//     (or, for an upsert, by its external id value) and deleted; none found means none was created.
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

/** Equal once automation's usual normalising (case, surrounding blanks) is set aside. */
function loosely(sent: unknown, got: unknown): boolean {
  if (typeof sent !== 'string' || typeof got !== 'string') return false;
  return sent.trim().toLowerCase() === got.trim().toLowerCase();
}

/**
 * How well a record matches what a create sent. Only the values sent (not nulls: defaults and automation
 * fill those) are evidence. Automation may rewrite some of them (a flow lower-casing Email, or setting
 * Rating from AnnualRevenue), so a record qualifies when it still holds at least half of them, exactly
 * or but for case and blanks, and at least one. Null when it does not qualify.
 */
function evidence(sent: Record<string, unknown>, rec: Record<string, unknown>): { share: number; exactShare: number } | null {
  let total = 0;
  let exact = 0;
  let near = 0;
  for (const [k, v] of Object.entries(sent)) {
    if (v === null || v === undefined || v === '' || typeof v === 'object') continue;
    total++;
    if (same(v, rec[k])) exact++;
    else if (loosely(v, rec[k])) near++;
  }
  if (total === 0 || exact + near === 0 || (exact + near) * 2 < total) return null;
  return { share: (exact + near) / total, exactShare: exact / total };
}

/** Better evidence first: more of the sent values held, then more of them exactly, then created nearer the attempt. */
function rank(a: { share: number; exactShare: number; gap: number }, b: { share: number; exactShare: number; gap: number }): number {
  return b.share - a.share || b.exactShare - a.exactShare || a.gap - b.gap;
}

function soqlDateTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const soqlString = (v: unknown) => `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Ids among `ids` that an application row of `table` already holds (see hc.outbound_held_sfids). */
async function held(db: pg.Pool, connectionId: number, tables: string[], ids: string[]): Promise<Set<string>> {
  const taken = new Set<string>();
  if (!ids.length) return taken;
  for (const t of tables) {
    const r = await db.query('select hc.outbound_held_sfids($1, $2, $3) as held', [connectionId, t, ids]);
    for (const id of r.rows[0].held as string[]) taken.add(id);
  }
  return taken;
}

function found(o: Op, id: string): void {
  o.sfid = id;
  if (o.action === 'insert') o.adopted = true;
}

/**
 * Looks up the earlier creates of ops with attempts: an insert whose create is found is marked adopted
 * (sfid set); a delete gets the sfid of the record to delete (none found: sfid stays null, nothing to
 * delete). Returns how many were found.
 */
export async function adoptLostCreates(conn: Connection, db: pg.Pool, connectionId: number, ops: Op[]): Promise<number> {
  const lost = ops.filter(
    (o) => o.attempts.length && ((o.action === 'insert' && !o.adopted && !o.upsert_field) || (o.action === 'delete' && !o.sfid)),
  );
  if (!lost.length) return 0;
  let adopted = 0;

  // Upserts: the external id names the record.
  const byExtId = new Map<string, { object: string; field: string; ops: Op[] }>();
  for (const o of lost) {
    const a = o.attempts.find((x) => x.upsert_field && x.sent[x.upsert_field] != null);
    if (!a) continue;
    const key = `${o.object}|${a.upsert_field}`;
    if (!byExtId.has(key)) byExtId.set(key, { object: o.object, field: a.upsert_field!, ops: [] });
    byExtId.get(key)!.ops.push(o);
  }
  for (const { object, field, ops: list } of byExtId.values()) {
    const value = (o: Op) => String(o.attempts.find((x) => x.upsert_field === field)!.sent[field]);
    const records: Record<string, unknown>[] = [];
    for (let i = 0; i < list.length; i += 100) {
      const values = list.slice(i, i + 100).map((o) => soqlString(value(o)));
      const res = await conn.query<Record<string, unknown>>(`SELECT Id, ${field} FROM ${object} WHERE ${field} IN (${values.join(', ')})`, { autoFetch: true, maxFetch: 100_000 });
      records.push(...res.records);
    }
    const taken = await held(db, connectionId, [...new Set(list.map((o) => o.table))], records.map((r) => String(r.Id)));
    for (const o of list) {
      const hit = records.find((r) => !taken.has(String(r.Id)) && String(r[field]) === value(o));
      if (hit) {
        found(o, String(hit.Id));
        adopted++;
      }
    }
  }

  // Creates without an external id: the records the integration user created since the attempt.
  const userId = conn.userInfo?.id;
  const byObject = new Map<string, Op[]>();
  for (const o of lost) {
    if (o.sfid || o.attempts.some((a) => a.upsert_field)) continue;
    byObject.set(o.object, [...(byObject.get(o.object) ?? []), o]);
  }
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
    const taken = await held(db, connectionId, [...new Set(list.map((o) => o.table))], candidates.map((c) => String(c.Id)));
    // Every (op, record) pair that may be the lost create, best evidence first; each record goes to one op.
    const pairs: { o: Op; c: Record<string, unknown>; share: number; exactShare: number; gap: number }[] = [];
    for (const o of list) {
      for (const c of candidates) {
        if (taken.has(String(c.Id))) continue;
        const created = Date.parse(String(c.CreatedDate).replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
        let best: (typeof pairs)[number] | undefined;
        for (const a of o.attempts) {
          const started = Date.parse(a.started_at);
          if (created < started - SKEW_MS) continue;
          const e = evidence(a.sent, c);
          if (!e) continue;
          const p = { o, c, ...e, gap: Math.abs(created - started) };
          if (!best || rank(p, best) < 0) best = p;
        }
        if (best) pairs.push(best);
      }
    }
    pairs.sort(rank);
    for (const p of pairs) {
      if (p.o.sfid || taken.has(String(p.c.Id))) continue;
      taken.add(String(p.c.Id));
      found(p.o, String(p.c.Id));
      adopted++;
    }
  }
  return adopted;
}
