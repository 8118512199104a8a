// One mapping's inbound life, driven by its row in hc._mappings (re-read on every nudge):
//   INITIAL → describe → hc.apply_mapping_ddl (BAD_CONFIG naming the field on error) → load → DATA_SYNCED;
//   requested reload / poll / abort are taken (cleared) and done; an interrupted load is started again;
//   DATA_SYNCED: CDC subscription (sf_notify_enabled, default on) or SystemModstamp polls every
//   sf_polling_seconds, plus the drift sweep. All work of a mapping runs one piece at a time.
//   Change events come over the Pub/Sub API (a stream shared by the connection's mappings, streams.ts) or,
//   with HC_CHANGE_STREAM=cometd, over one CometD subscription per mapping. An object that is not enabled
//   for Change Data Capture is polled instead, and the state message says why.
import type { SyncContext } from '../../context.js';
import { CdcSubscriber, changeEventChannel, type ChangeEvent } from '../../salesforce/streaming.js';
import { Aborted, loadMapping, soqlFields } from './load.js';
import { pollChanges } from './poll.js';
import { driftSweep } from './drift.js';
import { budgetAllows } from '../budget.js';
import { withMapping } from '../../salesforce/client.js';
import { isDescribeMissing, isObjectGone } from '../../salesforce/errors.js';
import { describe as describeObject } from '../../salesforce/rest.js';
import { setLongTimeout, type LongTimer } from '../../timers.js';
import { applyCdcBatch, BatchAbandoned } from './cdc.js';
import type { MappingRow } from './rows.js';
import type { ChangeStreams, Membership } from './streams.js';
import {
  buildTableAndStartLoad, calculatedFields, driftDue, mappingPhase, mappingStateMessage, rereadsNext, setMappingState, storedPosition, takeRequest,
} from '../../db/hc/inbound.js';

/** How long a mapping whose object is not enabled for CDC polls before the stream is asked again. */
const UNAVAILABLE_RETRY_MS = 5 * 60_000;
/** The same while the Pub/Sub API cannot be reached (a firewall, an outage). */
const UNREACHABLE_RETRY_MS = 60_000;
const FALLBACK_PREFIX = 'polling every';


export function orphanMessage(object: string): string {
  return `Salesforce has no object ${object} any more (deleted, or the integration user can no longer see it): remove the mapping in the dashboard's Settings or with hcsync mapping:delete ${object} --confirm ${object} --keep-table (its table and rows are kept), or restore the object and update the mapping`;
}

export class MappingWorker {
  private chain: Promise<void> = Promise.resolve();
  private busy = new Set<string>();
  private held = new Map<string, { failures: number; until: number }>();
  private load?: AbortController;
  private cdc?: { stop(): Promise<void> };
  /** The Pub/Sub stream this mapping is a member of (this.cdc is then its handle). */
  private membership?: Membership;
  /** The last replay id this mapping committed over the Pub/Sub stream (positions never move back). */
  private committed?: string;
  /** Not enabled for CDC: polled until `until`, then the stream is asked again. */
  private unavailable?: { reason: string; hint: string; until: number };
  /** The config revision the subscription's field lists were read at. */
  private cdcRevision?: number;
  /** The field lists the live subscription applies with. */
  private cdcFields?: { fields: string[]; calculated: string[] };
  private events: ChangeEvent[] = [];
  private drainQueued = false;
  /** When each queued change event arrived (for the debug line of its batch: how long it waited). */
  private queuedAt = new WeakMap<ChangeEvent, number>();
  private pollTimer?: NodeJS.Timeout;
  private driftTimer?: LongTimer;
  private rereadTimer?: NodeJS.Timeout;
  /** When rereadTimer fires. */
  private rereadAt = 0;
  private pollSeconds?: number;
  private stopped = false;
  m: MappingRow;

