// The one part of the Tooling API emulated: queries of the event channels and their members
// (`GET /services/data/vXX/tooling/query?q=…` on PlatformEventChannel and PlatformEventChannelMember), which
// is how a client learns which objects a custom change event channel carries ("Get Custom Channels and
// Channel Members", Change Data Capture Developer Guide). The rest of the Tooling API answers NOT_FOUND.
// SELECT of the objects' fields, WHERE with `=` or IN conditions joined by AND, no ORDER BY or LIMIT.
import { parseQuery, type Query, type WhereClause } from '@jetstreamapp/soql-parser-js';
import { makeId } from './ids.js';
import { sfError, type ApiResponse } from './api.js';

type Rec = Record<string, unknown>;

/** The custom channels (`/data/Sync__chn`) and the change event names of their objects. */
export function toolingQuery(q: string, channels: Array<{ channel: string; entities: string[] }>, version: string): ApiResponse {
  let query: Query;
  try {
    query = parseQuery(q);
  } catch {
    return sfError(400, 'MALFORMED_QUERY', `\n${q}\n^\nERROR at Row:1:Column:1\nunexpected token`);
  }
  const object = String(query.sObject ?? '');
  // (any other Tooling object is not emulated: NOT_FOUND, as the rest of the Tooling API)
  if (!/^platformeventchannel(member)?$/i.test(object)) return sfError(404, 'NOT_FOUND', 'The requested resource does not exist');
  const rows: Rec[] = [];
  channels.forEach((c, i) => {
    const name = c.channel.replace(/^\/data\//, '');
    const developerName = name.replace(/__chn$/, '');
    const channelId = makeId('0YL', i + 1);
    if (object.toLowerCase() === 'platformeventchannel') {
      rows.push({ Id: channelId, DeveloperName: developerName, MasterLabel: developerName, ChannelType: 'data', FullName: name });
    } else if (object.toLowerCase() === 'platformeventchannelmember') {
      c.entities.forEach((entity, j) => rows.push({
        Id: makeId('0v8', (i + 1) * 1000 + j + 1), DeveloperName: `${name.replace(/__/g, '_')}_${entity}`,
        EventChannel: channelId, SelectedEntity: entity, FilterExpression: null,
      }));
    }
  });
  const fields = (query.fields ?? []).map((f) => (f.type === 'Field' ? f.field : ''));
  // (with no rows there is nothing to check a field against: an unknown one then answers no records)
  const known = new Set(Object.keys(rows[0] ?? {}).map((k) => k.toLowerCase()));
  const bad = fields.find((f) => !f || (rows.length && !known.has(f.toLowerCase())));
  if (bad !== undefined) return sfError(400, 'INVALID_FIELD', `\n${q}\n^\nERROR at Row:1:Column:1\nNo such column '${bad}' on entity '${object}'.`);
  const get = (r: Rec, f: string) => Object.entries(r).find(([k]) => k.toLowerCase() === f.toLowerCase())?.[1];
  const matches = (r: Rec, w: WhereClause | undefined): boolean => {
    if (!w) return true;
    const l = w.left as { field?: string; operator?: string; value?: string | string[] };
    const strip = (v: string) => v.replace(/^'(.*)'$/, '$1');
    const v = get(r, l.field ?? '');
    const ok = l.operator === '=' ? v === strip(String(l.value))
      : l.operator?.toUpperCase() === 'IN' ? (Array.isArray(l.value) ? l.value : [l.value]).map((x) => strip(String(x))).includes(String(v))
      : false;
    const next = w as { operator?: string; right?: WhereClause };
    if (!next.right) return ok;
    return next.operator === 'OR' ? ok || matches(r, next.right) : ok && matches(r, next.right);
  };
  const records = rows.filter((r) => matches(r, query.where)).map((r) => ({
    attributes: { type: object, url: `/services/data/v${version}/tooling/sobjects/${object}/${r.Id}` },
    ...Object.fromEntries(fields.map((f) => [Object.keys(r).find((k) => k.toLowerCase() === f.toLowerCase())!, get(r, f)])),
  }));
  return { status: 200, body: { size: records.length, totalSize: records.length, done: true, queryLocator: null, entityTypeName: object, records } };
}
