// Change events over the Pub/Sub API (the default change stream), whatever HCSYNC_TEST_STREAM says: the
// connection's mappings share ONE Subscribe stream (/data/ChangeEvents, or a custom channel carrying them all);
// each mapping's 8-byte replay id is stored (as hex) in the transaction that applies its rows, and a mapping
// the stream carries nothing for still moves forward; flow control holds at most 100 events outstanding until
// they are applied; an object not enabled for Change Data Capture is polled and its state message says why;
// kill -9 of the sidecar mid-stream on a shared custom channel loses nothing and applies nothing twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../sidecar/context.js';
import { PubSubApi, PubSubSubscription, MAX_REQUESTED, decodeChange, makeDecoder } from '../../sidecar/salesforce/pubsub.js';
import type { ChangeEvent } from '../../sidecar/salesforce/streaming.js';
import { createLogger } from '../../sidecar/log.js';
import { metricsRegistry } from '../../sidecar/http/server.js';
import { ChangeStreams, type StreamMember } from '../../sidecar/sync/inbound/streams.js';
import { mappingState, setup, until, type Harness } from './harness.js';
import { pubsubStreamEnv, type SidecarProcess } from '../support/sidecar.js';

const cfg = (fields: string[], extra: Record<string, unknown> = {}) => ({ access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])), ...extra });
const hex = (n: number) => n.toString(16).padStart(16, '0');

async function synced(h: Harness, object: string): Promise<void> {
  await until(async () => {
    const m = await h.db.query(`select state, last_poll_at from hc._mappings where object_name = $1`, [object]);
    return m.rows[0]?.state === 'DATA_SYNCED' && m.rows[0]?.last_poll_at;
  }, `${object} loaded and subscribed`, 90_000);
}

/** Every value written into `table` is noted in public.applied: the witness of exactly-once application. */
async function witness(h: Harness, table: string, column: string): Promise<void> {
  await h.db.query(`create table if not exists public.applied (tbl text, sfid text, n integer)`);
  await h.db.query(`create or replace function public.note_${table}() returns trigger language plpgsql as $$
    begin insert into public.applied values ('${table}', new.sfid, new.${column}); return new; end $$`);
  await h.db.query(`create trigger note_applied after insert or update on salesforce.${table} for each row execute function public.note_${table}()`);
}

