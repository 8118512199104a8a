// Applies Change Data Capture events of one mapping. Events are queued as they arrive and drained in
// batches; a batch is applied by ONE SQL call (hc.inbound_apply), one transaction together with the
// replay id of its last event, so after kill -9 the subscription resumes exactly after what was
// committed: nothing lost, nothing applied twice.
//
// Here the events are laid out in waves: the k-th change of each record in wave k, so every change is
// applied in its order (an UPDATE carries only the changed fields: the others are left alone) while
// each wave is applied set-based, grouped by field list. What a payload cannot carry is fetched
// before the call, outside any transaction (one query per 200 records): formula fields of created and
// updated records, whole records for GAP_* events, for UPDATEs of records the table does not have yet and
// for records deleted and restored within the batch, and the records queued for a re-read
// (hc.inbound_rereads: events the SQL could not apply safely). No row is locked while Salesforce is asked.
import type { SyncContext } from '../../context.js';
import type { ChangeEvent } from '../../salesforce/streaming.js';
import { CLIENT_NAME } from '../../salesforce/client.js';
import { retrieveByIds } from '../../salesforce/rest.js';
import { flatten, type MappingRow, type SfRecord } from './rows.js';
import { applyBatch, batchPreread } from '../../db/hc/inbound.js';

/** Compound values (Name: {FirstName, LastName}, BillingAddress: {City}) onto mapped field names. */
function flattenPayload(fields: Record<string, unknown>, mapped: Set<string>): SfRecord {
  const out: SfRecord = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [sub, sv] of Object.entries(v as Record<string, unknown>)) {
        const candidates = [sub, k.replace(/Address$/, '') + sub, `${k}.${sub}`];
        const hit = candidates.find((c) => mapped.has(c));
        if (hit) out[hit] = sv;
      }
    } else if (mapped.has(k)) out[k] = v;
  }
  return out;
}

/**
 * The sidecar began to stop before the batch was applied: nothing of it was committed, and nothing is
 * lost (its events come again from the stored replay id, its re-reads stay queued). Asked between the
 * Salesforce reads and before the apply, so a stop does not wait for a large re-read (2,000 records are
 * ten queries) and then for its apply, whose row locks the writer's last results would wait for.
 */
export class BatchAbandoned extends Error {
  constructor() {
    super('stopping: the change-event batch is left for the next start');
  }
}

export interface CdcBatchResult {
  events: number;
  lastReplayId: number | string | null;
  /** Records queued for a re-read by this batch (their events could not be applied as they were). */
  deferred: number;
  /** Where the batch's time went (ms): the pre-read query, the Salesforce reads, building the JSON, the apply. */
  timing: { prereadMs: number; fetchMs: number; buildMs: number; applyMs: number; records: number };
}

/**
 * `epoch` is the inbound leadership this sidecar holds (hc.inbound_try_lead): the batch commits only while
 * it is current (hc.inbound_fence), so a leader that was replaced cannot move the replay id.
 * `events` may be empty: the call then applies the re-reads that are due, and moves the stored position to
 * `position` when given (a shared Pub/Sub stream delivered nothing for this mapping up to that replay id).
 * CometD replay ids are stored as numbers, Pub/Sub's 8-byte ones as 16 hex digits (pubsub.ts replayHex).
 */
