// The Pub/Sub change streams of one connection. Every mapping whose object one channel carries shares ONE
// subscription to it (/data/ChangeEvents by default, or a custom channel named by HC_CHANGE_CHANNEL): an org's
// event delivery allowance is counted per subscribed client, so one stream per object would spend it once per
// mapping. With HC_CHANGE_CHANNEL=per-object each object has its own topic (one member per stream).
//
// Each mapping keeps its own position (hc.sync_positions: replay_channel "pubsub:<topic>", replay_id the
// 8-byte id in hex), written by hc.inbound_apply in the transaction that applies its rows. So:
//   * a stream starts at the lowest position of its members (LATEST when none has one), and each member skips
//     what it has already received (replay id at or below its own): after kill -9 nothing is applied twice and,
//     since no position passes an event that was not applied, nothing is lost;
//   * a member joining a running stream behind its position makes the stream start again from there;
//   * a member the stream delivers nothing to still moves its position forward (onIdle, every few seconds),
//     so that a quiet object does not hold every restart back to a replay id out of retention.
// An object that is not enabled for Change Data Capture has no topic (/data/<Object>ChangeEvent): its mapping
// is told so (the worker falls back to polling and says why in its state message) and asked again later.
import type { Logger } from '../../log.js';
import type { SyncContext } from '../../context.js';
import { PubSubApi, PubSubError, PubSubSubscription, positionChannel } from '../../salesforce/pubsub.js';
import { changeEventChannel, type ChangeEvent } from '../../salesforce/streaming.js';
import { channelEntities } from '../../salesforce/rest.js';
import { isTransient } from '../../salesforce/errors.js';

export interface StreamMember {
  mappingId: number;
  object: string;
  /** Events of this member's object, in replay order, none it has received before. */
  onEvents(events: ChangeEvent[]): void;
  /** The stream delivered everything up to `replayId` and none of it was this member's: its position may move there. */
  onIdle(position: { channel: string; replayId: string }): void;
  /** Events may have been missed (or the member has no position): re-read by SystemModstamp. */
  onResync(reason: string): void;
  /** Nothing will arrive for this object (not enabled for Change Data Capture): poll, and say why. */
  onUnavailable(reason: string): void;
}

export interface Membership {
  /** The topic and the replay_channel positions are stored under. */
  topic: string;
  channel: string;
  /** The member applied (or dropped) `n` events it was given: the stream may ask for more. */
  release(n: number): void;
  leave(): Promise<void>;
}

interface MemberState {
  m: StreamMember;
  /** The replay id of the last event given to this member (or its stored position); null: anything new. */
  after: string | null;
  /** Given and not yet released. */
  outstanding: number;
  /** The stream's latest replay id with nothing for this member since `after`, not yet reported. */
  idle?: string;
  resync?: string;
  /**
   * Joined behind the running stream: it takes nothing from it until the stream starts again from its
   * position (else the old stream's newer events would move `after` past what it never received).
   */
  waiting?: boolean;
}

const SETTLE_MS = 250;
const CDC_CHECK_OK_MS = 10 * 60_000;
const CDC_CHECK_MISSING_MS = 5 * 60_000;

class SharedTopic {
  readonly members = new Map<string, MemberState>();
  private sub?: PubSubSubscription;
  private holding = false;
  private startTimer?: NodeJS.Timeout;
  private restarting: Promise<void> = Promise.resolve();
  private idleTimer: NodeJS.Timeout;
  readonly channel: string;

  constructor(
    private readonly api: PubSubApi,
    readonly topic: string,
    private readonly log: Logger,
    idleMs: number,
    private readonly onMissing: (topic: string, reason: string) => void,
  ) {
    this.channel = positionChannel(topic);
    this.idleTimer = setInterval(() => this.reportIdle(), idleMs);
    this.idleTimer.unref();
  }

  private key(object: string): string {
    return object.toLowerCase();
  }

  join(m: StreamMember, stored: string | null): Membership {
    const known = this.sub?.position ?? null;
    const st: MemberState = { m, after: stored ?? known, outstanding: 0, resync: stored === null ? 'no stored replay id' : undefined };
    this.members.set(this.key(m.object), st);
    if (!this.sub) this.schedule();
    else if (stored !== null && (known === null || stored < known)) {
      this.log.info({ topic: this.topic, object: m.object, from: stored, at: known }, 'a mapping joins behind the shared stream: subscribing again from its position');
      st.waiting = true;
      this.schedule();
    } else if (st.resync && this.holding) {
      st.resync = undefined;
      m.onResync('no stored replay id');
    }
    return {
      topic: this.topic,
      channel: this.channel,
      release: (n) => {
        st.outstanding = Math.max(0, st.outstanding - n);
        this.sub?.release(n);
      },
      leave: async () => {
        if (this.members.get(this.key(m.object)) !== st) return;
        this.members.delete(this.key(m.object));
        if (st.outstanding) this.sub?.release(st.outstanding);
        if (this.members.size === 0) await this.close();
      },
    };
  }

