// One mapping's inbound life, driven by its row in hc._mappings (re-read on every nudge):
//   INITIAL → describe → hc.apply_mapping_ddl (BAD_CONFIG naming the field on error) → load → DATA_SYNCED;
//   requested reload / poll / abort are taken (cleared) and done; an interrupted load is started again;
//   DATA_SYNCED: CDC subscription (sf_notify_enabled, default on) or SystemModstamp polls every
//   sf_polling_seconds, plus the drift sweep. All work of a mapping runs one piece at a time.
import type { SyncContext } from '../../context.js';
import { CdcSubscriber, changeEventChannel, type ChangeEvent } from '../../salesforce/streaming.js';
import { Aborted, loadMapping, soqlFields } from './load.js';
import { pollChanges } from './poll.js';
import { driftSweep } from './drift.js';
import { setLongTimeout, type LongTimer } from '../../timers.js';
import { applyCdcBatch } from './cdc.js';
import type { MappingRow } from './rows.js';

const LOADING = new Set(['INITIAL', 'RELOAD_TABLE', 'POLLING_SF_CHANGES', 'POLLING_SF_BULK', 'RESYNC', 'SCHEMA_CHANGED']);
const LIVE = new Set(['DATA_SYNCED', 'RECOVERY', 'POLLING_SF_FOR_DELETES']);

export class MappingWorker {
  private chain: Promise<void> = Promise.resolve();
  private busy = new Set<string>();
  private held = new Map<string, { failures: number; until: number }>();
  private load?: AbortController;
  private cdc?: CdcSubscriber;
  /** The config revision the subscription's field lists were read at. */
  private cdcRevision?: number;
  private events: ChangeEvent[] = [];
  private drainQueued = false;
  private pollTimer?: NodeJS.Timeout;
  private driftTimer?: LongTimer;
  private rereadTimer?: NodeJS.Timeout;
  private pollSeconds?: number;
  private stopped = false;
  m: MappingRow;

  /** `epoch`: the inbound leadership this sidecar holds now (undefined once lost); fences CDC batches. */
  constructor(private readonly ctx: SyncContext, m: MappingRow, private readonly nudge: () => void, private readonly epoch: () => number | undefined = () => undefined) {
    this.m = m;
  }

  private get log() {
    return this.ctx.log.child({ mapping: this.m.object_name });
  }

  /** Queues a piece of work under a key; the same key is queued at most once at a time. */
  private run(key: string, fn: () => Promise<void>, retry?: (delayMs: number) => void): void {
    if (this.busy.has(key) || this.stopped) return;
    // After a failure the same work waits (capped exponential backoff): a broken org or network must
    // not turn into a tight loop of API calls.
    const held = this.held.get(key);
    if (held && Date.now() < held.until) return;
    this.busy.add(key);
    this.chain = this.chain
      .then(async () => {
        if (this.stopped) return;
        await fn();
        this.held.delete(key);
      })
      .catch((e) => {
        const failures = (this.held.get(key)?.failures ?? 0) + 1;
        const delay = Math.min(300_000, 2000 * 2 ** (failures - 1));
        this.held.set(key, { failures, until: Date.now() + delay });
        setTimeout(() => this.nudge(), delay + 10).unref();
        // Work the mapping's state does not bring back on a re-read (the timed drift sweep) asks again.
        if (!this.stopped) retry?.(delay + 10);
        this.log.error({ err: e, work: key, retryInMs: delay }, `inbound ${key} of ${this.m.object_name} failed`);
      })
      .finally(() => {
        this.busy.delete(key);
        this.nudge();
      });
  }

