// Change Data Capture over CometD: a faye Bayeux server with Salesforce's replay extension, auth and error texts.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { ChangeEvent, Org } from './org.js';
import type { ObjectMeta } from './schema.js';
import { toZulu } from './values.js';

export interface StoredEvent {
  replayId: number;
  at: number;
  entity: string;
  channel: string;
  data: { schema: string; payload: Record<string, unknown>; event: { replayId: number } };
  /** The change as the org committed it (raw values), for transports that encode it otherwise (Pub/Sub's Avro). */
  source: ChangeEvent;
}

/** Which entities a channel carries. */
export type ChannelFilter = (entity: string) => boolean;

export type TokenCheck = (token: string | undefined) => 'ok' | 'invalid';

interface BayeuxMessage {
  channel: string;
  clientId?: string;
  subscription?: string | string[];
  ext?: Record<string, any>;
  error?: string;
  successful?: boolean;
  advice?: Record<string, unknown>;
  supportedConnectionTypes?: string[];
  [k: string]: unknown;
}

// faye ships no type declarations; load it untyped.
const faye = createRequire(import.meta.url)('faye') as { NodeAdapter: new (o: object) => any };

const AUTH_INVALID = '401::Authentication invalid';
const ALL_CHANNEL = '/data/ChangeEvents';

/**
 * A retained event, packed: only its change (the source), as one JSON string. Kept as objects, an event
 * cost about 2.5 KiB (the payload and the source each hold every field value) and up to 500,000 are
 * retained; packed it costs about its JSON text. The payload is rebuilt from it when replayed.
 */
interface PackedEvent { replayId: number; at: number; entity: string; packed: string }

export class CdcBus {
  adapter: any;
  private log: PackedEvent[] = [];
  private head = 0; // index of the first retained event in log
  private lastReplayId = 0;
  private purgedUpTo = 0;
  retentionMs = 72 * 3600_000;
  maxRetained = 500_000;
  published = 0;
  handshakes = 0;
  connects = 0;
  subscribes = 0;
  private schemaIds = new Map<string, string>();
  /** Custom channels (`/data/<Name>__chn`) and the objects each carries. */
  private channels = new Map<string, Set<string>>();
  /** Called after each committed batch is in the log (the Pub/Sub API wakes its subscribers). */
  eventListeners: Array<(events: StoredEvent[]) => void> = [];

  constructor(private org: Org, private checkToken: TokenCheck, timeoutSec = 110) {
    this.adapter = new faye.NodeAdapter({ mount: '/cometd', timeout: timeoutSec });
    this.adapter.addExtension({ incoming: this.incoming.bind(this), outgoing: this.outgoing.bind(this) });
    org.listeners.push((events) => this.publish(events));
  }

  private get engine(): any { return this.adapter._server._engine; }

  /** Channels a subscriber may use. */
  objectForChannel(channel: string): ObjectMeta | undefined | 'all' {
    if (channel === ALL_CHANNEL) return 'all';
    const m = /^\/data\/(.+)$/.exec(channel);
    if (!m) return undefined;
    const o = this.org.meta.byChangeEvent.get(m[1]);
    return o && o.cdc ? o : undefined;
  }

  /** The entities a channel carries: one object's channel, /data/ChangeEvents, or a custom channel; undefined if none. */
  channelFilter(channel: string): ChannelFilter | undefined {
    const members = this.channels.get(channel);
    if (members) return (entity) => members.has(entity);
    const target = this.objectForChannel(channel);
    if (!target) return undefined;
    return target === 'all' ? () => true : (entity) => entity === target.name;
  }

