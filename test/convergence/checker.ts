// The checker: once the run has settled, every row of the mapped tables is compared field by field with
// the emulator's records, read through the API (jsforce), and with what the workload was told.
//
// Definitions (per logical record, i.e. per key):
//   lost        a write acknowledged by one side that is missing from the other once settled:
//               - an acknowledged create of a record nobody tried to delete, absent from either side;
//               - an acknowledged delete whose record still exists on either side;
//               - a field whose settled value (the same on both sides) is none of the values that could
//                 have won: the last acknowledged value from each side, or a later write of unknown
//                 outcome (an older value came back, or an acknowledged write never arrived).
//   duplicated  two rows (Postgres) or two records (Salesforce) for one logical record.
//   diverged    present on both sides with a field that differs (sfid included), or present on one side
//               only when no acknowledged write says which side is right (e.g. a create whose answer was
//               lost, not found again).
//   stuck       work nothing will ever send: a _trigger_log entry still NEW or PENDING, or a row whose
//               _hc_lastop is PENDING or FAILED (the workload writes only valid values, so a FAILED row
//               is a write the sync gave up on).
//   parked      an open conflict (hc.conflicts, policy manual): the fields both sides changed, or a delete
//               against a change, wait for hc.resolve_conflict. Counted apart and left out of the other
//               counts: each side keeps its own value on purpose, and the held entries are not stuck.
// Flow-set values are compared between the sides (Rating, Last_Touched__c, the lower-cased Email) but not
// with what the workload wrote: Salesforce changed them on purpose.
import type jsforce from 'jsforce';
import pg from 'pg';
import { MAPPINGS, OBJECTS, type ObjectName } from './rig.js';
import { WRITABLE, type LogicalRecord, type Side } from './workload.js';

export interface Finding {
  kind: 'lost' | 'duplicated' | 'diverged' | 'stuck';
  key: string;
  detail: string;
}

export interface CheckResult {
  /** Open conflicts (records), not divergence. */
  parked: number;
  /** The open conflicts by kind: update (fields), pg_delete, sf_delete. */
  parkedByKind?: Record<string, number>;
  lost: number;
  duplicated: number;
  diverged: number;
  stuck: number;
  records: { pg: number; sf: number };
  /** FAILED entries (queue and archive): a write to a record deleted meanwhile on the other side is refused, as expected. */
  failedEntries: number;
  findings: Finding[];
}

type Row = Record<string, unknown>;

function norm(field: string, v: unknown): unknown {
  if (v === null || v === undefined || v === '') return null;
  if (v instanceof Date) return Math.floor(v.getTime() / 1000);
  if (field === 'SystemModstamp' || field === 'Last_Touched__c') {
    const s = String(v);
    // Salesforce: 2024-01-15T10:20:30.000+0000; a timestamp column read as text: 2024-01-15 10:20:30
    const t = Date.parse(s.replace('+0000', 'Z').replace(' ', 'T') + (/[Zz+]|-\d\d:?\d\d$/.test(s.slice(10)) ? '' : 'Z'));
    return Number.isNaN(t) ? s : Math.floor(t / 1000);
  }
  if (typeof v === 'number' || typeof v === 'bigint') return Number(v);
  if (['AnnualRevenue', 'NumberOfEmployees'].includes(field)) return Number(v);
  return v;
}
const same = (field: string, a: unknown, b: unknown) => norm(field, a) === norm(field, b);
/** How the workload's value should look after Salesforce stored it. */
const stored = (object: ObjectName, field: string, v: unknown) => (object === 'Contact' && field === 'Email' && typeof v === 'string' ? v.toLowerCase() : v);

