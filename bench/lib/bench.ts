// The shape every benchmark has: a name for --only, a title for the table, and a run() that returns
// rows (one measured figure each, with the same-run baseline and the ratio when there is one).
import type { BenchServer } from './postgres.js';

export interface Row {
  /** What was measured, e.g. "latency p50". */
  metric: string;
  value: number;
  unit: string;
  /** The same-run baseline this figure is compared with. */
  baseline?: { label: string; value: number };
  /** value / baseline.value */
  ratio?: number;
  note?: string;
}

export interface BenchResult {
  rows: Row[];
  /** The configuration that produced the numbers (sizes, intervals, modes). */
  config: Record<string, unknown>;
  /** Raw samples (ms or per-round figures) for anyone re-analysing the JSON. */
  samples?: Record<string, number[]>;
  notes?: string[];
}

export interface BenchContext {
  quick: boolean;
  /** `--large`: the sizes of the `large` benchmarks (5,000,000-row load, 1,000,000 outbound updates). */
  large: boolean;
  server: BenchServer;
  /** A progress line on stderr (the table goes to stdout). */
  progress(msg: string): void;
  /** Directory for this run's scratch files (CSV, sidecar logs), under bench/results/. */
  workDir: string;
}

export interface Benchmark {
  name: string;
  title: string;
  /** Not part of the default run (say why in the file); run it with --only NAME. */
  optIn?: string;
  /** What it measures with `--large` (which runs only the benchmarks that have this). */
  large?: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

/** A row with a baseline; the ratio is computed here so every table states it the same way. */
export function compared(metric: string, value: number, unit: string, baselineLabel: string, baseline: number, note?: string): Row {
  return { metric, value, unit, baseline: { label: baselineLabel, value: baseline }, ratio: baseline ? value / baseline : undefined, note };
}

/** Thrown when a benchmark cannot run at all (a missing part, a failed precondition): says why. */
export class CannotRun extends Error {}

/** Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export const now = (): number => performance.timeOrigin + performance.now();

/** Child processes to end if the run is interrupted (Ctrl-C): nothing of a benchmark outlives `make bench`. */
const cleanups = new Set<() => void>();

export function onInterrupt(kill: () => void): () => void {
  cleanups.add(kill);
  return () => cleanups.delete(kill);
}

export function interruptAll(): void {
  for (const k of cleanups) {
    try {
      k();
    } catch {
      // already gone
    }
  }
  cleanups.clear();
}
