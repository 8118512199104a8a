#!/usr/bin/env node
// Writes docs/SETTINGS.md from sidecar/config.ts: one row per variable of its zod schema (Env), with the
// default, what is accepted and the comment above the variable (or the text its whole(...) names).
// `node scripts/settings-doc.mjs` writes the page; `--check` exits 1 when the page is not what it would
// write (test/docs/docs.test.ts runs the same comparison).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const PAGE = `${root}docs/SETTINGS.md`;

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 };
const formatMs = (ms) => {
  if (ms === 0) return '0';
  for (const [unit, size] of Object.entries(UNIT_MS)) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
};
const num = (s) => Number(String(s).replace(/_/g, '').replace(/\s*\*\s*/g, '*').split('*').reduce((a, b) => a * Number(b), 1));
const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();

/** The entries of `const <name> = z.object({ ... });`: name, the comment above it, and its schema text. */
export function entries(source, schema = 'Env') {
  const start = source.indexOf(`const ${schema} = z.object({`);
  const end = source.indexOf('\n});', start);
  if (start < 0 || end < 0) throw new Error(`sidecar/config.ts: const ${schema} = z.object({ … }); not found`);
  const out = [];
  let comment = '';
  for (const line of source.slice(start, end).split('\n').slice(1)) {
    const c = /^\s*\/\*\*\s*(.*?)\s*\*\/\s*$/.exec(line);
    const k = /^ {2}([A-Z][A-Z0-9_]*):\s*(.*)$/.exec(line);
    if (c) comment = c[1];
    else if (k) {
      out.push({ name: k[1], comment, text: k[2] });
      comment = '';
    } else if (out.length && !/^\s*\/\//.test(line)) out[out.length - 1].text += ` ${line.trim()}`;
  }
  return out;
}

/** Default, accepted values and description of one entry. */
export function describe({ name, comment, text }) {
  let def = 'unset';
  let accepted = '';
  let what = comment;
  const w = /whole\('((?:[^'\\]|\\.)*)',\s*([\d_*\s]+),\s*([\d_*\s]+),\s*([\d_*\s]+)\)/.exec(text);
  const d = /duration\('(s|ms)',\s*'([^']*)',\s*([\d_*\s]+),\s*([\d_*\s]+)\)/.exec(text);
  const en = /z\.enum\(\[([^\]]*)\]/.exec(text);
  const port = /^port\('[A-Z0-9_]+',\s*(\d+)\)/.exec(text);
  const dflt = /\.default\(('([^']*)'|[\d_]+)\)/.exec(text);
  if (port) {
    accepted = 'port 0–65535 (0 picks a free one)';
    def = port[1];
  } else if (w) {
    accepted = `whole number ${num(w[2]).toLocaleString('en-US')}–${num(w[3]).toLocaleString('en-US')}`;
    def = num(w[4]).toLocaleString('en-US');
    what ||= w[1].replace(/\\'/g, "'");
  } else if (d) {
    accepted = `duration ${formatMs(num(d[3]))}–${formatMs(num(d[4]))} (90s, 15m, 1h; a bare number is ${d[1] === 's' ? 'seconds' : 'milliseconds'})`;
    def = formatMs(Number(d[2]) * (d[1] === 's' ? 1000 : 1));
  } else if (en) {
    accepted = en[1].split(',').map((v) => `\`${v.trim().replace(/'/g, '')}\``).join(', ');
  } else if (/\.url\(/.test(text)) {
    accepted = /protocol/.test(text) ? 'http:// or https:// URL' : 'URL';
  } else if (/z\.coerce\.number/.test(text)) {
    const min = /\.min\((\d+)\)/.exec(text);
    const max = /\.max\((\d+)\)/.exec(text);
    accepted = `whole number${min && max ? ` ${min[1]}–${max[1]}` : ''}`;
  } else {
    const m = /\.(?:regex|refine)\(.*?,\s*'((?:[^'\\]|\\.)*)'\s*\)/.exec(text);
    const min = /\.min\((\d+)(?:,\s*'((?:[^'\\]|\\.)*)')?\)/.exec(text);
    if (m) accepted = m[1].replace(new RegExp(`^${name} must (be |look like |start with )?`), (_, v) => (v && v.startsWith('start') ? 'starts with ' : v === 'look like ' ? 'like ' : ''));
    else if (min && Number(min[1]) > 1) accepted = `text of at least ${min[1]} characters`;
    else accepted = 'text';
  }
  if (dflt && !d && !w) def = dflt[2] !== undefined ? `\`${dflt[2]}\`` : dflt[1];
  if (!dflt && !w && !d && !port && !/\.optional\(\)/.test(text)) def = 'required';
  return { name, def, accepted, what };
}