  /** Starts (or starts again) the stream once joins have settled: one restart for a burst of joins. */
  private schedule(): void {
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = setTimeout(() => {
      this.startTimer = undefined;
      this.restarting = this.restarting.then(() => this.restart()).catch((err) => this.log.error({ err, topic: this.topic }, 'starting the change stream failed'));
    }, SETTLE_MS);
    this.startTimer.unref();
  }

  private async restart(): Promise<void> {
    const old = this.sub;
    this.sub = undefined;
    this.holding = false;
    await old?.stop();
    if (this.members.size === 0) return;
    const positions = [...this.members.values()].map((s) => s.after).filter((a): a is string => a !== null);
    const from = positions.length ? positions.reduce((a, b) => (b < a ? b : a)) : null;
    for (const s of this.members.values()) {
      s.outstanding = 0;
      s.waiting = false;
      // A member without a position re-reads once the new stream holds.
      if (s.after === null && !s.resync) s.resync = 'change stream subscribed again';
    }
    const sub = new PubSubSubscription(
      this.api,
      this.topic,
      {
        onEvents: (events, latest) => this.deliver(sub, events, latest),
        onLatest: (latest) => {
          if (sub !== this.sub) return;
          for (const s of this.members.values()) if (!s.waiting && (s.after === null || latest > s.after)) s.idle = latest;
        },
        onHolding: () => {
          this.holding = true;
          for (const s of this.members.values()) {
            if (!s.resync) continue;
            const reason = s.resync;
            s.resync = undefined;
            s.m.onResync(reason);
          }
        },
        onResync: (reason) => {
          for (const s of this.members.values()) {
            s.after = null;
            s.idle = undefined;
            s.m.onResync(reason);
          }
        },
        onMissing: (reason) => this.onMissing(this.topic, reason),
      },
      this.log,
      from,
    );
    this.sub = sub;
    sub.start();
  }

  private deliver(sub: PubSubSubscription, events: ChangeEvent[], latest: string): void {
    if (sub !== this.sub) return;
    const per = new Map<MemberState, ChangeEvent[]>();
    let dropped = 0;
    for (const e of events) {
      const s = this.members.get(this.key(e.header.entityName));
      const id = String(e.replayId);
      if (!s || s.waiting || (s.after !== null && id <= s.after)) {
        dropped++;
        continue;
      }
      s.after = id;
      s.idle = undefined;
      const list = per.get(s) ?? [];
      per.set(s, list);
      list.push(e);
    }
    if (dropped) sub.release(dropped);
    for (const s of this.members.values()) {
      if (per.has(s) || s.waiting) continue;
      if (s.after === null || latest > s.after) s.idle = latest;
    }
    for (const [s, list] of per) {
      s.outstanding += list.length;
      s.m.onEvents(list);
    }
  }

  private reportIdle(): void {
    for (const s of this.members.values()) {
      const at = s.idle;
      if (!at || s.waiting) continue;
      s.idle = undefined;
      s.after = at;
      s.m.onIdle({ channel: this.channel, replayId: at });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.idleTimer);
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = undefined;
    await this.restarting;
    const sub = this.sub;
    this.sub = undefined;
    await sub?.stop();
  }
}

export interface ChangeStreamOptions {
  /** How often a member the stream delivers nothing to has its position moved forward. */
  idleMs?: number;
}

export class ChangeStreams {
  readonly api: PubSubApi;
  private topics = new Map<string, SharedTopic>();
  private checks = new Map<string, { missing?: string; at: number }>();
  private members = new Map<string, { entities: string[] | null; at: number }>();
  /** The API did not answer: every mapping is told at once for a while, instead of each waiting in turn. */
  private down?: { error: Error; until: number };
  private log: Logger;

  constructor(private readonly ctx: SyncContext, private readonly opts: ChangeStreamOptions = {}) {
    this.api = new PubSubApi(ctx.sf, { endpoint: ctx.config.changeStream.pubsubEndpoint, ca: ctx.config.changeStream.pubsubCa });
    this.log = ctx.log.child({ part: 'change-stream' });
  }