  /**
   * Defines (or redefines) a custom channel `/data/<Name>__chn` carrying the given CDC-enabled objects, as a
   * PlatformEventChannel with its PlatformEventChannelMember rows does on a real org.
   */
  defineChannel(name: string, objects: string[]): { channel: string; objects: string[] } {
    const channel = name.startsWith('/data/') ? name : `/data/${name}`;
    if (!/^\/data\/[A-Za-z][A-Za-z0-9_]*__chn$/.test(channel)) throw new Error(`channel name must look like Name__chn (or /data/Name__chn), got "${name}"`);
    const members = new Set<string>();
    for (const o of objects) {
      const meta = this.org.object(o);
      if (!meta) throw new Error(`channel ${channel}: no object named ${o}`);
      if (!meta.cdc) throw new Error(`channel ${channel}: ${meta.name} is not enabled for Change Data Capture`);
      members.add(meta.name);
    }
    if (members.size === 0) throw new Error(`channel ${channel}: name at least one object`);
    this.channels.set(channel, members);
    return { channel, objects: [...members] };
  }

  customChannels(): Array<{ channel: string; objects: string[] }> {
    return [...this.channels].map(([channel, m]) => ({ channel, objects: [...m] }));
  }

  /** The replay id of the newest event published (0 before the first). */
  get latestReplayId(): number { return this.lastReplayId; }