export async function applyCdcBatch(
  ctx: SyncContext, m: MappingRow, fields: string[], calculated: string[], events: ChangeEvent[], epoch?: number,
  position?: { channel: string; replayId: string }, stopping?: () => boolean,
): Promise<CdcBatchResult> {
  const t0 = performance.now();
  const mapped = new Set(fields);
  const updateIds = [...new Set(events.filter((e) => e.header.changeType === 'UPDATE').flatMap((e) => e.header.recordIds))];
  const pre = await batchPreread(ctx.db, ctx.connection.schema, m.table_name, updateIds, m.id);
  const tPreread = performance.now();
  const known = new Set<string>(pre.known);
  const due: string[] = pre.due;

  // First pass: which records must be read whole (the events cannot describe them).
  const fetchFull = new Set<string>(due);
  const state = new Map<string, 'created' | 'deleted' | 'seen'>();
  for (const e of events) {
    const t = e.header.changeType;
    for (const id of e.header.recordIds ?? []) {
      if (t.startsWith('GAP_')) {
        if (t !== 'GAP_OVERFLOW') fetchFull.add(id);
      } else if (t === 'DELETE') state.set(id, 'deleted');
      else {
        // Restored (or re-created) after a delete in this same batch: the fields before the delete are gone.
        if (state.get(id) === 'deleted') fetchFull.add(id);
        if (t === 'UPDATE' && !known.has(id) && !state.has(id)) fetchFull.add(id);
        // A large text field sent as data differences (a unified diff, not the value): read whole.
        if (t === 'UPDATE' && e.header.diffFields?.length) fetchFull.add(id);
        state.set(id, t === 'UPDATE' && state.get(id) !== 'created' ? 'seen' : 'created');
      }
    }
  }

  // Second pass: every other record's changes, in order. The k-th change of each record goes into wave
  // k, so a record changed three times in a batch is written three times, in order (a row trigger sees
  // every version), while each wave is still applied set-based.
  const changes = new Map<string, ({ kind: 'delete' } | { kind: 'row'; origin: string; row: SfRecord })[]>();
  const echoIds = new Set<string>();
  let watermark: Date | null = null;
  for (const e of events) {
    const h = e.header;
    const ts = new Date(h.commitTimestamp);
    if (!watermark || ts > watermark) watermark = ts;
    if (h.changeType.startsWith('GAP_')) continue;
    const echo = (h.changeOrigin ?? '').includes(`client=${CLIENT_NAME}`);
    const body = h.changeType === 'DELETE' ? {} : flattenPayload(e.fields, mapped);
    // CDC never carries SystemModstamp: the commit time stands in for it (whole seconds, as Salesforce
    // stamps it), so the next poll window and the stale-row guard line up.
    const smod = new Date(Math.floor(h.commitTimestamp / 1000) * 1000).toISOString();
    for (const id of h.recordIds ?? []) {
      if (fetchFull.has(id)) continue;
      const list = changes.get(id) ?? [];
      changes.set(id, list);
      if (h.changeType === 'DELETE') {
        list.push({ kind: 'delete' });
        continue;
      }
      // hcsync_at: when Salesforce had these values (hc.inbound_merge compares it with our own writes).
      const row: SfRecord = { ...body, Id: id, hcsync_at: ts.toISOString() };
      if (mapped.has('SystemModstamp')) row.SystemModstamp = smod;
      if (h.changeType !== 'UPDATE' && mapped.has('IsDeleted')) row.IsDeleted = false;
      // The echo of a create (or update) of ours whose sfid the writer has not written back yet is left
      // out: the application's row gets the record on write-back (a row of its own would be a duplicate).
      if (echo && h.changeType !== 'UNDELETE') echoIds.add(id);
      list.push({ kind: 'row', origin: echo ? 'cdc-echo' : 'cdc', row });
    }
  }
  const fetchFormula = calculated.length
    ? [...changes].filter(([, l]) => l.at(-1)?.kind === 'row').map(([id]) => id)
    : [];

  // Read what the events cannot carry (outside any transaction).
  const tFetch = performance.now();
  const readAt = new Date();
  const fetched = new Map<string, SfRecord>();
  const wanted = [...new Set([...fetchFull, ...fetchFormula])];
  // queryAll: a gap may hide a delete, which shows as IsDeleted = true (or as no row at all).
  for await (const page of retrieveByIds(ctx.sf, m.object_name, wanted, fields, { scanAll: fields.includes('IsDeleted') })) {
    for (const r of page.records.map((rec) => flatten(rec))) fetched.set(String(r.Id), r);
    if (stopping?.()) throw new BatchAbandoned();
  }

  const tFetched = performance.now();

  // The waves: rows of one wave are grouped by field list, so a field an event did not carry is left alone.
  interface Wave { groups: Map<string, { origin: string; fields: string[]; rows: SfRecord[] }>; deletes: string[] }
  const waves: Wave[] = [];
  const wave = (k: number): Wave => {
    while (waves.length <= k) waves.push({ groups: new Map(), deletes: [] });
    return waves[k];
  };
  const add = (w: Wave, origin: string, row: SfRecord) => {
    const keys = Object.keys(row).sort();
    const key = `${origin}|${keys.join(',')}`;
    let g = w.groups.get(key);
    if (!g) w.groups.set(key, (g = { origin, fields: keys, rows: [] }));
    g.rows.push(row);
  };
  for (const [id, list] of changes) {
    list.forEach((c, k) => (c.kind === 'delete' ? wave(k).deletes.push(id) : add(wave(k), c.origin, c.row)));
  }
  const first = wave(0);
  for (const id of fetchFull) {
    const r = fetched.get(id);
    // A record Salesforce no longer returns at all is gone (a GAP_* or a queued re-read of a deleted one).
    if (!r) first.deletes.push(id);
    else add(first, 'reread', { ...r, hcsync_at: readAt.toISOString() });
  }
  // Formula values of created/updated records, fetched above, applied after the events themselves.
  const formulaWave: Wave = { groups: new Map(), deletes: [] };
  for (const id of fetchFormula) {
    const r = fetched.get(id);
    if (r && !r.IsDeleted) add(formulaWave, 'cdc', { ...Object.fromEntries(['Id', ...calculated].map((k) => [k, r[k]])), hcsync_at: readAt.toISOString() });
  }
  if (formulaWave.groups.size) waves.push(formulaWave);

  const touched = [...new Set([...changes.keys(), ...fetchFull])];
  const last = events.length ? events[events.length - 1].replayId : (position?.replayId ?? null);
  const batch = {
    epoch: epoch ?? null,
    touched,
    waves: waves.map((w) => ({ groups: [...w.groups.values()], deletes: w.deletes })),
    echo: [...echoIds],
    reread: due,
    read_at: readAt.toISOString(),
    channel: events[0]?.channel ?? position?.channel ?? null,
    replay_id: last === null ? null : String(last),
    watermark: watermark?.toISOString() ?? null,
  };
  const json = JSON.stringify(batch);
  const tApply = performance.now();
  if (stopping?.()) throw new BatchAbandoned();
  const res = await applyBatch(ctx.db, m.id, json);
  const ms = (a: number, b: number) => Math.round(b - a);
  return {
    events: events.length,
    lastReplayId: last,
    deferred: Number(res.deferred ?? 0) + Number(res.reread ?? 0),
    timing: { prereadMs: ms(t0, tPreread), fetchMs: ms(tFetch, tFetched), buildMs: ms(tPreread, tFetch) + ms(tFetched, tApply), applyMs: ms(tApply, performance.now()), records: touched.length },
  };
}
