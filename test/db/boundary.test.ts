// The SQL boundary is sidecar/db/: no other TypeScript of the sidecar sends SQL or writes SQL text that
// names an hc.* object. sync/, cli/, http/, demo/ and the rest call the boundary's typed functions.
// Words for people may still name what they stand for ("stop syncing (hc.pause)"). The one exception is
// the demo's traffic (sidecar/demo/traffic.ts), which plays an application writing its own rows. Inside
// the boundary (sidecar/db/hc/), statements write hc.* tables and read private hc._* tables only through
// SQL functions, so the SQL files keep every table's reads and writes.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const APPLICATION = new Set(['sidecar/demo/traffic.ts']);
/** A query sent on a pg pool or client (jsforce's SOQL `conn.query` is Salesforce's, not ours). */
const SENDS = /(?<!\bconn)\.query\s*(?:<[^>]*>)?\(/g;
/** A string or template literal. */
const LITERAL = /'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g;
/** SQL text that names hc.*: a clause of a statement around an hc.* name. */
const HC_SQL = /\bhc\.[a-z_][a-z0-9_]*/;
const SQL_CLAUSE = /\b(select|from|join|into|update|where|perform|returning|delete)\s/;
/** A statement that writes an hc.* table (the boundary calls an SQL function instead). */
const WRITES_HC = /\b(?:insert\s+into|update|delete\s+from|truncate(?:\s+table)?|merge\s+into|copy)\s+(?:only\s+)?(hc\.[a-z_][a-z0-9_]*)/gi;
/** A private hc._* table or view named as a relation (not called as a function). */
const PRIVATE_HC = /\bhc\._[a-z0-9_]+\b(?!\s*\()/gi;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The code without its comments, line numbers kept. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

describe('the SQL boundary', () => {
  it('is the only sidecar code that sends SQL or writes SQL naming hc.*', () => {
    const found: string[] = [];
    for (const f of files(join(root, 'sidecar'))) {
      const rel = relative(root, f).replaceAll('\\', '/');
      if (rel.startsWith('sidecar/db/') || APPLICATION.has(rel)) continue;
      const text = code(readFileSync(f, 'utf8'));
      const line = (i: number) => text.slice(0, i).split('\n').length;
      for (const m of text.matchAll(SENDS)) found.push(`${rel}:${line(m.index)} sends a query`);
      for (const m of text.matchAll(LITERAL)) {
        if (HC_SQL.test(m[0]) && SQL_CLAUSE.test(m[0])) found.push(`${rel}:${line(m.index)} SQL text naming ${m[0].match(HC_SQL)![0]}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('writes no hc.* table and reads no private hc._* table directly: it calls SQL functions and reads views', () => {
    const found: string[] = [];
    const dir = join(root, 'sidecar', 'db', 'hc');
    for (const f of files(dir)) {
      const rel = relative(root, f).replaceAll('\\', '/');
      const text = code(readFileSync(f, 'utf8'));
      const line = (i: number) => text.slice(0, i).split('\n').length;
      for (const m of text.matchAll(LITERAL)) {
        if (!SQL_CLAUSE.test(m[0])) continue;
        for (const w of m[0].matchAll(WRITES_HC)) found.push(`${rel}:${line(m.index)} writes ${w[1]}`);
        for (const r of m[0].matchAll(PRIVATE_HC)) found.push(`${rel}:${line(m.index)} reads ${r[0]}`);
      }
    }
    expect(found).toEqual([]);
  });
});
