// The docs name real things. Every setting of sidecar/config.ts is in docs/SETTINGS.md, and that page is
// what scripts/settings-doc.mjs makes of config.ts today. Every file path the docs give exists, every
// hc.* name they give is defined in sql/, and where a page says "`name` (`file`)", that file has the name.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTING_NAMES } from '../../sidecar/config.js';
// @ts-expect-error: a plain ES module without types
import { render } from '../../scripts/settings-doc.mjs';

const read = (p: string) => readFileSync(p, 'utf8');
const PAGES = ['README.md', 'CONTRIBUTING.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

describe('docs/SETTINGS.md', () => {
  it('lists every setting sidecar/config.ts reads', () => {
    const page = read('docs/SETTINGS.md');
    const missing = SETTING_NAMES.filter((n) => !page.includes(`| \`${n}\` |`));
    expect(missing, 'settings missing from docs/SETTINGS.md: run node scripts/settings-doc.mjs').toEqual([]);
    expect(SETTING_NAMES.length).toBeGreaterThan(30);
  });

  it('is what scripts/settings-doc.mjs makes of sidecar/config.ts (run it after changing a setting)', () => {
    expect(read('docs/SETTINGS.md')).toBe((render as (s: string) => string)(read('sidecar/config.ts')));
  });
});

describe('names in the docs', () => {
  // hc.migrations is made by the contractor itself, before any migration.
  const sql = [...readdirSync('sql').filter((f) => f.endsWith('.sql')).map((f) => read(`sql/${f}`)),
    ...readdirSync('sql/functions').map((f) => read(`sql/functions/${f}`)), read('sidecar/db/contractor.ts')].join('\n');
  const defined = new Set(
    [...sql.matchAll(/create\s+(?:or\s+replace\s+)?(?:function|procedure|table|view|materialized\s+view|sequence|type)\s+(?:if\s+not\s+exists\s+)?hc\.([a-z_][a-z0-9_]*)/gi)].map((m) => m[1].toLowerCase()),
  );

  it.each(PAGES)('%s: every hc.* name is defined in sql/', (page) => {
    const text = read(page);
    const named = [...new Set([...text.matchAll(/`[^`]*?\bhc\.([a-z_][a-z0-9_]*)/g)].map((m) => m[1]))];
    // `hc.inbound_*` names a family: some function must start so.
    expect(named.filter((n) => (n.endsWith('_') ? ![...defined].some((d) => d.startsWith(n)) : !defined.has(n)))).toEqual([]);
  });

  it.each(PAGES)('%s: every sidecar/, sql/, test/, emulator/ or scripts/ path exists', (page) => {
    const text = read(page);
    const paths = [...new Set([...text.matchAll(/`((?:sidecar|sql|test|emulator|scripts|bench)\/[A-Za-z0-9_./-]+?)`/g)].map((m) => m[1]))];
    // A pattern (`sql/NNNNNN_name.sql`, `test/*`, `…`) is not a path; bench/results/ holds a run's output,
    // which is not kept in git.
    const real = paths.filter((p) => !/[*…{}<>]|NNN/.test(p) && !p.startsWith('bench/results/'));
    expect(real.filter((p) => !existsSync(p.replace(/\/$/, '')))).toEqual([]);
  });

  it('docs/LIFE-OF-A-CHANGE.md: each "`name` (`file`)" is in that file', () => {
    const text = read('docs/LIFE-OF-A-CHANGE.md');
    const pairs = [...text.matchAll(/`([A-Za-z_$][\w$.]*)(?:\(\))?` \(`((?:sidecar|sql|emulator)\/[^`]+)`\)/g)].map((m) => [m[1], m[2]]);
    expect(pairs.length).toBeGreaterThan(20);
    const wrong = pairs.filter(([name, file]) => !existsSync(file) || !read(file).includes(name.replace(/^.*\./, '')));
    expect(wrong).toEqual([]);
  });
});
