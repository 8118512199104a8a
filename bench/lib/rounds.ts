// The sidecar's own account of where its time went, from the debug lines it logs, read back from its log
// after a run. The writer logs one `outbound round` line per claim → send → record, with claimMs
// (hc.outbound_claim, including the wait for another lane's claim: claims are serialised per connection),
// sendMs (the Salesforce calls) and completeMs (hc.outbound_complete): the share of the run during which
// a claim (or a call, or a completion) was in progress on some lane says what bounds the throughput; a
// claim share near 100 % means the serialised claims set the pace. The reader logs one `change-event
// batch` line per apply and one `load page` line per page of a load.
import { readFileSync } from 'node:fs';
import { summarize, type Summary } from './stats.js';

export interface WriterRounds {
  rounds: number;
  ops: number;
  claimMs: Summary;
  sendMs: Summary;
  completeMs: Summary;
  /** Share of [fromMs, toMs] during which at least one lane was claiming / sending / completing. */
  claimShare: number;
  sendShare: number;
  completeShare: number;
}

/** The sidecar's JSON log lines whose msg is `msg` (a line cut short by the log rotation or the stop is skipped). */
function logLines<T>(logFile: string, msg: string): (Partial<T> & { time?: number })[] {
  const out: (Partial<T> & { time?: number })[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes(`"${msg}"`)) continue;
    try {
      const r = JSON.parse(line) as Partial<T> & { msg?: string; time?: number };
      if (r.msg === msg) out.push(r);
    } catch {
      // cut short: not a line of its kind
    }
  }
  return out;
}

/** Union length of intervals, clipped to [from, to]. */
function covered(intervals: [number, number][], from: number, to: number): number {
  const xs = intervals.map(([a, b]) => [Math.max(a, from), Math.min(b, to)] as [number, number]).filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of xs) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

/** The rounds logged between fromMs and toMs (epoch ms); undefined when the log holds none (not at debug level). */
export function writerRounds(logFile: string, fromMs: number, toMs: number): WriterRounds | undefined {
  const rounds: { time: number; ops: number; claimMs: number; sendMs: number; completeMs: number }[] = [];
  for (const r of logLines<{ ops: number; claimMs: number; sendMs: number; completeMs: number }>(logFile, 'outbound round')) {
    if (typeof r.time !== 'number') continue;
    const claimMs = r.claimMs ?? 0;
    const sendMs = r.sendMs ?? 0;
    const completeMs = r.completeMs ?? 0;
    // The line is written when the round ends: its phases are reconstructed backwards from there.
    if (r.time - completeMs - sendMs - claimMs < fromMs || r.time > toMs + 60_000) continue;
    rounds.push({ time: r.time, ops: r.ops ?? 0, claimMs, sendMs, completeMs });
  }
  if (!rounds.length) return undefined;
  const span = Math.max(1, toMs - fromMs);
  const phase = (start: (r: (typeof rounds)[number]) => number, ms: (r: (typeof rounds)[number]) => number) =>
    covered(rounds.map((r) => [start(r), start(r) + ms(r)]), fromMs, toMs) / span;
  return {
    rounds: rounds.length,
    ops: rounds.reduce((a, r) => a + r.ops, 0),
    claimMs: summarize(rounds.map((r) => r.claimMs)),
    sendMs: summarize(rounds.map((r) => r.sendMs)),
    completeMs: summarize(rounds.map((r) => r.completeMs)),
    claimShare: phase((r) => r.time - r.completeMs - r.sendMs - r.claimMs, (r) => r.claimMs),
    sendShare: phase((r) => r.time - r.completeMs - r.sendMs, (r) => r.sendMs),
    completeShare: phase((r) => r.time - r.completeMs, (r) => r.completeMs),
  };
}

/** One change-event batch as the sidecar logged it (`change-event batch`, debug level): its phases in ms. */
export interface EventBatch {
  /** When the line was written (epoch ms): the batch's commit. */
  time: number;
  events: number;
  records: number;
  /** From the arrival of its first event to the start of its apply. */
  queuedMs: number;
  prereadMs: number;
  fetchMs: number;
  buildMs: number;
  applyMs: number;
}

/** The change-event batches logged between fromMs and toMs (epoch ms), in order; [] when not at debug level. */
export function eventBatches(logFile: string, fromMs: number, toMs: number): EventBatch[] {
  return logLines<EventBatch>(logFile, 'change-event batch')
    .filter((r): r is typeof r & { time: number } => typeof r.time === 'number' && r.time >= fromMs && r.time <= toMs)
    .map((r) => ({ time: r.time, events: r.events ?? 0, records: r.records ?? 0, queuedMs: r.queuedMs ?? 0, prereadMs: r.prereadMs ?? 0, fetchMs: r.fetchMs ?? 0, buildMs: r.buildMs ?? 0, applyMs: r.applyMs ?? 0 }));
}

/** The pages of a load as the sidecar logged them (`load page`, debug level): records, and the ms from the
 * page's first byte to its merge's end (COPY as it is read, then the merge). Empty when not at debug level. */
export function loadPages(logFile: string): { records: number; applyMs: number }[] {
  return logLines<{ records: number; applyMs: number }>(logFile, 'load page').map((r) => ({ records: r.records ?? 0, applyMs: r.applyMs ?? 0 }));
}