  /** Events after replay id `after` that pass `filter`, oldest first, at most `limit`. */
  eventsAfter(after: number, filter: ChannelFilter, limit: number): StoredEvent[] {
    this.trim();
    let lo = this.head, hi = this.log.length;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (this.log[mid].replayId <= after) lo = mid + 1; else hi = mid; }
    const out: StoredEvent[] = [];
    for (let i = lo; i < this.log.length && out.length < limit; i++) if (filter(this.log[i].entity)) out.push(this.unpack(this.log[i]));
    return out;
  }

  /** The replay id that EARLIEST starts after: the last event dropped from retention (0 when none was). */
  get earliestAfter(): number { this.trim(); return this.purgedUpTo; }

  schemaId(entity: string): string {
    let s = this.schemaIds.get(entity);
    if (!s) { s = createHash('sha256').update(entity + 'ChangeEvent').digest('base64url').slice(0, 22); this.schemaIds.set(entity, s); }
    return s;
  }

  private nextReplayId(): number {
    // Increasing but not contiguous, as on the real bus: nobody may compute them.
    this.lastReplayId += 1 + (this.lastReplayId % 3);
    return this.lastReplayId;
  }

  /** The stored event (payload as subscribers get it) of a change, at its replay id. */
  private stored(e: ChangeEvent, replayId: number, at: number): StoredEvent | undefined {
    const obj = this.org.object(e.entityName);
    if (!obj) return undefined;
    const payload: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e.fields)) {
      const f = obj.fieldsByLower.get(k.toLowerCase());
      // (CometD carries a field sent as data differences as {"diff": ...}; Pub/Sub as the value itself)
      payload[k] = e.diffFields.includes(k) ? { diff: v } : f?.type === 'datetime' && typeof v === 'string' ? toZulu(v) : v;
    }
    payload.ChangeEventHeader = {
      entityName: e.entityName,
      recordIds: e.recordIds,
      changeType: e.changeType,
      changeOrigin: e.changeOrigin,
      transactionKey: e.transactionKey,
      sequenceNumber: e.sequenceNumber,
      commitTimestamp: e.commitTimestamp,
      commitNumber: e.commitNumber,
      commitUser: e.commitUser,
      nulledFields: e.nulledFields,
      diffFields: e.diffFields,
      changedFields: e.changedFields,
    };
    return {
      replayId, at, entity: obj.name, channel: `/data/${obj.changeEventName}`,
      data: { schema: this.schemaId(obj.name), payload, event: { replayId } }, source: e,
    };
  }

  /** A retained event as it was published: rebuilt from its change, which is all that is kept. */
  private unpack(p: PackedEvent): StoredEvent {
    return this.stored(JSON.parse(p.packed) as ChangeEvent, p.replayId, p.at) ?? {
      replayId: p.replayId, at: p.at, entity: p.entity, channel: `/data/${p.entity}ChangeEvent`,
      data: { schema: '', payload: {}, event: { replayId: p.replayId } }, source: JSON.parse(p.packed) as ChangeEvent,
    };
  }

  publish(events: ChangeEvent[]): void {
    const batch: StoredEvent[] = [];
    for (const e of events) {
      if (!this.org.object(e.entityName)) continue;
      const stored = this.stored(e, this.nextReplayId(), Date.now())!;
      this.log.push({ replayId: stored.replayId, at: stored.at, entity: stored.entity, packed: JSON.stringify(e) });
      batch.push(stored);
      this.published++;
      this.engine.publish({ channel: stored.channel, data: stored.data });
      this.engine.publish({ channel: ALL_CHANNEL, data: stored.data });
      for (const [channel, members] of this.channels) if (members.has(stored.entity)) this.engine.publish({ channel, data: stored.data });
    }
    this.trim();
    if (batch.length > 0) for (const l of this.eventListeners) l(batch);
  }

  /** Drops events beyond the retention window (or the in-memory cap). */
  trim(): void {
    const cutoff = Date.now() - this.retentionMs;
    while (this.head < this.log.length && (this.log[this.head].at < cutoff || this.log.length - this.head > this.maxRetained)) {
      this.purgedUpTo = this.log[this.head].replayId;
      this.head++;
    }
    if (this.head > 10_000 && this.head > this.log.length / 2) { this.log = this.log.slice(this.head); this.head = 0; }
  }

  setRetention(ms: number): void { this.retentionMs = ms; this.trim(); }

  retained(): StoredEvent[] { this.trim(); return this.log.slice(this.head).map((p) => this.unpack(p)); }

  /** How many events are retained (without unpacking them). */
  retainedCount(): number { this.trim(); return this.log.length - this.head; }

  clear(): void { this.log = []; this.head = 0; this.purgedUpTo = this.lastReplayId; }

  /** Drops every CometD session: clients get 403::Unknown client on their next connect. */
  dropSessions(): number {
    const mem = this.engine._engine;
    const ids: string[] = [];
    for (const id of mem._namespace._used as Set<string>) ids.push(id);
    for (const id of ids) this.engine.destroyClient(id);
    return ids.length;
  }

  handle(req: IncomingMessage, res: ServerResponse): void { this.adapter.handle(req, res); }

  close(): void { try { this.adapter.close(); } catch { /* already closed */ } }

  private token(request: IncomingMessage | null): string | undefined {
    const h = request?.headers?.authorization;
    if (!h) return undefined;
    const m = /^(?:OAuth|Bearer)\s+(.+)$/i.exec(h);
    return m ? m[1].trim() : undefined;
  }

  private incoming(message: BayeuxMessage, request: IncomingMessage | null, callback: (m: BayeuxMessage) => void): void {
    if (request === null) return callback(message); // in-process publishes
    const ch = message.channel;
    if (ch === '/meta/handshake') this.handshakes++;
    if (ch === '/meta/connect') this.connects++;
    const token = this.token(request);
    if (ch.startsWith('/meta/') && ch !== '/meta/disconnect' && ch !== '/meta/unsubscribe') {
      if (!token) { message.error = ch === '/meta/handshake' ? '403::Handshake denied|401::Request requires authentication' : '401::Request requires authentication'; return callback(message); }
      if (this.checkToken(token) !== 'ok') { message.error = ch === '/meta/handshake' ? `403::Handshake denied|${AUTH_INVALID}` : AUTH_INVALID; return callback(message); }
    }
    if (ch === '/meta/connect' && message.connectionType && message.connectionType !== 'long-polling') {
      message.error = `400::Invalid connection type {${String(message.connectionType)}}`;
      return callback(message);
    }
    if (!ch.startsWith('/meta/')) {
      message.error = '403::Publishing is not supported';
      return callback(message);
    }
    if (ch === '/meta/subscribe') {
      this.subscribes++;
      const subs = ([] as string[]).concat(message.subscription ?? []);
      for (const s of subs) {
        if (!this.channelFilter(s)) { message.error = `400::The channel you requested to subscribe to doesn't exist {${s}}`; return callback(message); }
        const replayMap = message.ext?.replay as Record<string, unknown> | undefined;
        if (replayMap && typeof replayMap === 'object') {
          if (!(s in replayMap)) {
            message.error = `400::The replayId for channel {${s}} wasn't found using the provided replay ID map {${JSON.stringify(replayMap)}}. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.`;
            return callback(message);
          }
          const id = Number(replayMap[s]);
          if (!this.validReplay(id)) {
            message.error = `400::The replayId {${String(replayMap[s])}} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.`;
            return callback(message);
          }
        }
      }
    }
    callback(message);
  }

  /** A replay id a subscription may start after: -1, -2, or an id still within retention. */
  validReplay(id: number): boolean {
    if (!Number.isInteger(id)) return false;
    if (id === -1 || id === -2) return true;
    this.trim();
    return id >= this.purgedUpTo && id <= this.lastReplayId && id >= 0;
  }

  private outgoing(message: BayeuxMessage, request: IncomingMessage | null, callback: (m: BayeuxMessage) => void): void {
    const ch = message.channel;
    if (ch === '/meta/handshake') {
      if (message.successful) {
        message.supportedConnectionTypes = ['long-polling'];
        message.minimumVersion = '1.0';
        message.ext = { ...(message.ext ?? {}), replay: true, 'payload.format': true };
      } else if (message.error?.startsWith('403::Handshake denied')) {
        const reason = message.error.split('|')[1];
        message.error = '403::Handshake denied';
        message.ext = { sfdc: { failureReason: reason } };
        message.advice = { reconnect: 'none' };
      }
    }
    if (message.error && /^401:[^:]*:Unknown client/.test(message.error)) {
      message.error = '403::Unknown client';
      message.advice = { interval: 0, reconnect: 'handshake' };
    } else if (message.error && message.error.startsWith('401::')) {
      message.advice = { reconnect: 'none', interval: 0 };
    }
    if (ch === '/meta/subscribe' && message.successful && request) {
      this.replayTo(message.clientId!, ([] as string[]).concat(message.subscription ?? []), request);
    }
    callback(message);
  }

  /** Queues retained events for a new subscription, per its replay id. */
  private replayTo(clientId: string, subs: string[], request: IncomingMessage): void {
    const body = (request as IncomingMessage & { body?: string }).body;
    let replayMap: Record<string, unknown> | undefined;
    try {
      const msgs = ([] as BayeuxMessage[]).concat(JSON.parse(body ?? '[]'));
      replayMap = msgs.find((m) => m.channel === '/meta/subscribe' && m.clientId === clientId)?.ext?.replay;
    } catch { replayMap = undefined; }
    if (!replayMap) return;
    const mem = this.engine._engine;
    for (const s of subs) {
      const from = Number(replayMap[s]);
      if (from === -1 || !Number.isInteger(from)) continue;
      const accepts = this.channelFilter(s);
      if (!accepts) continue;
      const events = this.retained().filter((e) => (from === -2 || e.replayId > from) && accepts(e.entity));
      if (events.length === 0) continue;
      if (!mem._messages.has(clientId)) mem._messages.set(clientId, []);
      const q = mem._messages.get(clientId);
      for (const e of events) q.push({ channel: s, data: e.data });
      mem.emptyQueue(clientId);
    }
  }

  /** Publishes a header-only gap event (GAP_CREATE/UPDATE/DELETE/UNDELETE/OVERFLOW). */
  injectGap(entity: string, changeType: ChangeEvent['changeType'], recordIds: string[], origin: string, userId: string): void {
    this.publish([{
      entityName: entity, changeType, recordIds: changeType === 'GAP_OVERFLOW' ? [] : recordIds, changedFields: [], nulledFields: [], diffFields: [],
      changeOrigin: origin, transactionKey: crypto.randomUUID(), sequenceNumber: 1, commitTimestamp: Date.now(), commitNumber: this.org.nextCommitNumber(), commitUser: userId, fields: {},
    }]);
  }
}
