// No import circles under sidecar/: a module that needs another's work calls it, and nothing it calls
// needs it back. The graph is read from the sources (static imports and re-exports, `import type` and
// `await import()` included, since each one still ties the two modules together) and searched for cycles.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []);
}

/** Relative module specifiers of a file: `import … from`, `export … from`, `import '…'` and `import('…')`. */
export function specifiers(text: string): string[] {
  // Comments could name a path in words; strings never hold an import statement here.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const re of [/\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g]) {
    for (const m of code.matchAll(re)) if (m[1].startsWith('.')) out.push(m[1]);
  }
  return out;
}

/** The graph: file (relative to the project) → the files under sidecar/ it imports. */
export function importGraph(dir = join(root, 'sidecar')): Map<string, string[]> {
  const files = new Set(sources(dir));
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps = specifiers(readFileSync(f, 'utf8'))
      .map((s) => resolve(dirname(f), s.replace(/\.js$/, '.ts')))
      .filter((t) => files.has(t))
      .map((t) => relative(root, t));
    graph.set(relative(root, f), [...new Set(deps)]);
  }
  return graph;
}

/** Every cycle's modules, each cycle once (Tarjan's strongly connected components of more than one module, or a self-import). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

describe('the import graph under sidecar/', () => {
  it('is read from the sources: every module is in it, with its relative imports', () => {
    const g = importGraph();
    expect(g.size).toBeGreaterThan(30);
    expect(g.get('sidecar/salesforce/collections.ts')).toContain('sidecar/salesforce/client.ts');
    // import type and a dynamic import count as edges too.
    expect(specifiers(`import type { A } from './a.js';\nconst b = await import('../b.js');\nexport { c } from "./c.js";\nimport './d.js';\n// import { e } from './e.js';`))
      .toEqual(['./a.js', './c.js', './d.js', '../b.js']);
  });

  it('finds a circle when there is one', () => {
    const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']], ['e', ['e']]]);
    expect(cycles(g)).toEqual([['a', 'b', 'c'], ['e']]);
  });

  it('has no circles', () => {
    expect(cycles(importGraph())).toEqual([]);
  });
});
