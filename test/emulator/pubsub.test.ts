// The emulator's Pub/Sub API (eventbus.v1 over TLS gRPC): wire rules checked with a raw @grpc/grpc-js client that
// trusts the emulator's certificate, then the official salesforce-pubsub-api-client, unmodified, pointed at the
// emulator by configuration alone.
import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import avro from 'avsc';
import type jsforce from 'jsforce';
import { StreamingExtension } from 'jsforce/api/streaming';
import PubSubApiClient from 'salesforce-pubsub-api-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOrg, type Emulator } from '../../emulator/index.js';
import { login, start, waitFor } from './helpers.js';

// The proto exactly as the official client ships it, so the raw client speaks the published contract.
const PROTO = resolve('node_modules/salesforce-pubsub-api-client/pubsub_api.proto');
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: false, longs: Number, enums: Number, defaults: true })) as any;
const KEEPALIVE_MS = 400;

let emu: Emulator;
let conn: jsforce.Connection;
let orgId: string;

beforeAll(async () => {
  emu = await start({ pubsubKeepaliveMs: KEEPALIVE_MS });
  conn = await login(emu);
  orgId = (await conn.identity()).organization_id;
});
afterAll(async () => { await emu?.stop(); });

type Md = Record<string, string>;
const auth = (): Md => ({ accesstoken: conn.accessToken!, instanceurl: conn.instanceUrl, tenantid: orgId });

/** A PubSub stub that verifies the emulator's certificate (no verification switched off). */
function stub(md: Md = auth()) {
  const call = grpc.credentials.createFromMetadataGenerator((_p, cb) => { const m = new grpc.Metadata(); for (const [k, v] of Object.entries(md)) m.set(k, v); cb(null, m); });
  return new pkg.eventbus.v1.PubSub(emu.pubsubEndpoint, grpc.credentials.combineChannelCredentials(grpc.credentials.createSsl(Buffer.from(emu.certificate!)), call));
}

function unary<T>(client: any, method: string, req: object): Promise<T> {
  return new Promise((res, rej) => client[method](req, (e: grpc.ServiceError | null, r: T) => (e ? rej(e) : res(r))));
}

const rid = (id: number) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(id)); return b; };
const num = (b: Buffer) => { expect(b).toHaveLength(8); return Number(b.readBigUInt64BE()); };

interface Fetched { events: Array<{ event: { schemaId: string; payload: Buffer }; replayId: Buffer }>; latestReplayId: Buffer; pendingNumRequested: number }

/** Opens a Subscribe stream; collects responses and the final status. */
function open(first: Record<string, unknown>, client = stub()) {
  const call = client.Subscribe();
  const got: Fetched[] = [];
  let status: (grpc.ServiceError & { metadata: grpc.Metadata }) | undefined;
  call.on('data', (r: Fetched) => got.push(r));
  call.on('error', (e: any) => { status = e; });
  call.write(first);
  return {
    got, call,
    status: () => status,
    events: () => got.flatMap((r) => r.events),
    request: (n: number) => call.write({ numRequested: n }),
    close: () => { call.cancel(); client.close(); },
  };
}

async function errorOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try { await p; } catch (e) { return e as grpc.ServiceError; }
  throw new Error('expected the call to fail');
}
const code = (e: { metadata: grpc.Metadata }) => e.metadata.get('error-code')[0];

const schemaCache = new Map<string, avro.Type>();
async function decode(schemaId: string, payload: Buffer): Promise<Record<string, any>> {
  if (!schemaCache.has(schemaId)) {
    const s = await unary<{ schemaJson: string }>(stub(), 'GetSchema', { schemaId });
    schemaCache.set(schemaId, avro.Type.forSchema(JSON.parse(s.schemaJson)));
  }
  return schemaCache.get(schemaId)!.fromBuffer(payload);
}