  /** Called with the mapping's current row (and the connection's state) on every re-read. */
  async update(m: MappingRow, paused: boolean): Promise<void> {
    this.m = m;
    if (paused) {
      // Paused: no polling, no CDC applied. The subscription is closed, so the stored replay id stays
      // at the last applied event and resuming replays from there: nothing is lost.
      await this.stopLive();
      return;
    }
    if (m.requested === 'abort') {
      const taken = await this.take();
      if (taken === 'abort') {
        if (this.load) this.load.abort();
        else await this.ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'ABORTED', 'aborted by request']);
      }
      return;
    }
    if (m.requested === 'reload' && !this.busy.has('load')) {
      await this.stopLive();
      this.run('load', async () => {
        if ((await this.take()) !== 'reload') return;
        await this.doLoad(true);
      });
      return;
    }
    if (m.requested === 'poll') {
      this.run('poll', async () => {
        if ((await this.take()) !== 'poll') return;
        if (this.m.state === 'ABORTED') await this.ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'DATA_SYNCED', null]);
        await pollChanges(this.ctx, this.m, 'poll');
      });
    }
    if (LOADING.has(m.state)) {
      if (!this.busy.has('load')) {
        await this.stopLive();
        const reload = m.state === 'RELOAD_TABLE';
        this.run('load', () => this.doLoad(reload));
      }
      return;
    }
    if (LIVE.has(m.state)) {
      if (m.state === 'RECOVERY') {
        this.run('recover', async () => {
          await pollChanges(this.ctx, this.m, 'reread');
          await this.ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'DATA_SYNCED', null]);
        });
      }
      await this.ensureLive();
      return;
    }
    await this.stopLive(); // BAD_CONFIG, ABORTED, error states: nothing runs until the operator acts
  }

  private async take(): Promise<string | null> {
    return (await this.ctx.db.query('select hc.take_request($1) as r', [this.m.id])).rows[0].r;
  }

  private async doLoad(reload: boolean): Promise<void> {
    const { ctx, m } = this;
    // An abort can be taken while this load waits in the queue or describes the object: it must win.
    this.load = new AbortController();
    if (!reload) {
      const now = (await ctx.db.query('select state from hc._mappings where id = $1', [m.id])).rows[0]?.state;
      if (now === 'ABORTED' || now === undefined) {
        this.load = undefined;
        return;
      }
    }
    if (!reload && (m.state === 'INITIAL' || m.state === 'SCHEMA_CHANGED')) {
      const ok = await this.describeAndApply().catch((e) => {
        this.load = undefined;
        throw e;
      });
      if (!ok || this.load.signal.aborted) {
        if (ok) await ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'ABORTED', 'load aborted by request']);
        this.load = undefined;
        return;
      }
    }
    try {
      await loadMapping(ctx, this.m, { reload, signal: this.load.signal });
    } catch (e) {
      if (this.stopped) return; // shutting down: the load starts again on the next start
      if (e instanceof Aborted || this.load.signal.aborted) {
        this.log.warn('load aborted by request');
        await ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'ABORTED', 'load aborted by request']);
        return;
      }
      const err = e as { code?: string; message: string; hint?: string };
      if (err.code === '55006') {
        // Reload refused (pending writes): back to syncing, the refusal is the state message.
        await ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'DATA_SYNCED', `${err.message}. ${err.hint ?? ''}`.trim()]);
        return;
      }
      throw e;
    } finally {
      this.load = undefined;
    }
  }

  /** Describes the object and has SQL validate the config and build the table. False on BAD_CONFIG. */
  private async describeAndApply(): Promise<boolean> {
    const { ctx, m } = this;
    let describe: unknown;
    try {
      describe = await ctx.sf.conn.request(`${ctx.sf.basePath}/sobjects/${encodeURIComponent(m.object_name)}/describe`);
    } catch (e) {
      const err = e as { errorCode?: string; name?: string; message: string };
      if (err.errorCode === 'NOT_FOUND' || err.name === 'NOT_FOUND' || /NOT_FOUND|INVALID_TYPE/.test(String(err.errorCode ?? err.name))) {
        await ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'BAD_CONFIG', `Salesforce has no object ${m.object_name} (or the integration user cannot see it): correct the object name or grant access`]);
        return false;
      }
      throw e;
    }
    try {
      // The table and the load's state commit together: the writer holds a mapping's changes until its
      // table is built and loaded (hc.outbound_claim), and never sees a built table not yet loading.
      await ctx.db.query(
        `select hc.set_mapping_state($1, 'POLLING_SF_CHANGES', 'table ready: loading') from (select hc.apply_mapping_ddl($1, $2)) ddl`,
        [m.id, describe],
      );
      return true;
    } catch (e) {
      const err = e as { code?: string; message: string; hint?: string };
      if (err.code === '22023' || err.code === '42P07' || /^hcsync:/.test(err.message)) {
        const message = `${err.message}${err.hint ? `. ${err.hint}` : ''}`;
        this.log.error({ message }, 'mapping config does not fit the object: BAD_CONFIG');
        await ctx.db.query('select hc.set_mapping_state($1, $2, $3)', [m.id, 'BAD_CONFIG', message]);
        return false;
      }
      throw e;
    }
  }

  private async ensureLive(): Promise<void> {
    const notify = this.m.config.sf_notify_enabled !== false;
    if (!this.driftTimer) {
      // The sweep's clock is in the database: a restart does not postpone it.
      const due = (await this.ctx.db.query('select hc.inbound_drift_due($1, $2::interval) as t', [this.m.id, `${this.ctx.config.inbound.driftMs / 1000} seconds`])).rows[0]?.t as Date | null;
      if (!this.driftTimer && !this.stopped) this.armDrift(due ? Math.max(0, due.getTime() - Date.now()) : this.ctx.config.inbound.driftMs);
    }
    if (notify) {
      this.stopPolling();
      // Config changed (a field removed: no re-sync): subscribe again with the new field lists, from the
      // stored replay id, so nothing is lost and no event is applied with the old fields.
      if (this.cdc && this.cdcRevision !== this.m.revision) {
        await this.stopCdc();
        await this.chain; // a batch still being applied commits its replay id before we read it back
      }
      if (!this.cdc) await this.subscribe();
    } else {
      if (this.cdc) await this.stopCdc();
      // hc._check_config refuses values outside 1–86,400; clamped here too, so that no stored value can
      // pass Node's timer limit, past which the interval fires every millisecond.
      const secs = Math.min(86_400, Math.max(1, Number(this.m.config.sf_polling_seconds ?? 600) || 600));
      if (!this.pollTimer || this.pollSeconds !== secs) {
        this.stopPolling();
        this.pollSeconds = secs;
        this.pollTimer = setInterval(() => this.run('poll', async () => void (await pollChanges(this.ctx, this.m, 'poll'))), secs * 1000);
        this.pollTimer.unref();
        // First poll at once: whatever changed while the sidecar was away.
        this.run('poll', async () => void (await pollChanges(this.ctx, this.m, 'poll')));
      }
    }
  }

  private armDrift(ms: number): void {
    // HC_DRIFT_SECONDS may pass Node's 24.8-day timer limit: a long timeout waits its whole time.
    this.driftTimer = setLongTimeout(() => {
      // A sweep that failed (Salesforce unreachable, its listing session terminated) runs again after
      // the backoff, not an interval later.
      this.run('drift', async () => void (await driftSweep(this.ctx, this.m)), (delay) => {
        this.driftTimer?.clear();
        this.armDrift(delay);
      });
      this.armDrift(this.ctx.config.inbound.driftMs);
    }, ms);
  }

  private async subscribe(): Promise<void> {
    const channel = changeEventChannel(this.m.object_name);
    this.cdcRevision = this.m.revision;
    const pos = await this.ctx.db.query('select replay_channel, replay_id from hc.sync_positions where mapping_id = $1', [this.m.id]);
    const stored = pos.rows[0]?.replay_channel === channel && pos.rows[0]?.replay_id != null ? Number(pos.rows[0].replay_id) : null;
    const fields = await soqlFields(this.ctx, this.m.id);
    const calculated: string[] = (await this.ctx.db.query('select hc.inbound_calculated_fields($1) as f', [this.m.id])).rows[0].f;
    this.cdc = new CdcSubscriber(
      this.ctx.sf,
      channel,
      {
        onEvent: (ev) => {
          this.events.push(ev);
          if (this.drainQueued) return;
          // Cleared when the drain starts: an event arriving after that queues the next drain.
          this.drainQueued = true;
          this.chain = this.chain
            .then(() => {
              this.drainQueued = false;
              return this.drain(fields, calculated);
            })
            .catch((e) => this.log.error({ err: e }, 'change event drain failed'));
        },
        onResync: (reason) => {
          this.log.info({ reason }, 're-reading by SystemModstamp from the last applied point');
          this.run('reread', async () => void (await pollChanges(this.ctx, this.m, 'reread')));
        },
      },
      this.log,
      stored,
    );
    // No replay id yet (just loaded): new events only; the subscriber asks for one re-read from the
    // load's start once the subscription holds, so that changes made in between are not missed.
    this.cdc.start();
    // Re-reads a batch queued before a restart are still due.
    await this.armRereads(fields, calculated);
  }

  /**
   * Records a change-event batch could not apply as they were (hc.inbound_rereads) are read again when
   * due, through the same batch apply, also when no further event arrives to carry them.
   */
  private async armRereads(fields: string[], calculated: string[]): Promise<void> {
    if (this.rereadTimer || this.stopped || !this.cdc) return;
    const next = (await this.ctx.db.query('select hc.inbound_rereads_next($1) as t', [this.m.id])).rows[0]?.t as Date | null;
    if (!next || this.rereadTimer) return;
    this.rereadTimer = setTimeout(() => {
      this.rereadTimer = undefined;
      this.run('reread-queue', async () => {
        const epoch = this.epoch();
        if (epoch === undefined || !this.cdc) return;
        await applyCdcBatch(this.ctx, this.m, fields, calculated, [], epoch);
        await this.armRereads(fields, calculated);
      });
    }, Math.max(50, next.getTime() - Date.now()));
    this.rereadTimer.unref();
  }

  private async drain(fields: string[], calculated: string[]): Promise<void> {
    while (this.events.length && !this.stopped && this.cdc) {
      const batch = this.events.splice(0, 200);
      try {
        const epoch = this.epoch();
        if (epoch === undefined) throw new Error('no longer the inbound leader: the batch is left to the new leader');
        await applyCdcBatch(this.ctx, this.m, fields, calculated, batch, epoch);
      } catch (e) {
        // Not committed: the replay id did not move. Resubscribe from the stored position.
        this.log.error({ err: e }, 'applying change events failed: resubscribing from the last committed replay id');
        this.events = [];
        await this.stopCdc();
        setTimeout(() => this.nudge(), 2000).unref();
        return;
      }
      if (batch.some((e) => e.header.changeType === 'GAP_OVERFLOW')) {
        this.run('reread', async () => void (await pollChanges(this.ctx, this.m, 'reread')));
      }
    }
    await this.armRereads(fields, calculated);
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.pollSeconds = undefined;
  }

  private async stopCdc(): Promise<void> {
    const c = this.cdc;
    this.cdc = undefined;
    if (this.rereadTimer) clearTimeout(this.rereadTimer);
    this.rereadTimer = undefined;
    this.events = [];
    await c?.stop();
  }

  private async stopLive(): Promise<void> {
    this.stopPolling();
    this.driftTimer?.clear();
    this.driftTimer = undefined;
    await this.stopCdc();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.load?.abort();
    await this.stopLive();
    await this.chain;
  }
}
