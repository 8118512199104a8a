// Server-sent events for the dashboard: one LISTEN session for every open page. The database's nudges
// (hc_control: an operator action; <schema>.hc_trigger_log: a captured change; hcsync_activity: the
// sync log grew or a mapping changed) go to each page as `event: nudge` naming what changed, at most
// every 300 ms per kind; the page then re-reads that part through the API. A nudge carries no data: the
// tables are the truth, and a page that reconnects re-reads everything.
import type { ServerResponse } from 'node:http';
import { listen, type Listener } from '../db/notifier.js';
import type { SyncContext } from '../context.js';

export type Kind = 'control' | 'writes' | 'activity';

export interface EventHub {
  add(res: ServerResponse): void;
  clients(): number;
  close(): Promise<void>;
}

export async function startEvents(ctx: SyncContext, throttleMs = 300): Promise<EventHub> {
  const clients = new Set<ServerResponse>();
  const pending = new Map<Kind, NodeJS.Timeout>();
  const send = (kind: Kind) => {
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
  const listener: Listener = await listen(
    ctx.config.databaseUrl,
    ['hc_control', writes, 'hcsync_activity'],
    (channel, payload) => {
      if (channel === 'hc_control' && (!payload || payload === ctx.connection.schema)) send('control');
      else if (channel === writes) send('writes');
      else if (channel === 'hcsync_activity' && (!payload || payload === id)) send('activity');
    },
    { log: ctx.log, application_name: 'hcsync dashboard', onConnect: () => send('control') },
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
    async close() {
      clearInterval(keepalive);
      for (const t of pending.values()) clearTimeout(t);
      for (const res of clients) res.end();
      clients.clear();
      await listener.close();
    },
  };
}
