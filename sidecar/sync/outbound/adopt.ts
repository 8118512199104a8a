// Exactly-once creates. Before a create is sent, hc.outbound_attempt records the row, the time and the
// exact field values. When a claim hands back an op with attempts, the earlier create may or may not
// have reached Salesforce:
//   * an insert without an external id: one SOQL query per object finds the records the integration user
//     created since the earliest attempt (minus clock skew); a record whose values equal what was sent,
//     and whose Id no row holds yet, is that create: its Id is adopted instead of creating the record
//     again (the op is sent as an update of it);
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
        found(o, String(hit.Id));
        adopted++;
      }
    }
  }
  return adopted;
}