  /** `epoch`: the inbound leadership this sidecar holds now (undefined once lost); fences CDC batches. */
  constructor(
    private readonly ctx: SyncContext,
    m: MappingRow,
    private readonly nudge: () => void,
    private readonly epoch: () => number | undefined = () => undefined,
    /** The connection's Pub/Sub streams; undefined: CometD (HC_CHANGE_STREAM=cometd). */
    private readonly streams?: ChangeStreams,
  ) {
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
        // Every Salesforce call of this work counts against the mapping (sf_max_daily_api_calls).
        await withMapping(this.m.id, fn);
        this.held.delete(key);
      })
      .catch(async (e) => {
        if (this.stopped) return; // shutting down: the work is done again after the next start
        // The object is gone from Salesforce (deleted, or hidden from the integration user): no retry can
        // succeed. The mapping is orphaned (SYNC_REMOVED, Heroku Connect's state), which stops its work,
        // tells the operator (hc.notifications) and lists it for removal in the dashboard's Settings.
        if (isObjectGone(e) && !this.stopped) {
          this.log.error({ err: e, work: key }, `Salesforce has no object ${this.m.object_name} any more: the mapping is orphaned (SYNC_REMOVED)`);
          await setMappingState(this.ctx.db, this.m.id, 'SYNC_REMOVED', orphanMessage(this.m.object_name))
            .catch((err) => this.log.error({ err }, 'recording SYNC_REMOVED failed'));
          return;
        }
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
        else await setMappingState(this.ctx.db, m.id, 'ABORTED', 'aborted by request');
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
        if (this.m.state === 'ABORTED') await setMappingState(this.ctx.db, m.id, 'DATA_SYNCED', null);
        await pollChanges(this.ctx, this.m, 'poll', () => this.stopped);
      });
    }
    // What a state asks for (describe, load, reload, live, stopped) is hc.mapping_states.phase, read
    // with the row.
    if (m.phase === 'describe' || m.phase === 'load' || m.phase === 'reload') {
      if (!this.busy.has('load')) {
        await this.stopLive();
        const reload = m.phase === 'reload';
        this.run('load', () => this.doLoad(reload));
      }
      return;
    }
    if (m.phase === 'live') {
      if (m.state === 'RECOVERY') {
        this.run('recover', async () => {
          await pollChanges(this.ctx, this.m, 'reread', () => this.stopped);
          await setMappingState(this.ctx.db, m.id, 'DATA_SYNCED', null);
        });
      }
      await this.ensureLive();
      return;
    }
    await this.stopLive(); // phase 'stopped' (BAD_CONFIG, ABORTED, error states): nothing runs until the operator acts
  }

  /** A timed poll: background work, so it goes only when the API budget lets it (stretched when slow). */
  private async timedPoll(secs: number): Promise<void> {
    if (!(await budgetAllows(this.ctx, this.m, 'poll', secs * 1000))) return;
    await pollChanges(this.ctx, this.m, 'poll', () => this.stopped);
  }

  private async take(): Promise<string | null> {
    return takeRequest(this.ctx.db, this.m.id);
  }

  private async doLoad(reload: boolean): Promise<void> {
    const { ctx, m } = this;
    // An abort can be taken while this load waits in the queue or describes the object: it must win.
    this.load = new AbortController();
    let phase = m.phase;
    if (!reload) {
      // As it is now: the state this worker last read may have moved on (another sidecar, an operator).
      const now = await mappingPhase(ctx.db, m.id);
      // (ABORTED, or loaded meanwhile: a load is only for a mapping still to describe or load)
      if (now === undefined || (now.phase !== 'describe' && now.phase !== 'load')) {
        this.load = undefined;
        return;
      }
      phase = now.phase;
    }
    if (!reload && phase === 'describe') {
      const ok = await this.describeAndApply().catch((e) => {
        this.load = undefined;
        throw e;
      });
      if (!ok || this.load.signal.aborted) {
        if (ok) await setMappingState(ctx.db, m.id, 'ABORTED', 'load aborted by request');
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
        await setMappingState(ctx.db, m.id, 'ABORTED', 'load aborted by request');
        return;
      }
      const err = e as { code?: string; message: string; hint?: string };
      if (err.code === '55006') {
        // Reload refused (pending writes): back to syncing, the refusal is the state message.
        await setMappingState(ctx.db, m.id, 'DATA_SYNCED', `${err.message}. ${err.hint ?? ''}`.trim());
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
      describe = await describeObject(ctx.sf, m.object_name);
    } catch (e) {
      if (isDescribeMissing(e)) {
        await setMappingState(ctx.db, m.id, 'BAD_CONFIG', `Salesforce has no object ${m.object_name} (or the integration user cannot see it): correct the object name or grant access`);
        return false;
      }
      throw e;
    }
    try {
      // The table and the load's state commit together: the writer holds a mapping's changes until its
      // table is built and loaded (hc.outbound_claim), and never sees a built table not yet loading.
      await buildTableAndStartLoad(ctx.db, m.id, describe);
      return true;
    } catch (e) {
      const err = e as { code?: string; message: string; hint?: string };
      // 55000: the mapping's state moved on meanwhile (hc.mapping_states refuses the step from it), which
      // says nothing about its config: the next round starts from the state as it is now.
      if (err.code !== '55000' && (err.code === '22023' || err.code === '42P07' || /^hcsync:/.test(err.message))) {
        const message = `${err.message}${err.hint ? `. ${err.hint}` : ''}`;
        this.log.error({ message }, 'mapping config does not fit the object: BAD_CONFIG');
        await setMappingState(ctx.db, m.id, 'BAD_CONFIG', message);
        return false;
      }
      throw e;
    }
  }

  private async ensureLive(): Promise<void> {
    if (this.unavailable && Date.now() >= this.unavailable.until) this.unavailable = undefined;
    const notify = this.m.config.sf_notify_enabled !== false && !this.unavailable;
    if (!this.driftTimer) {
      // The sweep's clock is in the database: a restart does not postpone it.
      const due = await driftDue(this.ctx.db, this.m.id, this.ctx.config.inbound.driftMs);
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
      // Re-reads and deferred echoes wait for a timer that an apply sets; an apply that failed set none.
      // Every re-read of the mapping (a nudge, the slow timer, the failed work's own retry) sets it again.
      else if (this.cdcFields) await this.armRereads(this.cdcFields.fields, this.cdcFields.calculated);
      if (!this.unavailable) return;
    }
    {
      if (this.cdc) await this.stopCdc();
      // hc._check_config refuses values outside 1–86,400; clamped here too, so that no stored value can
      // pass Node's timer limit, past which the interval fires every millisecond.
      const secs = Math.min(86_400, Math.max(1, Number(this.m.config.sf_polling_seconds ?? 600) || 600));
      if (this.unavailable) {
        const message = `${FALLBACK_PREFIX} ${secs} s: ${this.unavailable.reason}; ${this.unavailable.hint}`;
        await setMappingState(this.ctx.db, this.m.id, this.m.state, message);
      }
      if (!this.pollTimer || this.pollSeconds !== secs) {
        this.stopPolling();
        this.pollSeconds = secs;
        this.pollTimer = setInterval(() => this.run('poll', () => this.timedPoll(secs)), secs * 1000);
        this.pollTimer.unref();
        // First poll at once: whatever changed while the sidecar was away.
        this.run('poll', () => this.timedPoll(secs));
      }
    }
  }

  private armDrift(ms: number): void {
    // HC_DRIFT_SECONDS may pass Node's 24.8-day timer limit: a long timeout waits its whole time.
    this.driftTimer = setLongTimeout(() => {
      // A sweep that failed (Salesforce unreachable, its listing session terminated) runs again after
      // the backoff, not an interval later.
      this.run('drift', async () => {
        if (await budgetAllows(this.ctx, this.m, 'drift', this.ctx.config.inbound.driftMs)) await driftSweep(this.ctx, this.m);
      }, (delay) => {
        this.driftTimer?.clear();
        this.armDrift(delay);
      });
      this.armDrift(this.ctx.config.inbound.driftMs);
    }, ms);
  }

  private async subscribe(): Promise<void> {
    const channel = changeEventChannel(this.m.object_name);
    this.cdcRevision = this.m.revision;
    const pos = await storedPosition(this.ctx.db, this.m.id);
    const fields = await soqlFields(this.ctx, this.m.id);
    const calculated = await calculatedFields(this.ctx.db, this.m.id);
    this.cdcFields = { fields, calculated };
    if (this.streams) {
      await this.join(fields, calculated, { channel: pos?.replay_channel ?? null, replayId: pos?.replay_id ?? null });
      return;
    }
    const stored = pos?.replay_channel === channel && pos?.replay_id != null ? Number(pos.replay_id) : null;
    const cometd = new CdcSubscriber(
      this.ctx.sf,
      channel,
      {
        onEvent: (ev) => this.queue([ev], fields, calculated),
        onResync: (reason) => {
          this.log.info({ reason }, 're-reading by SystemModstamp from the last applied point');
          this.run('reread', async () => void (await pollChanges(this.ctx, this.m, 'reread', () => this.stopped)));
        },
      },
      this.log,
      stored,
    );
    // No replay id yet (just loaded): new events only; the subscriber asks for one re-read from the
    // load's start once the subscription holds, so that changes made in between are not missed.
    this.cdc = cometd;
    cometd.start();
    // Re-reads a batch queued before a restart are still due.
    await this.armRereads(fields, calculated);
  }

  /** Joins the connection's Pub/Sub stream that carries this object (streams.ts). */
  private async join(fields: string[], calculated: string[], stored: { channel: string | null; replayId: string | null }): Promise<void> {
    let unavailable: string | undefined;
    const self = this;
    const cdcHint = `enable it in Setup → Change Data Capture (checked again every ${UNAVAILABLE_RETRY_MS / 60_000} minutes)`;
    let membership: Membership | null;
    try {
      membership = await this.streams!.join(
        {
          mappingId: this.m.id,
          object: this.m.object_name,
          onEvents: (events) => {
            if (self.membership !== membership) return;
            this.queue(events, fields, calculated);
          },
          onIdle: (position) => {
            if (self.membership !== membership) return;
            this.chain = this.chain
              .then(async () => {
                const epoch = this.epoch();
                if (this.membership !== membership || epoch === undefined || this.events.length) return;
                // Only forward: a batch committed meanwhile may already stand past this position.
                if (this.committed && this.committed >= position.replayId) return;
                await applyCdcBatch(this.ctx, this.m, fields, calculated, [], epoch, position, () => this.stopped);
                this.committed = position.replayId;
              })
              .catch((e) => {
                if (!(e instanceof BatchAbandoned)) this.log.error({ err: e }, 'moving the change stream position failed');
              });
          },
          onResync: (reason) => {
            this.log.info({ reason }, 're-reading by SystemModstamp from the last applied point');
            this.run('reread', async () => void (await pollChanges(this.ctx, this.m, 'reread', () => this.stopped)));
          },
          onUnavailable: (reason) => {
            unavailable = reason;
            if (self.membership && self.membership === membership) {
              this.unavailable = { reason, hint: cdcHint, until: Date.now() + UNAVAILABLE_RETRY_MS };
              void this.stopCdc().then(() => this.nudge());
            }
          },
        },
        stored,
      );
    } catch (e) {
      // The Pub/Sub API does not answer (egress to its port blocked, an outage): poll meanwhile, and say so.
      const endpoint = this.ctx.config.changeStream.pubsubEndpoint;
      const reason = `the Pub/Sub API at ${endpoint} did not answer (${(e as Error).message})`;
      this.log.warn({ err: e, endpoint }, 'the Pub/Sub API cannot be reached: polling instead for now');
      this.unavailable = { reason, hint: `allow outbound connections to ${endpoint} (SF_PUBSUB_ENDPOINT), or set HC_CHANGE_STREAM=cometd (tried again every ${UNREACHABLE_RETRY_MS / 1000} s)`, until: Date.now() + UNREACHABLE_RETRY_MS };
      return;
    }
    if (!membership) {
      this.log.warn({ reason: unavailable }, 'no change events for this object: polling instead');
      this.unavailable = { reason: unavailable ?? 'no change stream', hint: cdcHint, until: Date.now() + UNAVAILABLE_RETRY_MS };
      return;
    }
    // Positions of another channel or transport say nothing about this stream.
    this.committed = stored.channel === membership.channel && stored.replayId ? stored.replayId : undefined;
    // A member from now on, before anything else is awaited: the stream gives it events from this moment,
    // and one given while the worker did not yet take it as its own was dropped, past its position.
    this.membership = membership;
    this.cdc = { stop: () => membership.leave() };
    // Streaming again after a fallback: the state message no longer says it polls.
    const st = await mappingStateMessage(this.ctx.db, this.m.id);
    if (String(st?.state_message ?? '').startsWith(FALLBACK_PREFIX)) {
      await setMappingState(this.ctx.db, this.m.id, st!.state, null);
    }
    await this.armRereads(fields, calculated);
  }

  private queue(events: ChangeEvent[], fields: string[], calculated: string[]): void {
    const at = Date.now();
    for (const e of events) this.queuedAt.set(e, at);
    this.events.push(...events);
    if (this.drainQueued) return;
    // Cleared when the drain starts: an event arriving after that queues the next drain.
    this.drainQueued = true;
    this.chain = this.chain
      .then(() => {
        this.drainQueued = false;
        return this.drain(fields, calculated);
      })
      .catch((e) => this.log.error({ err: e }, 'change event drain failed'));
  }

  /**
   * Records a change-event batch could not apply as they were (hc.inbound_rereads) are read again when
   * due, through the same batch apply, also when no further event arrives to carry them.
   */
  private async armRereads(fields: string[], calculated: string[]): Promise<void> {
    if (this.stopped || !this.cdc) return;
    // (every applied batch calls this: no query while the armed timer fires within a second anyway)
    if (this.rereadTimer && this.rereadAt - Date.now() <= 1000) return;
    const next = await rereadsNext(this.ctx.db, this.m.id);
    if (!next) return;
    // A timer set for later than this re-read is due gives way to it (a record queued since, for now,
    // waited for the later one).
    if (this.rereadTimer) {
      if (next.getTime() >= this.rereadAt - 50) return;
      clearTimeout(this.rereadTimer);
    }
    this.rereadAt = Math.max(Date.now() + 50, next.getTime());
    this.rereadTimer = setTimeout(() => {
      this.rereadTimer = undefined;
      this.run('reread-queue', async () => {
        const epoch = this.epoch();
        if (epoch === undefined || !this.cdc) return;
        const r = await applyCdcBatch(this.ctx, this.m, fields, calculated, [], epoch, undefined, () => this.stopped);
        this.log.debug({ deferred: r.deferred, ...r.timing }, 'queued re-reads applied');
        await this.armRereads(fields, calculated);
      });
    }, this.rereadAt - Date.now());
    this.rereadTimer.unref();
  }

  private async drain(fields: string[], calculated: string[]): Promise<void> {
    while (this.events.length && !this.stopped && this.cdc) {
      const batch = this.events.splice(0, batchLength(this.events));
      try {
        const epoch = this.epoch();
        if (epoch === undefined) throw new Error('no longer the inbound leader: the batch is left to the new leader');
        const queuedMs = Date.now() - (this.queuedAt.get(batch[0]) ?? Date.now());
        const r = await applyCdcBatch(this.ctx, this.m, fields, calculated, batch, epoch, undefined, () => this.stopped);
        this.log.debug({ events: batch.length, queuedMs, deferred: r.deferred, ...r.timing }, 'change-event batch');
        if (this.membership) {
          this.committed = String(batch[batch.length - 1].replayId);
          this.membership.release(batch.length);
        }
      } catch (e) {
        if (e instanceof BatchAbandoned) return; // stopping: the next start reads these events again
        // Not committed: the replay id did not move. Resubscribe from the stored position.
        this.log.error({ err: e }, 'applying change events failed: resubscribing from the last committed replay id');
        this.events = [];
        await this.stopCdc();
        setTimeout(() => this.nudge(), 2000).unref();
        return;
      }
      if (batch.some((e) => e.header.changeType === 'GAP_OVERFLOW')) {
        this.run('reread', async () => void (await pollChanges(this.ctx, this.m, 'reread', () => this.stopped)));
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
    this.membership = undefined;
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

  /** What this mapping has queued or running (load, poll, drift, CDC batches…), in words; '' when idle. */
  busyWork(): string {
    return this.busy.size ? `${this.m.object_name}: ${[...this.busy].join(', ')}` : '';
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.load?.abort();
    await this.stopLive();
    await this.chain;
  }
}

/**
 * How many queued change events one apply takes: up to 200 events, and no more record changes than
 * APPLY_RECORDS (Salesforce folds one change to many records into one event: 200 such events are 40,000
 * rows). One apply is one transaction holding its rows' locks, so it stays short: an application's or
 * the writer's statement on those rows never waits on a catch-up for long. An event is never split (its
 * replay id commits with it whole).
 */
export const APPLY_RECORDS = 1000;
export function batchLength(events: readonly ChangeEvent[], maxRecords = APPLY_RECORDS): number {
  let n = 0;
  let records = 0;
  while (n < events.length && n < 200) {
    records += Math.max(1, events[n].header.recordIds?.length ?? 0);
    if (n > 0 && records > maxRecords) break;
    n++;
  }
  return n;
}
