// Salesforce record ids: 15 case-sensitive base-62 characters plus a 3-character checksum that makes the
// 18-character form case-insensitive. The first three characters are the object's key prefix.

const CHECKSUM_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function checksum(id15: string): string {
  let out = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    out += CHECKSUM_ALPHABET[bits];
  }
  return out;
}

export function to18(id: string): string {
  return id.length === 18 ? id : id + checksum(id);
}

const ID_RE = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;

/** Normalises a 15- or 18-character id to its 18-character form; undefined when malformed. */
export function normalizeId(id: unknown): string | undefined {
  if (typeof id !== 'string' || !ID_RE.test(id)) return undefined;
  const id15 = id.slice(0, 15);
  const full = id15 + checksum(id15);
  if (id.length === 18 && id.slice(15).toUpperCase() !== full.slice(15)) return undefined;
  return full;
}

/** Makes ids `<prefix><pod 2 chars><sequence 10 chars base-62>`. */
export function makeId(prefix: string, seq: number, pod = '5g'): string {
  let s = '';
  let n = seq;
  for (let i = 0; i < 10; i++) {
    s = BASE62[n % 62] + s;
    n = Math.floor(n / 62);
  }
  const id15 = prefix + pod + s;
  return id15 + checksum(id15);
}

export const ORG_ID = makeId('00D', 1, '5g');
