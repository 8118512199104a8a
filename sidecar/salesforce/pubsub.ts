// Change Data Capture over the Pub/Sub API (gRPC service eventbus.v1.PubSub, TLS, HTTP/2), with @grpc/grpc-js
// and avsc. Like streaming.ts (CometD) this module only keeps a subscription alive and turns what arrives into
// ChangeEvents; what an event means for the database is decided by the caller (sync/inbound/streams.ts).
//
// Wire rules followed (forcedotcom/pub-sub-api pubsub_api.proto):
//   * every call carries accesstoken, instanceurl and tenantid (the org id) as metadata;
//   * Subscribe is a bidirectional stream: the first FetchRequest names the topic and where to start (LATEST,
//     or CUSTOM with an 8-byte replay id); every FetchRequest asks for num_requested more events, at most 100
//     outstanding. More are asked for only once the caller has applied what it was given (release()), so a slow
//     database slows the stream instead of filling memory;
//   * payloads are Avro, decoded with the schema GetSchema returns for their schema_id (cached); a
//     ChangeEventHeader's changedFields / nulledFields / diffFields are bitmaps of field positions in that schema;
//   * empty FetchResponses (keepalives) carry latest_replay_id: the stream has delivered everything up to it;
//   * errors end the stream with a gRPC status and an `error-code` trailer.
//
// Recovery: a stream that ends (server restart, network, idle close) is opened again from the last replay id
// received, which loses nothing; an expired session is refreshed first; a replay id outside the retention window
// starts again at LATEST and reports a resync (the caller re-reads by SystemModstamp).
import { rootCertificates } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import avro from 'avsc';
import type { Logger } from '../log.js';
import type { SalesforceClient } from './client.js';
import type { ChangeEvent, ChangeEventHeader } from './streaming.js';

/** Most events one subscription has outstanding (requested and not yet applied); the API's own cap. */
export const MAX_REQUESTED = 100;


/** An 8-byte replay id as stored in hc.sync_positions.replay_id: 16 lower-case hex digits (sorts as it compares). */
export function replayHex(b: Buffer | Uint8Array): string {
  if (b.length !== 8) throw new Error(`a Pub/Sub replay id is 8 bytes, got ${b.length}`);
  return Buffer.from(b).toString('hex');
}
/** The replay_channel a Pub/Sub position is stored under ("pubsub:/data/ChangeEvents"), apart from CometD's. */
export function positionChannel(topic: string): string {
  return `pubsub:${topic}`;
}
export function isReplayHex(s: string | null | undefined): s is string {
  return typeof s === 'string' && /^[0-9a-f]{16}$/.test(s);
}

