// Several Salesforce calls in flight (HC_WRITE_CONCURRENCY), and what must hold while they are:
// - the bound: never more calls in flight than the setting, and more than one when there is work;
// - ordered mode keeps each record's changes in order (not one global order);
// - API economy: at most ceil(N/200) collections calls for N queued changes;
// - no row lock is held across a Salesforce call: while calls hang in the org, the application updates
//   the very rows being sent, and the writer's entries, without waiting;
// - large ordered batches go as Bulk 2.0 jobs side by side.
// Every call is watched at the emulator, wrapped around its request handler.
import { afterEach, describe, expect, it } from 'vitest';
import { setup, until, queueEmpty, pgClient, type Harness } from './harness.js';

let h: Harness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

interface Watch {
  /** Collections calls (PATCH/POST /composite/sobjects), as they finished. */
  collections: { method: string; ids: string[]; records: Record<string, unknown>[] }[];
  peakCollections: number;
  /** Bulk 2.0 ingest jobs: first and last request seen, per job id. */
  jobs: Map<string, { first: number; last: number }>;
  /** While set, collections calls wait for it before the org handles them. */
  gate?: Promise<void>;
  waiting: number;
}

function watch(hh: Harness): Watch {
  const w: Watch = { collections: [], peakCollections: 0, jobs: new Map(), waiting: 0 };
  const server = hh.emu.server as unknown as { api: (req: { url: string; method: string; body?: unknown }, reply: unknown) => Promise<unknown> };
  const api = server.api.bind(server);
  let inFlight = 0;
  server.api = async (req, reply) => {
    const path = req.url.split('?')[0];
    const job = /\/jobs\/ingest\/([A-Za-z0-9]+)/.exec(path)?.[1];
    if (job) {
      const j = w.jobs.get(job) ?? { first: Date.now(), last: 0 };
      w.jobs.set(job, j);
    }
    if (!/\/composite\/sobjects\/?$/.test(path)) {
      try {
        return await api(req, reply);
      } finally {
        if (job) w.jobs.get(job)!.last = Date.now();
      }
    }
    inFlight++;
    w.peakCollections = Math.max(w.peakCollections, inFlight);
    try {
      if (w.gate) {
        w.waiting++;
        await w.gate;
        w.waiting--;
      }
      const r = await api(req, reply);
      const body = JSON.parse(String(req.body ?? '{}')) as { records?: Record<string, unknown>[] };
      w.collections.push({ method: req.method, ids: (body.records ?? []).map((x) => String(x.Id ?? x.id ?? '')), records: body.records ?? [] });
      return r;
    } finally {
      inFlight--;
    }
  };
  return w;
}

async function seedAccounts(hh: Harness, n: number): Promise<void> {
  await hh.db.query(`insert into salesforce.account (name, numberofemployees) select 'Conc ' || g, 0 from generate_series(1, $1::int) g`, [n]);
  const w = await hh.startWriter({ concurrency: 4 });
  await until(() => queueEmpty(hh.db), 'the accounts created', 120_000, 100);
  await w.stop();
}

