// The notification webhook (HC_NOTIFY_WEBHOOK_URL). SQL decides what is news (sql/000045_notifications.sql
// records hc.notifications and sends NOTIFY hc_notifications); this sends each notification of the last
// day as a JSON POST, retried with backoff up to HC_NOTIFY_WEBHOOK_ATTEMPTS times, and records every
// attempt in hc.notification_deliveries. The table is the queue: a notification recorded while no
// sidecar ran, or whose sender died mid-POST, is sent by the next one (hc.notification_claim leases it,
// so two sidecars never send it at once). Woken by the hc_notifications nudge; between nudges it sleeps
// until the next retry is due.
import type { Service, SyncContext } from '../context.js';
import type { EventHub } from '../http/events.js';
import { claimNotifications, nextNotificationDueMs, recordNotificationAttempt, type NotificationToSend } from '../db/hc/control.js';

const TIMEOUT_MS = 10_000;
const IDLE_MS = 60_000;

type Row = NotificationToSend;

export function startWebhook(ctx: SyncContext, events: EventHub, opts: { backoffSeconds?: number } = {}): Service {
  const url = ctx.config.notify.webhookUrl;
  if (!url) return { async stop() {} };
  const target = new URL(url).origin;
  const { attempts } = ctx.config.notify;
  const backoff = opts.backoffSeconds ?? 1;
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  events.on((kind) => {
    if (kind === 'notifications' || kind === 'control') wake?.();
  });

  const send = async (n: Row): Promise<void> => {
    const body = {
      text: `hcsync ${ctx.connection.name}: ${n.message ?? n.kind}`,
      notification: {
        id: Number(n.id),
        connection: ctx.connection.name,
        schema: ctx.connection.schema,
        kind: n.kind,
        object: n.object_name,
        message: n.message,
        count: n.detail?.count ?? 1,
        at: n.at,
      },
    };
    const started = Date.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'hcsync' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      status = res.status;
      if (!res.ok) error = `HTTP ${res.status} ${(await res.text().catch(() => '')).slice(0, 200)}`.trim();
      else await res.body?.cancel().catch(() => {});
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      error = e.name === 'TimeoutError' ? `no answer in ${TIMEOUT_MS / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    }
    const ok = error === null;
    const r = await recordNotificationAttempt(ctx.db, {
      notificationId: n.id, target, status, error, ms: Date.now() - started, ok, maxAttempts: attempts, backoffSeconds: backoff,
    });
    if (ok) ctx.log.info({ notification: Number(n.id), kind: n.kind, webhook: target }, 'notification sent to the webhook');
    else if (r?.gave_up_at) ctx.log.error({ notification: Number(n.id), attempts: r.attempts, error, webhook: target }, 'notification webhook: giving up on this notification');
    else ctx.log.warn({ notification: Number(n.id), attempt: r?.attempts, error, webhook: target }, 'notification webhook failed: retrying');
  };

  const round = async (): Promise<number> => {
    const rows = await claimNotifications(ctx.db, ctx.connection.id, Math.ceil(TIMEOUT_MS / 1000) + 20);
    for (const n of rows) {
      if (stopped) break;
      await send(n);
    }
    // When the next one is due (a retry), or undefined when nothing waits.
    const ms = await nextNotificationDueMs(ctx.db, ctx.connection.id);
    return ms === null ? IDLE_MS : Math.max(0, Math.min(IDLE_MS, ms));
  };

  const loop = (async () => {
    while (!stopped) {
      let waitMs = 5_000;
      try {
        waitMs = await round();
      } catch (err) {
        if (!stopped) ctx.log.warn({ err }, 'notification webhook: reading the notifications failed; trying again');
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, waitMs + 10);
      });
      wake = undefined;
      if (timer) clearTimeout(timer);
    }
  })();

  ctx.log.info({ webhook: target, attempts }, 'notifications go to the webhook');
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
