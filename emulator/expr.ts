// A small formula language for formula fields and flow assignments — no JavaScript evaluation.
//   literals: 'text', "text", 12.5, TRUE, FALSE, NULL      field references: Name, AnnualRevenue
//   operators: & (concatenate), + - * /, = != <> < <= > >=, parentheses
//   functions: UPPER, LOWER, TRIM, LEN, TEXT, VALUE, NOW, TODAY, IF(c,a,b), BLANKVALUE(a,b), ISBLANK(a), ROUND(n,d)
import type { Condition } from './schema.js';
import { formatDateTime } from './values.js';

type Tok = { t: 'num' | 'str' | 'id' | 'op'; v: string };
export type Expr =
  | { k: 'lit'; v: unknown }
  | { k: 'field'; name: string }
  | { k: 'bin'; op: string; a: Expr; b: Expr }
  | { k: 'neg'; a: Expr }
  | { k: 'call'; fn: string; args: Expr[] };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === "'" || c === '"') {
      let j = i + 1, s = '';
      while (j < src.length && src[j] !== c) { if (src[j] === '\\') j++; s += src[j++]; }
      if (j >= src.length) throw new Error(`unterminated string in formula: ${src}`);
      out.push({ t: 'str', v: s }); i = j + 1; continue;
    }
    if (/[0-9]/.test(c)) { const m = /^[0-9]+(\.[0-9]+)?/.exec(src.slice(i))!; out.push({ t: 'num', v: m[0] }); i += m[0].length; continue; }
    if (/[A-Za-z_]/.test(c)) { const m = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(src.slice(i))!; out.push({ t: 'id', v: m[0] }); i += m[0].length; continue; }
    const two = src.slice(i, i + 2);
    if (['!=', '<>', '<=', '>=', '=='].includes(two)) { out.push({ t: 'op', v: two === '==' ? '=' : two === '<>' ? '!=' : two }); i += 2; continue; }
    if ('&+-*/=<>(),'.includes(c)) { out.push({ t: 'op', v: c }); i++; continue; }
    throw new Error(`unexpected character '${c}' in formula: ${src}`);
  }
  return out;
}

export function parseExpr(src: string): Expr {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const eat = (v?: string) => { const t = toks[p++]; if (!t || (v && t.v !== v)) throw new Error(`bad formula near token ${p}: ${src}`); return t; };
  const LEVELS = [['=', '!=', '<', '<=', '>', '>='], ['&', '+', '-'], ['*', '/']];
  const level = (n: number): Expr => {
    if (n === LEVELS.length) return unary();
    let a = level(n + 1);
    while (peek() && peek().t === 'op' && LEVELS[n].includes(peek().v)) { const op = eat().v; a = { k: 'bin', op, a, b: level(n + 1) }; }
    return a;
  };
  const unary = (): Expr => {
    const t = peek();
    if (!t) throw new Error(`unexpected end of formula: ${src}`);
    if (t.t === 'op' && t.v === '-') { eat(); return { k: 'neg', a: unary() }; }
    if (t.t === 'op' && t.v === '(') { eat(); const e = level(0); eat(')'); return e; }
    eat();
    if (t.t === 'num') return { k: 'lit', v: Number(t.v) };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'id') {
      const up = t.v.toUpperCase();
      if (up === 'TRUE') return { k: 'lit', v: true };
      if (up === 'FALSE') return { k: 'lit', v: false };
      if (up === 'NULL') return { k: 'lit', v: null };
      if (peek() && peek().v === '(') {
        eat('(');
        const args: Expr[] = [];
        if (peek() && peek().v !== ')') { args.push(level(0)); while (peek() && peek().v === ',') { eat(','); args.push(level(0)); } }
        eat(')');
        return { k: 'call', fn: up, args };
      }
      return { k: 'field', name: t.v };
    }
    throw new Error(`unexpected token '${t.v}' in formula: ${src}`);
  };
  const e = level(0);
  if (p !== toks.length) throw new Error(`trailing tokens in formula: ${src}`);
  return e;
}

const cache = new Map<string, Expr>();
export function compile(src: string): Expr {
  let e = cache.get(src);
  if (!e) { e = parseExpr(src); cache.set(src, e); }
  return e;
}