// The messages and RPCs of pubsub_api.proto this client uses, as a protobufjs JSON descriptor (field numbers as
// in the proto), so that nothing is read from disk at run time.
const DESCRIPTOR = {
  nested: {
    eventbus: {
      nested: {
        v1: {
          nested: {
            TopicInfo: { fields: { topicName: { type: 'string', id: 1 }, tenantGuid: { type: 'string', id: 2 }, canPublish: { type: 'bool', id: 3 }, canSubscribe: { type: 'bool', id: 4 }, schemaId: { type: 'string', id: 5 }, rpcId: { type: 'string', id: 6 } } },
            TopicRequest: { fields: { topicName: { type: 'string', id: 1 } } },
            EventHeader: { fields: { key: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
            ProducerEvent: { fields: { id: { type: 'string', id: 1 }, schemaId: { type: 'string', id: 2 }, payload: { type: 'bytes', id: 3 }, headers: { rule: 'repeated', type: 'EventHeader', id: 4 } } },
            ConsumerEvent: { fields: { event: { type: 'ProducerEvent', id: 1 }, replayId: { type: 'bytes', id: 2 } } },
            ReplayPreset: { values: { LATEST: 0, EARLIEST: 1, CUSTOM: 2 } },
            FetchRequest: { fields: { topicName: { type: 'string', id: 1 }, replayPreset: { type: 'ReplayPreset', id: 2 }, replayId: { type: 'bytes', id: 3 }, numRequested: { type: 'int32', id: 4 }, authRefresh: { type: 'string', id: 5 } } },
            FetchResponse: { fields: { events: { rule: 'repeated', type: 'ConsumerEvent', id: 1 }, latestReplayId: { type: 'bytes', id: 2 }, rpcId: { type: 'string', id: 3 }, pendingNumRequested: { type: 'int32', id: 4 } } },
            SchemaRequest: { fields: { schemaId: { type: 'string', id: 1 } } },
            SchemaInfo: { fields: { schemaJson: { type: 'string', id: 1 }, schemaId: { type: 'string', id: 2 }, rpcId: { type: 'string', id: 3 } } },
            PubSub: {
              methods: {
                Subscribe: { requestType: 'FetchRequest', requestStream: true, responseType: 'FetchResponse', responseStream: true },
                GetSchema: { requestType: 'SchemaRequest', responseType: 'SchemaInfo' },
                GetTopic: { requestType: 'TopicRequest', responseType: 'TopicInfo' },
              },
            },
          },
        },
      },
    },
  },
};

interface FetchResponse {
  events?: Array<{ event?: { id?: string; schemaId?: string; payload?: Buffer }; replayId?: Buffer }>;
  latestReplayId?: Buffer;
  pendingNumRequested?: number;
}
type PubSubStub = grpc.Client & {
  GetTopic(req: object, cb: (e: grpc.ServiceError | null, r: { schemaId?: string; canSubscribe?: boolean }) => void): void;
  GetSchema(req: object, cb: (e: grpc.ServiceError | null, r: { schemaJson?: string; schemaId?: string }) => void): void;
  Subscribe(): grpc.ClientDuplexStream<object, FetchResponse>;
};

let serviceCtor: (new (address: string, creds: grpc.ChannelCredentials, options?: object) => PubSubStub) | undefined;
function service() {
  if (!serviceCtor) {
    const def = protoLoader.fromJSON(DESCRIPTOR as any, { keepCase: true, longs: Number, enums: Number, defaults: true });
    serviceCtor = (grpc.loadPackageDefinition(def) as any).eventbus.v1.PubSub;
  }
  return serviceCtor!;
}

/** A Pub/Sub failure with its `error-code` trailer (sfdc.platform.eventbus.grpc.…), when the server sent one. */
export class PubSubError extends Error {
  constructor(readonly code: number, readonly errorCode: string, message: string) {
    super(message);
  }
  static from(e: unknown): PubSubError {
    if (e instanceof PubSubError) return e;
    const s = e as Partial<grpc.ServiceError>;
    const errorCode = String(s.metadata?.get('error-code')?.[0] ?? '');
    return new PubSubError(s.code ?? grpc.status.UNKNOWN, errorCode, s.details || s.message || String(e));
  }
  get topicMissing(): boolean {
    return this.code === grpc.status.NOT_FOUND || /topic\.notfound/.test(this.errorCode);
  }
  get authFailed(): boolean {
    return this.code === grpc.status.UNAUTHENTICATED || /auth\.error/.test(this.errorCode);
  }
  get replayInvalid(): boolean {
    return /replayid/i.test(this.errorCode) || /replay id/i.test(this.message);
  }
}

// Avro longs as BigInt (commitNumber can pass 2^53), turned into numbers where a number is meant.
const LongType = (avro.types.LongType as any).__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (x: unknown) => BigInt(x as string),
  toJSON: (n: bigint) => Number(n),
  isValid: (n: unknown) => typeof n === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

interface FieldInfo {
  name: string;
  /** timestamp-millis → ISO text, date → YYYY-MM-DD, as the CometD JSON and the REST API carry them. */
  logical?: string;
  /** A compound field (a nested record): its sub-fields in order. */
  sub?: FieldInfo[];
}

/** One event schema: the Avro type and its top-level fields by position (0 is ChangeEventHeader). */
export interface Decoder {
  type: avro.Type;
  fields: FieldInfo[];
}

function fieldInfo(f: { name: string; type: unknown; doc?: string }): FieldInfo {
  const branches = Array.isArray(f.type) ? f.type : [f.type];
  const t = branches.find((b) => b !== 'null') as any;
  if (t && typeof t === 'object' && t.type === 'record') return { name: f.name, sub: (t.fields as any[]).map(fieldInfo) };
  const base = typeof t === 'string' ? t : t?.type;
  let logical: string | undefined = t && typeof t === 'object' ? t.logicalType : undefined;
  // Without a logical type, a schema may still name the Salesforce type in the field's doc ("…:DateTime",
  // "…:Date"): an epoch number then stands for a datetime or a date, not for a number.
  if (!logical && (base === 'long' || base === 'int') && typeof f.doc === 'string') {
    if (/:DateTime$/i.test(f.doc)) logical = 'timestamp-millis';
    else if (/:Date$/i.test(f.doc)) logical = base === 'int' ? 'date' : 'date-millis';
  }
  return { name: f.name, logical };
}

export function makeDecoder(schemaJson: string): Decoder {
  const schema = JSON.parse(schemaJson);
  const type = avro.Type.forSchema(schema, { registry: { long: LongType } } as any);
  return { type, fields: (schema.fields as Array<{ name: string; type: unknown; doc?: string }>).map(fieldInfo) };
}

/** Field positions named by a bitmap ["0x…", "<parent>-0x…"]: top-level positions, and sub-positions per parent. */
export function bitmapPositions(bitmap: string[] | undefined): { top: Set<number>; sub: Map<number, Set<number>> } {
  const top = new Set<number>();
  const sub = new Map<number, Set<number>>();
  const bits = (hex: string) => {
    const out = new Set<number>();
    let v = BigInt(hex);
    for (let i = 0; v > 0n; i++, v >>= 1n) if (v & 1n) out.add(i);
    return out;
  };
  for (const entry of bitmap ?? []) {
    const m = /^(?:(\d+)-)?(0x[0-9A-Fa-f]+)$/.exec(entry);
    if (!m) continue; // a field name (some clients' decoded form) carries no position
    if (m[1] === undefined) for (const i of bits(m[2])) top.add(i);
    else sub.set(Number(m[1]), bits(m[2]));
  }
  return { top, sub };
}

function plain(f: FieldInfo, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') v = Number(v);
  if (f.logical === 'timestamp-millis' && typeof v === 'number') return new Date(v).toISOString();
  if (f.logical === 'date' && typeof v === 'number') return new Date(v * 86_400_000).toISOString().slice(0, 10);
  if (f.logical === 'date-millis' && typeof v === 'number') return new Date(v).toISOString().slice(0, 10);
  if (v instanceof Buffer) return v.toString('base64');
  return v;
}

function names(d: Decoder, bitmap: string[] | undefined): string[] {
  const { top, sub } = bitmapPositions(bitmap);
  const out: string[] = [];
  for (const i of top) if (d.fields[i]) out.push(d.fields[i].name);
  for (const [p, subs] of sub) for (const i of subs) if (d.fields[p]?.sub?.[i]) out.push(`${d.fields[p].name}.${d.fields[p].sub![i].name}`);
  return out;
}

/**
 * A decoded event as the CometD path delivers it: CREATE / UNDELETE carry their non-null fields, UPDATE only the
 * fields its changedFields and nulledFields name (nulled ones as null), DELETE and GAP_* none.
 */
export function decodeChange(d: Decoder, payload: Buffer, channel: string, replayId: string): ChangeEvent & { replayId: string } {
  const rec = d.type.fromBuffer(payload) as Record<string, any>;
  const raw = rec.ChangeEventHeader as Record<string, any>;
  const changeType = String(raw.changeType);
  const header: ChangeEventHeader = {
    entityName: String(raw.entityName),
    recordIds: (raw.recordIds ?? []).map(String),
    changeType,
    changeOrigin: raw.changeOrigin ?? '',
    transactionKey: raw.transactionKey,
    sequenceNumber: Number(raw.sequenceNumber),
    commitTimestamp: Number(raw.commitTimestamp),
    commitNumber: Number(raw.commitNumber),
    commitUser: raw.commitUser,
    changedFields: names(d, raw.changedFields),
    nulledFields: names(d, raw.nulledFields),
    diffFields: names(d, raw.diffFields),
  };
  const fields: Record<string, unknown> = {};
  if (changeType === 'CREATE' || changeType === 'UNDELETE') {
    d.fields.forEach((f, i) => {
      if (i === 0) return;
      const v = rec[f.name];
      if (v === null || v === undefined) return;
      if (f.sub) {
        const o: Record<string, unknown> = {};
        for (const s of f.sub) if (v[s.name] !== null && v[s.name] !== undefined) o[s.name] = plain(s, v[s.name]);
        fields[f.name] = o;
      } else fields[f.name] = plain(f, v);
    });
  } else if (changeType === 'UPDATE') {
    const changed = bitmapPositions(raw.changedFields);
    const nulled = bitmapPositions(raw.nulledFields);
    for (const i of new Set([...changed.top, ...nulled.top, ...changed.sub.keys(), ...nulled.sub.keys()])) {
      const f = d.fields[i];
      if (!f || i === 0) continue;
      const v = rec[f.name];
      if (!f.sub) {
        fields[f.name] = nulled.top.has(i) ? null : plain(f, v);
        continue;
      }
      const subs = new Set([...(changed.sub.get(i) ?? []), ...(nulled.sub.get(i) ?? [])]);
      const o: Record<string, unknown> = {};
      f.sub.forEach((s, j) => {
        const sv = v?.[s.name];
        if (subs.size ? subs.has(j) : sv !== null && sv !== undefined) o[s.name] = nulled.sub.get(i)?.has(j) ? null : plain(s, sv);
      });
      fields[f.name] = o;
    }
  }
  return { channel, replayId, header, fields };
}

/**
 * The certificates the endpoint is checked against: the system's, plus the configured ones
 * (SF_PUBSUB_CA_FILE's and NODE_EXTRA_CA_CERTS's, read by config.ts). Null: gRPC's defaults.
 */
function trustedRoots(ca: string | undefined): Buffer | null {
  return ca ? Buffer.from([...rootCertificates, ca].join('\n')) : null;
}

/** The Pub/Sub API of one org: a TLS channel whose calls carry the client's current session. */
export class PubSubApi {
  private stub?: PubSubStub;
  private decoders = new Map<string, Promise<Decoder>>();

  constructor(
    readonly sf: SalesforceClient,
    private readonly opts: { endpoint: string; ca?: string },
  ) {}

  private metadata(): grpc.Metadata {
    const c = this.sf.conn;
    const token = c.accessToken ?? '';
    const md = new grpc.Metadata();
    md.set('accesstoken', token);
    md.set('instanceurl', c.instanceUrl);
    // The org id: from the identity, or the part of the access token before "!" (15 characters).
    md.set('tenantid', this.sf.organizationId ?? token.split('!')[0]);
    return md;
  }

  client(): PubSubStub {
    if (!this.stub) {
      const call = grpc.credentials.createFromMetadataGenerator((_p, cb) => cb(null, this.metadata()));
      const tls = grpc.credentials.createSsl(trustedRoots(this.opts.ca));
      const Ctor = service();
      this.stub = new Ctor(this.opts.endpoint, grpc.credentials.combineChannelCredentials(tls, call), {
        'grpc.keepalive_time_ms': 60_000,
        'grpc.keepalive_timeout_ms': 20_000,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      });
    }
    return this.stub;
  }

  private unary<T>(method: 'GetTopic' | 'GetSchema', req: object): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.client()[method] as any)(req, { deadline: Date.now() + 10_000 }, (e: grpc.ServiceError | null, r: T) => (e ? reject(PubSubError.from(e)) : resolve(r)));
    });
  }

  /** The topic's info; a PubSubError with topicMissing when the topic does not exist (or is not visible). */
  getTopic(topicName: string): Promise<{ schemaId?: string; canSubscribe?: boolean }> {
    return this.unary('GetTopic', { topicName });
  }

  decoder(schemaId: string): Promise<Decoder> {
    let d = this.decoders.get(schemaId);
    if (!d) {
      d = this.unary<{ schemaJson?: string }>('GetSchema', { schemaId }).then((s) => makeDecoder(String(s.schemaJson)));
      d.catch(() => this.decoders.delete(schemaId));
      this.decoders.set(schemaId, d);
    }
    return d;
  }

  /** Signs in again (the session expired): the next call's metadata carries the new token. */
  async refreshSession(): Promise<void> {
    const delegate = (this.sf.conn as unknown as { _refreshDelegate?: { refresh(since: number): Promise<void> } })._refreshDelegate;
    if (delegate) await delegate.refresh(Date.now());
    else await this.sf.conn.identity();
  }

  close(): void {
    this.stub?.close();
    this.stub = undefined;
  }
}

