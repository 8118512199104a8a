// The REST operations the sidecar uses, so that no other module calls the jsforce connection itself:
// describe, limits, identity, query pages and counts, records by id, the lost-create lookups of the
// writer, and one raw call for `hcsync sf`. Each is one or a few calls, counted in the ledger like all
// others (client.ts). Records come back as Salesforce sends them (attributes included).
import { basePathOf, connectionOf, SalesforceClient, type Sf } from './client.js';

export type SfRecord = Record<string, unknown>;

/** A string as a SOQL literal. */
export const soqlString = (v: unknown): string => `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** A time in ms as a SOQL datetime literal (whole seconds, UTC). */
export function soqlDateTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** GET under the version's base path (e.g. '/sobjects'), or a full /services/… path. */
async function get<T>(sf: Sf, path: string): Promise<T> {
  const url = path.startsWith('/services/') ? path : `${basePathOf(sf)}${path}`;
  return (await connectionOf(sf).request(url)) as T;
}

/** An object's describe (fields, their types, ...). Fails with NOT_FOUND when there is no such object (isObjectMissing). */
export function describe<T = Record<string, unknown>>(sf: Sf, object: string): Promise<T> {
  return get<T>(sf, `/sobjects/${encodeURIComponent(object)}/describe`);
}

/** The objects of the org (the global describe). */
export function describeGlobal<T = { sobjects: Record<string, unknown>[] }>(sf: Sf): Promise<T> {
  return get<T>(sf, '/sobjects');
}

export type Limits = Record<string, { Max: number; Remaining: number }>;

/** The org's limits (DailyApiRequests, …). One cheap authenticated call: it also proves the session. */
export function limits(sf: Sf): Promise<Limits> {
  return get<Limits>(sf, '/limits');
}

/** The org's record count estimates of some objects (GET /limits/recordCount). */
export function recordCounts(sf: Sf, objects: string[]): Promise<{ sObjects?: { name: string; count: number }[] }> {
  return get(sf, `/limits/recordCount?sObjects=${objects.join(',')}`);
}

/** The API versions the org serves (GET /services/data), e.g. ['31.0', …, '64.0']. */
export async function apiVersions(sf: Sf): Promise<string[]> {
  if (sf instanceof SalesforceClient) return sf.versions();
  const list = await get<{ version: string }[]>(sf, '/services/data');
  return (Array.isArray(list) ? list : []).map((v) => v.version);
}

/** Who we are signed in as: the org, the user and the instance. */
export async function identity(sf: Sf): Promise<{ organizationId: string; userId: string; username: string; instanceUrl: string }> {
  const conn = connectionOf(sf);
  const id = await conn.identity();
  return { organizationId: id.organization_id, userId: id.user_id, username: id.username, instanceUrl: conn.instanceUrl };
}

/** The org's id: known from the sign-in, else asked (GET the identity URL). */
export async function organizationId(sf: Sf): Promise<string> {
  return connectionOf(sf).userInfo?.organizationId ?? (await connectionOf(sf).identity()).organization_id;
}

/** The integration user's id, when the sign-in told it (no call). */
export function userId(sf: Sf): string | undefined {
  return connectionOf(sf).userInfo?.id;
}

export interface QueryPage {
  records: SfRecord[];
  totalSize: number;
  done: boolean;
}

/** Pages of a REST query (queryAll with scanAll: deleted records too), following nextRecordsUrl. */
export async function* queryPages(sf: Sf, soql: string, opts: { scanAll?: boolean } = {}): AsyncGenerator<QueryPage> {
  let url: string | undefined = `${basePathOf(sf)}/${opts.scanAll ? 'queryAll' : 'query'}?q=${encodeURIComponent(soql)}`;
  while (url) {
    const res = (await connectionOf(sf).request(url)) as { totalSize: number; done: boolean; nextRecordsUrl?: string; records: SfRecord[] };
    yield { records: res.records ?? [], totalSize: res.totalSize, done: res.done };
    url = res.done === false && res.nextRecordsUrl ? res.nextRecordsUrl : undefined;
  }
}

/** Every record of a query, all pages read; deleted ones too (queryAll, IsDeleted = true) with scanAll. */
export async function allRecords(sf: Sf, soql: string, opts: { scanAll?: boolean } = {}): Promise<SfRecord[]> {
  const out: SfRecord[] = [];
  for await (const page of queryPages(sf, soql, opts)) out.push(...page.records);
  return out;
}

/**
 * The change event names (`AccountChangeEvent`) a custom channel (`/data/Sync__chn`) carries, from the Tooling
 * API's PlatformEventChannel and PlatformEventChannelMember (reading them needs View Setup and
 * Configuration). Throws what Salesforce answers when they cannot be read.
 */
export async function channelEntities(sf: Sf, channel: string): Promise<string[]> {
  const developerName = channel.replace(/^\/data\//, '').replace(/__chn$/, '');
  const tooling = <R>(soql: string) => get<{ records: R[] }>(sf, `/tooling/query?q=${encodeURIComponent(soql)}`);
  const ids = (await tooling<{ Id: string }>(`SELECT Id FROM PlatformEventChannel WHERE DeveloperName = ${soqlString(developerName)}`)).records.map((r) => r.Id);
  if (!ids.length) return [];
  const members = await tooling<{ EventChannel: string; SelectedEntity: string }>('SELECT EventChannel, SelectedEntity FROM PlatformEventChannelMember');
  return members.records.filter((r) => ids.includes(r.EventChannel)).map((r) => r.SelectedEntity);
}

/** SELECT COUNT() of an object, optionally with a WHERE clause. */
export async function count(sf: Sf, object: string, where = ''): Promise<number> {
  const res = await get<{ totalSize: number }>(sf, `/query?q=${encodeURIComponent(`SELECT COUNT() FROM ${object}${where ? ` WHERE ${where}` : ''}`)}`);
  return Number(res.totalSize);
}

/** One record by its Id, with the given fields. Fails with NOT_FOUND when Salesforce has none (isRecordMissing). */
export function retrieve(sf: Sf, object: string, id: string, fields: string[]): Promise<SfRecord> {
  return get<SfRecord>(sf, `/sobjects/${object}/${id}?fields=${fields.join(',')}`);
}

/**
 * Records by Id, 200 per query. scanAll (queryAll) finds deleted ones too, as IsDeleted = true; an Id
 * Salesforce does not know (any more) is left out.
 */
export async function* retrieveByIds(sf: Sf, object: string, ids: string[], fields: string[], opts: { scanAll?: boolean } = {}): AsyncGenerator<QueryPage> {
  for (let i = 0; i < ids.length; i += 200) {
    const chunk = ids.slice(i, i + 200);
    yield* queryPages(sf, `SELECT ${fields.join(', ')} FROM ${object} WHERE Id IN (${chunk.map((x) => `'${x}'`).join(',')})`, opts);
  }
}

/** Records whose `field` holds one of `values` (100 values per query), deleted ones too, with the fields `select`. */
export async function recordsWithValues(sf: Sf, object: string, field: string, values: string[], select: string[]): Promise<SfRecord[]> {
  const out: SfRecord[] = [];
  for (let i = 0; i < values.length; i += 100) {
    const list = values.slice(i, i + 100).map(soqlString);
    out.push(...(await allRecords(sf, `SELECT ${select.join(', ')} FROM ${object} WHERE ${field} IN (${list.join(', ')})`, { scanAll: true })));
  }
  return out;
}

/**
 * Records created at or after `sinceMs` (by `createdById` when given), deleted ones too, oldest first,
 * with Id, CreatedDate and the fields `select`.
 */
export function recordsCreatedSince(sf: Sf, object: string, select: string[], sinceMs: number, createdById?: string): Promise<SfRecord[]> {
  const where = [`CreatedDate >= ${soqlDateTime(sinceMs)}`];
  if (createdById) where.push(`CreatedById = '${createdById}'`);
  const soql = `SELECT Id, CreatedDate${select.filter((f) => f !== 'Id').map((f) => `, ${f}`).join('')} FROM ${object} WHERE ${where.join(' AND ')} ORDER BY CreatedDate`;
  return allRecords(sf, soql, { scanAll: true });
}

/** The URL path of a REST path: under the version's base path, or a full /services/… path as it is. */
export function restPath(sf: Sf, path: string): string {
  return path.startsWith('/services/') ? path : `${basePathOf(sf)}${path.startsWith('/') ? '' : '/'}${path}`;
}

/** One REST call as asked (`hcsync sf`), at restPath(sf, path); `body` is JSON text. */
export function request(sf: Sf, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, body?: string): Promise<unknown> {
  return connectionOf(sf).request({ method, url: restPath(sf, path), body, headers: body ? { 'content-type': 'application/json' } : {} });
}
