// The volume mode (HCSYNC_CONVERGENCE_VOLUME=N, `make convergence-volume`): the convergence run at the
// sizes of the Volume issue. Before the chaos the org holds N Accounts (a-v1 … a-vN), put there through
// the Bulk 2.0 ingest API and loaded into Postgres by the mappings' initial load, so that they are synced on
// both sides. During the chaos, with the random workload and the nemesis still running:
//   - someone else's nightly job, one Bulk 2.0 update, sets AccountNumber on all N records (change events
//     on: the org folds them into events of 10,000 record ids, one per internal batch);
//   - at the same moment an application runs one UPDATE … WHERE that sets NumberOfEmployees on every
//     second of the N rows (half of them), which the writer sends as Bulk 2.0 jobs of its own;
//   - the sidecar is killed (kill -9) once while the job's changes are being applied to Postgres and once
//     while the UPDATE's are being sent, besides the nemesis's own kills.
// Both writes are noted in the workload's model like any other (acknowledged: the job's JobComplete without
// a failure for the record, the statement's commit; otherwise of unknown outcome), so the checker judges
// every one of the N records field by field.
import jsforce from 'jsforce';
import pg from 'pg';
import { parse } from 'csv-parse/sync';
import type { Emulator, Rig } from './rig.js';
import { rng, type LogicalRecord, type Workload } from './workload.js';
import type { Nemesis } from './nemesis.js';

/** Account.Name of the seeded records: a-v1 … a-vN (the checker tells an Account by the a- prefix). */
export const VOLUME_PREFIX = 'a-v';
/** The applications look Accounts up by Name: at 100,000 rows they have an index for it, as HC lets a mapping ask. */
export const VOLUME_MAPPING_EXTRAS = { Account: { indexes: { Name: { unique: false } } } };

type Credentials = Emulator['credentials'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The test's own Bulk 2.0 ingest client: plain fetch with the session of a jsforce connection, signed in as
 * the org's user (someone else, not the sidecar). The nemesis expires every access token now and then: a
 * 401 signs in again and repeats the call. A GET (or any call the caller says may be repeated) is retried
 * on a network error or a 5xx: the emulator runs in this process, and a large job keeps its event loop
 * busy for seconds, so a keep-alive socket may be closed just as a request goes out.
 */
class Bulk {
  private constructor(private conn: jsforce.Connection, private creds: Credentials) {}

  static async connect(creds: Credentials): Promise<Bulk> {
    const conn = new jsforce.Connection({
      loginUrl: creds.loginUrl,
      version: '62.0',
      oauth2: { loginUrl: creds.loginUrl, clientId: creds.clientId, clientSecret: creds.clientSecret, redirectUri: 'http://localhost/callback' },
    });
    await conn.login(creds.username, creds.password);
    return new Bulk(conn, creds);
  }

  async call(method: string, path: string, opts: { body?: string; type?: string; repeatable?: boolean } = {}): Promise<string> {
    const repeatable = method === 'GET' || opts.repeatable;
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= 6;
      let status = 0;
      let text = '';
      try {
        const res = await fetch(`${this.conn.instanceUrl}/services/data/v${this.conn.version}/jobs/ingest${path}`, {
          method,
          headers: { Authorization: `Bearer ${this.conn.accessToken}`, ...(opts.type ? { 'Content-Type': opts.type } : {}) },
          body: opts.body,
        });
        status = res.status;
        text = await res.text();
      } catch (e) {
        if (!repeatable || last) throw new Error(`Bulk ${method} ${path}: ${(e as Error).message} ${String((e as { cause?: unknown }).cause ?? '')}`);
        await sleep(250 * attempt);
        continue;
      }
      if (status === 401 && !last) {
        await this.conn.login(this.creds.username, this.creds.password);
        continue;
      }
      if (status >= 500 && repeatable && !last) {
        await sleep(250 * attempt);
        continue;
      }
      if (status >= 400) throw new Error(`Bulk ${method} ${path}: HTTP ${status} ${text.slice(0, 300)}`);
      return text;
    }
  }

  /** Creates a job and uploads its CSV; the job is Open (nothing happens until close()). */
  async open(object: string, operation: 'insert' | 'update', csv: string): Promise<string> {
    // (a create repeated after a lost answer leaves an Open job behind, which is never processed)
    const job = JSON.parse(await this.call('POST', '', { type: 'application/json', repeatable: true, body: JSON.stringify({ object, operation, contentType: 'CSV', lineEnding: 'LF' }) })) as { id: string };
    await this.call('PUT', `/${job.id}/batches`, { type: 'text/csv', body: csv });
    return job.id;
  }

  /** UploadComplete: from its answer on, the org works on the job. A repeat after a lost answer finds it already closed. */
  async close(id: string): Promise<void> {
    try {
      await this.call('PATCH', `/${id}`, { type: 'application/json', repeatable: true, body: JSON.stringify({ state: 'UploadComplete' }) });
    } catch (e) {
      if ((await this.info(id)).state === 'Open') throw e;
    }
  }

  async info(id: string): Promise<{ state: string; numberRecordsProcessed?: number; numberRecordsFailed?: number; errorMessage?: string }> {
    return JSON.parse(await this.call('GET', `/${id}`));
  }

  async wait(id: string, timeoutMs: number): Promise<{ processed: number; failed: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.info(id);
      if (info.state === 'JobComplete') return { processed: info.numberRecordsProcessed ?? 0, failed: info.numberRecordsFailed ?? 0 };
      if (info.state === 'Failed' || info.state === 'Aborted') throw new Error(`Bulk job ${id} ${info.state}: ${info.errorMessage ?? ''}`);
      if (Date.now() > deadline) throw new Error(`Bulk job ${id} still ${info.state} after ${timeoutMs / 1000} s`);
      await sleep(250);
    }
  }

  async results(id: string, kind: 'successfulResults' | 'failedResults'): Promise<Record<string, string>[]> {
    return parse(await this.call('GET', `/${id}/${kind}`), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  }

  async remove(id: string): Promise<void> {
    await this.call('DELETE', `/${id}`).catch(() => {});
  }
}

