// Server-sent events for the dashboard: the process's one LISTEN session serves every open page. The database's nudges
// (hc_control: an operator action; <schema>.hc_trigger_log: a captured change; hcsync_activity: the
// sync log grew or a mapping changed; hc_notifications: a notification was recorded) go to each page as
// `event: nudge` naming what changed, at most every 300 ms per kind; the page then re-reads that part
// through the API. A nudge carries no data: the tables are the truth, and a page that reconnects
// re-reads everything. The webhook sender (sync/notify.ts) hears the same session's nudges (`on`).
import type { ServerResponse } from 'node:http';
import { subscribeAll } from '../db/notifier.js';
import type { SyncContext } from '../context.js';

export type Kind = 'control' | 'writes' | 'activity' | 'notifications';

export interface EventHub {
  add(res: ServerResponse): void;
  clients(): number;
  /** Calls fn with the kind of each nudge (unthrottled), and with 'control' after every (re)connect. */
  on(fn: (kind: Kind) => void): void;
  close(): Promise<void>;
}

/** The schema a hc_notifications payload names (sql/000045_notifications.sql), or undefined. */
function notificationOf(payload: string): string | undefined {
  try {
    return (JSON.parse(payload) as { schema?: string }).schema;
  } catch {
    return undefined;
  }
}

export async function startEvents(ctx: SyncContext, throttleMs = 300): Promise<EventHub> {
  const clients = new Set<ServerResponse>();
  const subscribers = new Set<(kind: Kind) => void>();
  const pending = new Map<Kind, NodeJS.Timeout>();
  const send = (kind: Kind) => {
    for (const fn of subscribers) fn(kind);
    if (pending.has(kind)) return;
    pending.set(
      kind,
      setTimeout(() => {
        pending.delete(kind);
        for (const res of clients) res.write(`event: nudge\ndata: ${JSON.stringify({ kind })}\n\n`);
      }, throttleMs),
    );
  };
  const writes = `${ctx.connection.schema}.hc_trigger_log`;
  const id = String(ctx.connection.id);
  const listener = await subscribeAll(
    ctx.notifications,
    ctx.config.databaseUrl,
    ['hc_control', writes, 'hcsync_activity', 'hc_notifications'],
    (channel, payload) => {
      if (payload === null) send('control'); // (re)connected: nudges may have been missed, pages re-read
      else if (channel === 'hc_control' && (!payload || payload === ctx.connection.schema)) send('control');
      else if (channel === writes) send('writes');
      else if (channel === 'hcsync_activity' && (!payload || payload === id)) send('activity');
      else if (channel === 'hc_notifications' && notificationOf(payload) === ctx.connection.schema) send('notifications');
    },
    { log: ctx.log, application_name: 'hcsync dashboard' },
  );
  // A comment line every 15 s keeps proxies from closing an idle stream.
  const keepalive = setInterval(() => {
    for (const res of clients) res.write(': keepalive\n\n');
  }, 15_000);
  return {
    add(res) {
      clients.add(res);
      res.on('close', () => clients.delete(res));
      res.write(`retry: 2000\nevent: hello\ndata: {}\n\n`);
    },
    clients: () => clients.size,
    on(fn) {
      subscribers.add(fn);
    },
    async close() {
      clearInterval(keepalive);
      for (const t of pending.values()) clearTimeout(t);
      for (const res of clients) res.end();
      clients.clear();
      subscribers.clear();
      await listener.close();
    },
  };
}
