// Waiting on the sync as an operator would watch it: hc.mappings (state, its category, the message).
import type pg from 'pg';
import { sleep } from './bench.js';
import type { SidecarProcess } from './sidecar.js';

/** Resolves when the mapping is DATA_SYNCED; throws at once when it lands in an error state. */
export async function waitSynced(db: pg.Pool, object: string, sidecar: SidecarProcess, timeoutMs: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  const work = (async () => {
    for (;;) {
      const { rows } = await db.query<{ state: string; state_category: string; state_message: string | null }>(
        'select state, state_category, state_message from hc.mappings where lower(object_name) = lower($1)',
        [object],
      );
      const m = rows[0];
      if (m) {
        last = `${m.state}${m.state_message ? ` (${m.state_message})` : ''}`;
        if (m.state === 'DATA_SYNCED') return;
        if (m.state_category === 'error') throw new Error(`mapping ${object} went to ${last}; sidecar log:\n${sidecar.tail(10)}`);
      }
      if (Date.now() > deadline) throw new Error(`mapping ${object} not DATA_SYNCED after ${timeoutMs / 1000} s (last state ${last || 'none'}); sidecar log:\n${sidecar.tail(10)}`);
      await sleep(everyMs);
    }
  })();
  await Promise.race([work, sidecar.exited]);
}

/** Resolves when the sidecar has logged that it is running (signed in, services started). */
export async function waitRunning(sidecar: SidecarProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const work = (async () => {
    while (!sidecar.tail(200).includes('hcsync running')) {
      if (Date.now() > deadline) throw new Error(`the sidecar did not start within ${timeoutMs / 1000} s; its log:\n${sidecar.tail(15)}`);
      await sleep(20);
    }
  })();
  await Promise.race([work, sidecar.exited]);
}

/**
 * After a load the sidecar catches up once (a re-read from the load's start, or the first poll), and that
 * pass competes with whatever comes next. Resolves when it has finished (hc._mappings.last_poll_at set).
 */
export async function waitCaughtUp(db: pg.Pool, object: string, sidecar: SidecarProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const work = (async () => {
    for (;;) {
      const { rows } = await db.query<{ done: boolean }>('select last_poll_at is not null as done from hc._mappings where lower(object_name) = lower($1)', [object]);
      if (rows[0]?.done) return;
      if (Date.now() > deadline) throw new Error(`mapping ${object}: no catch-up poll finished within ${timeoutMs / 1000} s after the load; sidecar log:\n${sidecar.tail(10)}`);
      await sleep(50);
    }
  })();
  await Promise.race([work, sidecar.exited]);
}
