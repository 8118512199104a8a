// LISTEN for nudges: one session per process, shared by every service that waits for the database.
// `hcsync run` makes one Notifications and hands it to its services (SyncContext.notifications); each
// service subscribes to the channels it needs with subscribe(channel, handler).
//
// NOTIFY carries no data and is lost while nobody listens, so a handler is also called with payload
// null: once its LISTEN is in place, and again after every reconnect. null means "you may have missed
// nudges: re-read your tables". A handler that ignores the payload and always re-reads needs nothing
// more.
//
// The session reconnects for ever with capped exponential backoff (a start against a database that is
// not reachable yet keeps trying in the background). Its heartbeat re-issues the LISTEN statement
// itself: that proves the session alive, and the session's last statement (pg_stat_activity.query) is
// always its LISTEN, so operators and tests can tell the listening session from the others.
import pg from 'pg';
import type { Logger } from '../log.js';

export type Handler = (payload: string | null) => void;

export interface Notifications {
  /**
   * Calls `handler(payload)` for each NOTIFY on `channel` (the name as given: "salesforce.hc_trigger_log"
   * works), and `handler(null)` once listening and after every reconnect. Resolves once the LISTEN is in
   * place, or at once while the database is away (the catch-up call then comes when it is back).
   * Returns the unsubscribe function.
   */
  subscribe(channel: string, handler: Handler): Promise<() => void>;
  /** The backend pid of the listening session, while connected. */
  pid(): number | undefined;
  close(): Promise<void>;
}

export interface ListenerOptions {
  log?: Logger;
  /** Heartbeat interval (ms). */
  heartbeatMs?: number;
  /** Backoff cap (ms). */
  maxBackoffMs?: number;
  application_name?: string;
}

export function backoff(attempt: number, capMs = 10_000, baseMs = 100): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

const listenSql = (channels: Iterable<string>) => [...channels].map((c) => `LISTEN ${pg.escapeIdentifier(c)}`).join('; ');

/**
 * The process's listening session. Resolves once connected, or after 2 s while the database is not
 * reachable (it keeps trying in the background).
 */
