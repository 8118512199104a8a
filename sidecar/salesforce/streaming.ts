// Change Data Capture over the Streaming API (CometD), with jsforce's streaming client and its Replay
// and AuthFailure extensions. This module only keeps a subscription alive and reports what happens;
// what an event means for the database is decided by the caller (sync/inbound/cdc.ts).
//
// Recovery rules (the caller re-reads by SystemModstamp on every `onResync`, so nothing is missed):
//   * dropped session (403::Unknown client): faye re-handshakes and the Replay extension resubscribes
//     from the last event it saw; we also report a resync, because events may have been lost in between;
//   * replay id outside retention (400::The replayId … was invalid): resubscribe from -1 (new events
//     only) and report a resync from the last applied point;
//   * 401 / expired token (advice reconnect "none", caught by AuthFailure): refresh the session, build a
//     new client (the token is baked into the CometD headers), resubscribe from the last event seen;
//   * any other subscription failure: retry with capped backoff, reporting a resync each time.
import extensionModule from 'jsforce/lib/api/streaming/extension.js';
import type { SalesforceClient } from './client.js';
import type { Logger } from '../log.js';

export interface ChangeEventHeader {
  entityName: string;
  recordIds: string[];
  changeType: string;
  changeOrigin?: string;
  transactionKey?: string;
  sequenceNumber?: number;
  commitTimestamp: number;
  commitNumber?: number;
  commitUser?: string;
  changedFields?: string[];
  nulledFields?: string[];
  /** Fields sent as data differences (a unified diff of a large text value), not as their value. */
  diffFields?: string[];
}

export interface ChangeEvent {
  channel: string;
  /** CometD: the event's replay id; Pub/Sub: its 8-byte replay id as 16 hex digits. */
  replayId: number | string;
  header: ChangeEventHeader;
  /** Record fields of the payload (the header removed). */
  fields: Record<string, unknown>;
}


export interface CdcHandlers {
  onEvent(ev: ChangeEvent): void;
  onResync(reason: string): void;
}

interface FayeClient {
  subscribe(channel: string, cb: (data: unknown) => void): { then(ok: () => void, fail: (err: { message?: string; code?: number }) => void): void; cancel(): void };
  disconnect(): void;
}
type Ext = { incoming?(m: BayeuxMessage, cb: (m: BayeuxMessage) => void): void; outgoing?(m: BayeuxMessage, cb: (m: BayeuxMessage) => void): void };
interface BayeuxMessage { channel: string; successful?: boolean; error?: string; advice?: { reconnect?: string }; data?: unknown }

// jsforce's Replay and AuthFailure extensions (CommonJS module; the package root does not re-export them).
const { Replay, AuthFailure } = extensionModule as unknown as { Replay: new (ch: string, id: number) => Ext; AuthFailure: new (cb: (m: BayeuxMessage) => void) => Ext };

/** /data/AccountChangeEvent, /data/Employee__ChangeEvent for Employee__c. */
export function changeEventChannel(objectName: string): string {
  return `/data/${objectName.replace(/__c$/i, '__')}ChangeEvent`;
}

export class CdcSubscriber {
  private client?: FayeClient;
  private handshakes = 0;
  private lastSeen: number;
  private stopped = false;
  private retries = 0;
  private retryTimer?: NodeJS.Timeout;
  private generation = 0;
  /** A re-read waits until the (new) subscription is confirmed: what happens after that arrives as events. */
  private pendingResync?: string;

  constructor(
    private readonly sf: SalesforceClient,
    readonly channel: string,
    private readonly handlers: CdcHandlers,
    private readonly log: Logger,
    replayFrom: number | null,
  ) {
    this.lastSeen = replayFrom ?? -1;
    // New events only: whatever happened before the subscription is read by SystemModstamp once it holds.
    if (replayFrom === null) this.pendingResync = 'no stored replay id';
  }

  start(): void {
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const gen = ++this.generation;
    this.handshakes = 0;
    const watch: Ext = {
      incoming: (m, cb) => {
        if (gen === this.generation && m.channel === '/meta/handshake' && m.successful) {
          if (this.handshakes++ > 0) {
            this.log.warn({ channel: this.channel }, 'streaming session was re-established: re-reading changes since the last applied point');
            this.handlers.onResync('streaming session re-established');
          }
        }
        cb(m);
      },
    };
    const auth = new AuthFailure((m) => {
      if (gen !== this.generation) return;
      this.log.warn({ channel: this.channel, error: m.error }, 'streaming authentication failed: refreshing the session and subscribing again');
      void this.reauth();
    });
    const client = (this.sf.conn.streaming as unknown as { createClient(ext: Ext[]): FayeClient }).createClient([watch, auth, new Replay(this.channel, this.lastSeen)]);
    this.client = client;
    const sub = client.subscribe(this.channel, (data) => {
      if (gen !== this.generation) return;
      const d = data as { payload?: Record<string, unknown>; event?: { replayId?: number } };
      const payload = { ...(d.payload ?? {}) };
      const header = payload.ChangeEventHeader as ChangeEventHeader | undefined;
      delete payload.ChangeEventHeader;
      const replayId = Number(d.event?.replayId);
      if (!header || !Number.isFinite(replayId)) {
        this.log.warn({ channel: this.channel }, 'ignored a streaming message without a change event header or replay id');
        return;
      }
      this.lastSeen = replayId;
      this.retries = 0;
      this.sf.ledger.delivered('cometd', this.channel, 1);
      this.handlers.onEvent({ channel: this.channel, replayId, header, fields: payload });
    });
    sub.then(
      () => {
        if (gen !== this.generation) return;
        this.log.info({ channel: this.channel, replayFrom: this.lastSeen }, 'subscribed to change events');
        const reason = this.pendingResync;
        this.pendingResync = undefined;
        if (reason) this.handlers.onResync(reason);
      },
      (err) => {
        if (gen !== this.generation || this.stopped) return;
        const text = `${err?.code ?? ''} ${err?.message ?? String(err)}`;
        client.disconnect();
        if (/replayId/i.test(text)) {
          this.log.warn({ channel: this.channel, replayId: this.lastSeen, error: text }, 'replay id is outside the retention window: subscribing to new events and re-reading by SystemModstamp');
          this.lastSeen = -1;
          this.pendingResync = 'replay id outside retention';
          this.connect();
          return;
        }
        const delay = Math.min(30_000, 1000 * 2 ** this.retries++);
        this.log.error({ channel: this.channel, error: text, retryInMs: delay }, 'subscription to change events failed');
        this.pendingResync ??= 'subscription failed';
        this.retryTimer = setTimeout(() => this.connect(), delay);
      },
    );
  }

  private async reauth(): Promise<void> {
    this.client?.disconnect();
    this.client = undefined;
    try {
      const delegate = (this.sf.conn as unknown as { _refreshDelegate?: { refresh(since: number): Promise<void> } })._refreshDelegate;
      if (delegate) await delegate.refresh(Date.now());
      else await this.sf.conn.identity();
    } catch (e) {
      const delay = Math.min(30_000, 1000 * 2 ** this.retries++);
      this.log.error({ err: e, retryInMs: delay }, 'could not refresh the Salesforce session for streaming');
      this.retryTimer = setTimeout(() => void this.reauth(), delay);
      return;
    }
    this.pendingResync ??= 'streaming re-authenticated';
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.generation++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    try {
      this.client?.disconnect();
    } catch {
      // already gone
    }
    this.client = undefined;
  }
}