export interface PubSubHandlers {
  /** Decoded events of one FetchResponse, in replay order; `latest` is its latest_replay_id. */
  onEvents(events: ChangeEvent[], latest: string): void;
  /** An empty FetchResponse: everything up to `latest` was delivered. */
  onLatest(latest: string): void;
  /** The stream holds (first response, or no error for a moment after it was opened). */
  onHolding(): void;
  /** Events may have been missed (replay id outside retention): re-read by SystemModstamp. */
  onResync(reason: string): void;
  /** The topic does not exist: nothing will arrive on it. */
  onMissing(reason: string): void;
}

/** One Subscribe stream on one topic, kept open (and opened again) until stop(). */
export class PubSubSubscription {
  private call?: grpc.ClientDuplexStream<object, FetchResponse>;
  private lastSeen: string | null;
  private pending = 0;
  private unapplied = 0;
  private stopped = false;
  private retries = 0;
  private retryTimer?: NodeJS.Timeout;
  private holdTimer?: NodeJS.Timeout;
  private generation = 0;
  private held = false;
  /** Responses are decoded one after the other, so their events reach the caller in replay order. */
  private decoding: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: PubSubApi,
    readonly topic: string,
    private readonly handlers: PubSubHandlers,
    private readonly log: Logger,
    replayFrom: string | null,
    /** A stream that neither failed nor answered within this time is taken as holding. */
    private readonly holdMs = 1500,
  ) {
    this.lastSeen = replayFrom;
  }

  /** The replay id of the last event (or keepalive) received; null before anything arrived after LATEST. */
  get position(): string | null {
    return this.lastSeen;
  }

  start(): void {
    this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const gen = ++this.generation;
    this.pending = 0;
    this.held = false;
    const call = this.api.client().Subscribe();
    this.call = call;
    call.on('data', (r: FetchResponse) => {
      if (gen !== this.generation) return;
      this.decoding = this.decoding.then(() => this.receive(gen, r)).catch((e) => {
        if (gen !== this.generation) return;
        this.log.error({ err: e, topic: this.topic }, 'a Pub/Sub response could not be decoded: subscribing again from the last replay id');
        this.reopen(gen, 1000);
      });
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (gen !== this.generation || this.stopped) return;
      void this.decoding.then(() => this.failed(gen, PubSubError.from(e)));
    });
    call.on('end', () => {
      if (gen !== this.generation || this.stopped) return;
      // Ended without an error status (the server closed an idle stream): open it again where it was.
      void this.decoding.then(() => this.reopen(gen, 500));
    });
    const first: Record<string, unknown> = { topicName: this.topic, numRequested: Math.max(1, this.want()) };
    if (this.lastSeen) Object.assign(first, { replayPreset: 2, replayId: Buffer.from(this.lastSeen, 'hex') });
    else first.replayPreset = 0;
    this.pending = first.numRequested as number;
    call.write(first);
    this.log.info({ topic: this.topic, replayFrom: this.lastSeen ?? 'LATEST', requested: this.pending }, 'subscribed to change events (Pub/Sub API)');
    this.holdTimer = setTimeout(() => this.hold(gen), this.holdMs);
    this.holdTimer.unref();
  }

  private want(): number {
    return Math.max(0, MAX_REQUESTED - this.pending - this.unapplied);
  }

  private hold(gen: number): void {
    if (gen !== this.generation || this.held || this.stopped) return;
    this.held = true;
    this.retries = 0;
    this.handlers.onHolding();
  }

  private async receive(gen: number, r: FetchResponse): Promise<void> {
    const events = r.events ?? [];
    const decoded: Array<ChangeEvent & { replayId: string }> = [];
    for (const ce of events) {
      const d = await this.api.decoder(String(ce.event?.schemaId));
      decoded.push(decodeChange(d, ce.event!.payload as Buffer, positionChannel(this.topic), replayHex(ce.replayId as Buffer)));
    }
    if (gen !== this.generation) return;
    this.hold(gen);
    if (typeof r.pendingNumRequested === 'number') this.pending = r.pendingNumRequested;
    else this.pending = Math.max(0, this.pending - events.length);
    const latest = r.latestReplayId && r.latestReplayId.length === 8 ? replayHex(r.latestReplayId) : decoded.at(-1)?.replayId;
    if (decoded.length) {
      this.lastSeen = decoded[decoded.length - 1].replayId;
      this.unapplied += decoded.length;
      this.api.sf.ledger.delivered('pubsub', this.topic, decoded.length);
      this.handlers.onEvents(decoded, latest ?? this.lastSeen);
    } else if (latest) {
      this.lastSeen = latest;
      this.handlers.onLatest(latest);
    }
    this.topUp();
  }

  /** The caller applied (or dropped) `n` of the events it was given: room for more. */
  release(n: number): void {
    this.unapplied = Math.max(0, this.unapplied - n);
    this.topUp();
  }

  /** Asks for more once at least half the allowance is free, so requests go in batches, not one by one. */
  private topUp(): void {
    if (this.stopped || !this.call) return;
    const n = this.want();
    if (n < MAX_REQUESTED / 2 && !(this.pending === 0 && this.unapplied === 0 && n > 0)) return;
    if (n <= 0) return;
    this.pending += n;
    this.call.write({ numRequested: n });
  }

  private failed(gen: number, e: PubSubError): void {
    if (gen !== this.generation || this.stopped) return;
    if (e.topicMissing) {
      this.log.warn({ topic: this.topic, error: e.message, errorCode: e.errorCode }, 'Pub/Sub topic does not exist');
      this.generation++;
      this.call = undefined;
      this.handlers.onMissing(e.message);
      return;
    }
    if (e.replayInvalid) {
      this.log.warn({ topic: this.topic, replayId: this.lastSeen, error: e.message }, 'replay id is outside the retention window: subscribing to new events and re-reading by SystemModstamp');
      this.lastSeen = null;
      this.handlers.onResync('replay id outside retention');
      this.reopen(gen, 0);
      return;
    }
    if (e.authFailed) {
      this.log.warn({ topic: this.topic, error: e.message }, 'Pub/Sub authentication failed: refreshing the session and subscribing again');
      this.generation++;
      this.call?.cancel();
      this.call = undefined;
      // A session refused again right after a refresh (a wrong tenant, a revoked user) waits longer each time.
      const wait = this.retries > 0 ? this.backoff() : (this.retries++, 0);
      void this.api.refreshSession().then(
        () => {
          this.retryTimer = setTimeout(() => this.open(), wait);
        },
        (err) => {
          const delay = this.backoff();
          this.log.error({ err, retryInMs: delay }, 'could not refresh the Salesforce session for the Pub/Sub API');
          this.retryTimer = setTimeout(() => this.open(), delay);
        },
      );
      return;
    }
    const delay = this.backoff();
    this.log.error({ topic: this.topic, error: e.message, errorCode: e.errorCode, retryInMs: delay }, 'Pub/Sub subscription failed: subscribing again from the last replay id');
    this.reopen(gen, delay);
  }

  private backoff(): number {
    return Math.min(30_000, 1000 * 2 ** this.retries++);
  }

  private reopen(gen: number, delay: number): void {
    if (gen !== this.generation || this.stopped) return;
    this.generation++;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    try {
      this.call?.cancel();
    } catch {
      // already closed
    }
    this.call = undefined;
    // What was given to the caller and not applied yet stays with it; the new stream continues after it.
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.generation++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.holdTimer) clearTimeout(this.holdTimer);
    try {
      this.call?.cancel();
    } catch {
      // already closed
    }
    this.call = undefined;
  }
}