export async function createListener(url: string, opts: ListenerOptions = {}): Promise<Notifications> {
  const cap = opts.maxBackoffMs ?? 10_000;
  const log = opts.log;
  const handlers = new Map<string, Set<Handler>>();
  let client: pg.Client | undefined;
  let connected = false;
  let closed = false;
  let attempt = 0;
  let retry: NodeJS.Timeout | undefined;
  let beat: NodeJS.Timeout | undefined;
  let firstConnect: () => void = () => {};
  const first = new Promise<void>((r) => {
    firstConnect = r;
  });

  // One statement at a time on the session (pg warns, and will refuse, a query sent while another runs):
  // a heartbeat, a new subscription's LISTEN and an UNLISTEN may otherwise meet.
  let queue: Promise<unknown> = Promise.resolve();
  const send = (c: pg.Client, sql: string): Promise<unknown> => {
    const next = queue.then(() => c.query(sql));
    queue = next.catch(() => {});
    return next;
  };

  const call = (h: Handler, payload: string | null) => {
    try {
      h(payload);
    } catch (err) {
      log?.error({ err }, 'a notification handler failed');
    }
  };
  const catchUp = () => {
    for (const set of handlers.values()) for (const h of set) call(h, null);
  };

  const lost = (c: pg.Client, err?: unknown) => {
    if (client !== c) return;
    client = undefined;
    connected = false;
    if (beat) clearInterval(beat);
    c.removeAllListeners('notification');
    c.on('error', () => {});
    void c.end().catch(() => {});
    if (closed) return;
    log?.warn({ err, channels: [...handlers.keys()] }, 'listening session lost: reconnecting');
    schedule();
  };

  const schedule = () => {
    if (closed || retry) return;
    attempt++;
    const wait = backoff(attempt, cap);
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, wait);
  };

  const connect = async (): Promise<void> => {
    if (closed || client) return;
    const c = new pg.Client({
      connectionString: url,
      application_name: opts.application_name ?? 'hcsync listen',
      // Idle by design: a database's idle_session_timeout must not end it every few seconds.
      options: '-c idle_session_timeout=0',
      keepAlive: true,
    });
    c.on('error', (err) => lost(c, err));
    c.on('end', () => lost(c));
    c.on('notification', (n) => {
      const set = handlers.get(n.channel);
      if (set) for (const h of set) call(h, n.payload ?? '');
    });
    client = c;
    try {
      await c.connect();
      queue = Promise.resolve(); // a new session: nothing is queued on it yet
      if (handlers.size) await send(c, listenSql(handlers.keys()));
    } catch (err) {
      if (client === c) {
        log?.warn({ err, attempt }, 'cannot listen to the database yet: retrying');
        lost(c, err);
      }
      return;
    }
    if (client !== c) return;
    if (closed) {
      await c.end().catch(() => {});
      return;
    }
    const reconnected = attempt > 0;
    attempt = 0;
    connected = true;
    beat = setInterval(() => {
      // LISTEN again (a no-op for a channel already listened to): proves the session, and keeps LISTEN
      // its last statement.
      void send(c, handlers.size ? listenSql(handlers.keys()) : 'select 1').catch((err) => lost(c, err));
    }, opts.heartbeatMs ?? 5_000);
    beat.unref();
    if (reconnected) log?.info({ channels: [...handlers.keys()] }, 'listening again: every subscriber re-reads');
    firstConnect();
    catchUp();
  };

  void connect();
  await Promise.race([first, new Promise<void>((r) => setTimeout(r, 2_000).unref())]);
  if (!connected) log?.warn('not listening to the database yet; retrying in the background');

  return {
    async subscribe(channel, handler) {
      let set = handlers.get(channel);
      const fresh = !set;
      if (!set) handlers.set(channel, (set = new Set()));
      set.add(handler);
      const c = client;
      if (fresh && c && connected) {
        // On failure the session is lost and the reconnect listens to every channel, this one included.
        await send(c, listenSql([channel])).catch((err) => lost(c, err));
      }
      if (connected) call(handler, null);
      return () => {
        const s = handlers.get(channel);
        if (!s?.delete(handler) || s.size) return;
        handlers.delete(channel);
        const cc = client;
        if (cc && connected && !closed) void send(cc, `UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
      };
    },
    pid() {
      return connected ? (client as unknown as { processID?: number } | undefined)?.processID : undefined;
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      if (beat) clearInterval(beat);
      const c = client;
      client = undefined;
      connected = false;
      await c?.end().catch(() => {});
    },
  };
}

/** A service's subscriptions on the shared listener, undone together at stop. */
export interface Subscriptions {
  close(): Promise<void>;
}

/**
 * Subscribes `handler` to each of `channels` on `shared` (the process's listener), or, for a service run
 * on its own (tests, tools), on a listener of its own that close() ends. handler(channel, payload);
 * payload null: (re)connected, re-read.
 */
export async function subscribeAll(
  shared: Notifications | undefined,
  url: string,
  channels: string[],
  handler: (channel: string, payload: string | null) => void,
  opts: ListenerOptions = {},
): Promise<Subscriptions> {
  const own = shared ? undefined : await createListener(url, opts);
  const n = (shared ?? own) as Notifications;
  // One catch-up per (re)connect, not one per channel (the listener calls them all in one go).
  let ready = false;
  let pending = false;
  const offs: (() => void)[] = [];
  for (const ch of channels) {
    offs.push(
      await n.subscribe(ch, (payload) => {
        if (payload !== null) return handler(ch, payload);
        if (!ready || pending) return;
        pending = true;
        queueMicrotask(() => {
          pending = false;
          handler(ch, null);
        });
      }),
    );
  }
  ready = true;
  // Listening to every channel now: the first catch-up (while the database is away it comes on connect).
  if (n.pid() !== undefined && channels.length) handler(channels[0], null);
  return {
    async close() {
      for (const off of offs) off();
      await own?.close();
    },
  };
}

export interface Listener {
  close(): Promise<void>;
}

/**
 * A listener of its own on `channels`: onNudge(channel, payload) per notification, onConnect after the
 * first connect and every reconnect.
 */
export async function listen(
  url: string,
  channels: string[],
  onNudge: (channel: string, payload: string) => void,
  opts: ListenerOptions & { onConnect?: () => void } = {},
): Promise<Listener> {
  return subscribeAll(undefined, url, channels, (ch, payload) => (payload === null ? opts.onConnect?.() : onNudge(ch, payload)), opts);
}