describe('Pub/Sub change stream, in process', () => {
  let h: Harness;
  let inbound: Service;

  beforeAll(async () => {
    h = await setup({ seed: { Account: 12, Contact: 12, Opportunity: 4 } });
    // Pub/Sub whatever HCSYNC_TEST_STREAM says.
    expect(h.emu.pubsubEndpoint).toBeTruthy();
    h.config.changeStream = { transport: 'pubsub', channel: '/data/ChangeEvents', pubsubEndpoint: h.emu.pubsubEndpoint!, pubsubCa: h.emu.certificate };
    inbound = await h.startInbound();
  }, 120_000);
  afterAll(async () => {
    await inbound?.stop();
    await h?.close();
  });

  it('two mappings share one subscription to /data/ChangeEvents; each stores its 8-byte replay id with its rows', async () => {
    const before = h.emu.stats().pubsub.subscribes;
    await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees'])]);
    await synced(h, 'Account');
    await h.db.query('select hc.create_mapping($1, $2)', ['Contact', cfg(['Id', 'LastName', 'Email', 'SystemModstamp', 'IsDeleted'])]);
    await synced(h, 'Contact');

    const acc = (await h.db.query('select sfid from salesforce.account order by sfid limit 3')).rows.map((r) => r.sfid as string);
    const con = (await h.db.query('select sfid from salesforce.contact order by sfid limit 3')).rows.map((r) => r.sfid as string);
    for (let i = 0; i < 3; i++) {
      await h.sf.conn.sobject('Account').update({ Id: acc[i], NumberOfEmployees: 300 + i });
      await h.sf.conn.sobject('Contact').update({ Id: con[i], LastName: `Stream ${i}`, Email: null });
    }
    await until(async () => (await h.db.query('select count(*)::int n from salesforce.account where numberofemployees between 300 and 302')).rows[0].n === 3, 'Account changes');
    await until(async () => (await h.db.query(`select count(*)::int n from salesforce.contact where lastname like 'Stream %' and email is null`)).rows[0].n === 3, 'Contact changes, nulled Email included');

    // One Subscribe stream carried both objects: an org's event allowance is spent once, not per object.
    expect(h.emu.stats().pubsub.subscribes - before).toBe(1);
    expect(h.emu.stats().notCounted.streamingSubscribes).toBe(0);

    // Each mapping's position is the 8-byte replay id (hex) of its own last event, under the shared channel.
    const events = h.emu.events();
    const lastOf = (entity: string) => Math.max(...events.filter((e) => e.entity === entity).map((e) => e.replayId));
    const pos = await h.db.query(`select m.object_name, p.replay_channel, p.replay_id from hc.sync_positions p join hc._mappings m on m.id = p.mapping_id order by 1`);
    expect(pos.rows).toEqual([
      { object_name: 'Account', replay_channel: 'pubsub:/data/ChangeEvents', replay_id: expect.stringMatching(/^[0-9a-f]{16}$/) },
      { object_name: 'Contact', replay_channel: 'pubsub:/data/ChangeEvents', replay_id: expect.stringMatching(/^[0-9a-f]{16}$/) },
    ]);
    expect(BigInt('0x' + pos.rows[0].replay_id)).toBeGreaterThanOrEqual(BigInt(lastOf('Account')));
    expect(BigInt('0x' + pos.rows[1].replay_id)).toBeGreaterThanOrEqual(BigInt(lastOf('Contact')));

    // Event deliveries are counted in the database as Salesforce counts them (every event the stream
    // delivered, whether or not a mapping wanted it), shown in hc.status and on /metrics.
    const delivered = h.emu.stats().pubsub.delivered;
    expect(delivered).toBeGreaterThanOrEqual(6);
    await until(async () => Number((await h.db.query('select events_delivered_24h n from hc.status')).rows[0].n) === delivered,
      `hc.status counts the ${delivered} events delivered`);
    expect((await h.db.query('select transport, channel, delivered::int from hc.event_deliveries')).rows)
      .toEqual([{ transport: 'pubsub', channel: '/data/ChangeEvents', delivered }]);
    const m = metricsRegistry({ db: h.db.pool });
    await m.refresh();
    const line = (await m.registry.metrics()).split('\n').find((l) => l.startsWith('hcsync_change_events_delivered_24h{'));
    expect(line).toMatch(new RegExp(`transport="pubsub".*\\} ${delivered}$`));
    expect(line).toContain('channel="/data/ChangeEvents"');
  });

  it('a mapping the stream carries nothing for moves its position forward (a quiet object does not hold restarts back)', async () => {
    const con = (await h.db.query('select sfid from salesforce.contact order by sfid limit 4')).rows.map((r) => r.sfid as string);
    for (let i = 0; i < 4; i++) await h.sf.conn.sobject('Contact').update({ Id: con[i], LastName: `Quiet ${i}` });
    const last = Math.max(...h.emu.events().map((e) => e.replayId));
    await until(async () => {
      const r = await h.db.query(`select p.replay_id from hc.sync_positions p join hc._mappings m on m.id = p.mapping_id where m.object_name = 'Account'`);
      return r.rows[0].replay_id === hex(last);
    }, 'Account position moved to the last Contact event', 30_000);
    expect((await mappingState(h.db, 'Account')).state).toBe('DATA_SYNCED');
  });

  it('an object not enabled for Change Data Capture is polled, and its state message says why', async () => {
    h.emu.server.org.object('Opportunity')!.cdc = false;
    const subs = h.emu.stats().pubsub.subscribes;
    await h.db.query('select hc.create_mapping($1, $2)', ['Opportunity', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted'], { sf_polling_seconds: 1 })]);
    const st = await until(async () => {
      const s = await mappingState(h.db, 'Opportunity');
      return s.state === 'DATA_SYNCED' && s.state_message ? s : null;
    }, 'Opportunity synced with a message', 90_000);
    expect(st.state_message).toMatch(/^polling every 1 s: Opportunity is not enabled for Change Data Capture/);
    expect(st.state_message).toMatch(/Setup → Change Data Capture/);
    // Its changes arrive by polling; the shared stream was not opened again for it.
    const opp = (await h.db.query('select sfid from salesforce.opportunity order by sfid limit 1')).rows[0].sfid as string;
    await h.sf.conn.sobject('Opportunity').update({ Id: opp, Name: 'Polled Deal' });
    await until(async () => (await h.db.query('select name from salesforce.opportunity where sfid = $1', [opp])).rows[0].name === 'Polled Deal', 'the change, by polling');
    expect(h.emu.stats().pubsub.subscribes).toBe(subs);
  });
});

describe('Pub/Sub on a custom channel that does not carry every mapped object', () => {
  let h: Harness;
  let inbound: Service;

  beforeAll(async () => {
    h = await setup({ seed: { Account: 3, Contact: 3 } });
    h.emu.defineChannel('Accounts__chn', ['Account']);
    h.config.changeStream = { transport: 'pubsub', channel: '/data/Accounts__chn', pubsubEndpoint: h.emu.pubsubEndpoint!, pubsubCa: h.emu.certificate };
    inbound = await h.startInbound();
    await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted'])]);
    await h.db.query('select hc.create_mapping($1, $2)', ['Contact', cfg(['Id', 'LastName', 'SystemModstamp', 'IsDeleted'])]);
    await synced(h, 'Account');
    await synced(h, 'Contact');
  }, 120_000);
  afterAll(async () => {
    await inbound?.stop();
    await h?.close();
  });

  it("the object the channel lacks (its members, read from the Tooling API) gets its own channel; the others share the custom one", async () => {
    const acc = (await h.db.query('select sfid from salesforce.account order by sfid limit 1')).rows[0].sfid as string;
    const con = (await h.db.query('select sfid from salesforce.contact order by sfid limit 1')).rows[0].sfid as string;
    await h.sf.conn.sobject('Account').update({ Id: acc, Name: 'On the custom channel' });
    await h.sf.conn.sobject('Contact').update({ Id: con, LastName: 'On its own channel' });
    await until(async () => (await h.db.query('select lastname from salesforce.contact where sfid = $1', [con])).rows[0].lastname === 'On its own channel'
      && (await h.db.query('select name from salesforce.account where sfid = $1', [acc])).rows[0].name === 'On the custom channel', 'both changes arrived', 30_000);
    const pos = await h.db.query(`select m.object_name, p.replay_channel from hc.sync_positions p join hc._mappings m on m.id = p.mapping_id order by 1`);
    expect(pos.rows).toEqual([
      { object_name: 'Account', replay_channel: 'pubsub:/data/Accounts__chn' },
      { object_name: 'Contact', replay_channel: 'pubsub:/data/ContactChangeEvent' },
    ]);
  });
});

describe('Pub/Sub on a channel that does not exist, and per object', () => {
  for (const [label, channel] of [['a custom channel the org does not have', '/data/Missing__chn'], ['HC_CHANGE_CHANNEL=per-object', 'per-object']] as const) {
    it(`${label}: each object's own channel, and its changes arrive`, async () => {
      const h = await setup({ seed: { Account: 2 } });
      let inbound: Service | undefined;
      try {
        h.config.changeStream = { transport: 'pubsub', channel, pubsubEndpoint: h.emu.pubsubEndpoint!, pubsubCa: h.emu.certificate };
        inbound = await h.startInbound();
        await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted'])]);
        await synced(h, 'Account');
        const acc = (await h.db.query('select sfid from salesforce.account order by sfid limit 1')).rows[0].sfid as string;
        await h.sf.conn.sobject('Account').update({ Id: acc, Name: `Own channel (${channel})` });
        await until(async () => (await h.db.query('select name from salesforce.account where sfid = $1', [acc])).rows[0].name === `Own channel (${channel})`, 'the change arrived', 30_000);
        expect((await h.db.query('select replay_channel from hc.sync_positions')).rows).toEqual([{ replay_channel: 'pubsub:/data/AccountChangeEvent' }]);
      } finally {
        await inbound?.stop();
        await h.close();
      }
    }, 120_000);
  }
});

describe('Pub/Sub API out of reach', () => {
  let h: Harness;
  let inbound: Service;
  beforeAll(async () => {
    h = await setup({ seed: { Account: 3 } });
    // Nothing listens there: as when a firewall refuses the endpoint's port.
    h.config.changeStream = { transport: 'pubsub', channel: '/data/ChangeEvents', pubsubEndpoint: '127.0.0.1:1', pubsubCa: h.emu.certificate };
    inbound = await h.startInbound();
  }, 120_000);
  afterAll(async () => {
    await inbound?.stop();
    await h?.close();
  });

  it('the mapping polls meanwhile, and its state message names the endpoint and the ways out', async () => {
    await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted'], { sf_polling_seconds: 1 })]);
    const st = await until(async () => {
      const s = await mappingState(h.db, 'Account');
      return s.state === 'DATA_SYNCED' && s.state_message ? s : null;
    }, 'Account synced with a message', 90_000);
    expect(st.state_message).toMatch(/^polling every 1 s: the Pub\/Sub API at 127\.0\.0\.1:1 did not answer/);
    expect(st.state_message).toMatch(/SF_PUBSUB_ENDPOINT.*HC_CHANGE_STREAM=cometd/);
    const id = (await h.db.query('select sfid from salesforce.account limit 1')).rows[0].sfid as string;
    await h.sf.conn.sobject('Account').update({ Id: id, Name: 'Polled While Unreachable' });
    await until(async () => (await h.db.query('select name from salesforce.account where sfid = $1', [id])).rows[0].name === 'Polled While Unreachable', 'the change, by polling');
  });
});

describe('decoding a change event', () => {
  it('an UPDATE carries what its bitmaps name (compound sub-fields, nulled ones as null); datetimes named by a doc become ISO text; commit numbers past 2^53 decode', () => {
    const header = {
      type: 'record', name: 'ChangeEventHeader', fields: [
        { name: 'entityName', type: 'string' }, { name: 'recordIds', type: { type: 'array', items: 'string' } },
        { name: 'changeType', type: { type: 'enum', name: 'ChangeType', symbols: ['CREATE', 'UPDATE', 'DELETE', 'UNDELETE'] } },
        { name: 'changeOrigin', type: 'string' }, { name: 'transactionKey', type: 'string' }, { name: 'sequenceNumber', type: 'int' },
        { name: 'commitTimestamp', type: 'long' }, { name: 'commitNumber', type: 'long' }, { name: 'commitUser', type: 'string' },
        { name: 'nulledFields', type: { type: 'array', items: 'string' } }, { name: 'diffFields', type: { type: 'array', items: 'string' } },
        { name: 'changedFields', type: { type: 'array', items: 'string' } },
      ],
    };
    const name = { type: 'record', name: 'Switchable_PersonName', fields: [{ name: 'FirstName', type: ['null', 'string'], default: null }, { name: 'LastName', type: ['null', 'string'], default: null }] };
    const schema = {
      type: 'record', name: 'ContactChangeEvent', namespace: 'com.sforce.eventbus', fields: [
        { name: 'ChangeEventHeader', type: header },
        { name: 'Name', type: ['null', name], default: null },
        { name: 'Phone', type: ['null', 'string'], default: null },
        { name: 'Title', type: ['null', 'string'], default: null },
        { name: 'LastModifiedDate', type: ['null', 'long'], doc: 'Data:DateTime', default: null },
      ],
    };
    const d = makeDecoder(JSON.stringify(schema));
    const at = Date.parse('2026-11-30T04:05:06.000Z');
    const payload = d.type.toBuffer({
      ChangeEventHeader: {
        entityName: 'Contact', recordIds: ['003000000000001AAA'], changeType: 'UPDATE', changeOrigin: 'com/salesforce/api/rest/65.0;client=x',
        transactionKey: 't', sequenceNumber: 1, commitTimestamp: BigInt(at), commitNumber: 2n ** 60n + 1n, commitUser: '005000000000001AAA',
        // Name (1) and LastModifiedDate (4) changed, Name's LastName (sub-field 1) only; Phone (2) nulled; Title (3) untouched.
        changedFields: ['0x16', '1-0x02'], nulledFields: ['0x4'], diffFields: [],
      },
      Name: { FirstName: null, LastName: 'Lovelace' }, Phone: null, Title: 'unchanged, not sent', LastModifiedDate: BigInt(at),
    });
    const e = decodeChange(d, payload, 'pubsub:/data/ChangeEvents', '00000000000000ff');
    expect(e.fields).toEqual({ Name: { LastName: 'Lovelace' }, Phone: null, LastModifiedDate: '2026-11-30T04:05:06.000Z' });
    expect(e.header).toMatchObject({ changeType: 'UPDATE', commitTimestamp: at, changedFields: ['Name', 'Phone', 'LastModifiedDate', 'Name.LastName'], nulledFields: ['Phone'] });
    expect(e.header.commitNumber).toBeGreaterThan(2 ** 59);
  });
});

describe('change stream settings', () => {
  const base = { DATABASE_URL: 'postgres://x@localhost/db', SF_CLIENT_ID: 'id', SF_CLIENT_SECRET: 'secret' };
  it('default to Pub/Sub on /data/ChangeEvents at Salesforce\'s endpoint; refuse what cannot work, naming the fix', async () => {
    const { loadConfig, ConfigError } = await import('../../sidecar/config.js');
    expect(loadConfig(base).changeStream).toEqual({ transport: 'pubsub', channel: '/data/ChangeEvents', pubsubEndpoint: 'api.pubsub.salesforce.com:7443', pubsubCa: undefined });
    expect(loadConfig({ ...base, HC_CHANGE_STREAM: 'cometd', HC_CHANGE_CHANNEL: 'per-object' }).changeStream).toMatchObject({ transport: 'cometd', channel: 'per-object' });
    expect(loadConfig({ ...base, HC_CHANGE_CHANNEL: '/data/Sync__chn' }).changeStream.channel).toBe('/data/Sync__chn');
    const refused = (env: Record<string, string>) => {
      try {
        loadConfig({ ...base, ...env });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error(`accepted ${JSON.stringify(env)}`);
    };
    expect(refused({ HC_CHANGE_STREAM: 'grpc' })).toMatch(/HC_CHANGE_STREAM must be pubsub .* or cometd/);
    expect(refused({ HC_CHANGE_CHANNEL: '/data/AccountChangeEvent' })).toMatch(/HC_CHANGE_CHANNEL must be \/data\/ChangeEvents, a custom channel/);
    expect(refused({ SF_PUBSUB_ENDPOINT: 'https://api.pubsub.salesforce.com' })).toMatch(/SF_PUBSUB_ENDPOINT must be host:port, such as api.pubsub.salesforce.com:7443/);
    expect(refused({ SF_PUBSUB_CA_FILE: '/nonexistent/ca.pem' })).toMatch(/SF_PUBSUB_CA_FILE=\/nonexistent\/ca.pem cannot be read/);
    expect(refused({ SF_PUBSUB_CA_FILE: 'package.json' })).toMatch(/not a PEM certificate/);
  });
});

describe('Pub/Sub flow control', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await setup({ seed: { Account: 20 } });
  }, 120_000);
  afterAll(async () => h?.close());

  it(`a consumer that applies nothing has at most ${MAX_REQUESTED} events; releasing them brings the rest`, async () => {
    const api = new PubSubApi(h.sf, { endpoint: h.emu.pubsubEndpoint!, ca: h.emu.certificate });
    const got: ChangeEvent[] = [];
    let holding = false;
    const sub = new PubSubSubscription(api, '/data/AccountChangeEvent', {
      onEvents: (e) => got.push(...e), onLatest: () => {}, onHolding: () => { holding = true; }, onResync: () => {}, onMissing: () => {},
    }, createLogger({ level: 'warn', pretty: false }), null);
    sub.start();
    try {
      await until(() => holding, 'subscription holding');
      const ids = (await h.sf.conn.query<{ Id: string }>('SELECT Id FROM Account')).records.map((r) => r.Id);
      for (let round = 0; round < 13; round++) {
        await h.sf.conn.sobject('Account').update(ids.map((Id, i) => ({ Id, NumberOfEmployees: round * 100 + i })));
      }
      await until(() => got.length >= MAX_REQUESTED, `${MAX_REQUESTED} events`);
      // Nothing applied: nothing more is asked for, though 260 events wait.
      const delivered = h.emu.stats().pubsub.delivered;
      await new Promise((r) => setTimeout(r, 1000));
      expect(got.length).toBe(MAX_REQUESTED);
      expect(h.emu.stats().pubsub.delivered).toBe(delivered);
      sub.release(got.length);
      await until(() => got.length >= 200, 'the next 100 once the first were applied');
      sub.release(100);
      await until(() => got.length === 260, 'all 260');
      // In replay order, each once, 8-byte ids as hex.
      const rids = got.map((e) => String(e.replayId));
      expect(new Set(rids).size).toBe(260);
      expect([...rids].sort()).toEqual(rids);
      expect(got.at(-1)!.fields).toMatchObject({ NumberOfEmployees: 1219 });
      expect(got.at(-1)!.header.changedFields).toContain('NumberOfEmployees');
    } finally {
      await sub.stop();
      api.close();
    }
  });
});

