// A mapping whose config changes (a field removed: no re-sync) leaves the change stream and joins it
// again with its new field list, from its stored position. The stream hands it events from the moment
// it joins; the worker must take them as its own from that moment too, even when the database is slow
// to answer what the worker asks next. Events handed over in between were dropped, and since the
// stream had already moved the member's position past them, they never came again: Salesforce changes
// lost until the daily drift sweep (seen in CI as "timed out waiting for CDC after the column was dropped").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import type { Service } from '../../sidecar/context.js';
import { mappingState, setup, until, type Harness } from './harness.js';

let h: Harness;
let inbound: Service;
/** Milliseconds every query of the reader's pool waits before it is sent (0: none). */
let slow = 0;
const cfg = (fields: string[]) => ({ access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])) });

beforeAll(async () => {
  h = await setup({ seed: { Account: 30 } });
  const ctx = await h.context();
  // A slow database (a busy server, a far network): the reader's own pool, nothing else.
  const query = ctx.db.query.bind(ctx.db) as (...a: unknown[]) => Promise<unknown>;
  (ctx.db as unknown as { query: (...a: unknown[]) => Promise<unknown> }).query = async (...a: unknown[]) => {
    if (slow) await new Promise((r) => setTimeout(r, slow));
    return query(...a);
  };
  inbound = await startInbound(ctx);
  await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees'])]);
  await until(async () => {
    const m = await h.db.query(`select state, last_poll_at from hc._mappings where object_name = 'Account'`);
    return m.rows[0]?.state === 'DATA_SYNCED' && m.rows[0]?.last_poll_at;
  }, 'Account loaded and subscribed', 90_000);
}, 120_000);
afterAll(async () => {
  slow = 0;
  await inbound?.stop();
  await h?.close();
});

describe('joining the change stream again', () => {
  it('loses no change made while a mapping joins again after its config changed, on a slow database', async () => {
    const ids = (await h.db.query('select sfid from salesforce.account order by sfid')).rows.map((r) => r.sfid as string);
    slow = 400;
    await h.db.query('select hc.update_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted'])]);
    // Salesforce users go on changing records while the reader leaves and joins again (a few seconds
    // at 400 ms a query): each change to a record of its own, so none hides another.
    const sent = new Map<string, string>();
    for (const [i, id] of ids.entries()) {
      const name = `Rejoin ${i}`;
      await h.sf.conn.sobject('Account').update({ Id: id, Name: name });
      sent.set(id, name);
      await new Promise((r) => setTimeout(r, 150));
    }
    slow = 0;
    const names = async () => new Map((await h.db.query('select sfid, name from salesforce.account')).rows.map((r) => [r.sfid, r.name]));
    const arrived = async () => {
      const m = await names();
      return [...sent].filter(([id, n]) => m.get(id) !== n).map(([id, n]) => `${id}: ${m.get(id)} (sent ${n})`);
    };
    // Waits a while for the stragglers, then names those that never came.
    await until(async () => (await arrived()).length === 0, 'every change', 30_000).catch(() => {});
    expect(await arrived(), 'changes that never reached the table').toEqual([]);
    expect((await mappingState(h.db, 'Account')).state).toBe('DATA_SYNCED');
    const cols = (await h.db.query(`select column_name from information_schema.columns where table_schema = 'salesforce' and table_name = 'account'`)).rows.map((r) => r.column_name);
    expect(cols).not.toContain('numberofemployees');
  }, 150_000);
});
