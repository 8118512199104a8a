// Heroku Connect's documented anomalies (reference heroku-connect.md §4.6, §4.8) do not happen here,
// shown end to end with the sidecar's reader and writer (in-process, the writer with a 1 s call timeout)
// against the emulator:
//   flip-flop        two quick updates: the echo of the first never overwrites the second locally;
//   revived delete   a local DELETE pending while Salesforce changes the record: the row stays gone;
//   re-inserted      insert then delete before the first sync sends nothing and nothing comes back;
//                    a delete while the create is in flight removes the new record too;
//   lost delete      a delete after the create landed but its answer was lost removes the record too.
// Salesforce is held back deterministically with injected faults (collections calls that never answer, or
// answer late), so the interleavings are forced, not hoped for.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import jsforce from 'jsforce';
import type { Service } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { setup, until, queueEmpty, otherUser, type Harness } from './harness.js';
import { replayNumber } from '../support/sidecar.js';

let h: Harness;
let reader: Service;
/** Someone else in Salesforce (not marked client=hcsync). */
let other: jsforce.Connection;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged' });
  reader = await startInbound(h.ctx);
  await h.startWriter({ callTimeoutMs: 1000, maxBackoffMs: 300 });
  await until(async () => (await h.db.query(`select state from hc._mappings`)).rows[0].state === 'DATA_SYNCED', 'mapping synced');
  other = await otherUser(h.emu);
});
beforeEach(() => h.emu.clearFaults());
afterAll(async () => {
  await reader?.stop();
  await h?.close();
});

const row = async (name: string) => (await h.db.query('select * from salesforce.account where name = $1', [name])).rows;
const rowById = async (id: number) => (await h.db.query('select * from salesforce.account where id = $1', [id])).rows[0];
/** Salesforce records as the emulator holds them (no API call spent). */
const sfByName = (name: string) => h.emu.records('Account').filter((r) => r.Name === name);
/** Waits until the reader has applied every change event Salesforce has published so far. */
async function readerCaughtUp(): Promise<void> {
  const last = Math.max(-1, ...h.emu.events().filter((e) => e.entity === 'Account').map((e) => e.replayId));
  await until(async () => {
    const r = await h.db.query(`select replay_id from hc.sync_positions`);
    return r.rows.some((x) => replayNumber(x.replay_id) >= last);
  }, `reader applied events up to ${last}`);
}
/** Every sObject Collections call is answered only after 8 s, so the writer (1 s call timeout) keeps the
 * entries queued until the faults are cleared. (A delayed call is still performed once its delay is over;
 * the writer holds the records of a call it gave up on until then, see outcome.test.ts.) */
const holdWrites = () => h.emu.injectFault({ kind: 'collections', action: 'delay', delayMs: 8000, remaining: -1 });
const stillQueued = async (id: number) =>
  (await h.db.query(`select count(*)::int n from salesforce._trigger_log where record_id = $1 and state in ('NEW', 'PENDING')`, [id])).rows[0].n > 0;

async function created(name: string): Promise<{ id: number; sfid: string }> {
  const id = (await h.db.query(`insert into salesforce.account (name) values ($1) returning id`, [name])).rows[0].id;
  // (_hc_lastop is INSERTED until the echo of the create arrives and marks the row SYNCED.)
  const r = await until(async () => {
    const x = await rowById(id);
    return x?.sfid && (await queueEmpty(h.db)) && x;
  }, `${name} created`);
  return { id, sfid: r.sfid };
}

