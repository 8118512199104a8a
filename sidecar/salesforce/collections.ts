// sObject Collections saves: up to 200 records of one object in one call, allOrNone=false so that a bad
// record fails alone. One result per record, in the order sent; what the results mean to the sync is the
// caller's business (sidecar/sync/outbound).
import { connectionOf, type Sf } from './client.js';

export type SaveKind = 'create' | 'upsert' | 'update' | 'delete';

export interface SaveResult {
  id?: string;
  success: boolean;
  errors?: { statusCode?: string; errorCode?: string; message?: string; fields?: string[] }[];
}

/** Rejects with errorCode TIMEOUT when `p` has not settled after `ms` (p itself goes on). */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => {
      t = setTimeout(() => rej(Object.assign(new Error(`Salesforce call timed out after ${ms} ms`), { errorCode: 'TIMEOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/**
 * One collections call. `records`: the field values to save; an update's carry their Id, an upsert's the
 * external id field `extId`, a delete's only their Id. A call that has not answered after `timeoutMs`
 * rejects with errorCode TIMEOUT, and `onTimeout` gets the call itself: jsforce cannot abort it, and
 * Salesforce may still apply it.
 */
export async function save(
  sf: Sf,
  kind: SaveKind,
  object: string,
  records: Record<string, unknown>[],
  opts: { extId?: string | null; timeoutMs: number; onTimeout?: (call: Promise<unknown>) => void },
): Promise<SaveResult[]> {
  const so = connectionOf(sf).sobject(object);
  const o = { allOrNone: false } as const;
  let p: Promise<unknown>;
  if (kind === 'delete') p = so.destroy(records.map((r) => String(r.Id)), o);
  else if (kind === 'update') p = so.update(records as { Id: string }[], o);
  else if (kind === 'upsert') p = so.upsert(records, opts.extId!, o);
  else p = so.create(records, o);
  let res: SaveResult[] | SaveResult;
  try {
    res = (await withTimeout(p, opts.timeoutMs)) as SaveResult[] | SaveResult;
  } catch (err) {
    if ((err as { errorCode?: string }).errorCode === 'TIMEOUT') opts.onTimeout?.(p);
    throw err;
  }
  return Array.isArray(res) ? res : [res];
}
