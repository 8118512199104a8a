// The workload: applications writing to Postgres from several sessions and users writing to Salesforce
// through the API (jsforce, as any integration), at the same time, on the same records. Every write is
// noted with its outcome: acknowledged (the statement committed / the call answered success) or unknown
// (an error or no answer: it may or may not have happened). The checker judges the end state against
// these notes.
//
// Records carry a logical key that nobody changes after the create: Account.Name, Contact.External_Id__c.
// Keys say which side created them (a-p12: Account created in Postgres, c-s7: Contact created in
// Salesforce), so a second copy of one logical record is visible as two rows or records with one key.
//
// The seed decides every choice (operation, record, field, value); timing still interleaves them, so a
// replay of a seed repeats the same decisions, not the same interleaving.
import jsforce from 'jsforce';
import pg from 'pg';
import { MAPPINGS, type ObjectName } from './rig.js';
import { rng } from '../../bench/lib/accounts.js';

export type Side = 'pg' | 'sf';

// The seeded PRNG the benchmarks' data uses (mulberry32); the nemesis takes it from here.
export { rng };

export interface Write {
  side: Side;
  field: string;
  value: unknown;
  acked: boolean;
  /** Order of acknowledgement (or failure); `issued`: the last seq handed out when the write was made.
   * Two writes that were in flight at once (issued before the other was acknowledged) may have committed
   * in either order: two sessions updating one row, whose answers Node reads in any order. */
  seq: number;
  issued: number;
}

export interface LogicalRecord {
  object: ObjectName;
  key: string;
  origin: Side;
  /** true: the create was acknowledged; false: its outcome is unknown. */
  created: boolean;
  sfid?: string;
  writes: Write[];
  deletes: { side: Side; acked: boolean; seq: number }[];
}

export interface WorkloadStats {
  ops: Record<string, number>;
  acked: number;
  unknown: number;
  noop: number;
}

/** The fields each object's workload writes (Salesforce API names). The key and flow-set fields are not among them. */
export const WRITABLE: Record<ObjectName, string[]> = {
  Account: ['AccountNumber', 'Phone', 'AnnualRevenue', 'NumberOfEmployees'],
  Contact: ['FirstName', 'Email', 'Title', 'Department'],
};

const TITLES = ['Buyer', 'CFO', 'Engineer', 'Office Manager', 'VP Sales', 'Director'];
const DEPARTMENTS = ['Sales', 'Marketing', 'Finance', 'Operations', 'Engineering', 'Support'];
const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Ken', 'Radia', 'Donald'];

/**
 * Which kinds of write the workload makes. All on is the full mix (`make soak`, HCSYNC_CONVERGENCE_MIX=full);
 * the bounded CI run leaves out the kinds whose defects are open (see convergence.test.ts).
 */
export interface Mix {
  /** Writes that Salesforce flows rewrite or follow up: mixed-case Email (lower-cased before save),
   *  AnnualRevenue from 10,000,000 (Rating set before save), Phone from Postgres (Last_Touched__c after save). */
  flowRewrites: boolean;
  /** Application UPDATEs that change nothing (an ORM saving a row as it was). */
  unchangedUpdates: boolean;
}
export const FULL_MIX: Mix = { flowRewrites: true, unchangedUpdates: true };

function value(object: ObjectName, field: string, r: () => number, n: number, mix: Mix): unknown {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  switch (`${object}.${field}`) {
    case 'Account.AccountNumber': return `AN-${n}-${Math.floor(r() * 1e6)}`;
    // A phone change fires the after-save flow (Last_Touched__c): its own change event.
    case 'Account.Phone': return `+1 415 555 ${String(Math.floor(r() * 10_000)).padStart(4, '0')}`;
    // From 10,000,000 the before-save flow sets Rating = 'Hot' in Salesforce.
    case 'Account.AnnualRevenue': return r() < 0.4 && mix.flowRewrites ? 10_000_000 + Math.floor(r() * 5_000_000) : Math.floor(r() * 9_000_000);
    case 'Account.NumberOfEmployees': return Math.floor(r() * 50_000);
    case 'Contact.FirstName': return pick(FIRST);
    // Mixed case: the before-save flow stores it lower-cased in Salesforce.
    case 'Contact.Email': return mix.flowRewrites ? `${pick(FIRST)}.N${n}@Example.COM` : `${pick(FIRST).toLowerCase()}.n${n}@example.com`;
    case 'Contact.Title': return pick(TITLES);
    case 'Contact.Department': return pick(DEPARTMENTS);
  }
  throw new Error(`no value for ${object}.${field}`);
}