describe('Heroku Connect anomalies do not happen', { timeout: 120_000 }, () => {
  it('flip-flop: the echo of the first of two quick updates does not bring the first value back', async () => {
    const { id, sfid } = await created('Flip');
    // The reader is down for a moment (a restart), so the echo of the first update is delivered late:
    // while the second update is still on its way to Salesforce.
    await reader.stop();
    await h.db.query(`update salesforce.account set accountnumber = 'first' where id = $1`, [id]);
    await until(async () => sfByName('Flip')[0]?.AccountNumber === 'first' && queueEmpty(h.db), 'first update sent');
    holdWrites();
    await h.db.query(`update salesforce.account set accountnumber = 'second' where id = $1`, [id]);
    reader = await startInbound(h.ctx);
    await readerCaughtUp();
    expect(await stillQueued(id)).toBe(true); // the interleaving really happened
    expect((await rowById(id)).accountnumber).toBe('second');
    // The late echo of our own first write is not a conflict (nothing changed in Salesforce but by us).
    expect((await h.db.query(`select * from hc.conflicts where sfid = $1`, [sfid])).rows).toEqual([]);
    h.emu.clearFaults();
    await until(async () => (await queueEmpty(h.db)) && sfByName('Flip')[0]?.AccountNumber === 'second', 'second update sent');
    await readerCaughtUp();
    expect((await rowById(id)).accountnumber).toBe('second');
  });

  it('revived delete: a row deleted locally stays gone while Salesforce changes the record; the delete reaches Salesforce once decided', async () => {
    const { id, sfid } = await created('Revive');
    holdWrites();
    await h.db.query(`delete from salesforce.account where id = $1`, [id]);
    await other.sobject('Account').update({ Id: sfid, Phone: '555-0199' });
    await readerCaughtUp();
    expect(await stillQueued(id)).toBe(true); // the delete was still pending when the change arrived
    expect(await row('Revive')).toEqual([]);
    // A delete against a change is a conflict; the default policy (manual) parks it until decided.
    const c = await until(async () => { const x = (await h.db.query(`select * from hc.conflicts where sfid = $1`, [sfid])).rows; return x.length > 0 && x; }, 'the conflict recorded');
    expect(c).toMatchObject([{ kind: 'pg_delete', policy: 'manual', winner: null }]);
    await h.db.query(`select hc.resolve_conflict($1, 'pg')`, [c[0].id]);
    h.emu.clearFaults();
    await until(async () => (await queueEmpty(h.db)) && sfByName('Revive').length === 0, 'delete sent');
    await readerCaughtUp();
    expect(await row('Revive')).toEqual([]);
  });

  it('re-inserted record: insert then delete before the first sync sends nothing and nothing comes back', async () => {
    // Paused, so both are queued before the writer looks (two transactions, as an app would do it).
    await h.db.query('select hc.pause()');
    const id = (await h.db.query(`insert into salesforce.account (name) values ('Ghost') returning id`)).rows[0].id;
    await h.db.query(`delete from salesforce.account where id = $1`, [id]);
    await h.db.query('select hc.resume()');
    await until(() => queueEmpty(h.db), 'queue settled');
    const states = (await h.db.query(
      `select action, state from (select * from salesforce._trigger_log union all select * from salesforce._trigger_log_archive) l
        where record_id = $1 order by id`, [id])).rows;
    expect(states).toEqual([{ action: 'INSERT', state: 'IGNORED' }, { action: 'DELETE', state: 'IGNORE' }]);
    await readerCaughtUp();
    expect(sfByName('Ghost')).toHaveLength(0);
    expect(await row('Ghost')).toEqual([]);
  });

  it('lost delete: a row deleted after its create landed but the answer was lost: the record is deleted too and the row does not come back', async () => {
    // The create lands and its answer is lost; later write calls are refused for a while, so the
    // application's delete comes while the create's outcome is unknown. The reader is running throughout.
    h.emu.injectFault({ kind: 'collections', action: 'drop-response', remaining: 1 });
    h.emu.injectFault({ kind: 'collections', errorCode: 'UNABLE_TO_LOCK_ROW', remaining: -1 });
    const calls = h.emu.stats().api.byKind.collections ?? 0;
    const id = (await h.db.query(`insert into salesforce.account (name) values ('Lost delete') returning id`)).rows[0].id;
    await until(async () => (h.emu.stats().api.byKind.collections ?? 0) >= calls + 2, 'the create sent, and sent again in vain');
    expect(sfByName('Lost delete')).toHaveLength(1);
    await readerCaughtUp();
    await h.db.query(`delete from salesforce.account where id = $1`, [id]);
    h.emu.clearFaults();
    await until(async () => (await queueEmpty(h.db)) && sfByName('Lost delete').length === 0, 'the record deleted in Salesforce');
    await readerCaughtUp();
    expect(await row('Lost delete')).toEqual([]);
    expect(h.emu.records('Account', { includeDeleted: true }).filter((r) => r.Name === 'Lost delete')).toHaveLength(1); // created once
  });

  it('a row deleted while its create is in flight: the new record is deleted too and does not come back', async () => {
    // The create call is answered only after a delay; the app deletes the row meanwhile.
    h.emu.injectFault({ kind: 'collections', action: 'delay', delayMs: 800, remaining: 1 });
    const id = (await h.db.query(`insert into salesforce.account (name) values ('Phantom') returning id`)).rows[0].id;
    await until(async () => (await h.db.query(`select state from salesforce._trigger_log where record_id = $1 and action = 'INSERT'`, [id])).rows[0]?.state === 'PENDING', 'create in flight');
    await h.db.query(`delete from salesforce.account where id = $1`, [id]);
    await until(async () => {
      const q = await queueEmpty(h.db);
      return q && sfByName('Phantom').length === 0;
    }, 'the created record deleted again');
    await readerCaughtUp();
    expect(await row('Phantom')).toEqual([]);
    expect(h.emu.records('Account', { includeDeleted: true }).filter((r) => r.Name === 'Phantom')).toHaveLength(1); // created once, then deleted
  });
});
