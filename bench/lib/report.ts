// Turns results into the table (markdown, readable in a terminal and pasteable into docs) and the JSON
// record in bench/results/<timestamp>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchResult, Row } from './bench.js';
import type { Machine, Versions } from './machine.js';

export interface Outcome {
  name: string;
  title: string;
  ok: boolean;
  seconds: number;
  result?: BenchResult;
  error?: string;
}

export interface RunRecord {
  startedAt: string;
  command: string;
  mode: 'full' | 'quick' | 'large';
  machine: Machine;
  versions: Versions;
  postgres: { kind: string; settings: Record<string, string> };
  outcomes: Outcome[];
}

export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

function ratio(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '';
  return `${r >= 10 ? Math.round(r) : r >= 1 ? r.toFixed(1) : r.toFixed(2)}×`;
}

function withUnit(v: number, unit: string): string {
  return unit ? `${fmt(v)} ${unit}` : fmt(v);
}

function cells(row: Row): string[] {
  return [
    row.metric,
    withUnit(row.value, row.unit),
    row.baseline ? `${withUnit(row.baseline.value, row.unit)} (${row.baseline.label})` : '',
    ratio(row.ratio),
    row.note ?? '',
  ];
}

/** An error in one line: its first line, and its last when the first only introduces what follows. */
function headline(error: string): string {
  const lines = error.split('\n').map((l) => l.trim()).filter(Boolean);
  const first = lines[0] ?? '';
  const last = lines.at(-1) ?? '';
  // A trailing log excerpt ("…; sidecar log:" then JSON lines) stays in the JSON record, not the table.
  const text = first.endsWith(':') && lines.length > 1 ? (last.startsWith('{') ? first.replace(/[;,]?[^;,]*:$/, '') : `${first} … ${last}`) : first;
  return text.length > 200 ? text.slice(0, 197) + '...' : text;
}

/** One table for the whole run: benchmark, metric, hcsync's figure, the same-run baseline, the ratio. */
export function table(outcomes: Outcome[]): string {
  const header = ['benchmark', 'metric', 'hcsync', 'baseline (same run)', 'ratio', 'note'];
  const lines: string[][] = [];
  for (const o of outcomes) {
    const rows = o.result?.rows ?? [];
    rows.forEach((r, i) => lines.push([i === 0 ? o.title : '', ...cells(r)]));
    if (!o.ok) lines.push([rows.length ? '' : o.title, 'DID NOT RUN', '', '', '', headline(o.error ?? '')]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const right = new Set([2, 3, 4]);
  const line = (cols: string[]) => '| ' + cols.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  const rule = '| ' + widths.map((w, i) => (right.has(i) ? '-'.repeat(Math.max(1, w - 1)) + ':' : '-'.repeat(w))).join(' | ') + ' |';
  return [line(header), rule, ...lines.map(line)].join('\n');
}

export function writeRecord(dir: string, record: RunRecord): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${record.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  return file;
}
