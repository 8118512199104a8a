// The Pub/Sub API (gRPC service eventbus.v1.PubSub) over TLS: GetTopic, GetSchema, Subscribe and Publish, fed by
// the same retained event log as CometD (cdc.ts), so both transports see the same events and replay ids.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { CdcBus, ChannelFilter, StoredEvent } from '../cdc.js';
import type { Org } from '../org.js';
import type { ObjectMeta } from '../schema.js';
import { buildSchema, encodeChange, type EventSchema } from './avro.js';

/** Most events a subscriber may have outstanding (requested and not yet delivered). */
export const MAX_OUTSTANDING = 100;

const ERR = {
  auth: 'sfdc.platform.eventbus.grpc.service.auth.error',
  replayCorrupted: 'sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted',
  replayValidation: 'sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed',
  requestedInvalid: 'sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid',
  topicNotFound: 'sfdc.platform.eventbus.grpc.subscription.topic.notfound',
  schemaNotFound: 'sfdc.platform.eventbus.grpc.schema.notfound',
  topicChanged: 'sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch',
  publish: 'sfdc.platform.eventbus.grpc.publish.topic.not.publishable',
} as const;

export type SessionCheck = (token: string | undefined) => boolean;

interface FetchRequest { topicName?: string; replayPreset?: number | string; replayId?: Buffer; numRequested?: number; authRefresh?: string }

class PubSubError extends Error {
  constructor(public code: grpc.status, public errorCode: string, message: string) { super(message); }
}

/** The proto is committed beside this file; a compiled copy (dist/) finds it in the source tree above it. */
function protoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(dir, 'pubsub_api.proto'))) return join(dir, 'pubsub_api.proto');
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'emulator', 'pubsub', 'pubsub_api.proto');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('emulator/pubsub/pubsub_api.proto not found above ' + fileURLToPath(import.meta.url));
}

let loaded: grpc.GrpcObject | undefined;

export function encodeReplayId(id: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(id));
  return b;
}

export class PubSubServer {
  private server?: grpc.Server;
  private schemas = new Map<string, EventSchema>(); // object name -> schema
  private schemasById = new Map<string, EventSchema>();
  private streams = new Set<Subscription>();
  /** Longest a subscriber waits without any response (Salesforce: at most 270 s). */
  keepaliveMs: number;
  stats = { subscribes: 0, delivered: 0, keepalives: 0, rejected: 0 };
  endpoint = '';

  constructor(private org: Org, private bus: CdcBus, private checkSession: SessionCheck, keepaliveMs = 270_000) {
    this.keepaliveMs = keepaliveMs;
    bus.eventListeners.push(() => { for (const s of this.streams) s.pump(); });
  }

  schemaFor(obj: ObjectMeta): EventSchema {
    let s = this.schemas.get(obj.name);
    if (!s) { s = buildSchema(obj); this.schemas.set(obj.name, s); this.schemasById.set(s.id, s); }
    return s;
  }