/** `ignore`: fields left out of the comparison (each with an open defect named where the run is configured). */
export async function check(url: string, conn: jsforce.Connection, model: Map<string, LogicalRecord>, opts: { ignore?: string[] } = {}): Promise<CheckResult> {
  const res: CheckResult = { parked: 0, lost: 0, duplicated: 0, diverged: 0, stuck: 0, records: { pg: 0, sf: 0 }, failedEntries: 0, findings: [] };
  const find = (kind: Finding['kind'], key: string, detail: string) => {
    res[kind]++;
    res.findings.push({ kind, key, detail });
  };
  const db = new pg.Client({ connectionString: url, application_name: 'convergence checker' });
  await db.connect();
  try {
    // Open conflicts: per sfid, the parked columns (update) or the whole record (a delete against a change).
    const open = (await db.query(`select object_name, sfid, record_id, kind, columns from hc.conflicts where resolved_at is null`)).rows as
      { object_name: string; sfid: string; record_id: number; kind: string; columns: string[] }[];
    res.parked = open.length;
    res.parkedByKind = {};
    for (const k of open) res.parkedByKind[k.kind] = (res.parkedByKind[k.kind] ?? 0) + 1;
    const parkedFields = new Map(open.filter((k) => k.kind === 'update').map((k) => [k.sfid, new Set(k.columns)]));
    const parkedRecords = new Set(open.filter((k) => k.kind !== 'update').map((k) => k.sfid));
    const parkedRows = new Set(open.map((k) => `${k.object_name.toLowerCase()}:${k.record_id}`));
    // Deletes a policy overruled: a local delete lost to a Salesforce change (the row came back, same
    // sfid), a Salesforce delete lost to a local change (the record was created again from the row).
    const kept = (await db.query(`select object_name, sfid, record_id, kind from hc.conflicts
                                   where resolved_at is not null and ((kind = 'pg_delete' and winner = 'sf') or (kind = 'sf_delete' and winner = 'pg'))`)).rows as
      { object_name: string; sfid: string; record_id: number; kind: string }[];
    const keptSfids = new Set(kept.filter((k) => k.kind === 'pg_delete').map((k) => k.sfid));
    const keptRows = new Set(kept.filter((k) => k.kind === 'sf_delete').map((k) => `${k.object_name.toLowerCase()}:${k.record_id}`));
    for (const object of OBJECTS) {
      const m = MAPPINGS[object];
      const data = m.fields.filter((f) => f !== 'Id');
      const pgRows = (await db.query(`select id, sfid, _hc_lastop, _hc_err, ${data.map((f) => `${f.toLowerCase()}::text as "${f}"`).join(', ')} from salesforce.${m.table}`)).rows as Row[];
      const sfRecs = (await conn.query<Row>(`SELECT ${m.fields.join(', ')} FROM ${object}`, { autoFetch: true, maxFetch: 1_000_000 })).records;
      res.records.pg += pgRows.length;
      res.records.sf += sfRecs.length;
      const byKey = <T extends Row>(rows: T[]) => {
        const g = new Map<string, T[]>();
        for (const r of rows) {
          const k = String(r[m.key] ?? `(no key: ${r.sfid ?? r.Id ?? r.id})`);
          g.set(k, [...(g.get(k) ?? []), r]);
        }
        return g;
      };
      const pgBy = byKey(pgRows);
      const sfBy = byKey(sfRecs);
      const keys = new Set([...pgBy.keys(), ...sfBy.keys(), ...[...model.values()].filter((r) => r.object === object).map((r) => r.key)]);
      // One sfid on two rows is a duplicate as well (two rows for one record).
      const sfids = new Map<string, number>();
      for (const r of pgRows) if (r.sfid) sfids.set(String(r.sfid), (sfids.get(String(r.sfid)) ?? 0) + 1);
      for (const [sfid, n] of sfids) if (n > 1) find('duplicated', sfid, `${object}: ${n} rows carry sfid ${sfid}`);

      for (const key of keys) {
        const ps = pgBy.get(key) ?? [];
        const ss = sfBy.get(key) ?? [];
        if (ps.length > 1) find('duplicated', key, `${object}: ${ps.length} rows in Postgres (ids ${ps.map((p) => p.id).join(', ')})`);
        if (ss.length > 1) find('duplicated', key, `${object}: ${ss.length} records in Salesforce (${ss.map((s) => s.Id).join(', ')})`);
        const rec = model.get(key);
        const p = ps[0];
        const s = ss[0];
        if ((p?.sfid && parkedRecords.has(String(p.sfid))) || (s?.Id && parkedRecords.has(String(s.Id)))) continue; // parked, counted above
        const parked = parkedFields.get(String(p?.sfid ?? s?.Id)) ?? new Set<string>();
        const ackedDelete = rec?.deletes.find((d) => d.acked);
        const triedDelete = Boolean(rec?.deletes.length);
        const overruled = (p && (keptRows.has(`${m.table}:${p.id}`) || keptSfids.has(String(p.sfid)))) || (s && keptSfids.has(String(s.Id)));
        if (ackedDelete && !overruled) {
          if (p || s) find('lost', key, `${object}: deleted in ${ackedDelete.side === 'pg' ? 'Postgres' : 'Salesforce'} (acknowledged) but still ${p && s ? 'on both sides' : p ? 'in Postgres' : 'in Salesforce'}`);
          continue;
        }
        if (!p || !s) {
          if (!p && !s) {
            if (rec?.created && !triedDelete) find('lost', key, `${object}: created in ${rec.origin === 'pg' ? 'Postgres' : 'Salesforce'} (acknowledged), on neither side now`);
            continue;
          }
          const where = p ? 'Postgres' : 'Salesforce';
          if (rec?.created && !triedDelete) find('lost', key, `${object}: created in ${rec.origin === 'pg' ? 'Postgres' : 'Salesforce'} (acknowledged), only in ${where}${p ? ` (_hc_lastop ${p._hc_lastop}${p._hc_err ? `, _hc_err ${String(p._hc_err).slice(0, 120)}` : ''})` : ''}`);
          else find('diverged', key, `${object}: only in ${where}${rec ? ` (create ${rec.created ? 'acknowledged' : 'of unknown outcome'}${triedDelete ? ', a delete of unknown outcome' : ''})` : ' (not written by the workload)'}`);
          continue;
        }
        const diffs: string[] = [];
        if (p.sfid !== s.Id) diffs.push(`sfid ${String(p.sfid)} vs Id ${String(s.Id)}`);
        for (const f of data) if (!opts.ignore?.includes(f) && !parked.has(f.toLowerCase()) && !same(f, p[f], s[f])) diffs.push(`${f}: pg ${JSON.stringify(p[f])} vs sf ${JSON.stringify(s[f])}`);
        if (diffs.length) {
          find('diverged', key, `${object} ${String(s.Id)}: ${diffs.join('; ')} (_hc_lastop ${p._hc_lastop})`);
          continue;
        }
        if (!rec) continue;
        for (const f of WRITABLE[object]) {
          if (parked.has(f.toLowerCase())) continue;
          const allowed = allowedValues(rec, f);
          if (!allowed) continue;
          const final = norm(f, s[f]);
          if (!allowed.some((v) => norm(f, stored(object, f, v)) === final)) {
            find('lost', key, `${object} ${String(s.Id)}.${f} = ${JSON.stringify(s[f])} on both sides; could have been ${allowed.map((v) => JSON.stringify(stored(object, f, v))).join(' or ')} (writes: ${describeWrites(rec, f)})`);
          }
        }
      }
    }
    // Work that nothing will ever send.
    for (const object of OBJECTS) {
      const t = MAPPINGS[object].table;
      const rows = await db.query(`select id, sfid, _hc_lastop, _hc_err, ${MAPPINGS[object].key.toLowerCase()} k from salesforce.${t} where _hc_lastop in ('PENDING', 'FAILED', 'NEW')`);
      for (const r of rows.rows.filter((x) => !parkedRows.has(`${t}:${x.id}`))) find('stuck', String(r.k), `${object} row ${r.id} (sfid ${r.sfid}): _hc_lastop ${r._hc_lastop}${r._hc_err ? `, ${String(r._hc_err).slice(0, 200)}` : ''}`);
    }
    const unsent = await db.query(`select l.id, l.table_name, l.action, l.state, l.record_id, l.sfid from salesforce._trigger_log l where l.state in ('NEW', 'PENDING') order by l.id`);
    for (const r of unsent.rows.filter((x) => !parkedRows.has(`${x.table_name}:${x.record_id}`))) find('stuck', `_trigger_log ${r.id}`, `${r.action} on ${r.table_name} row ${r.record_id} (sfid ${r.sfid}) still ${r.state}`);
    const failed = await db.query(`select count(*)::int n from (select table_name, record_id from salesforce._trigger_log where state = 'FAILED'
                                                              union all select table_name, record_id from salesforce._trigger_log_archive where state = 'FAILED') f`);
    res.failedEntries = failed.rows[0].n;
  } finally {
    await db.end();
  }
  return res;
}

