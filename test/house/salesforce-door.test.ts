// Salesforce behind one door: outside sidecar/salesforce/, no module calls the jsforce connection the
// client wraps (`sf.conn`, `ctx.sf.conn.request(…)`) or imports jsforce itself; they call the module's
// operations (rest.ts, collections.ts, ingest.ts, bulk.ts) and its error checks (errors.ts). The one
// exception is the demo's traffic, which plays another Salesforce user with its own jsforce connection
// (the emulator is not under sidecar/).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const ALLOWED_JSFORCE = new Set(['sidecar/demo/traffic.ts']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []);
}

/** The code of a file without its comments (a comment may name the connection in words). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '').replace(/\s\/\/.*$/gm, '');
}

/** What a file does that only sidecar/salesforce/ may: use the client's `.conn`, or import jsforce. */
export function doorViolations(text: string): string[] {
  const c = code(text);
  const out: string[] = [];
  for (const m of c.matchAll(/[\w\])]\.conn\b(?!\w)/g)) out.push(`uses the raw connection: …${c.slice(Math.max(0, m.index - 20), m.index + 12).trim()}…`);
  for (const m of c.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"](jsforce(?:\/[^'"]*)?)['"]/g)) out.push(`imports ${m[1]}`);
  return out;
}

describe('Salesforce behind one door', () => {
  it('finds what it looks for', () => {
    expect(doorViolations("import jsforce from 'jsforce';")).toEqual(['imports jsforce']);
    expect(doorViolations("const { Connection } = await import('jsforce');")).toEqual(['imports jsforce']);
    expect(doorViolations("import type { Connection } from 'jsforce/lib/connection';")).toEqual(['imports jsforce/lib/connection']);
    expect(doorViolations('const r = await ctx.sf.conn.request(url);')).toHaveLength(1);
    expect(doorViolations('await send(sf.conn, ops);')).toHaveLength(1);
    expect(doorViolations('// once sf.conn.request(url), now describe(sf, object)\nconst connection = 1;')).toEqual([]);
    // The module itself does both.
    expect(doorViolations(readFileSync(join(root, 'sidecar/salesforce/client.ts'), 'utf8')).length).toBeGreaterThan(0);
  });

  it('no module outside sidecar/salesforce/ uses the client\'s connection or imports jsforce', () => {
    const found: string[] = [];
    for (const f of sources(join(root, 'sidecar'))) {
      const rel = relative(root, f).split('\\').join('/');
      if (rel.startsWith('sidecar/salesforce/')) continue;
      for (const v of doorViolations(readFileSync(f, 'utf8'))) {
        if (ALLOWED_JSFORCE.has(rel) && v.startsWith('imports jsforce')) continue;
        found.push(`${rel}: ${v}`);
      }
    }
    expect(found).toEqual([]);
  });
});
