// What every database verb of the CLI shares: one admin session, errors turned into a message that
// says what to fix and an exit code that says what kind of problem it was, and plain-text tables.
import pg from 'pg';
import { assertMigrated, SchemaError } from '../db/contractor.js';

/** Exit codes, documented in the README: scripts branch on them. */
export const EXIT = { ok: 0, failed: 1, usage: 2, red: 3 } as const;

/** A problem with what the operator asked for or configured: exit 2, nothing was changed. */
export class UsageError extends Error {}

/** Errors while reaching the database that mean DATABASE_URL (or the server) needs attention. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', '28P01', '28000', '3D000']);

function where(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return url;
  }
}

/** Opens one session (application_name hcsync cli), checks the schema is installed, runs `fn`, closes. */
export async function withAdmin<T>(databaseUrl: string, fn: (c: pg.Client) => Promise<T>, opts: { migrated?: boolean } = {}): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'hcsync cli', options: '-c timezone=UTC', connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (err) {
    const e = err as { code?: string; message: string };
    throw new UsageError(
      `cannot connect to the database at ${where(databaseUrl)} (${e.message}).\n` +
        'Fix DATABASE_URL (postgres://user:password@host:port/database) or start the server.',
    );
  }
  client.on('error', () => {});
  try {
    if (opts.migrated !== false) await assertMigrated(databaseUrl);
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The message an operator reads for any error: Postgres errors keep their hint (the fix). */
export function describeError(err: unknown): { message: string; code: number } {
  if (err instanceof UsageError || err instanceof SchemaError) return { message: err.message, code: EXIT.usage };
  const e = err as { code?: string; message?: string; hint?: string; detail?: string };
  if (e?.code && CONNECT_CODES.has(e.code)) return { message: `cannot reach the database: ${e.message}. Check DATABASE_URL.`, code: EXIT.usage };
  if (e?.code === '42P01' || e?.code === '3F000' || e?.code === '42883') {
    return {
      message: `${e.message}\nThe database lacks part of hcsync's SQL: run \`hcsync migrate\` (or apply \`hcsync sql\` with psql).`,
      code: EXIT.usage,
    };
  }
  const lines = [e?.message ?? String(err)];
  if (e?.detail) lines.push(`detail: ${e.detail}`);
  if (e?.hint) lines.push(`hint: ${e.hint}`);
  return { message: lines.join('\n'), code: EXIT.failed };
}

/** Rows as an aligned text table (what `psql` would show), or "(none)". */
export function table(rows: object[], columns?: string[]): string {
  if (!rows.length) return '(none)';
  const cols = columns ?? Object.keys(rows[0]);
  const text = (v: unknown) =>
    v === null || v === undefined ? '' : v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v);
  const cells = rows.map((r) => cols.map((c) => text((r as Record<string, unknown>)[c]).replace(/\s+/g, ' ')));
  const widths = cols.map((c, i) => Math.min(60, Math.max(c.length, ...cells.map((r) => r[i].length))));
  const line = (vals: string[]) => vals.map((v, i) => (v.length > widths[i] ? v.slice(0, widths[i] - 1) + '…' : v.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}
