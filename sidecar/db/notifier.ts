// LISTEN for nudges. NOTIFY carries no data and is lost while nobody listens, so every (re)connect is
// followed by a catch-up call: the receiver re-reads its tables and finds whatever it missed.
//
// pg-listen does the listening; its defaults give up reconnecting after 3 s, so here it retries for
// ever with capped exponential backoff, checks the connection with a heartbeat query, and an initial
// connection failure is retried the same way instead of failing start-up.
import * as pgListen from 'pg-listen';
import type { Subscriber } from 'pg-listen';
import type { Logger } from '../log.js';

export interface ListenOptions {
  log?: Logger;
  /** Called after the first connect and after every reconnect: re-read state, nudges may be lost. */
  onConnect?: () => void;
  /** Heartbeat query interval (ms). */
  heartbeatMs?: number;
  /** Backoff cap (ms). */
  maxBackoffMs?: number;
  application_name?: string;
}

// pg-listen is CommonJS with `exports.default`: under Node's ESM loader the function sits on .default.
type CreateSubscriber = (typeof import('pg-listen'))['default'];
const mod = pgListen as unknown as { default: CreateSubscriber | { default: CreateSubscriber } };
const createSubscriber: CreateSubscriber = typeof mod.default === 'function' ? mod.default : mod.default.default;

export interface Listener {
  close(): Promise<void>;
}

export function backoff(attempt: number, capMs = 10_000, baseMs = 100): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

/**
 * Listens on `channels` (names as given, quoted properly: "salesforce.hc_trigger_log" works) and calls
 * `onNudge(channel, payload)` for each notification. Resolves once listening (or keeps retrying in the
 * background when the database is not reachable yet: onConnect then runs when it is).
 */
export async function listen(
  url: string,
  channels: string[],
  onNudge: (channel: string, payload: string) => void,
  opts: ListenOptions = {},
): Promise<Listener> {
  const cap = opts.maxBackoffMs ?? 10_000;
  let closed = false;
  let sub: Subscriber | undefined;
  let timer: NodeJS.Timeout | undefined;

  const start = async (attempt: number): Promise<void> => {
    if (closed) return;
    const s = createSubscriber(
      // Idle by design: a database's idle_session_timeout must not end it every few seconds.
      { connectionString: url, application_name: opts.application_name ?? 'hcsync listen', options: '-c idle_session_timeout=0' },
      {
        paranoidChecking: opts.heartbeatMs ?? 5_000,
        retryLimit: Infinity,
        retryTimeout: 0, // never stop retrying
        retryInterval: (n: number) => backoff(n, cap),
        parse: (x: string) => x,
      },
    );
    s.events.on('notification', (n) => onNudge(n.channel, String(n.payload ?? '')));
    s.events.on('reconnect', (n: number) => opts.log?.warn({ attempt: n, channels }, 'listener reconnecting'));
    s.events.on('error', (err: Error) => opts.log?.error({ err, channels }, 'listener error'));
    // pg-listen emits "connected" after each reconnect once it has re-issued LISTEN.
    let first = true;
    s.events.on('connected', () => {
      if (first) return; // the first connect's catch-up runs below, after LISTEN
      opts.log?.info({ channels }, 'listener reconnected: catching up');
      opts.onConnect?.();
    });
    try {
      await s.connect();
      for (const ch of channels) await s.listenTo(ch);
    } catch (err) {
      await s.close().catch(() => {});
      const wait = backoff(attempt + 1, cap);
      opts.log?.warn({ err, channels, retryInMs: wait }, 'listener cannot connect yet: retrying');
      await new Promise<void>((r) => {
        timer = setTimeout(r, wait);
      });
      return start(attempt + 1);
    }
    first = false;
    if (closed) {
      await s.close().catch(() => {});
      return;
    }
    sub = s;
    opts.onConnect?.();
  };

  // The first attempt is awaited (a reachable database is listened to before we return); failures
  // continue in the background.
  let firstDone = false;
  await Promise.race([
    start(0).then(() => {
      firstDone = true;
    }),
    new Promise<void>((r) => setTimeout(r, 2_000)),
  ]);
  if (!firstDone) opts.log?.warn({ channels }, 'listener not connected yet; continuing to retry in the background');

  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await sub?.close().catch(() => {});
    },
  };
}