/** The fields the seeding sets (besides Name), as the workload writes them: its updates then move them on. */
const SEEDED = ['AccountNumber', 'Phone', 'AnnualRevenue', 'NumberOfEmployees'] as const;

export interface VolumeSeed {
  /** The seeded records, as the model holds them (acknowledged creates from Salesforce). */
  records: LogicalRecord[];
  seconds: number;
}

/**
 * Puts N Accounts into the org with one Bulk 2.0 insert job, as an org's existing data. Values are seeded
 * (AnnualRevenue below the 10,000,000 of the Rating flow, NumberOfEmployees below the burst's value).
 */
export async function seedVolume(emu: Emulator, n: number, seed: number): Promise<VolumeSeed> {
  const t0 = Date.now();
  const r = rng(seed * 43 + 11);
  const lines = [`Name,${SEEDED.join(',')}`];
  const values = new Map<string, Record<string, unknown>>();
  for (let i = 1; i <= n; i++) {
    const v = {
      AccountNumber: `AN-v${i}`,
      Phone: `+1 415 555 ${String(Math.floor(r() * 10_000)).padStart(4, '0')}`,
      AnnualRevenue: Math.floor(r() * 9_000_000),
      NumberOfEmployees: Math.floor(r() * 50_000),
    };
    values.set(`${VOLUME_PREFIX}${i}`, v);
    lines.push(`${VOLUME_PREFIX}${i},${SEEDED.map((f) => v[f]).join(',')}`);
  }
  const bulk = await Bulk.connect(emu.credentials);
  const id = await bulk.open('Account', 'insert', lines.join('\n') + '\n');
  await bulk.close(id);
  const done = await bulk.wait(id, 60_000 + n * 2);
  if (done.failed || done.processed !== n) throw new Error(`seeding: ${done.processed} of ${n} Accounts processed, ${done.failed} failed`);
  const created = await bulk.results(id, 'successfulResults');
  await bulk.remove(id);
  const records = created.map((row): LogicalRecord => {
    const key = row.Name;
    const fields = values.get(key);
    if (!fields || !row.sf__Id) throw new Error(`seeding: an unexpected result row ${JSON.stringify(row)}`);
    // Written before anything else (seq 0): the workload's and the burst's writes all come after.
    return {
      object: 'Account', key, origin: 'sf', created: true, sfid: row.sf__Id, deletes: [],
      writes: SEEDED.map((field) => ({ side: 'sf' as const, field, value: fields[field], acked: true, seq: 0, issued: 0 })),
    };
  });
  if (records.length !== n) throw new Error(`seeding: ${records.length} result rows for ${n} Accounts`);
  return { records, seconds: (Date.now() - t0) / 1000 };
}