describe('the shared stream and its members', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await setup({ seed: { Account: 5, Contact: 5 } });
  }, 120_000);
  afterAll(async () => h?.close());

  it("a member's schema is fetched when it joins, not when its first event arrives (an org busy with a large job answers late)", async () => {
    h.config.changeStream = { transport: 'pubsub', channel: '/data/ChangeEvents', pubsubEndpoint: h.emu.pubsubEndpoint!, pubsubCa: h.emu.certificate };
    const ctx = { sf: h.sf, config: h.config, log: createLogger({ level: 'warn', pretty: false }) };
    const streams = new ChangeStreams(ctx as never, { idleMs: 60_000 });
    const asked: string[] = [];
    const decoder = streams.api.decoder.bind(streams.api);
    streams.api.decoder = (schemaId: string) => {
      asked.push(schemaId);
      return decoder(schemaId);
    };
    try {
      const m = await streams.join({ mappingId: 1, object: 'Account', onEvents: () => {}, onIdle: () => {}, onResync: () => {}, onUnavailable: (r) => { throw new Error(r); } }, null);
      const { schemaId } = await streams.api.getTopic('/data/AccountChangeEvent');
      expect(asked).toEqual([schemaId]);
      await m!.leave();
    } finally {
      await streams.stop();
    }
  });

  it('a mapping that joins again behind the running stream gets every event after its position once, while the others get nothing twice', async () => {
    h.config.changeStream = { transport: 'pubsub', channel: '/data/ChangeEvents', pubsubEndpoint: h.emu.pubsubEndpoint!, pubsubCa: h.emu.certificate };
    const ctx = { sf: h.sf, config: h.config, log: createLogger({ level: 'warn', pretty: false }) };
    const streams = new ChangeStreams(ctx as never, { idleMs: 60_000 });
    const got = { Account: [] as string[], Contact: [] as string[] };
    let held = 0;
    const member = (object: 'Account' | 'Contact'): StreamMember => ({
      mappingId: object === 'Account' ? 1 : 2, object,
      onEvents: (events) => got[object].push(...events.map((e) => String(e.replayId))),
      onIdle: () => {}, onResync: () => { held++; }, onUnavailable: (r) => { throw new Error(r); },
    });
    const hex16 = (n: number) => n.toString(16).padStart(16, '0');
    const lastOf = (entity: string) => Math.max(...h.emu.events().filter((e) => e.entity === entity).map((e) => e.replayId));
    const acc = (await h.sf.conn.query<{ Id: string }>('SELECT Id FROM Account')).records.map((r) => r.Id);
    const con = (await h.sf.conn.query<{ Id: string }>('SELECT Id FROM Contact')).records.map((r) => r.Id);
    try {
      const a = await streams.join(member('Account'), null);
      let c = await streams.join(member('Contact'), null);
      await until(() => held >= 2, 'both members holding', 15_000);
      await h.sf.conn.sobject('Contact').update({ Id: con[0], LastName: 'c1' });
      await h.sf.conn.sobject('Account').update({ Id: acc[0], Name: 'a1' });
      await until(() => got.Account.length === 1 && got.Contact.length === 1, () => `a1 and c1 (got ${JSON.stringify(got)})`, 15_000);
      const c1 = got.Contact[0];
      // Contact leaves (as a worker does when a batch fails) and comes back with its committed position c1;
      // meanwhile Contact changes go by that nobody takes, and they keep coming while it joins again.
      await c!.leave();
      await h.sf.conn.sobject('Contact').update({ Id: con[1], LastName: 'c2' });
      await h.sf.conn.sobject('Contact').update({ Id: con[2], LastName: 'c3' });
      await h.sf.conn.sobject('Account').update({ Id: acc[1], Name: 'a2' });
      await until(() => got.Account.length === 2, () => `a2 (got ${JSON.stringify(got)})`, 15_000);
      got.Contact.length = 0;
      c = await streams.join(member('Contact'), { channel: 'pubsub:/data/ChangeEvents', replayId: c1 });
      for (let i = 4; i <= 9; i++) {
        await h.sf.conn.sobject('Contact').update({ Id: con[i % con.length], LastName: `c${i}` });
        await new Promise((r) => setTimeout(r, 60));
      }
      await h.sf.conn.sobject('Account').update({ Id: acc[2], Name: 'a3' });
      const contactAfter = h.emu.events().filter((e) => e.entity === 'Contact' && hex16(e.replayId) > c1).map((e) => hex16(e.replayId));
      await until(() => got.Contact.length >= contactAfter.length && got.Account.length >= 3, () => `every Contact event after c1 (${contactAfter.join(',')}), and a3 (got ${JSON.stringify(got)})`, 20_000);
      expect(got.Contact).toEqual(contactAfter); // c2 … c9, in order, none twice, none missing
      expect(got.Account).toEqual(h.emu.events().filter((e) => e.entity === 'Account').slice(-3).map((e) => hex16(e.replayId)));
      expect(got.Contact.at(-1)).toBe(hex16(lastOf('Contact')));
      expect(streams.streams).toBe(1);
      await a!.leave();
      await c!.leave();
    } finally {
      await streams.stop();
    }
  }, 120_000);
});