  /** Binds the TLS gRPC listener; returns host:port. */
  async listen(host: string, port: number, tls: { key: string; cert: string }): Promise<string> {
    loaded ??= grpc.loadPackageDefinition(protoLoader.loadSync(protoPath(), { keepCase: false, longs: Number, enums: Number, defaults: false, oneofs: true }));
    const pkg = loaded as any;
    const server = new grpc.Server();
    server.addService(pkg.eventbus.v1.PubSub.service, {
      GetTopic: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => this.unary(call, cb, () => this.getTopic(call.request.topicName)),
      GetSchema: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => this.unary(call, cb, () => this.getSchema(call.request.schemaId)),
      Publish: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => this.unary(call, cb, () => this.publish(call.request)),
      Subscribe: (call: grpc.ServerDuplexStream<FetchRequest, any>) => this.subscribe(call),
      PublishStream: (call: grpc.ServerDuplexStream<any, any>) => this.fail(call, new PubSubError(grpc.status.UNIMPLEMENTED, ERR.publish, 'PublishStream is not emulated')),
      ManagedSubscribe: (call: grpc.ServerDuplexStream<any, any>) => this.fail(call, new PubSubError(grpc.status.UNIMPLEMENTED, ERR.topicNotFound, 'ManagedSubscribe is not emulated')),
    });
    const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }], false);
    const hostPart = host.includes(':') ? `[${host}]` : host;
    const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`${hostPart}:${port}`, creds, (e, p) => (e ? reject(e) : resolve(p))));
    this.server = server;
    this.endpoint = `${hostPart === '0.0.0.0' ? '127.0.0.1' : hostPart}:${bound}`;
    return this.endpoint;
  }

  /** Ends open Subscribe streams with status OK (clients see a clean end), then stops the listener. */
  async close(): Promise<void> {
    for (const s of [...this.streams]) s.finish();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 2000);
      server.tryShutdown(() => { clearTimeout(force); resolve(); });
    });
  }

  /** Ends every open Subscribe stream with UNAVAILABLE (as a service restart does); returns how many. */
  dropStreams(): number {
    const n = this.streams.size;
    for (const s of [...this.streams]) s.fail(new PubSubError(grpc.status.UNAVAILABLE, 'sfdc.platform.eventbus.grpc.service.unavailable', 'The Pub/Sub API service is unavailable.'));
    return n;
  }

  // ------------------------------------------------------------ auth, errors

  /** accesstoken must be a live session of this org; tenantid its org id (15 or 18 characters); instanceurl present. */
  authenticate(md: grpc.Metadata): void {
    const one = (k: string) => { const v = md.get(k)[0]; return v === undefined ? undefined : String(v); };
    const token = one('accesstoken');
    const tenant = one('tenantid');
    const instance = one('instanceurl');
    const orgId = this.org.orgId;
    if (!token || !instance || !tenant) throw new PubSubError(grpc.status.UNAUTHENTICATED, ERR.auth, 'An authentication exception occurred. Provide valid authentication via metadata headers (accesstoken, instanceurl, tenantid).');
    if (tenant !== orgId && tenant !== orgId.slice(0, 15)) throw new PubSubError(grpc.status.UNAUTHENTICATED, ERR.auth, `The tenantid ${tenant} does not match the org of the access token.`);
    if (!this.checkSession(token)) throw new PubSubError(grpc.status.UNAUTHENTICATED, ERR.auth, 'An authentication exception occurred: the access token is invalid or expired.');
  }

  private trailers(e: PubSubError, rpcId: string): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('error-code', e.errorCode);
    md.set('rpc-id', rpcId);
    return md;
  }

  private asError(e: unknown, rpcId: string): Partial<grpc.StatusObject> {
    const err = e instanceof PubSubError ? e : new PubSubError(grpc.status.INTERNAL, 'sfdc.platform.eventbus.grpc.service.unavailable', (e as Error).message);
    this.stats.rejected++;
    return { code: err.code, details: `${err.message} rpcId: ${rpcId}`, metadata: this.trailers(err, rpcId) };
  }

  private unary(call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>, body: () => Record<string, unknown>): void {
    const rpcId = randomUUID();
    try {
      this.authenticate(call.metadata);
      cb(null, { ...body(), rpcId });
    } catch (e) {
      cb(this.asError(e, rpcId) as grpc.ServiceError);
    }
  }

  private fail(call: grpc.ServerDuplexStream<any, any>, e: PubSubError): void {
    call.emit('error', this.asError(e, randomUUID()));
  }

  // ------------------------------------------------------------ RPCs

  /** A topic's entities, and the schema of its events when it carries a single object. */
  topic(name: string | undefined): { filter: ChannelFilter; object?: ObjectMeta } {
    const filter = name ? this.bus.channelFilter(name) : undefined;
    if (!name || !filter) throw new PubSubError(grpc.status.NOT_FOUND, ERR.topicNotFound, `The topic ${name ?? ''} does not exist or you do not have access to it.`);
    const target = this.bus.objectForChannel(name);
    return { filter, object: target && target !== 'all' ? target : undefined };
  }

  private getTopic(topicName: string | undefined): Record<string, unknown> {
    const t = this.topic(topicName);
    return {
      topicName, tenantGuid: this.org.orgId, canPublish: false, canSubscribe: true,
      schemaId: t.object ? this.schemaFor(t.object).id : '',
    };
  }

  private getSchema(schemaId: string | undefined): Record<string, unknown> {
    let s = schemaId ? this.schemasById.get(schemaId) : undefined;
    if (!s && schemaId) for (const o of this.org.meta.ordered) { if (o.cdc && this.schemaFor(o).id === schemaId) { s = this.schemaFor(o); break; } }
    if (!s) throw new PubSubError(grpc.status.NOT_FOUND, ERR.schemaNotFound, `The schema ${schemaId ?? ''} does not exist.`);
    return { schemaJson: s.json, schemaId: s.id };
  }

  /** Change events are published by the org's commits only: every event's result carries the refusal. */
  private publish(req: { topicName?: string; events?: Array<{ id?: string }> }): Record<string, unknown> {
    this.topic(req.topicName);
    return {
      topicName: req.topicName, schemaId: '',
      results: (req.events ?? []).map((e) => ({ correlationKey: e.id ?? '', error: { code: 1, msg: `You can't publish to ${req.topicName}: change events are published by record changes only.` } })),
    };
  }

  private subscribe(call: grpc.ServerDuplexStream<FetchRequest, any>): void {
    try { this.authenticate(call.metadata); } catch (e) { call.emit('error', this.asError(e, randomUUID())); return; }
    const sub = new Subscription(this, this.bus, call);
    this.streams.add(sub);
    call.on('data', (req: FetchRequest) => sub.request(req));
    call.on('end', () => sub.finish());
    call.on('cancelled', () => sub.stop());
    call.on('error', () => sub.stop());
    sub.onStop = () => this.streams.delete(sub);
  }

  encode(e: StoredEvent): { event: { id: string; schemaId: string; payload: Buffer; headers: never[] }; replayId: Buffer } {
    const obj = this.org.object(e.entity)!;
    const schema = this.schemaFor(obj);
    return { event: { id: e.source.transactionKey + ':' + e.source.sequenceNumber, schemaId: schema.id, payload: encodeChange(schema, e.source), headers: [] }, replayId: encodeReplayId(e.replayId) };
  }

  errorFor(e: unknown, rpcId: string): Partial<grpc.StatusObject> { return this.asError(e, rpcId); }

  validationError(code: keyof typeof ERR, message: string): PubSubError {
    return new PubSubError(grpc.status.INVALID_ARGUMENT, ERR[code], message);
  }
}