  /** Why a topic cannot be subscribed to (null: it can), asked of GetTopic and remembered for a while. */
  private async missing(topic: string): Promise<string | null> {
    const c = this.checks.get(topic);
    if (c && Date.now() - c.at < (c.missing ? CDC_CHECK_MISSING_MS : CDC_CHECK_OK_MS)) return c.missing ?? null;
    if (this.down && Date.now() < this.down.until) throw this.down.error;
    try {
      const info = await this.api.getTopic(topic);
      const missing = info.canSubscribe === false ? `the integration user cannot subscribe to ${topic}` : undefined;
      // The topic's schema is fetched now, not when its first event arrives: an org busy with the very job
      // whose changes those events carry (a Bulk update of 100,000 records) answered GetSchema only when
      // the job was done, and no event was applied until then.
      if (!missing && info.schemaId) this.api.decoder(info.schemaId).catch(() => {});
      this.checks.set(topic, { missing, at: Date.now() });
      return missing ?? null;
    } catch (e) {
      const err = PubSubError.from(e);
      if (!err.topicMissing) {
        this.down = { error: err, until: Date.now() + 30_000 };
        throw err;
      }
      this.checks.set(topic, { missing: err.message, at: Date.now() });
      return err.message;
    }
  }

  /**
   * The change event names a custom channel carries (channelEntities, asked of the Tooling API and
   * remembered as GetTopic's answers are), or null when Salesforce does not say (the integration user lacks
   * View Setup and Configuration): the channel is then trusted to carry every mapped object.
   */
  private async carried(channel: string): Promise<string[] | null> {
    const c = this.members.get(channel);
    if (c && Date.now() - c.at < CDC_CHECK_OK_MS) return c.entities;
    let entities: string[] | null;
    try {
      entities = await channelEntities(this.ctx.sf, channel);
    } catch (e) {
      if (isTransient(e)) throw e;
      entities = null;
      this.log.warn({ channel, err: (e as Error).message }, `the members of the change channel ${channel} cannot be read (the integration user needs View Setup and Configuration): it is trusted to carry every mapped object`);
    }
    this.members.set(channel, { entities, at: Date.now() });
    return entities;
  }

  /**
   * The topic a mapping's events come on: the shared channel when it exists and carries the object (a custom
   * channel lists its members; /data/ChangeEvents carries every object selected for Change Data Capture),
   * else the object's own.
   */
  private async topicFor(object: string): Promise<string> {
    const shared = this.ctx.config.changeStream.channel;
    if (shared === 'per-object') return changeEventChannel(object);
    const own = changeEventChannel(object);
    const why = await this.missing(shared);
    if (why !== null) {
      this.log.warn({ channel: shared, reason: why }, `the change channel ${shared} cannot be used: subscribing to each object's own channel (set HC_CHANGE_CHANNEL to an existing channel, or per-object)`);
      return own;
    }
    if (shared === '/data/ChangeEvents') return shared;
    const entities = await this.carried(shared);
    if (entities && !entities.includes(own.replace(/^\/data\//, ''))) {
      this.log.warn({ channel: shared, object }, `the change channel ${shared} does not carry ${object}: subscribing to ${own} for it (add ${object} to the channel to share one subscription)`);
      return own;
    }
    return shared;
  }

  /**
   * Joins the mapping to the stream that carries its object, from its stored position ({channel, replayId}, as
   * read from hc.sync_positions; another channel's or transport's position counts as none). Returns null and
   * tells the member why when its object is not enabled for Change Data Capture.
   */
  async join(member: StreamMember, stored: { channel: string | null; replayId: string | null } | null): Promise<Membership | null> {
    const own = changeEventChannel(member.object);
    const why = await this.missing(own);
    if (why !== null) {
      member.onUnavailable(`${member.object} is not enabled for Change Data Capture (Pub/Sub topic ${own}: ${why})`);
      return null;
    }
    const topic = await this.topicFor(member.object);
    let t = this.topics.get(topic);
    if (!t) {
      t = new SharedTopic(this.api, topic, this.log, this.opts.idleMs ?? 5000, (name, reason) => this.lost(name, reason));
      this.topics.set(topic, t);
    }
    const channel = positionChannel(topic);
    const from = stored && stored.channel === channel && stored.replayId && /^[0-9a-f]{16}$/.test(stored.replayId) ? stored.replayId : null;
    const membership = t.join(member, from);
    return {
      ...membership,
      leave: async () => {
        await membership.leave();
        if (t.members.size === 0 && this.topics.get(topic) === t) this.topics.delete(topic);
      },
    };
  }

  /** A topic vanished under a running stream: its members poll for now, and ask again later. */
  private lost(topic: string, reason: string): void {
    this.checks.set(topic, { missing: reason, at: Date.now() });
    const t = this.topics.get(topic);
    if (!t) return;
    this.topics.delete(topic);
    const members = [...t.members.values()];
    t.members.clear();
    void t.close();
    for (const s of members) s.m.onUnavailable(`the change stream ${topic} is gone (${reason})`);
  }

  /** How many Subscribe streams are open (one per topic in use). */
  get streams(): number {
    return this.topics.size;
  }

  async stop(): Promise<void> {
    const all = [...this.topics.values()];
    this.topics.clear();
    await Promise.all(all.map((t) => t.close()));
    this.api.close();
  }
}