/** Waits until Postgres holds every seeded record (with its sfid): the initial load is done. */
export async function waitLoaded(url: string, n: number, timeoutMs: number): Promise<void> {
  const c = new pg.Client({ connectionString: url, application_name: 'convergence volume' });
  await c.connect();
  try {
    const end = Date.now() + timeoutMs;
    let have = 0;
    while (Date.now() < end) {
      have = (await c.query(`select count(*)::int n from salesforce.account where name like $1 and sfid is not null`, [`${VOLUME_PREFIX}%`])).rows[0].n;
      if (have >= n) return;
      await sleep(500);
    }
    throw new Error(`the initial load brought ${have} of the ${n} seeded Accounts to Postgres within ${timeoutMs / 1000} s`);
  } finally {
    await c.end();
  }
}

export interface BurstReport {
  records: number;
  /** s into the chaos when the job was submitted (UploadComplete acknowledged). */
  startedAtS: number;
  job: { value: string; processed: number; failed: number; completeAfterS?: number; error?: string };
  update: { value: number; rows: number; attempts: number; committedAfterS?: number };
  /**
   * s from the submission until both sides agreed: as many rows in Postgres as records in Salesforce hold
   * the job's value, and as many the UPDATE's (undefined: not within the run).
   */
  agreedAfterS?: number;
  /** Kills (and faults of any kind) from the submission until both sides agreed (or the chaos ended). */
  killsDuringBurst: number;
  faultsDuringBurst: number;
  /** Whether the kills aimed at the burst were made: during the job's apply, while the UPDATE's changes were being sent. */
  aimedKills: { inbound: boolean; outbound: boolean };
  /** Progress every few seconds: s, kills, rows in Postgres / records in Salesforce holding each value. */
  samples: { s: number; kills: number; pgJob: number; sfJob: number; pgUpdate: number; sfUpdate: number }[];
}

export interface Burst {
  /** Resolves once the job has completed and the UPDATE has committed, both noted in the model. */
  done: Promise<void>;
  /** When both sides agreed on both writes (ms, Date.now()), 0 before. */
  agreedAt(): number;
  /** Stops watching; the figures. */
  stop(): Promise<BurstReport>;
}

/**
 * Starts the burst: the Bulk update job and the UPDATE statement at once, and a watch that compares both
 * sides every second and kills the sidecar at the moments named above (`nemesis`: undefined when the
 * nemesis is off).
 */