export interface WorkloadOptions {
  seed: number;
  url: string;
  sf: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string };
  pgSessions?: number;
  sfSessions?: number;
  /** Mean pause between one session's operations. */
  pauseMs?: number;
  /** Answer-less Salesforce calls are given up after this long (their outcome stays unknown). */
  callTimeoutMs?: number;
  mix?: Mix;
  /**
   * Records that exist before the workload starts (the volume mode's seeded Accounts): they join the model,
   * and updates and deletes pick one of them `existingShare` of the time (default 0.25), so that single-record
   * writes from both sides land on them while the burst does.
   */
  existing?: LogicalRecord[];
  existingShare?: number;
  log?: (s: string) => void;
}

export interface Workload {
  records: Map<string, LogicalRecord>;
  stats: WorkloadStats;
  stop(): Promise<void>;
  /** The jsforce connection of "another user" (also used by the checker to read Salesforce). */
  conn: jsforce.Connection;
  /** The last seq handed out: a write made outside the sessions is `issued` at it. */
  issued(): number;
  /**
   * Notes a write made outside the sessions (the volume mode's Bulk job and multi-row UPDATE), ordered with
   * the sessions' writes, without counting it among the sessions' operations.
   */
  note(rec: LogicalRecord, side: Side, fields: Record<string, unknown>, acked: boolean, issued: number): void;
}

const col = (f: string) => f.toLowerCase();

