// Exactly-once creates. Before a create is sent, hc.outbound_attempt records the row, the time and the
// exact field values. When a claim hands back an op with attempts, the earlier create may or may not
// have reached Salesforce:
//   * an insert without an external id: one SOQL query per object finds the records the integration user
//     created since the earliest attempt (minus clock skew) whose Id no row holds yet. Salesforce
//     automation may have rewritten some of the sent values on save, so a record is that create when it
//     still holds most of them (see evidence()); the best matches are paired first, one record per op.
//     Its Id is adopted instead of creating the record again;
//   * an insert with an external id: the record holding that value, if the integration user created it
//     since the earliest attempt, is adopted the same way. One that existed before is upserted again:
//     whether the lost answer changed it cannot be told;
//   * an adopted create is sent as an update carrying only the fields whose values differ from what every
//     attempt sent: the rest Salesforce holds already, or has changed since (another user, a flow), and
//     sending them again would put older values over newer ones. So is a create the read side adopted
//     first (it found the record by its external id: the row has the sfid, the claim sends an update).
//     Once settled, the record is read again (hc._complete_rereads): the row gets what others changed;
//   * the lookups see deleted records too (queryAll): a landed create a user has deleted since is
//     adopted, its update fails with ENTITY_IS_DELETED, the row takes the Id, and the read side removes
//     the row as for any record deleted in Salesforce. Not seen, it was created a second time;
//   * a delete of a row deleted before its create's outcome was known: the record is found the same way
//     (or, for an upsert, by its external id value) and deleted; none found means none was created.
import type pg from 'pg';
import type { Sf } from '../../salesforce/client.js';
import { recordsCreatedSince, recordsWithValues, userId as integrationUser } from '../../salesforce/rest.js';
import type { Op } from './salesforce.js';
import { heldSfids, recordFound } from '../../db/hc/outbound.js';