export function render(source) {
  const rows = entries(source).map(describe);
  const demo = entries(source, 'DemoEnv').map(describe);
  const missing = [...rows, ...demo].filter((r) => !r.what).map((r) => r.name);
  if (missing.length) throw new Error(`sidecar/config.ts: give ${missing.join(', ')} a /** comment */ saying what it does`);
  return [
    '# Settings',
    '',
    'Every setting hcsync reads, generated from `sidecar/config.ts` by `node scripts/settings-doc.mjs`: edit the',
    'comment above a variable there and run the script again, do not edit the table. `test/docs/docs.test.ts`',
    'fails when a setting is missing here or this page is stale.',
    '',
    'Settings come from the environment and, optionally, from a JSON file named by `HC_CONFIG_FILE` whose keys',
    'are the same variable names (the environment wins). An empty variable counts as unset. Every value is',
    'checked with zod before anything starts; a bad one stops the process (exit 2) naming the variable and',
    'the fix. Durations take a number and a unit (`500ms`, `90s`, `15m`, `1h30m`, `2d`).',
    '',
    '| Variable | Default | Accepted | What it does |',
    '| --- | --- | --- | --- |',
    ...rows.map((r) => `| \`${r.name}\` | ${cell(r.def)} | ${cell(r.accepted)} | ${cell(r.what)} |`),
    '| `HC_CONFIG_FILE` | unset | path of a JSON file | Settings from a file: an object of VARIABLE: value; the environment wins over it. |',
    '',
    'Which Salesforce variables are needed depends on `SF_AUTH` (inferred when unset: `SF_REFRESH_TOKEN` →',
    'refresh_token, `SF_PRIVATE_KEY`/`SF_PRIVATE_KEY_FILE` → jwt, `SF_USERNAME`/`SF_PASSWORD` → password,',
    'otherwise client_credentials): password needs `SF_CLIENT_ID`, `SF_CLIENT_SECRET`, `SF_USERNAME`,',
    '`SF_PASSWORD`; refresh_token `SF_CLIENT_ID`, `SF_CLIENT_SECRET`, `SF_REFRESH_TOKEN`; client_credentials',
    '`SF_CLIENT_ID`, `SF_CLIENT_SECRET`; jwt `SF_CLIENT_ID`, `SF_USERNAME` and a key. Verbs that only need',
    'the database (`migrate`, `status`, …) do not require the Salesforce variables (a value given is still checked).',
    '',
    '## `hcsync demo`',
    '',
    'The demo starts its own Postgres and emulator, so it needs none of the above. It reads these, and',
    '`HC_HTTP_PORT`, `HC_LOG_LEVEL` (default `warn` here) and `HC_LOG_PRETTY` (readable unless `0`), checked',
    'the same way:',
    '',
    '| Variable | Default | Accepted | What it does |',
    '| --- | --- | --- | --- |',
    ...demo.map((r) => `| \`${r.name}\` | ${cell(r.def)} | ${cell(r.accepted)} | ${cell(r.what)} |`),
    '',
    '## The test suite',
    '',
    'Only the tests read these (not the sidecar):',
    '',
    '| Variable | Read by | What it does |',
    '| --- | --- | --- |',
    '| `DATABASE_URL` | `test/support/global-setup.ts` | a server to test on instead of the embedded PostgreSQL 18 (a superuser URL) |',
    '| `HCSYNC_TEST_PG_MAJOR` | `test/support/global-setup.ts` | the embedded PostgreSQL major to test on (14–18; default 18) |',
    '| `HCSYNC_SCREENSHOTS` | `test/dashboard/dashboard.test.ts` | `docs`: write the dashboard screenshots into docs/ |',
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const page = render(readFileSync(`${root}sidecar/config.ts`, 'utf8'));
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(PAGE, 'utf8');
    } catch {}
    if (current !== page) {
      console.error('docs/SETTINGS.md is stale: run node scripts/settings-doc.mjs');
      process.exit(1);
    }
  } else {
    writeFileSync(PAGE, page);
    console.log(`wrote ${PAGE}`);
  }
}
