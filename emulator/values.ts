// Value formats and input coercion, as the REST API and Bulk CSV present them.
import type { FieldMeta } from './schema.js';
import { isNumberType } from './schema.js';
import { normalizeId } from './ids.js';

/** REST datetime: second precision, `.000`, offset without colon. */
export function formatDateTime(ms: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  return d.toISOString().replace('Z', '+0000');
}

/** CometD/Bulk datetime form: `...000Z`. */
export function toZulu(v: string): string {
  return v.endsWith('+0000') ? v.slice(0, -5) + 'Z' : v;
}

const DT_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

export function parseDateTime(v: string): number {
  const m = DT_RE.exec(v.trim());
  if (!m) return NaN;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '0', tz] = m;
  let ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, Math.floor(Number('0.' + frac) * 1000));
  if (tz && tz.toUpperCase() !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const digits = tz.slice(1).replace(':', '');
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return ms;
}

export type FieldError = { statusCode: string; message: string; fields: string[] };
export type Coerced = { ok: true; value: unknown } | { ok: false; error: FieldError };

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function typeName(f: FieldMeta): string {
  return f.type === 'int' ? 'int' : isNumberType(f.type) ? 'double' : f.type;
}

/** Coerces one input value. `csv` input is always text; JSON input keeps JSON types. */
export function coerce(f: FieldMeta, raw: unknown, csv: boolean): Coerced {
  const bad = (msg: string, code = 'INVALID_TYPE_ON_FIELD_IN_RECORD'): Coerced => ({ ok: false, error: { statusCode: code, message: msg, fields: [f.name] } });
  if (raw === null || raw === undefined || (csv && raw === '')) return { ok: true, value: null };
  const jsonBad = (): Coerced =>
    csv ? bad(`${f.label}: value not of required type: ${String(raw)}`)
      : { ok: false, error: { statusCode: 'JSON_PARSER_ERROR', message: `Cannot deserialize instance of ${typeName(f)} from ${typeof raw === 'string' ? 'VALUE_STRING' : typeof raw === 'boolean' ? 'VALUE_' + String(raw).toUpperCase() : 'VALUE_NUMBER_INT'} value ${String(raw)} or request may be missing a required field`, fields: [] } };
  switch (f.type) {
    case 'boolean': {
      if (typeof raw === 'boolean') return { ok: true, value: raw };
      if (typeof raw === 'string' && /^(true|false)$/i.test(raw)) return { ok: true, value: raw.toLowerCase() === 'true' };
      if (csv && (raw === '1' || raw === '0')) return { ok: true, value: raw === '1' };
      return jsonBad();
    }
    case 'int': case 'double': case 'currency': case 'percent': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && raw.trim() !== '' && !isNaN(Number(raw))) n = Number(raw);
      else return jsonBad();
      if (!isFinite(n)) return jsonBad();
      if (f.type === 'int') {
        if (!Number.isInteger(n)) return bad(`${f.label}: value not of required type: ${String(raw)}`);
        return { ok: true, value: n };
      }
      const intDigits = Math.max(1, f.precision - f.scale);
      if (Math.abs(Math.trunc(n)).toString().length > intDigits)
        return bad(`${f.label}: value outside of valid range on numeric field: ${String(raw)}`, 'NUMBER_OUTSIDE_VALID_RANGE');
      const p = 10 ** f.scale;
      return { ok: true, value: f.scale >= 0 ? Math.round(n * p) / p : n };
    }
    case 'date': {
      if (typeof raw !== 'string') return jsonBad();
      const ms = parseDateTime(raw);
      if (isNaN(ms)) return bad(`${f.label}: value not of required type: ${raw}`);
      return { ok: true, value: new Date(ms).toISOString().slice(0, 10) };
    }
    case 'datetime': {
      if (typeof raw !== 'string') return jsonBad();
      const ms = parseDateTime(raw);
      if (isNaN(ms)) return bad(`${f.label}: value not of required type: ${raw}`);
      return { ok: true, value: formatDateTime(ms) };
    }
    case 'id': case 'reference': {
      if (typeof raw !== 'string') return jsonBad();
      if (raw === '' ) return { ok: true, value: null };
      const id = normalizeId(raw);
      if (!id) return bad(`${f.label}: id value of incorrect type: ${raw}`, 'MALFORMED_ID');
      return { ok: true, value: id };
    }
    default: {
      let s: string;
      if (typeof raw === 'string') s = raw;
      else if (typeof raw === 'number' || typeof raw === 'boolean') s = String(raw);
      else return jsonBad();
      if (s === '') return { ok: true, value: null };
      if (s.length > f.length)
        return bad(`${f.label}: data value too large: ${s.length > 100 ? s.slice(0, 100) + '...' : s} (max length=${f.length})`, 'STRING_TOO_LONG');
      if (f.type === 'email' && !EMAIL_RE.test(s)) return bad(`${f.label}: invalid email address: ${s}`, 'INVALID_EMAIL_ADDRESS');
      if (f.type === 'picklist' && f.restrictedPicklist && !f.picklistValues.includes(s))
        return bad(`${f.label}: bad value for restricted picklist field: ${s}`, 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST');
      return { ok: true, value: s };
    }
  }
}

/** Value as written into a Bulk result/query CSV cell. */
export function csvCell(v: unknown, f?: FieldMeta): string {
  if (v === null || v === undefined) return '';
  if (f && f.type === 'datetime' && typeof v === 'string') return toZulu(v);
  return String(v);
}