describe('outbound concurrency', () => {
  it('keeps several collections calls in flight, never more than the setting, in at most ceil(N/200) calls', async () => {
    h = await setup({ algorithm: 'merged' });
    await seedAccounts(h, 3000);
    await h.db.query(`update salesforce.account set numberofemployees = 5 where name like 'Conc %'`);
    const w = watch(h);
    h.emu.setLatency(150);
    await h.startWriter({ concurrency: 3 });
    await until(() => queueEmpty(h!.db), 'the updates sent', 120_000, 100);
    const calls = w.collections.filter((c) => c.method === 'PATCH');
    const sent = calls.reduce((n, c) => n + c.records.length, 0);
    console.log(`concurrency 3: ${calls.length} update calls for ${sent} records, peak ${w.peakCollections} in flight`);
    expect(sent).toBe(3000);
    expect(calls.length).toBeLessThanOrEqual(Math.ceil(3000 / 200));
    expect(w.peakCollections).toBeLessThanOrEqual(3);
    expect(w.peakCollections).toBeGreaterThanOrEqual(2);
    const recs = await h.sfRecords(`SELECT NumberOfEmployees FROM Account WHERE Name LIKE 'Conc %'`);
    expect(recs.filter((r) => r.NumberOfEmployees !== 5)).toEqual([]);
  }, 300_000);

  it('ordered writes keep each record\'s changes in order while calls for other records overlap', async () => {
    h = await setup({ algorithm: 'ordered' });
    const N = 800;
    await seedAccounts(h, N);
    // Four changes of every record, one statement each: capture order is record by record within a
    // statement, statement after statement. Half the records also change between the statements alone.
    for (let v = 1; v <= 4; v++) {
      await h.db.query(`update salesforce.account set numberofemployees = $1::int, accountnumber = 'v' || $1::text where name like 'Conc %'`, [v]);
      await h.db.query(`update salesforce.account set accountnumber = 'odd' || $1::text where name like 'Conc %' and id % 2 = 1`, [v]);
    }
    const w = watch(h);
    h.emu.setLatency(60);
    const before = h.emu.stats().records.updated;
    await h.startWriter({ concurrency: 4, bulkThreshold: 1_000_000 });
    await until(() => queueEmpty(h!.db), 'the updates sent', 240_000, 100);
    // Per record, the values Salesforce received, in the order it applied them.
    const seen = new Map<string, string[]>();
    for (const c of w.collections) {
      for (const r of c.records) {
        const id = String(r.Id ?? r.id);
        const list = seen.get(id) ?? [];
        list.push(String(r.AccountNumber ?? `n${String(r.NumberOfEmployees)}`));
        seen.set(id, list);
      }
    }
    const sfids = new Map((await h.db.query(`select sfid, id from salesforce.account where name like 'Conc %'`)).rows.map((r) => [r.sfid as string, r.id as number]));
    const wrong: string[] = [];
    for (const [sfid, id] of sfids) {
      const want = id % 2 === 1 ? ['v1', 'odd1', 'v2', 'odd2', 'v3', 'odd3', 'v4', 'odd4'] : ['v1', 'v2', 'v3', 'v4'];
      if (JSON.stringify(seen.get(sfid)) !== JSON.stringify(want)) wrong.push(`${id}: ${JSON.stringify(seen.get(sfid))}`);
    }
    console.log(`ordered, concurrency 4: ${w.collections.length} calls, peak ${w.peakCollections} in flight; out of order: ${wrong.length}`);
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(w.peakCollections).toBeGreaterThanOrEqual(2);
    // Each change exactly once.
    expect(h.emu.stats().records.updated - before).toBe(N * 4 + (N / 2) * 4);
  }, 300_000);

  it('holds no row lock across a Salesforce call: the application updates the rows being sent without waiting', async () => {
    h = await setup({ algorithm: 'ordered' });
    await seedAccounts(h, 600);
    await h.db.query(`update salesforce.account set numberofemployees = 9 where name like 'Conc %'`);
    const w = watch(h);
    let open!: () => void;
    w.gate = new Promise<void>((r) => (open = r));
    const app = pgClient(h.db.url);
    try {
      await h.startWriter({ concurrency: 3, bulkThreshold: 1_000_000 });
      await until(() => w.waiting >= 3, 'calls hanging in the org', 60_000, 20);
      await app.connect();
      await app.query(`set lock_timeout = '200ms'`);
      await app.query('begin');
      // The rows whose changes are in flight, and the writer's claimed entries.
      const rows = await app.query(`update salesforce.account set phone = 'app was here' where name like 'Conc %'`);
      expect(rows.rowCount).toBe(600);
      const pending = await app.query(`select id from salesforce._trigger_log where state = 'PENDING' for update nowait`);
      expect(pending.rowCount).toBe(600);
      await app.query('rollback');
    } finally {
      await app.end().catch(() => {});
      open();
      w.gate = undefined;
    }
    await until(() => queueEmpty(h!.db), 'the updates sent', 120_000, 100);
    const recs = await h.sfRecords(`SELECT NumberOfEmployees FROM Account WHERE Name LIKE 'Conc %'`);
    expect(recs.filter((r) => r.NumberOfEmployees !== 9)).toEqual([]);
  }, 300_000);

  it('sends large ordered batches as Bulk 2.0 jobs side by side, with fewer calls than collections would take', async () => {
    h = await setup({ algorithm: 'ordered' });
    const N = 6000;
    await seedAccounts(h, N);
    await h.db.query(`update salesforce.account set numberofemployees = 3 where name like 'Conc %'`);
    const w = watch(h);
    // A job takes seconds in a real org (7 calls here at 400 ms each): longer than a claim, so jobs of
    // several lanes overlap.
    h.emu.setLatency(400);
    const before = h.emu.stats();
    await h.startWriter({ concurrency: 3 });
    await until(() => queueEmpty(h!.db), 'the updates sent', 240_000, 100);
    const after = h.emu.stats();
    const spans = [...w.jobs.values()];
    let peak = 0;
    for (const s of spans) peak = Math.max(peak, spans.filter((o) => o.first <= s.first && s.first <= o.last).length);
    const calls = (after.api.byKind.bulk2Ingest ?? 0) - (before.api.byKind.bulk2Ingest ?? 0) + (after.api.byKind.collections ?? 0) - (before.api.byKind.collections ?? 0);
    console.log(`bulk, concurrency 3: ${spans.length} jobs, peak ${peak} at once, ${calls} calls for ${N} updates`);
    expect(after.records.updated - before.records.updated).toBe(N);
    expect(spans.length).toBe(3);
    expect(peak).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(Math.ceil(N / 200));
  }, 300_000);
});