/** One Subscribe stream: a topic, a cursor in the event log, and how many events the client still wants. */
class Subscription {
  private topicName?: string;
  private filter?: ChannelFilter;
  private cursor = 0;
  private pending = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private rpcId = randomUUID();
  onStop?: () => void;

  constructor(private srv: PubSubServer, private bus: CdcBus, private call: grpc.ServerDuplexStream<FetchRequest, any>) {}

  request(req: FetchRequest): void {
    if (this.stopped) return;
    try {
      const n = req.numRequested ?? 0;
      if (!this.filter) {
        const t = this.srv.topic(req.topicName);
        const preset = Number(req.replayPreset ?? 0);
        if (preset === 2) {
          const raw = req.replayId;
          if (!raw || raw.length === 0) throw this.srv.validationError('replayValidation', 'The replay_preset field in FetchRequest is set to ReplayPreset.CUSTOM, but no Replay ID value is set.');
          if (raw.length !== 8) throw this.srv.validationError('replayCorrupted', 'The Replay ID validation failed: a replay ID is 8 bytes.');
          const id = Number(raw.readBigUInt64BE());
          if (!this.bus.validReplay(id)) throw this.srv.validationError('replayCorrupted', `The Replay ID validation failed: ${id} is not within the retention window.`);
          this.cursor = id;
        } else if (preset === 1) {
          this.cursor = this.bus.earliestAfter;
        } else if (preset === 0) {
          this.cursor = this.bus.latestReplayId;
        } else {
          throw this.srv.validationError('replayValidation', `Unknown replay_preset ${String(req.replayPreset)}.`);
        }
        if (!Number.isInteger(n) || n <= 0) throw this.srv.validationError('requestedInvalid', 'The requested number of events in a fetch request must be greater than zero.');
        this.topicName = req.topicName;
        this.filter = t.filter;
        this.srv.stats.subscribes++;
      } else {
        if (req.topicName && req.topicName !== this.topicName) throw this.srv.validationError('topicChanged', `The topic of a subscription cannot change (${this.topicName} to ${req.topicName}).`);
        if (!Number.isInteger(n) || n <= 0) throw this.srv.validationError('requestedInvalid', 'The requested number of events in a fetch request must be greater than zero.');
      }
      this.pending = Math.min(MAX_OUTSTANDING, this.pending + n);
      this.pump();
    } catch (e) {
      this.fail(e);
    }
  }

  /** Sends what the client asked for; arms the keepalive when nothing is sent. */
  pump(): void {
    if (this.stopped || !this.filter) return;
    if (this.pending > 0) {
      const events = this.bus.eventsAfter(this.cursor, this.filter, this.pending);
      if (events.length > 0) {
        let out;
        try { out = events.map((e) => this.srv.encode(e)); } catch (e) { this.fail(e); return; }
        this.cursor = events[events.length - 1].replayId;
        this.pending -= events.length;
        this.srv.stats.delivered += events.length;
        this.write({ events: out, latestReplayId: encodeReplayId(this.cursor), rpcId: this.rpcId, pendingNumRequested: this.pending });
        return;
      }
    }
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.keepalive(); }, this.srv.keepaliveMs);
    this.timer.unref?.();
  }

  /**
   * An empty FetchResponse. Its latest_replay_id is the newest event of the bus when the subscriber has every event
   * of its topic up to it (resuming there skips nothing), else the last event it was sent.
   */
  private keepalive(): void {
    if (this.stopped || !this.filter) return;
    const waiting = this.bus.eventsAfter(this.cursor, this.filter, 1).length > 0;
    const latest = waiting ? this.cursor : Math.max(this.cursor, this.bus.latestReplayId);
    if (!waiting) this.cursor = latest;
    this.srv.stats.keepalives++;
    this.write({ events: [], latestReplayId: encodeReplayId(latest), rpcId: this.rpcId, pendingNumRequested: this.pending });
  }

  private write(msg: Record<string, unknown>): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    this.call.write(msg);
    this.arm();
  }

  fail(e: unknown): void {
    if (this.stopped) return;
    const status = this.srv.errorFor(e, this.rpcId);
    this.stop();
    this.call.emit('error', status);
  }

  /** Ends the stream with status OK. */
  finish(): void {
    if (this.stopped) return;
    this.stop();
    try { this.call.end(); } catch { /* already closed */ }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.onStop?.();
  }
}