export function startBurst(o: {
  rig: Rig;
  workload: Workload;
  nemesis?: Nemesis;
  kills: () => number;
  faults: () => number;
  seeded: LogicalRecord[];
  seed: number;
  chaosStarted: number;
  timeoutMs: number;
  log: (s: string) => void;
}): Burst {
  const startedAt = Date.now();
  const byKey = new Map(o.seeded.map((r) => [r.key, r]));
  const jobValue = `BURST-${o.seed}`;
  // Above anything the seeding (< 50,000) or the workload (< 50,000) writes, so it counts the UPDATE's rows.
  const updateValue = 60_000 + (o.seed % 10_000);
  // Every second record: a-v2, a-v4, … (the last digit of the key is even).
  const even = (key: string) => '02468'.includes(key.at(-1)!);
  const report: BurstReport = {
    records: o.seeded.length,
    startedAtS: (startedAt - o.chaosStarted) / 1000,
    job: { value: jobValue, processed: 0, failed: 0 },
    update: { value: updateValue, rows: 0, attempts: 0 },
    killsDuringBurst: 0,
    faultsDuringBurst: 0,
    aimedKills: { inbound: false, outbound: false },
    samples: [],
  };
  const kills0 = o.kills();
  const faults0 = o.faults();
  let jobDone = false;
  let updateDone = false;
  let agreedAt = 0;

  const job = (async () => {
    const bulk = await Bulk.connect(o.rig.emu.credentials);
    const csv = `Id,AccountNumber\n${o.seeded.map((r) => `${r.sfid},${jobValue}`).join('\n')}\n`;
    const id = await bulk.open('Account', 'update', csv);
    const issued = o.workload.issued();
    try {
      await bulk.close(id);
      report.startedAtS = (Date.now() - o.chaosStarted) / 1000;
      const done = await bulk.wait(id, o.timeoutMs);
      // A record deleted meanwhile (by the workload, on either side) is refused: nothing was written to it.
      const failed = new Set((await bulk.results(id, 'failedResults')).map((row) => row.Id || row.sf__Id));
      await bulk.remove(id);
      Object.assign(report.job, { processed: done.processed, failed: done.failed, completeAfterS: (Date.now() - startedAt) / 1000 });
      for (const rec of o.seeded) if (!failed.has(rec.sfid!)) o.workload.note(rec, 'sf', { AccountNumber: jobValue }, true, issued);
    } catch (e) {
      // Submitted, but what became of it is not known: each record may or may not hold the value.
      report.job.error = String(e);
      o.log(`volume: the Bulk update job's outcome is unknown: ${String(e)}`);
      for (const rec of o.seeded) o.workload.note(rec, 'sf', { AccountNumber: jobValue }, false, issued);
    }
    jobDone = true;
  })();

  const update = (async () => {
    // Postgres restarts cut the statement: its outcome is then unknown, and the application runs it again.
    for (let attempt = 1; attempt <= 10; attempt++) {
      report.update.attempts = attempt;
      const issued = o.workload.issued();
      const c = new pg.Client({ connectionString: o.rig.url, application_name: 'convergence burst' });
      c.on('error', () => {});
      let sent = false;
      try {
        await c.connect();
        sent = true;
        const res = await c.query(
          `update salesforce.account set numberofemployees = $1 where name like $2 and right(name, 1) in ('0', '2', '4', '6', '8') returning name`,
          [updateValue, `${VOLUME_PREFIX}%`],
        );
        for (const row of res.rows) {
          const rec = byKey.get(row.name);
          if (rec) o.workload.note(rec, 'pg', { NumberOfEmployees: updateValue }, true, issued);
        }
        report.update.rows = res.rowCount ?? 0;
        report.update.committedAfterS = (Date.now() - startedAt) / 1000;
        break;
      } catch (e) {
        o.log(`volume: the UPDATE of ${VOLUME_PREFIX}* (attempt ${attempt}) failed: ${String(e)}`);
        // (a connection that never opened sent nothing)
        if (sent) for (const rec of o.seeded) if (even(rec.key)) o.workload.note(rec, 'pg', { NumberOfEmployees: updateValue }, false, issued);
        await sleep(1000);
      } finally {
        await c.end().catch(() => {});
      }
    }
    updateDone = true;
  })();

  // The watch: both sides' counts of each value every second (Salesforce read in the emulator's memory,
  // so that it spends no API call and meets no fault). Records with an open conflict are left out: under
  // the manual policy each side keeps its own value on purpose (the checker counts them as parked).
  let watching = true;
  const db = new pg.Pool({ connectionString: o.rig.url, max: 2, application_name: 'convergence volume' });
  db.on('error', () => {});
  const latest = { pgJob: 0, sfJob: 0 };
  const watch = (async () => {
    let lastSample = 0;
    while (watching) {
      await sleep(1000);
      let pgJob: number, pgUpdate: number, parked: Set<string>;
      try {
        parked = new Set((await db.query(`select distinct sfid from hc.conflicts where resolved_at is null and sfid is not null`)).rows.map((r) => r.sfid as string));
        const q = (await db.query(`select count(*) filter (where accountnumber = $1)::int j, count(*) filter (where numberofemployees = $2)::int u
                                     from salesforce.account where name like $3 and not (sfid = any($4))`, [jobValue, updateValue, `${VOLUME_PREFIX}%`, [...parked]])).rows[0];
        pgJob = q.j;
        pgUpdate = q.u;
      } catch {
        continue; // Postgres is restarting
      }
      let sfJob = 0;
      let sfUpdate = 0;
      for (const rec of o.rig.emu.records('Account')) {
        if (parked.has(String(rec.Id))) continue;
        if (rec.AccountNumber === jobValue) sfJob++;
        if (Number(rec.NumberOfEmployees) === updateValue) sfUpdate++;
      }
      Object.assign(latest, { pgJob, sfJob });
      const now = Date.now();
      const agreed = !agreedAt && jobDone && updateDone && sfJob > 0 && pgJob === sfJob && pgUpdate === sfUpdate;
      if (now - lastSample >= 5000 || agreed) {
        lastSample = now;
        report.samples.push({ s: Math.round((now - startedAt) / 100) / 10, kills: o.kills() - kills0, pgJob, sfJob, pgUpdate, sfUpdate });
      }
      if (agreedAt) continue;
      report.killsDuringBurst = o.kills() - kills0;
      report.faultsDuringBurst = o.faults() - faults0;
      if (agreed) {
        agreedAt = now;
        report.agreedAfterS = (now - startedAt) / 1000;
      }
    }
  })();
  // The aimed kills, looked for every 200 ms: during an hc.inbound_apply call while Postgres lags the
  // job (a call carries up to one event, 10,000 records), and while the writer holds a batch of the
  // UPDATE's entries claimed (PENDING: being sent; the workload alone never has a thousand in flight).
  const aim = (async () => {
    const nemesis = o.nemesis;
    if (!nemesis) return;
    while (watching && !agreedAt && !(report.aimedKills.inbound && report.aimedKills.outbound)) {
      await sleep(200);
      let a: { applying: number; pending: number };
      try {
        a = (await db.query(`select count(*) filter (where query like '%hc.inbound_apply%')::int applying,
                                    (select count(*) from salesforce._trigger_log where state = 'PENDING')::int pending
                               from pg_stat_activity where datname = current_database() and state = 'active' and application_name like 'hcsync%'`)).rows[0];
      } catch {
        continue;
      }
      if (!report.aimedKills.inbound && a.applying > 0 && latest.pgJob < latest.sfJob) {
        report.aimedKills.inbound = await nemesis.killNow();
        if (report.aimedKills.inbound) o.log(`volume: kill -9 during an hc.inbound_apply call, with ${latest.pgJob} of the job's ${latest.sfJob} changes in Postgres`);
      }
      if (!report.aimedKills.outbound && updateDone && a.pending >= Math.min(1000, report.update.rows / 2)) {
        report.aimedKills.outbound = await nemesis.killNow();
        if (report.aimedKills.outbound) o.log(`volume: kill -9 with ${a.pending} entries claimed by the writer (the UPDATE's, being sent)`);
      }
    }
  })();

  const done = Promise.all([job, update]).then(() => {});
  done.catch(() => {}); // awaited after the chaos; until then a failure must not count as unhandled
  return {
    done,
    agreedAt: () => agreedAt,
    async stop() {
      if (!watching) return report;
      watching = false;
      await Promise.all([watch, aim]);
      await db.end().catch(() => {});
      if (!agreedAt) {
        report.killsDuringBurst = o.kills() - kills0;
        report.faultsDuringBurst = o.faults() - faults0;
      }
      return report;
    },
  };
}