export type Getter = (field: string) => unknown;

function cmp(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

export function evaluate(e: Expr, get: Getter): unknown {
  switch (e.k) {
    case 'lit': return e.v;
    case 'field': return get(e.name) ?? null;
    case 'neg': { const v = evaluate(e.a, get); return v == null ? null : -Number(v); }
    case 'bin': {
      const a = evaluate(e.a, get), b = evaluate(e.b, get);
      switch (e.op) {
        case '&': return `${a ?? ''}${b ?? ''}`;
        case '+': if (typeof a === 'string' || typeof b === 'string') return `${a ?? ''}${b ?? ''}`; return a == null || b == null ? null : Number(a) + Number(b);
        case '-': return a == null || b == null ? null : Number(a) - Number(b);
        case '*': return a == null || b == null ? null : Number(a) * Number(b);
        case '/': return a == null || b == null || Number(b) === 0 ? null : Number(a) / Number(b);
        case '=': return a === b || (a != null && b != null && cmp(a, b) === 0);
        case '!=': return !(a === b || (a != null && b != null && cmp(a, b) === 0));
        case '<': return a != null && b != null && cmp(a, b) < 0;
        case '<=': return a != null && b != null && cmp(a, b) <= 0;
        case '>': return a != null && b != null && cmp(a, b) > 0;
        case '>=': return a != null && b != null && cmp(a, b) >= 0;
      }
      throw new Error(`unknown operator ${e.op}`);
    }
    case 'call': {
      const arg = (i: number) => evaluate(e.args[i], get);
      switch (e.fn) {
        case 'UPPER': { const v = arg(0); return v == null ? null : String(v).toUpperCase(); }
        case 'LOWER': { const v = arg(0); return v == null ? null : String(v).toLowerCase(); }
        case 'TRIM': { const v = arg(0); return v == null ? null : String(v).trim(); }
        case 'LEN': { const v = arg(0); return v == null ? 0 : String(v).length; }
        case 'TEXT': { const v = arg(0); return v == null ? '' : String(v); }
        case 'VALUE': { const v = arg(0); return v == null || v === '' ? null : Number(v); }
        case 'NOW': return formatDateTime(Date.now());
        case 'TODAY': return new Date().toISOString().slice(0, 10);
        case 'IF': return arg(0) === true ? arg(1) : arg(2);
        case 'BLANKVALUE': { const v = arg(0); return v == null || v === '' ? arg(1) : v; }
        case 'ISBLANK': { const v = arg(0); return v == null || v === ''; }
        case 'ROUND': { const v = arg(0); const d = Number(arg(1) ?? 0); return v == null ? null : Math.round(Number(v) * 10 ** d) / 10 ** d; }
      }
      throw new Error(`unknown function ${e.fn}`);
    }
  }
}

export function evalFormula(src: string, get: Getter): unknown {
  return evaluate(compile(src), get);
}

function eq(a: unknown, b: unknown): boolean {
  if (a == null || b == null) return a == null && b == null;
  if (typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  return cmp(a, b) === 0;
}

/** Evaluates a declarative condition. `old` is the prior version on update (for isChanged). */
export function evalCondition(c: Condition, get: Getter, old?: Getter): boolean {
  if ('all' in c) return c.all.every((x) => evalCondition(x, get, old));
  if ('any' in c) return c.any.some((x) => evalCondition(x, get, old));
  if ('not' in c) return !evalCondition(c.not, get, old);
  const v = get(c.field);
  switch (c.op) {
    case 'isNull': return v == null || v === '';
    case 'notNull': return !(v == null || v === '');
    case 'isChanged': return old ? !eq(v, old(c.field)) : false;
    case 'eq': return eq(v, c.value);
    case 'ne': return !eq(v, c.value);
    case 'lt': return v != null && cmp(v, c.value) < 0;
    case 'le': return v != null && cmp(v, c.value) <= 0;
    case 'gt': return v != null && cmp(v, c.value) > 0;
    case 'ge': return v != null && cmp(v, c.value) >= 0;
    case 'contains': return v != null && String(v).toLowerCase().includes(String(c.value).toLowerCase());
    case 'startsWith': return v != null && String(v).toLowerCase().startsWith(String(c.value).toLowerCase());
  }
  return false;
}