describe('Pub/Sub, the sidecar process on a custom channel', () => {
  let h: Harness;
  let proc: SidecarProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    h = await setup({ seed: { Account: 10, Contact: 10 } });
    h.emu.defineChannel('Sync__chn', ['Account', 'Contact']);
    // The certificate trusted through NODE_EXTRA_CA_CERTS, as `hcsync emulator` prints it (gRPC does not read it
    // by itself; the sidecar adds it to the roots), not SF_PUBSUB_CA_FILE.
    const ps = pubsubStreamEnv(h.emu);
    env = { HC_CHANGE_STREAM: 'pubsub', SF_PUBSUB_ENDPOINT: ps.SF_PUBSUB_ENDPOINT, NODE_EXTRA_CA_CERTS: ps.SF_PUBSUB_CA_FILE, HC_CHANGE_CHANNEL: '/data/Sync__chn' };
    proc = h.spawn(env);
    await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees'])]);
    await h.db.query('select hc.create_mapping($1, $2)', ['Contact', cfg(['Id', 'LastName', 'SystemModstamp', 'IsDeleted'])]);
    await synced(h, 'Account');
    await synced(h, 'Contact');
    await witness(h, 'account', 'numberofemployees');
  }, 180_000);
  afterAll(async () => {
    await proc?.kill9();
    await h?.close();
  });

  it('kill -9 mid-stream: two objects on one shared stream, nothing lost, nothing applied twice', async () => {
    const acc = (await h.db.query('select sfid from salesforce.account order by sfid')).rows.map((r) => r.sfid as string);
    const con = (await h.db.query('select sfid from salesforce.contact order by sfid')).rows.map((r) => r.sfid as string);
    const N = 80;
    const stream = (async () => {
      for (let i = 0; i < N; i++) {
        // Interleaved: the two mappings' positions differ at any moment, so a restart starts from the lower.
        await h.sf.conn.sobject('Account').update({ Id: acc[i % acc.length], NumberOfEmployees: 1000 + i });
        await h.sf.conn.sobject('Contact').update({ Id: con[i % con.length], LastName: `Kill ${1000 + i}` });
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    await until(async () => (await h.db.query('select count(*)::int n from public.applied where n >= 1000')).rows[0].n >= 10, 'some events applied');
    await proc.kill9();
    const appliedBeforeKill = (await h.db.query('select count(*)::int n from public.applied where n >= 1000')).rows[0].n;
    await stream;
    proc = h.spawn(env);
    await until(async () => {
      const sf = (await h.sf.conn.query<{ Id: string; NumberOfEmployees: number | null }>('SELECT Id, NumberOfEmployees FROM Account')).records;
      const pg = new Map((await h.db.query('select sfid, numberofemployees from salesforce.account')).rows.map((r) => [r.sfid, r.numberofemployees]));
      const cs = (await h.sf.conn.query<{ Id: string; LastName: string }>('SELECT Id, LastName FROM Contact')).records;
      const cp = new Map((await h.db.query('select sfid, lastname from salesforce.contact')).rows.map((r) => [r.sfid, r.lastname]));
      return sf.every((r) => pg.get(r.Id) === r.NumberOfEmployees) && cs.every((r) => cp.get(r.Id) === r.LastName);
    }, 'both tables in sync after restart', 90_000);
    const dup = await h.db.query('select sfid, n, count(*)::int c from public.applied where n >= 1000 group by 1, 2 having count(*) > 1');
    expect(dup.rows).toEqual([]);
    expect((await h.db.query('select count(*)::int c from public.applied where n >= 1000')).rows[0].c).toBe(N); // each Account event once
    expect(appliedBeforeKill).toBeLessThan(N);
    console.log(`kill -9 after ${appliedBeforeKill} of ${N} Account change events had been applied (with ${N} Contact events interleaved)`);
    const pos = await h.db.query('select replay_channel, replay_id from hc.sync_positions order by mapping_id');
    expect(pos.rows.map((r) => r.replay_channel)).toEqual(['pubsub:/data/Sync__chn', 'pubsub:/data/Sync__chn']);
    // No CometD at all; one stream per sidecar run (two runs).
    expect(h.emu.stats().notCounted.streamingSubscribes).toBe(0);
    expect(h.emu.stats().pubsub.subscribes).toBeLessThanOrEqual(3);
  });
});