describe('Pub/Sub API, raw gRPC client', () => {
  it('GetTopic names the object schema; GetSchema serves Avro with ChangeEventHeader first and nullable fields', async () => {
    const c = stub();
    const t = await unary<any>(c, 'GetTopic', { topicName: '/data/AccountChangeEvent' });
    expect(t).toMatchObject({ topicName: '/data/AccountChangeEvent', canSubscribe: true, canPublish: false, tenantGuid: orgId });
    expect(t.schemaId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const s = await unary<any>(c, 'GetSchema', { schemaId: t.schemaId });
    expect(s.schemaId).toBe(t.schemaId);
    const schema = JSON.parse(s.schemaJson);
    expect(schema).toMatchObject({ type: 'record', name: 'AccountChangeEvent', namespace: 'com.sforce.eventbus' });
    expect(schema.fields[0].name).toBe('ChangeEventHeader');
    expect(schema.fields[0].type.fields.map((f: any) => f.name)).toEqual(['entityName', 'recordIds', 'changeType', 'changeOrigin', 'transactionKey', 'sequenceNumber',
      'commitTimestamp', 'commitNumber', 'commitUser', 'nulledFields', 'diffFields', 'changedFields']);
    const names = schema.fields.map((f: any) => f.name);
    expect(names).toEqual(expect.arrayContaining(['Name', 'Phone', 'Website', 'NumberOfEmployees', 'CreatedDate', 'LastModifiedDate', 'OwnerId']));
    expect(names).not.toContain('Id');
    expect(names).not.toContain('SystemModstamp');
    expect(schema.fields.find((f: any) => f.name === 'Phone')).toEqual({ name: 'Phone', type: ['null', 'string'], default: null });
    // Several objects: no single schema for the topic; each event names its own.
    expect((await unary<any>(c, 'GetTopic', { topicName: '/data/ChangeEvents' })).schemaId).toBe('');
    const missing = await errorOf(unary(c, 'GetTopic', { topicName: '/data/NoSuchChangeEvent' }));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    expect(code(missing as any)).toBe('sfdc.platform.eventbus.grpc.subscription.topic.notfound');
    expect((await errorOf(unary(c, 'GetSchema', { schemaId: 'nope' }))).code).toBe(grpc.status.NOT_FOUND);
    c.close();
  });

  it('refuses calls without a live session of this org, with the auth error code in the trailer', async () => {
    const cases: Md[] = [
      {},
      { ...auth(), accesstoken: `${orgId.slice(0, 15)}!not-a-token` },
      { ...auth(), tenantid: '00D000000000999' },
      { accesstoken: auth().accesstoken, tenantid: orgId },
    ];
    for (const md of cases) {
      const c = stub(md);
      const e = await errorOf(unary(c, 'GetTopic', { topicName: '/data/AccountChangeEvent' }));
      expect(e.code, JSON.stringify(Object.keys(md))).toBe(grpc.status.UNAUTHENTICATED);
      expect(code(e as any)).toBe('sfdc.platform.eventbus.grpc.service.auth.error');
      expect(e.metadata.get('rpc-id')[0]).toBeTruthy();
      const s = open({ topicName: '/data/AccountChangeEvent', numRequested: 1 }, c);
      await waitFor(() => s.status(), 'subscribe refused');
      expect(s.status()!.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(code(s.status()!)).toBe('sfdc.platform.eventbus.grpc.service.auth.error');
      c.close();
    }
    // The 15-character org id (what the official client derives from the token) is the same tenant.
    const c = stub({ ...auth(), tenantid: orgId.slice(0, 15) });
    expect((await unary<any>(c, 'GetTopic', { topicName: '/data/AccountChangeEvent' })).topicName).toBe('/data/AccountChangeEvent');
    c.close();
  });

  it('delivers no more than num_requested, says what is pending, keeps at most 100 outstanding', async () => {
    const s = open({ topicName: '/data/AccountChangeEvent', numRequested: 2 });
    await waitFor(() => s.got.length > 0, 'first keepalive'); // subscribed (LATEST) before the writes
    s.got.length = 0;
    const ids = (await conn.sobject('Account').create([1, 2, 3, 4, 5].map((i) => ({ Name: `Flow ${i}` })), { allOrNone: true })).map((r) => r.id);
    await waitFor(() => s.events().length >= 2 && s.got.some((r) => r.events.length === 0), 'two events, then a keepalive');
    expect(s.events()).toHaveLength(2);
    const withEvents = s.got.filter((r) => r.events.length > 0);
    expect(withEvents[withEvents.length - 1].pendingNumRequested).toBe(0);
    // Nothing more was asked for: the keepalive says where the subscriber is, not the newest event it has not had.
    const ka = s.got.find((r) => r.events.length === 0)!;
    expect(num(ka.latestReplayId)).toBe(num(s.events()[1].replayId));
    expect(ka.pendingNumRequested).toBe(0);
    s.request(10);
    await waitFor(() => s.events().length >= 5, 'the other three');
    const last = s.got.filter((r) => r.events.length > 0).at(-1)!;
    expect(last.pendingNumRequested).toBe(7);
    expect(num(last.latestReplayId)).toBe(num(s.events()[4].replayId));
    // Same events, same replay ids as the retained log that CometD replays from.
    const log = emu.events().filter((e) => e.entity === 'Account' && ids.includes(e.source.recordIds[0]));
    expect(s.events().map((e) => num(e.replayId))).toEqual(log.map((e) => e.replayId));
    const decoded = await Promise.all(s.events().map((e) => decode(e.event.schemaId, e.event.payload)));
    expect(decoded.map((d) => d.ChangeEventHeader.recordIds[0])).toEqual(ids);
    expect(decoded.map((d) => d.Name)).toEqual(['Flow 1', 'Flow 2', 'Flow 3', 'Flow 4', 'Flow 5']);
    // Asking for 500 leaves 100 outstanding; the next event shows 99.
    s.request(500);
    await conn.sobject('Account').create({ Name: 'Flow 6' });
    await waitFor(() => s.events().length >= 6, 'sixth event');
    expect(s.got.filter((r) => r.events.length > 0).at(-1)!.pendingNumRequested).toBe(99);
    expect(s.status()).toBeUndefined();
    s.close();
  });

  it('replays by preset: EARLIEST from the start of retention, CUSTOM after the id given, LATEST only new events', async () => {
    await conn.sobject('Contact').create([{ LastName: 'R1' }, { LastName: 'R2' }, { LastName: 'R3' }], { allOrNone: true });
    const log = emu.events().filter((e) => e.entity === 'Contact');
    expect(log.length).toBeGreaterThanOrEqual(3);
    const earliest = open({ topicName: '/data/ContactChangeEvent', replayPreset: 1, numRequested: 100 });
    await waitFor(() => earliest.events().length >= log.length, 'every retained Contact event');
    expect(earliest.events().map((e) => num(e.replayId))).toEqual(log.map((e) => e.replayId));
    const custom = open({ topicName: '/data/ContactChangeEvent', replayPreset: 2, replayId: rid(log[0].replayId), numRequested: 100 });
    await waitFor(() => custom.events().length >= log.length - 1, 'events after the first');
    expect(custom.events().map((e) => num(e.replayId))).toEqual(log.slice(1).map((e) => e.replayId));
    const latest = open({ topicName: '/data/ContactChangeEvent', replayPreset: 0, numRequested: 100 });
    await waitFor(() => latest.got.length > 0, 'keepalive');
    expect(latest.events()).toHaveLength(0);
    const [r4] = await conn.sobject('Contact').create([{ LastName: 'R4' }]);
    for (const s of [earliest, custom, latest]) await waitFor(() => s.events().some((e) => num(e.replayId) === emu.events().at(-1)!.replayId), 'the new event on every stream');
    expect(latest.events()).toHaveLength(1);
    expect((await decode(latest.events()[0].event.schemaId, latest.events()[0].event.payload)).ChangeEventHeader.recordIds).toEqual([r4.id]);
    for (const s of [earliest, custom, latest]) s.close();
  });

  it('refuses bad replay ids and fetch requests in the error-code trailer', async () => {
    const newest = emu.events().at(-1)!.replayId;
    const cases: Array<[Record<string, unknown>, grpc.status, string]> = [
      [{ replayPreset: 2, replayId: Buffer.from([0, 0, 0, 1]), numRequested: 1 }, grpc.status.INVALID_ARGUMENT, 'sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted'],
      [{ replayPreset: 2, replayId: rid(newest + 1000), numRequested: 1 }, grpc.status.INVALID_ARGUMENT, 'sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted'],
      [{ replayPreset: 2, numRequested: 1 }, grpc.status.INVALID_ARGUMENT, 'sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed'],
      [{ numRequested: 0 }, grpc.status.INVALID_ARGUMENT, 'sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid'],
    ];
    for (const [req, status, errorCode] of cases) {
      const s = open({ topicName: '/data/AccountChangeEvent', ...req });
      await waitFor(() => s.status(), `refusal of ${JSON.stringify(req)}`);
      expect(s.status()!.code).toBe(status);
      expect(code(s.status()!)).toBe(errorCode);
      expect(s.got).toHaveLength(0);
      s.close();
    }
    // An id that retention has dropped is refused the same way (CometD refuses it too).
    const old = emu.events()[0].replayId;
    emu.setReplayRetention(0);
    try {
      const s = open({ topicName: '/data/AccountChangeEvent', replayPreset: 2, replayId: rid(old), numRequested: 1 });
      await waitFor(() => s.status(), 'expired id refused');
      expect(code(s.status()!)).toBe('sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted');
      s.close();
    } finally {
      emu.setReplayRetention(72 * 3600_000);
    }
  });

  it('sends empty keepalives carrying the latest replay id while nothing arrives', async () => {
    await conn.sobject('Account').create({ Name: 'Before keepalive' });
    const newest = emu.events().at(-1)!.replayId;
    const s = open({ topicName: '/data/Invoice__ChangeEvent', numRequested: 5 });
    await waitFor(() => s.got.length >= 2, 'two keepalives', 10_000);
    for (const r of s.got) {
      expect(r.events).toHaveLength(0);
      expect(num(r.latestReplayId)).toBe(newest); // nothing on this topic up to the newest event: resuming there skips nothing
      expect(r.pendingNumRequested).toBe(5);
    }
    s.close();
  });

  it('carries several objects on /data/ChangeEvents and on custom channels defined by the admin API or the org definition', async () => {
    const bad = await fetch(`${emu.url}/__emulator/channels`, { method: 'POST', body: JSON.stringify({ name: 'Nope', objects: ['Account'] }) });
    expect(bad.status).toBe(400);
    const def = await fetch(`${emu.url}/__emulator/channels`, { method: 'POST', body: JSON.stringify({ name: 'Sync__chn', objects: ['Account', 'Contact'] }) });
    expect(await def.json()).toEqual({ channel: '/data/Sync__chn', objects: ['Account', 'Contact'] });
    const all = open({ topicName: '/data/ChangeEvents', numRequested: 100 });
    const custom = open({ topicName: '/data/Sync__chn', numRequested: 100 });
    // The same custom channel over CometD.
    const cometd: Array<{ event: { replayId: number }; payload: any }> = [];
    const bayeux = conn.streaming.createClient([new StreamingExtension.Replay('/data/Sync__chn', -1)]);
    const sub = bayeux.subscribe('/data/Sync__chn', (m: any) => { cometd.push(m); });
    await new Promise<void>((res, rej) => { sub.callback(() => res()); sub.errback((e: Error) => rej(e)); });
    await waitFor(() => all.got.length > 0 && custom.got.length > 0, 'both subscribed');
    const a = await conn.sobject('Account').create({ Name: 'Chan' });
    const c = await conn.sobject('Contact').create({ LastName: 'Chan' });
    const inv = await conn.sobject('Invoice__c').create({ External_Id__c: 'CHAN-1', Amount__c: 1 });
    await waitFor(() => all.events().length >= 3, 'three events on /data/ChangeEvents');
    await waitFor(() => custom.events().length >= 2, 'two events on the custom channel');
    const ents = async (s: ReturnType<typeof open>) => Promise.all(s.events().map(async (e) => (await decode(e.event.schemaId, e.event.payload)).ChangeEventHeader.recordIds[0]));
    expect(await ents(all)).toEqual([a.id, c.id, inv.id]);
    expect(await ents(custom)).toEqual([a.id, c.id]);
    // Both transports: the same events at the same replay positions.
    await waitFor(() => cometd.length >= 2, 'two events over CometD');
    expect(cometd.map((m) => m.event.replayId)).toEqual(custom.events().map((e) => num(e.replayId)));
    expect(cometd.map((m) => m.payload.ChangeEventHeader.recordIds[0])).toEqual([a.id, c.id]);
    bayeux.disconnect();
    // Each event names its own object's schema.
    expect(new Set(all.events().map((e) => e.event.schemaId)).size).toBe(3);
    for (const s of [all, custom]) s.close();
    // Declared in the org definition.
    const other = await start({ org: { ...defaultOrg, channels: { Accounts_And_Contacts__chn: ['Account', 'Contact'] } } });
    try {
      expect(await (await fetch(`${other.url}/__emulator/channels`)).json()).toEqual([{ channel: '/data/Accounts_And_Contacts__chn', objects: ['Account', 'Contact'] }]);
    } finally { await other.stop(); }
  });

  it('encodes field types as Avro: text, boolean, int, double, date (days since 1970), datetime (epoch ms)', async () => {
    const s = open({ topicName: '/data/ChangeEvents', numRequested: 10 });
    await waitFor(() => s.got.length > 0, 'subscribed');
    const c = await conn.sobject('Contact').create({ LastName: 'Typed', Birthdate: '1990-05-17', HasOptedOutOfEmail: true });
    const i = await conn.sobject('Invoice__c').create({ External_Id__c: 'TYPED-1', Amount__c: 12.5 });
    await waitFor(() => s.events().length >= 2, 'two events');
    const [contact, invoice] = await Promise.all(s.events().map((e) => decode(e.event.schemaId, e.event.payload)));
    expect(contact.ChangeEventHeader.recordIds).toEqual([c.id]);
    expect(contact).toMatchObject({ LastName: 'Typed', Birthdate: Date.UTC(1990, 4, 17) / 86_400_000, HasOptedOutOfEmail: true, Email: null });
    const stored = emu.record(c.id!)!;
    expect(contact.CreatedDate).toBe(Date.parse(String(stored.CreatedDate).replace('+0000', 'Z')));
    expect(invoice.ChangeEventHeader.recordIds).toEqual([i.id]);
    expect(invoice).toMatchObject({ External_Id__c: 'TYPED-1', Amount__c: 12.5 });
    expect(invoice).not.toHaveProperty('Tax__c'); // formula fields are not in change events
    s.close();
  });

  it('Publish to a change event channel returns a per-event error; unknown topics are refused', async () => {
    const c = stub();
    const r = await unary<any>(c, 'Publish', { topicName: '/data/AccountChangeEvent', events: [{ id: 'k1', schemaId: 'x', payload: Buffer.alloc(0) }] });
    expect(r.results).toHaveLength(1);
    expect(r.results[0].correlationKey).toBe('k1');
    expect(r.results[0].error.msg).toMatch(/change events/);
    const e = await errorOf(unary(c, 'Publish', { topicName: '/event/Nope__e', events: [] }));
    expect(e.code).toBe(grpc.status.NOT_FOUND);
    c.close();
  });
});

describe('salesforce-pubsub-api-client, unmodified', () => {
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };

  it('subscribes to a CDC channel and decodes create, update and delete with the header bitmaps', async () => {
    // Configuration only: the emulator's login URL for the OAuth client-credentials flow, its endpoint, and
    // certificate verification off (the client trusts only its bundled CA roots).
    const client = new PubSubApiClient({
      authType: 'oauth-client-credentials', loginUrl: emu.credentials.loginUrl, clientId: emu.credentials.clientId, clientSecret: emu.credentials.clientSecret,
      pubSubEndpoint: emu.pubsubEndpoint, rejectUnauthorizedSsl: false,
    } as any, quiet as any);
    await client.connect();
    const got: any[] = [];
    const kinds: string[] = [];
    client.subscribe('/data/AccountChangeEvent', (_info: unknown, type: string, data: any) => { kinds.push(type); if (type === 'event') got.push(data); }, 3);
    await waitFor(() => kinds.includes('grpcKeepAlive'), 'keepalive (subscribed)');
    const touched = '2026-03-04T05:06:07.000Z';
    const a = await conn.sobject('Account').create({ Name: 'Third party', Website: 'https://example.com', NumberOfEmployees: 7, Last_Touched__c: touched });
    await conn.sobject('Account').update({ Id: a.id!, Website: null, NumberOfEmployees: 12 });
    await conn.sobject('Account').destroy(a.id!);
    await waitFor(() => (got.length >= 3 ? got : undefined), 'three events');
    await waitFor(() => kinds.includes('lastEvent'), 'last of the three requested');
    // The client decodes each response in its own async handler (the first ones wait for GetSchema), so
    // callbacks may come out of wire order; the replay ids give the order back.
    got.sort((x, y) => x.replayId - y.replayId);
    const [create, update, del] = got.map((e) => e.payload);
    expect(got.map((e) => e.replayId)).toEqual(emu.events().filter((e) => e.source.recordIds[0] === a.id).map((e) => e.replayId));

    expect(create.ChangeEventHeader).toMatchObject({ entityName: 'Account', changeType: 'CREATE', recordIds: [a.id], changedFields: [], nulledFields: [], diffFields: [], sequenceNumber: 1 });
    expect(create.ChangeEventHeader.changeOrigin).toMatch(/^com\/salesforce\/api\/rest\//);
    expect(create.ChangeEventHeader.commitUser).toMatch(/^005/);
    expect(create).toMatchObject({ Name: 'Third party', Website: 'https://example.com', NumberOfEmployees: 7, Phone: null, Last_Touched__c: Date.parse(touched) });
    expect(typeof create.CreatedDate).toBe('number');

    expect(update.ChangeEventHeader.changeType).toBe('UPDATE');
    expect([...update.ChangeEventHeader.changedFields].sort()).toEqual(['LastModifiedDate', 'NumberOfEmployees', 'Website']);
    expect(update.ChangeEventHeader.nulledFields).toEqual(['Website']);
    expect(update).toMatchObject({ Name: null, Website: null, NumberOfEmployees: 12 });
    expect(typeof update.LastModifiedDate).toBe('number');

    expect(del.ChangeEventHeader).toMatchObject({ changeType: 'DELETE', recordIds: [a.id], changedFields: [], nulledFields: [] });
    expect(del.Name).toBeNull();
    client.close();
  });

  it('replays from a stored replay id and from the earliest event with user-supplied credentials', async () => {
    await conn.sobject('Contact').create({ LastName: 'Earliest' });
    await conn.sobject('Account').create([{ Name: 'Replay 1' }, { Name: 'Replay 2' }, { Name: 'Replay 3' }], { allOrNone: true });
    const acc = emu.events().filter((e) => e.entity === 'Account');
    const client = new PubSubApiClient({
      authType: 'user-supplied', accessToken: conn.accessToken, instanceUrl: conn.instanceUrl.replace(/^http:/, 'https:'),
      pubSubEndpoint: emu.pubsubEndpoint, rejectUnauthorizedSsl: false,
    } as any, quiet as any);
    await client.connect();
    const got: number[] = [];
    client.subscribeFromReplayId('/data/AccountChangeEvent', (_i: unknown, type: string, data: any) => { if (type === 'event') got.push(data.replayId); }, 2, acc.at(-3)!.replayId);
    await waitFor(() => got.length >= 2, 'two replayed events');
    expect(got.sort((x, y) => x - y)).toEqual(acc.slice(-2).map((e) => e.replayId));
    const first: number[] = [];
    client.subscribeFromEarliestEvent('/data/ContactChangeEvent', (_i: unknown, type: string, data: any) => { if (type === 'event') first.push(data.replayId); }, 1);
    await waitFor(() => first.length >= 1, 'earliest Contact event');
    expect(first).toEqual([emu.events().find((e) => e.entity === 'Contact')!.replayId]);
    client.close();
  });
});