const SKEW_MS = 120_000;
// A create sent by a sidecar that is gone (kill -9, a crash, a lost host) may still land in Salesforce,
// which goes on with a request whose client has died: its record is held back in SQL until 4 s after
// that send (hc._outbound_holds) before it is claimed and looked up here. Our own calls are tracked in
// memory (InFlight) instead.
/** A Salesforce datetime ("2026-11-30T04:00:00.000+0000") in ms. */
function sfTime(v: unknown): number {
  return Date.parse(String(v).replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
}

function same(sent: unknown, got: unknown): boolean {
  if (sent === null || sent === undefined) return got === null || got === undefined || got === '';
  if (got === null || got === undefined) return false;
  if (typeof sent === 'number' || typeof got === 'number') return Number(sent) === Number(got);
  if (typeof sent === 'boolean' || typeof got === 'boolean') return String(sent) === String(got);
  const a = String(sent);
  const b = String(got);
  if (a === b) return true;
  if (/^\d{4}-\d{2}-\d{2}T/.test(a) && /^\d{4}-\d{2}-\d{2}T/.test(b)) return Date.parse(a) === sfTime(b);
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

/** Ids among `ids` that an application row of `table` already holds (see hc.outbound_held_sfids). */
async function held(db: pg.Pool, connectionId: number, tables: string[], ids: string[]): Promise<Set<string>> {
  const taken = new Set<string>();
  if (!ids.length) return taken;
  for (const t of tables) {
    for (const id of await heldSfids(db, connectionId, t, ids)) taken.add(id);
  }
  return taken;
}

function sameSent(sent: unknown, now: unknown): boolean {
  if ((sent !== null && typeof sent === 'object') || (now !== null && typeof now === 'object')) return JSON.stringify(sent) === JSON.stringify(now);
  return same(sent, now) && same(now, sent);
}

/**
 * What a landed attempt already wrote is not sent again (see the top of this file). A field an attempt
 * left out was sent as nothing (a create omits empty fields): an update's null for it is not news either.
 */
function unsentOnly(o: Op): void {
  if (!o.attempts.length) return;
  for (const k of Object.keys(o.body)) {
    if (o.attempts.every((a) => sameSent(a.sent[k] ?? null, o.body[k]))) delete o.body[k];
  }
}

function found(o: Op, id: string): void {
  o.sfid = id;
  if (o.action !== 'insert') return;
  o.adopted = true;
  unsentOnly(o);
}

/**
 * Looks up the earlier creates of ops with attempts: an insert whose create is found is marked adopted
 * (sfid set); a delete gets the sfid of the record to delete (none found: sfid stays null, nothing to
 * delete). Returns how many were found.
 */
export async function adoptLostCreates(sf: Sf, db: pg.Pool, connectionId: number, claimer: number, ops: Op[]): Promise<number> {
  // A create in doubt whose record the read side has found already (by its external id): the row has
  // the sfid, and the claim sends its INSERT entry as an update, with the attempts.
  for (const o of ops) if (o.action === 'update') unsentOnly(o);
  const lost = ops.filter(
    (o) => o.attempts.length && ((o.action === 'insert' && !o.adopted) || (o.action === 'delete' && !o.sfid)),
  );
  if (!lost.length) return 0;
  // Found by an earlier round (hc.outbound_found): taken as found. Looked up again, the record may no
  // longer hold what the create sent (our own later writes went to it), and would be created twice.
  let adopted = 0;
  const unknown: Op[] = [];
  for (const o of lost) {
    const known = o.attempts.find((a) => a.found_sfid)?.found_sfid;
    if (known) {
      found(o, known);
      adopted++;
    } else unknown.push(o);
  }
  if (!unknown.length) return adopted;
  adopted += await lookUp(sf, db, connectionId, unknown, integrationUser(sf));
  await recordFound(db, connectionId, claimer, unknown.filter((o) => o.sfid).map((o) => ({ op_id: o.op_id, table: o.table, record_id: o.record_id, sfid: o.sfid! })));
  return adopted;
}

async function lookUp(sf: Sf, db: pg.Pool, connectionId: number, lost: Op[], userId: string | undefined): Promise<number> {
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
    // (Live records first: a deleted one holding the value is only taken when no live one does.)
    const records = (await recordsWithValues(sf, object, field, list.map(value), ['Id', field, 'CreatedDate', 'CreatedById', 'IsDeleted']))
      .sort((a, b) => Number(a.IsDeleted === true) - Number(b.IsDeleted === true));
    const taken = await held(db, connectionId, [...new Set(list.map((o) => o.table))], records.map((r) => String(r.Id)));
    for (const o of list) {
      // A delete takes the record whoever made it; an insert only one it made itself (see the top).
      const since = Math.min(...o.attempts.map((a) => Date.parse(a.started_at))) - SKEW_MS;
      const ours = (r: Record<string, unknown>) =>
        o.action === 'delete' || ((!userId || r.CreatedById === userId) && sfTime(r.CreatedDate) >= since);
      const hit = records.find((r) => (!taken.has(String(r.Id)) || String(r.Id) === o.sfid) && String(r[field]) === value(o) && ours(r));
      if (hit) {
        found(o, String(hit.Id));
        adopted++;
      }
    }
  }

  // Creates without an external id: the records the integration user created since the attempt.
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
    const candidates = await recordsCreatedSince(sf, object, [...fields], since, userId);
    if (!candidates.length) continue;
    // Ids an application row already holds are taken (a row the read side stored for the lost create
    // itself is not: see hc.outbound_held_sfids).
    const taken = await held(db, connectionId, [...new Set(list.map((o) => o.table))], candidates.map((c) => String(c.Id)));
    // Every (op, record) pair that may be the lost create, best evidence first; each record goes to one op.
    const pairs: { o: Op; c: Record<string, unknown>; share: number; exactShare: number; gap: number }[] = [];
    for (const o of list) {
      for (const c of candidates) {
        if (taken.has(String(c.Id))) continue;
        const created = sfTime(c.CreatedDate);
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
