// Applies Change Data Capture events of one mapping. Events are queued as they arrive and drained in
// batches; a batch is applied in ONE transaction together with the replay id of its last event
// (hc.inbound_position), so after kill -9 the subscription resumes exactly after what was committed:
// nothing lost, nothing applied twice.
//
// What a payload cannot carry is fetched before the transaction (one query per batch): formula fields
// of created/updated records, whole records for GAP_* events and for UPDATEs of records the table does
// not have yet (an UPDATE carries only the changed fields).
import type { SyncContext } from '../../context.js';
import type { ChangeEvent } from '../../salesforce/streaming.js';
import { CLIENT_NAME } from '../../salesforce/client.js';
import { mergeRows, restQuery, type MappingRow, type SfRecord } from './rows.js';

export interface CdcBatchResult {
  events: number;
  lastReplayId: number;
}

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
 * `epoch` is the inbound leadership this sidecar holds (hc.inbound_try_lead): the batch commits only while
 * it is current (hc.inbound_fence), so a leader that was replaced cannot move the replay id.
 */
export async function applyCdcBatch(ctx: SyncContext, m: MappingRow, fields: string[], calculated: string[], events: ChangeEvent[], epoch?: number): Promise<CdcBatchResult> {
  const mapped = new Set(fields);
  const tbl = `"${ctx.connection.schema}"."${m.table_name}"`;
  // Records whose full row (or formula values) must be read from Salesforce.
  const fetchFull = new Set<string>();
  const fetchFormula = new Set<string>();
  const updateIds = events.filter((e) => e.header.changeType === 'UPDATE').flatMap((e) => e.header.recordIds);
  const known = new Set<string>(
    updateIds.length ? (await ctx.db.query(`select sfid from ${tbl} where sfid = any($1)`, [updateIds])).rows.map((r) => r.sfid) : [],
  );
  const createdHere = new Set<string>();
  for (const e of events) {
    const t = e.header.changeType;
    if (t.startsWith('GAP_')) e.header.recordIds.forEach((id) => fetchFull.add(id));
    else if (t === 'CREATE' || t === 'UNDELETE') {
      e.header.recordIds.forEach((id) => createdHere.add(id));
      if (calculated.length) e.header.recordIds.forEach((id) => fetchFormula.add(id));
    } else if (t === 'UPDATE') {
      for (const id of e.header.recordIds) {
        if (!known.has(id) && !createdHere.has(id)) fetchFull.add(id);
        else if (calculated.length) fetchFormula.add(id);
      }
    }
  }
  const fetched = new Map<string, SfRecord>();
  const wanted = [...new Set([...fetchFull, ...fetchFormula])];
  for (let i = 0; i < wanted.length; i += 200) {
    const chunk = wanted.slice(i, i + 200);
    // queryAll: a gap may hide a delete, which shows as IsDeleted = true (or as no row at all).
    const soql = `SELECT ${fields.join(', ')} FROM ${m.object_name} WHERE Id IN (${chunk.map((x) => `'${x}'`).join(',')})`;
    for await (const page of restQuery(ctx.sf, soql, { scanAll: fields.includes('IsDeleted') })) {
      for (const r of page.records) fetched.set(String(r.Id), r);
    }
  }

  const client = await ctx.db.connect();
  let last = events[events.length - 1].replayId;
  try {
    await client.query('begin');
    if (epoch !== undefined) await client.query('select hc.inbound_fence($1, $2)', [ctx.connection.id, epoch]);
    // Every row the batch touches, locked up front in id order, as the writer's hc.outbound_complete
    // locks its rows: event by event the locks would be taken in no global order, and a writer recording
    // results for the same rows could deadlock with us.
    const touched = [...new Set(events.flatMap((e) => e.header.recordIds ?? []))];
    if (touched.length) {
      await client.query(`select count(*) from (select 1 from ${tbl} t where t.sfid = any($1) order by t.id for update of t) x`, [touched]);
    }
    let watermark: Date | null = null;
    for (const e of events) {
      const h = e.header;
      const ts = new Date(h.commitTimestamp);
      if (!watermark || ts > watermark) watermark = ts;
      const echo = (h.changeOrigin ?? '').includes(`client=${CLIENT_NAME}`);
      const origin = echo ? 'cdc-echo' : 'cdc';
      switch (h.changeType) {
        case 'CREATE':
        case 'UNDELETE':
        case 'UPDATE': {
          const body = flattenPayload(e.fields, mapped);
          // CDC never carries SystemModstamp: the commit time stands in for it (whole seconds, as
          // Salesforce stamps it), so the next poll window and the stale-row guard line up.
          const smod = new Date(Math.floor(h.commitTimestamp / 1000) * 1000).toISOString();
          const rows: SfRecord[] = [];
          const full: SfRecord[] = [];
          // The echo of a create of ours whose sfid the writer has not written back yet is skipped: the
          // application's row gets the record on write-back (a row of its own here would be a duplicate).
          const ours = echo && h.changeType !== 'UNDELETE'
            ? new Set<string>((await client.query('select hc.outbound_echo_pending($1, $2) as ids', [m.id, h.recordIds])).rows[0].ids)
            : undefined;
          for (const id of h.recordIds) {
            if (ours?.has(id)) continue;
            if (h.changeType === 'UPDATE' && fetchFull.has(id)) {
              const f = fetched.get(id);
              if (f) full.push(f);
              continue;
            }
            const row: SfRecord = { ...body, Id: id };
            if (mapped.has('SystemModstamp')) row.SystemModstamp = smod;
            if (h.changeType !== 'UPDATE' && mapped.has('IsDeleted')) row.IsDeleted = false;
            rows.push(row);
          }
          if (rows.length) await mergeRows(client, m.id, fields, rows, origin);
          if (full.length) await mergeRows(client, m.id, fields, full, 'reread');
          break;
        }
        case 'DELETE':
          await client.query('select hc.inbound_delete($1, $2, $3)', [m.id, h.recordIds, 'cdc']);
          break;
        default: {
          // GAP_CREATE/UPDATE/DELETE/UNDELETE: the state now is what Salesforce returns; a record it no
          // longer returns at all is gone.
          if (h.changeType === 'GAP_OVERFLOW' || !h.recordIds?.length) break; // the caller re-reads by SystemModstamp
          const full = h.recordIds.map((id) => fetched.get(id)).filter((r): r is SfRecord => Boolean(r));
          if (full.length) await mergeRows(client, m.id, fields, full, 'reread');
          const missing = h.recordIds.filter((id) => !fetched.has(id));
          if (missing.length) await client.query('select hc.inbound_delete($1, $2, $3)', [m.id, missing, 'cdc']);
        }
      }
    }
    // Formula values of created/updated records, fetched above, applied after the events themselves.
    const formula = [...fetchFormula].map((id) => fetched.get(id)).filter((r): r is SfRecord => Boolean(r) && !r!.IsDeleted);
    if (formula.length) {
      const rows = formula.map((r) => Object.fromEntries(['Id', ...calculated].map((k) => [k, r[k]])));
      await mergeRows(client, m.id, ['Id', ...calculated], rows, 'cdc');
    }
    await client.query('select hc.inbound_position($1, $2, $3, $4)', [m.id, events[0].channel, String(last), watermark]);
    await client.query('commit');
  } catch (e) {
    await client.query('rollback').catch(() => {});
    last = NaN;
    throw e;
  } finally {
    client.release();
  }
  return { events: events.length, lastReplayId: last };
}
