// What the conflict tests share: the outbound harness (emulator, database, Account mapping) with the
// reader and the writer in-process, each of which a test can hold back to force an interleaving (a late
// reader, a writer that has not claimed yet), another Salesforce user (not client=hcsync), and waits
// that end on what the sync did, never on time alone.
import jsforce from 'jsforce';
import type { Service } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { setup, until, type Harness } from '../outbound/harness.js';
export { until };

export interface Rig {
  h: Harness;
  other: jsforce.Connection;
  readerOff(): Promise<void>;
  readerOn(): Promise<void>;
  writerOff(): Promise<void>;
  writerOn(): Promise<void>;
  close(): Promise<void>;
}

export async function rig(): Promise<Rig> {
  const h = await setup({ algorithm: 'merged' });
  let reader: Service | null = await startInbound(h.ctx);
  let writer: Service | null = await h.startWriter({ maxBackoffMs: 300 });
  await until(async () => {
    const m = (await h.db.query(`select state, last_poll_at from hc._mappings`)).rows[0];
    return m?.state === 'DATA_SYNCED' && m.last_poll_at;
  }, 'mapping synced and subscribed', 90_000);
  const other = new jsforce.Connection({
    loginUrl: h.emu.credentials.loginUrl,
    version: '62.0',
    oauth2: { loginUrl: h.emu.credentials.loginUrl, clientId: h.emu.credentials.clientId, clientSecret: h.emu.credentials.clientSecret, redirectUri: 'http://localhost/cb' },
  });
  await other.login(h.emu.credentials.username, h.emu.credentials.password);
  return {
    h, other,
    async readerOff() { await reader?.stop(); reader = null; },
    async readerOn() {
      if (reader) return;
      reader = await startInbound(h.ctx);
      await until(async () => (await h.db.query(`select state from hc._mappings`)).rows[0].state === 'DATA_SYNCED', 'reader running');
    },
    async writerOff() { await writer?.stop(); writer = null; },
    async writerOn() { if (!writer) writer = await h.startWriter({ maxBackoffMs: 300 }); },
    async close() {
      await reader?.stop();
      await h.close();
    },
  };
}

/** Waits until the reader has applied every Account change event Salesforce has published so far. */
export async function readerCaughtUp(h: Harness): Promise<void> {
  const last = Math.max(-1, ...h.emu.events().filter((e) => e.entity === 'Account').map((e) => e.replayId));
  await until(async () => {
    const r = await h.db.query(`select replay_channel, replay_id from hc.sync_positions`);
    // Pub/Sub replay ids are the event's position in hex; CometD's are decimal.
    return r.rows.some((x) => x.replay_id != null && (String(x.replay_channel ?? '').startsWith('pubsub:') ? parseInt(x.replay_id, 16) : Number(x.replay_id)) >= last);
  }, `reader applied events up to ${last}`);
}

/** Nothing waits to be sent but what an open conflict holds back, no re-read is queued, and the reader
 * has applied every event: the two sides are as the sync leaves them. */
export async function settled(h: Harness): Promise<void> {
  await until(async () => {
    const q = await h.db.query(`
      select (select count(*)::int from salesforce._trigger_log l
               where l.state = 'PENDING'
                  or (l.state = 'NEW' and not exists (select 1 from hc.conflicts k where k.resolved_at is null
                                                         and k.kind in ('pg_delete', 'sf_delete') and k.record_id = l.record_id))) waiting,
             (select count(*)::int from hc.inbound_rereads) rereads`);
    return q.rows[0].waiting === 0 && q.rows[0].rereads === 0;
  }, 'queue and re-reads settled');
  await readerCaughtUp(h);
}

export async function setPolicy(h: Harness, policy: string | null, ownership?: Record<string, string>): Promise<void> {
  const cfg = (await h.db.query(`select config from hc._mappings where object_name = 'Account'`)).rows[0].config;
  delete cfg.conflict_policy;
  delete cfg.field_ownership;
  if (policy) cfg.conflict_policy = policy;
  if (ownership) cfg.field_ownership = ownership;
  await h.db.query(`select hc.update_mapping('Account', $1)`, [cfg]);
}

export async function created(h: Harness, name: string): Promise<{ id: number; sfid: string }> {
  const id = (await h.db.query(`insert into salesforce.account (name) values ($1) returning id`, [name])).rows[0].id;
  const r = await until(async () => {
    const x = (await h.db.query('select * from salesforce.account where id = $1', [id])).rows[0];
    return x?.sfid && x._hc_lastop === 'SYNCED' && x;
  }, `${name} created and its echo applied`);
  return { id, sfid: r.sfid };
}

export const rowById = async (h: Harness, id: number) => (await h.db.query('select * from salesforce.account where id = $1', [id])).rows[0];
export const rowBySfid = async (h: Harness, sfid: string) => (await h.db.query('select * from salesforce.account where sfid = $1', [sfid])).rows[0];
export const sfRecord = (h: Harness, sfid: string) => h.emu.records('Account').find((r) => r.Id === sfid);
/** The conflicts of a record, once there is one (the reader has applied Salesforce's change). */
export const conflictFound = (h: Harness, sfid: string) =>
  until(async () => { const c = await conflictsOf(h, sfid); return c.length > 0 && c; }, `a conflict of ${sfid}`);
export const conflictsOf = async (h: Harness, sfid: string) => (await h.db.query('select * from hc.conflicts where sfid = $1 order by id', [sfid])).rows;

/** The writer has claimed past everything queued so far: a later change of another record is sent. */
export async function writerPassed(h: Harness, name: string): Promise<void> {
  const { id } = await created(h, name);
  await h.db.query(`update salesforce.account set accountnumber = 'probe' where id = $1`, [id]);
  await until(async () => (await rowById(h, id))._hc_lastop === 'UPDATED' || (await rowById(h, id))._hc_lastop === 'SYNCED'
    && (await h.db.query(`select count(*)::int n from salesforce._trigger_log where record_id = $1 and state in ('NEW', 'PENDING')`, [id])).rows[0].n === 0,
  'the probe update sent');
}
