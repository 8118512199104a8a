// Compact record storage: one packed string per record instead of a JavaScript object.
//
// A record held as an object costs a hidden class or a property dictionary, a tagged slot per field and
// a heap object per value: about 4.6 KiB for an Account-like record, so a million records took 4.6 GiB
// and five million did not fit. Packed, a record is one flat string (its values, tagged, joined by
// U+0000) keyed by its Id: the characters of its values and little more.
//
// The table is used like the Map<string, Rec> it replaces. `get` and iteration decode a fresh object on
// every read, so a record read and changed by a caller is stored again only through `set` (the org's
// transactions do exactly that: put, and undo with the record as it was).
import type { Rec } from './org.js';

const SEP = '\u0000';
const NULL = '\u0001';
const TRUE = '\u0002';
const FALSE = '\u0003';
const NUM = '\u0004';
const JSON_TAG = '\u0005';
const EMPTY = '\u0006';
const DICT = '\u0007';
/** Distinct values a column's dictionary takes (then further values are stored as they are). */
const DICT_MAX = 4096;

function encodeValue(v: unknown): string {
  if (v === undefined) return '';
  if (v === null) return NULL;
  if (v === true) return TRUE;
  if (v === false) return FALSE;
  if (typeof v === 'number') return NUM + String(v);
  if (typeof v === 'string') {
    if (v === '') return EMPTY;
    // Strings are stored bare unless they could be read as a tag or hold the separator.
    if (v.charCodeAt(0) > 7 && !v.includes(SEP)) return v;
  }
  return JSON_TAG + JSON.stringify(v);
}

function decodeValue(t: string): unknown {
  const c = t.charCodeAt(0);
  if (c > 7) return t;
  switch (t[0]) {
    case NULL: return null;
    case TRUE: return true;
    case FALSE: return false;
    case NUM: return Number(t.slice(1));
    case EMPTY: return '';
    default: return JSON.parse(t.slice(1));
  }
}

export class RecordTable {
  private rows = new Map<string, string>();
  /** Field names in the order first seen; a record's values are stored in this order. */
  private cols: string[] = [];
  private colIndex = new Map<string, number>();
  /**
   * Per column, a dictionary of values that repeat across records: the stamps and user ids every record
   * carries, picklists, cities. A value of 4 or more characters is stored as a reference to it while the
   * column's dictionary has room (the first DICT_MAX distinct values).
   */
  private dicts: { ids: Map<string, number>; values: string[] }[] = [];

  get size(): number {
    return this.rows.size;
  }

  private col(name: string): number {
    let i = this.colIndex.get(name);
    if (i === undefined) {
      i = this.cols.length;
      this.cols.push(name);
      this.colIndex.set(name, i);
      this.dicts.push({ ids: new Map(), values: [] });
    }
    return i;
  }

  encode(rec: Rec): string {
    const parts: string[] = [];
    for (const k in rec) {
      const v = rec[k];
      if (v === undefined) continue;
      const i = this.col(k);
      while (parts.length < i) parts.push('');
      parts[i] = typeof v === 'string' && v.length >= 4 ? this.ref(i, v) : encodeValue(v);
    }
    for (let i = 0; i < parts.length; i++) if (parts[i] === undefined) parts[i] = '';
    // One flat string (a concatenation tree would keep every piece alive).
    return parts.join(SEP);
  }

  private ref(col: number, v: string): string {
    const d = this.dicts[col];
    let n = d.ids.get(v);
    if (n === undefined) {
      if (d.values.length >= DICT_MAX) return encodeValue(v);
      n = d.values.length;
      d.values.push(v);
      d.ids.set(v, n);
    }
    return DICT + n.toString(36);
  }

  decode(packed: string): Rec {
    const rec: Rec = {};
    const cols = this.cols;
    const parts = packed.split(SEP);
    for (let i = 0; i < parts.length; i++) {
      const t = parts[i];
      if (t === '') continue;
      const c = t.charCodeAt(0);
      rec[cols[i]] = c > 7 ? t : c === 7 ? this.dicts[i].values[parseInt(t.slice(1), 36)] : decodeValue(t);
    }
    return rec;
  }

  get(id: string): Rec | undefined {
    const p = this.rows.get(id);
    return p === undefined ? undefined : this.decode(p);
  }

  has(id: string): boolean {
    return this.rows.has(id);
  }

  set(id: string, rec: Rec): this {
    this.rows.set(id, this.encode(rec));
    return this;
  }

  delete(id: string): boolean {
    return this.rows.delete(id);
  }

  clear(): void {
    this.rows.clear();
    for (const d of this.dicts) {
      d.ids.clear();
      d.values.length = 0;
    }
  }

  keys(): IterableIterator<string> {
    return this.rows.keys();
  }

  *values(): IterableIterator<Rec> {
    for (const p of this.rows.values()) yield this.decode(p);
  }

  *entries(): IterableIterator<[string, Rec]> {
    for (const [id, p] of this.rows) yield [id, this.decode(p)];
  }

  [Symbol.iterator](): IterableIterator<[string, Rec]> {
    return this.entries();
  }
}