export async function startWorkload(o: WorkloadOptions): Promise<Workload> {
  const conn = new jsforce.Connection({
    loginUrl: o.sf.loginUrl,
    version: '62.0',
    oauth2: { loginUrl: o.sf.loginUrl, clientId: o.sf.clientId, clientSecret: o.sf.clientSecret, redirectUri: 'http://localhost/callback' },
  });
  await conn.login(o.sf.username, o.sf.password);
  const pool = new pg.Pool({ connectionString: o.url, max: o.pgSessions ?? 3, application_name: 'convergence workload', connectionTimeoutMillis: 5000 });
  // Restarts and terminated sessions reach idle clients too: the pool drops them and connects anew.
  pool.on('error', () => {});
  const records = new Map<string, LogicalRecord>();
  const live: LogicalRecord[] = [];
  const existing = [...(o.existing ?? [])];
  for (const rec of existing) records.set(rec.key, rec);
  const existingShare = o.existingShare ?? 0.25;
  const stats: WorkloadStats = { ops: {}, acked: 0, unknown: 0, noop: 0 };
  let seq = 0;
  let counter = 0;
  let running = true;
  const timeout = o.callTimeoutMs ?? 15_000;
  const mix = o.mix ?? FULL_MIX;

  const within = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error('no answer')), timeout).unref())]);
  const count = (op: string) => (stats.ops[op] = (stats.ops[op] ?? 0) + 1);

  /** A live record, often one of the last few touched: both sides keep editing the same records. */
  const choose = (r: () => number): LogicalRecord | undefined => {
    // (no draw without existing records: the other runs' seeds keep their decisions)
    if (existing.length && r() < existingShare) return existing[Math.floor(r() * existing.length)];
    if (!live.length) return undefined;
    const hot = r() < 0.6 ? Math.max(0, live.length - 8) : 0;
    return live[hot + Math.floor(r() * (live.length - hot))];
  };
  const forget = (rec: LogicalRecord) => {
    const i = live.indexOf(rec);
    if (i >= 0) live.splice(i, 1);
    else if (existing.length) {
      const j = existing.indexOf(rec);
      if (j >= 0) existing.splice(j, 1);
    }
  };

  const noteWrites = (rec: LogicalRecord, side: Side, fields: Record<string, unknown>, acked: boolean, issued: number) => {
    for (const [field, v] of Object.entries(fields)) rec.writes.push({ side, field, value: v, acked, seq: ++seq, issued });
  };
  const note = (rec: LogicalRecord, side: Side, fields: Record<string, unknown>, acked: boolean, issued: number) => {
    noteWrites(rec, side, fields, acked, issued);
    if (acked) stats.acked++;
    else stats.unknown++;
  };

  const newFields = (object: ObjectName, r: () => number, n: number, side: Side): Record<string, unknown> => {
    const f: Record<string, unknown> = {};
    for (const w of writable(object, side)) if (r() < 0.7) f[w] = value(object, w, r, n, mix);
    if (object === 'Contact') f.LastName = `Last ${n}`;
    return f;
  };
  const writable = (object: ObjectName, side: Side) =>
    WRITABLE[object].filter((w) => mix.flowRewrites || side === 'sf' || `${object}.${w}` !== 'Account.Phone');
  const someFields = (object: ObjectName, r: () => number, n: number, side: Side): Record<string, unknown> => {
    const f: Record<string, unknown> = {};
    const all = writable(object, side);
    const k = 1 + Math.floor(r() * 2);
    for (let i = 0; i < k; i++) {
      const w = all[Math.floor(r() * all.length)];
      f[w] = value(object, w, r, n, mix);
    }
    return f;
  };

  // ---------------------------------------------------------------- Postgres: the application
  const pgOp = async (r: () => number) => {
    const x = r();
    const object: ObjectName = r() < 0.6 ? 'Account' : 'Contact';
    const m = MAPPINGS[object];
    const schema = 'salesforce';
    if (x < 0.3 || !live.length) {
      const n = ++counter;
      const key = `${object === 'Account' ? 'a' : 'c'}-p${n}`;
      const fields = { [m.key]: key, ...newFields(object, r, n, 'pg') };
      const rec: LogicalRecord = { object, key, origin: 'pg', created: false, writes: [], deletes: [] };
      records.set(key, rec);
      const cols = Object.keys(fields);
      count(`pg insert ${object}`);
      const issued = seq;
      try {
        await pool.query(`insert into ${schema}.${m.table} (${cols.map(col).join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, cols.map((c) => fields[c]));
        rec.created = true;
        note(rec, 'pg', fields, true, issued);
        live.push(rec);
      } catch {
        note(rec, 'pg', fields, false, issued);
      }
      return;
    }
    const rec = choose(r);
    if (!rec) return;
    const mm = MAPPINGS[rec.object];
    if (x < 0.9) {
      const fields = someFields(rec.object, r, ++counter, 'pg');
      const cols = Object.keys(fields);
      count(`pg update ${rec.object}`);
      const issued = seq;
      // Without unchanged updates, a statement that would change nothing is not made (no row matches).
      const changes = mix.unchangedUpdates ? '' : ` and (${cols.map((c, i) => `${col(c)} is distinct from $${i + 2}`).join(' or ')})`;
      try {
        const res = await pool.query(
          `update ${schema}.${mm.table} set ${cols.map((c, i) => `${col(c)} = $${i + 2}`).join(', ')} where ${col(mm.key)} = $1${changes}`,
          [rec.key, ...cols.map((c) => fields[c])],
        );
        if (res.rowCount) note(rec, 'pg', fields, true, issued);
        else stats.noop++; // not arrived yet, or deleted meanwhile: nothing was written
      } catch {
        note(rec, 'pg', fields, false, issued);
      }
      return;
    }
    count(`pg delete ${rec.object}`);
    try {
      const res = await pool.query(`delete from ${schema}.${mm.table} where ${col(mm.key)} = $1`, [rec.key]);
      if (res.rowCount) {
        rec.deletes.push({ side: 'pg', acked: true, seq: ++seq });
        stats.acked++;
        forget(rec);
      } else stats.noop++;
    } catch {
      rec.deletes.push({ side: 'pg', acked: false, seq: ++seq });
      stats.unknown++;
    }
  };

  // ---------------------------------------------------------------- Salesforce: another user
  const sfidOf = async (rec: LogicalRecord): Promise<string | undefined> => {
    if (rec.sfid) return rec.sfid;
    const m = MAPPINGS[rec.object];
    const res = await pool.query(`select sfid from salesforce.${m.table} where ${col(m.key)} = $1 and sfid is not null limit 1`, [rec.key]).catch(() => null);
    return res?.rows[0]?.sfid ?? undefined;
  };
  const sfOp = async (r: () => number) => {
    const x = r();
    const object: ObjectName = r() < 0.6 ? 'Account' : 'Contact';
    const m = MAPPINGS[object];
    if (x < 0.3 || !live.length) {
      const n = ++counter;
      const key = `${object === 'Account' ? 'a' : 'c'}-s${n}`;
      const fields = { [m.key]: key, ...newFields(object, r, n, 'sf') };
      const rec: LogicalRecord = { object, key, origin: 'sf', created: false, writes: [], deletes: [] };
      records.set(key, rec);
      count(`sf create ${object}`);
      const issued = seq;
      try {
        const res = (await within(conn.sobject(object).create(fields))) as { id: string; success: boolean };
        if (!res.success) throw new Error('not created');
        rec.sfid = res.id;
        rec.created = true;
        note(rec, 'sf', fields, true, issued);
        live.push(rec);
      } catch {
        note(rec, 'sf', fields, false, issued);
      }
      return;
    }
    const rec = choose(r);
    if (!rec) return;
    const id = await sfidOf(rec);
    if (!id) {
      stats.noop++;
      return;
    }
    if (x < 0.9) {
      const fields = someFields(rec.object, r, ++counter, 'sf');
      count(`sf update ${rec.object}`);
      const issued = seq;
      try {
        const res = (await within(conn.sobject(rec.object).update({ Id: id, ...fields }))) as { success: boolean };
        if (!res.success) throw new Error('not updated');
        note(rec, 'sf', fields, true, issued);
      } catch (e) {
        // A record deleted meanwhile refuses the update: nothing was written.
        if (/ENTITY_IS_DELETED|NOT_FOUND/.test(String((e as { errorCode?: string }).errorCode ?? e))) stats.noop++;
        else note(rec, 'sf', fields, false, issued);
      }
      return;
    }
    count(`sf delete ${rec.object}`);
    try {
      const res = (await within(conn.sobject(rec.object).destroy(id))) as { success: boolean };
      if (!res.success) throw new Error('not deleted');
      rec.deletes.push({ side: 'sf', acked: true, seq: ++seq });
      stats.acked++;
      forget(rec);
    } catch (e) {
      if (/ENTITY_IS_DELETED|NOT_FOUND/.test(String((e as { errorCode?: string }).errorCode ?? e))) stats.noop++;
      else {
        rec.deletes.push({ side: 'sf', acked: false, seq: ++seq });
        stats.unknown++;
      }
    }
  };

  const pause = o.pauseMs ?? 250;
  const loops: Promise<void>[] = [];
  const session = async (r: () => number, op: (r: () => number) => Promise<void>) => {
    while (running) {
      await op(r).catch((e) => o.log?.(`workload: ${String(e)}`));
      await new Promise((res) => setTimeout(res, r() * 2 * pause));
    }
  };
  for (let i = 0; i < (o.pgSessions ?? 3); i++) loops.push(session(rng(o.seed * 31 + i), pgOp));
  for (let i = 0; i < (o.sfSessions ?? 2); i++) loops.push(session(rng(o.seed * 37 + 100 + i), sfOp));

  return {
    records,
    stats,
    conn,
    issued: () => seq,
    note: noteWrites,
    async stop() {
      running = false;
      await Promise.all(loops);
      await pool.end().catch(() => {});
    },
  };
}