/**
 * The values a field may settle on: from each side, the last acknowledged write and every later write
 * whose outcome is unknown; undefined when the workload knows nothing certain about the field.
 */
function allowedValues(rec: LogicalRecord, field: string): unknown[] | undefined {
  const out: unknown[] = [];
  let anyAcked = false;
  for (const side of ['pg', 'sf'] as Side[]) {
    const ws = rec.writes.filter((w) => w.field === field && w.side === side);
    let i = ws.length - 1;
    while (i >= 0 && !ws[i].acked) out.push(ws[i--].value);
    if (i >= 0) {
      const last = ws[i];
      out.push(last.value);
      anyAcked = true;
      // An earlier acknowledged write that was in flight together with the last one may have committed
      // after it (Write.issued).
      for (let j = i - 1; j >= 0; j--) if (ws[j].acked && ws[j].issued < last.seq && ws[j].seq > last.issued) out.push(ws[j].value);
    }
  }
  return anyAcked ? out : undefined;
}

function describeWrites(rec: LogicalRecord, field: string): string {
  return rec.writes
    .filter((w) => w.field === field)
    .slice(-6)
    .map((w) => `${w.side}${w.acked ? '' : '?'} ${JSON.stringify(w.value)}`)
    .join(', ');
}

export function summary(r: Pick<CheckResult, 'lost' | 'duplicated' | 'diverged' | 'stuck'> & { parked?: number; parkedByKind?: Record<string, number> }): string {
  const kinds = Object.entries(r.parkedByKind ?? {}).map(([k, n]) => `${k} ${n}`).join(', ');
  return `lost ${r.lost}, duplicated ${r.duplicated}, diverged ${r.diverged}, stuck ${r.stuck}${r.parked ? `, parked ${r.parked} (open conflicts: ${kinds})` : ''}`;
}
