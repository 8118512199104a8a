// What the sidecar's database sessions are doing, sampled from pg_stat_activity every few milliseconds by a
// session of its own: which statements run, for how long, and how much of a window some session spent in
// each. A statement that has finished shows, until the session's next one, its text with query_start and
// state_change (when it went idle): the difference is its exact duration, so sampling faster than the
// statements follow one another catches each call's duration, not an estimate. Nothing in the sidecar is
// changed or instrumented for it.
import pg from 'pg';
import { now, sleep } from './bench.js';
import { summarize, type Summary } from './stats.js';

export interface StatementStats {
  /** Calls seen finished, with their durations. */
  calls: number;
  ms: Summary;
  totalMs: number;
  /** Share of the samples in which some session was running it. */
  activeShare: number;
}

export interface ActivityReport {
  samples: number;
  /** Per statement kind (the `kinds` given to watch()), plus 'other' for the sidecar's remaining statements. */
  byKind: Record<string, StatementStats>;
  /** Share of the samples in which no sidecar session ran any statement. */
  idleShare: number;
  /** Wait events seen in active sidecar sessions, by share of samples. */
  waits: Record<string, number>;
}

/**
 * Samples the sessions of database `url` that are not the bench's (application_name 'hcsync bench*') until
 * stop(). `kinds` names statements by a substring of their text, first match wins.
 */
export function watchActivity(url: string, kinds: Record<string, string>, everyMs = 10): { stop(): Promise<ActivityReport> } {
  let running = true;
  const client = new pg.Client({ connectionString: url, application_name: 'hcsync bench activity' });
  // The database may go (dropped with force) while it samples: that ends the sampling, nothing more.
  client.on('error', () => {
    running = false;
  });
  const finished = new Map<string, { kind: string; ms: number }>();
  const active: Record<string, number> = {};
  const waits: Record<string, number> = {};
  const current = new Map<number, { key: string; kind: string; qs: number }>();
  let samples = 0;
  let idle = 0;
  const kindOf = (q: string) => Object.entries(kinds).find(([, s]) => q.includes(s))?.[0] ?? 'other';
  const startedAt = Date.now();
  const loop = (async () => {
    await client.connect();
    while (running) {
      const t = now();
      const { rows } = await client.query<{ pid: number; state: string | null; query: string; qs: Date | null; sc: Date | null; wait: string | null }>({
        name: 'activity',
        text: `select pid, state, left(query, 200) as query, query_start as qs, state_change as sc,
                      case when wait_event is not null then wait_event_type || ':' || wait_event end as wait
                 from pg_stat_activity
                where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()
                  and coalesce(application_name, '') not like 'hcsync bench%'`,
      });
      samples++;
      let any = false;
      const seen = new Set<string>();
      for (const r of rows) {
        if (!r.qs) continue;
        const kind = kindOf(r.query);
        const key = `${r.pid}|${r.qs.getTime()}`;
        // A call seen running whose session has moved on to its next statement before a sample saw it
        // idle: it ended before that statement started (an upper bound, by one round trip).
        const prev = current.get(r.pid);
        if (prev && prev.key !== key && !finished.has(prev.key)) finished.set(prev.key, { kind: prev.kind, ms: r.qs.getTime() - prev.qs });
        if (r.state === 'active') current.set(r.pid, { key, kind, qs: r.qs.getTime() });
        else current.delete(r.pid);
        if (r.state === 'active') {
          any = true;
          if (!seen.has(kind)) active[kind] = (active[kind] ?? 0) + 1;
          seen.add(kind);
          if (r.wait && !r.wait.startsWith('Client:')) waits[r.wait] = (waits[r.wait] ?? 0) + 1;
        } else if (r.sc && r.qs.getTime() >= startedAt && !finished.has(key) && (r.state === 'idle' || r.state === 'idle in transaction')) {
          finished.set(key, { kind, ms: r.sc.getTime() - r.qs.getTime() });
        }
      }
      if (!any) idle++;
      const rest = everyMs - (now() - t);
      if (rest > 0) await sleep(rest);
    }
  })();
  loop.catch(() => {});
  return {
    async stop() {
      running = false;
      await loop.catch(() => {});
      await client.end().catch(() => {});
      const byKind: Record<string, StatementStats> = {};
      for (const kind of new Set([...Object.keys(kinds), 'other'])) {
        const ms = [...finished.values()].filter((f) => f.kind === kind).map((f) => f.ms);
        if (!ms.length && !active[kind]) continue;
        byKind[kind] = { calls: ms.length, ms: summarize(ms), totalMs: ms.reduce((a, b) => a + b, 0), activeShare: samples ? (active[kind] ?? 0) / samples : 0 };
      }
      const share: Record<string, number> = {};
      for (const [w, c] of Object.entries(waits)) share[w] = c / Math.max(1, samples);
      return { samples, byKind, idleShare: samples ? idle / samples : 0, waits: share };
    },
  };
}
