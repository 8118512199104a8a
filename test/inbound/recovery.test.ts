// Recovery paths of the inbound reader that need a running stream or load: GAP_OVERFLOW (Salesforce
// says events were lost) is answered by a SystemModstamp re-read; an access token that expires under a
// live subscription (401 Authentication invalid) is refreshed and the subscription resumes without
// losing a change; hc.abort stops a running load between pages and a reload afterwards completes it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../sidecar/context.js';
import { mappingState, setup, until, withoutChangeEvents, type Harness } from './harness.js';
import { TEST_STREAM } from '../support/sidecar.js';

let h: Harness;
let inbound: Service;
const cfg = (fields: string[]) => ({ access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])) });
const nameOf = async (id: string) => (await h.db.query('select name from salesforce.account where sfid = $1', [id])).rows[0]?.name;

beforeAll(async () => {
  h = await setup({ seed: { Account: 20, Contact: 6000 } });
  inbound = await h.startInbound();
  await h.db.query('select hc.create_mapping($1, $2)', ['Account', cfg(['Id', 'Name', 'SystemModstamp', 'IsDeleted', 'NumberOfEmployees'])]);
  // Loaded, and the first catch-up re-read after subscribing is done: from here on only CDC applies.
  await until(async () => {
    const m = await h.db.query(`select state, last_poll_at from hc._mappings where object_name = 'Account'`);
    return m.rows[0]?.state === 'DATA_SYNCED' && m.rows[0]?.last_poll_at;
  }, 'Account loaded and subscribed');
}, 120_000);
afterAll(async () => {
  await inbound?.stop();
  await h?.close();
});

describe('inbound recovery', () => {
  it('GAP_OVERFLOW: changes whose events were lost are re-read by SystemModstamp', async () => {
    const [lost, seen] = (await h.db.query('select sfid from salesforce.account order by sfid limit 2')).rows.map((r) => r.sfid);
    await withoutChangeEvents(h.emu, () => h.sf.conn.sobject('Account').update({ Id: lost, Name: 'Lost Event Co' }));
    // The stream itself is alive (this change arrives), yet the lost one does not: no event, no row change.
    await h.sf.conn.sobject('Account').update({ Id: seen, Name: 'Seen Event Co' });
    await until(async () => (await nameOf(seen)) === 'Seen Event Co', 'the change with an event');
    expect(await nameOf(lost)).not.toBe('Lost Event Co');
    h.emu.injectGap('Account', 'GAP_OVERFLOW');
    await until(async () => (await nameOf(lost)) === 'Lost Event Co', 're-read after GAP_OVERFLOW');
    expect((await mappingState(h.db, 'Account')).state).toBe('DATA_SYNCED');
  });

  it('an access token expiring under a live subscription is refreshed; no change is lost', async () => {
    const ids = (await h.db.query('select sfid from salesforce.account order by sfid limit 6')).rows.map((r) => r.sfid);
    const before = h.emu.stats().notCounted;
    expect(h.emu.expireTokens()).toBeGreaterThan(0);
    // Changes keep coming while the stream meets 401::Authentication invalid and signs in again.
    for (let i = 0; i < ids.length; i++) {
      await h.sf.conn.sobject('Account').update({ Id: ids[i], NumberOfEmployees: 4200 + i });
      await new Promise((r) => setTimeout(r, 50));
    }
    await until(async () => {
      const r = await h.db.query('select count(*)::int n from salesforce.account where sfid = any($1) and numberofemployees = 4200 + array_position($1, sfid) - 1', [ids]);
      return r.rows[0].n === ids.length;
    }, 'every change after the token expired');
    // CometD: the subscription was built again on a fresh session (a new handshake and subscribe). A Pub/Sub
    // stream is authenticated when it opens and goes on (the next test has it open again on an expired token).
    if (TEST_STREAM === 'cometd') {
      await until(async () => {
        const after = h.emu.stats().notCounted;
        return after.streamingHandshakes > before.streamingHandshakes && after.streamingSubscribes > before.streamingSubscribes;
      }, 'a new handshake and subscription');
    }
    const later = (await h.sf.conn.sobject('Account').create({ Name: 'After Refresh' })) as { id: string };
    await until(async () => (await nameOf(later.id)) === 'After Refresh', 'a change on the refreshed subscription');
  });

  it('a dropped session whose re-handshake meets an expired token signs in again; no change is lost', async () => {
    const ids = (await h.db.query('select sfid from salesforce.account order by sfid limit 4')).rows.map((r) => r.sfid);
    h.emu.expireTokens();
    const before = h.emu.stats().pubsub;
    const dropped = TEST_STREAM === 'cometd' ? h.emu.dropStreamingSessions() : h.emu.server.pubsub.dropStreams();
    expect(dropped).toBeGreaterThan(0);
    for (let i = 0; i < ids.length; i++) await h.sf.conn.sobject('Account').update({ Id: ids[i], NumberOfEmployees: 5300 + i });
    await until(async () => {
      const r = await h.db.query('select count(*)::int n from salesforce.account where sfid = any($1) and numberofemployees = 5300 + array_position($1, sfid) - 1', [ids]);
      return r.rows[0].n === ids.length;
    }, 'every change after the drop and the expiry');
    if (TEST_STREAM === 'pubsub') {
      // Refused on the expired token (UNAUTHENTICATED), then subscribed again on a fresh session.
      const after = h.emu.stats().pubsub;
      expect(after.rejected).toBeGreaterThan(before.rejected + dropped);
      expect(after.subscribes).toBeGreaterThan(before.subscribes);
    }
  });

  it('a queued re-read whose apply fails is tried again without any further change event', async () => {
    // Records an apply could not take as they came wait in hc.inbound_rereads (and echoes of our creates
    // in hc.inbound_deferred_echoes) for a timer. When the apply that timer started failed (Postgres
    // restarting, a session terminated), nothing set the timer again: with no further change event for
    // the object the record stayed behind for good (the 30-minute soak's rows without SystemModstamp).
    const m = (await h.db.query(`select id from hc._mappings where object_name = 'Account'`)).rows[0].id as number;
    const [x] = (await h.db.query('select sfid from salesforce.account order by sfid desc limit 1')).rows.map((r) => r.sfid as string);
    await withoutChangeEvents(h.emu, () => h.sf.conn.sobject('Account').update({ Id: x, Name: 'Read Again Co' }));
    await h.db.query(`create table public.reread_fault (on_ boolean); insert into public.reread_fault values (true);
      create sequence public.reread_fault_hits;
      create function public.reread_fault() returns trigger language plpgsql as $f$
      begin
        if exists (select 1 from public.reread_fault) then
          perform nextval('public.reread_fault_hits');
          raise exception 'injected: the re-read apply fails';
        end if;
        return old;
      end $f$;
      create trigger reread_fault before delete on hc.inbound_rereads for each row execute function public.reread_fault();`);
    try {
      await h.db.query(`insert into hc.inbound_rereads (mapping_id, sfid, not_before) values ($1, $2, now())`, [m, x]);
      await h.db.query(`select pg_notify('hc_control', 'salesforce')`);
      await until(async () => (await h.db.query('select is_called from public.reread_fault_hits')).rows[0].is_called, 'the re-read tried, and failed');
      await h.db.query('delete from public.reread_fault');
      // (Over CometD the failed apply also resubscribes, and the re-read by SystemModstamp that follows
      // may bring the name first: the queued re-read must still be done and leave the queue.)
      await until(async () => (await nameOf(x)) === 'Read Again Co' &&
        (await h.db.query('select count(*)::int n from hc.inbound_rereads where mapping_id = $1', [m])).rows[0].n === 0,
      'the re-read tried again, applied and gone from the queue', 30_000);
    } finally {
      await h.db.query(`drop trigger reread_fault on hc.inbound_rereads; drop function public.reread_fault();
                        drop table public.reread_fault; drop sequence public.reread_fault_hits`);
    }
  });

  it('a re-read queued for now is not kept waiting by a timer already set for a later one', async () => {
    // The reader's re-read timer is set for the earliest due record. A record queued after it, due
    // sooner (a phantom row removed by the writer queues one for now), waited for the later timer.
    const m = (await h.db.query(`select id from hc._mappings where object_name = 'Account'`)).rows[0].id as number;
    const [late, soon] = (await h.db.query('select sfid from salesforce.account order by sfid limit 2')).rows.map((r) => r.sfid as string);
    await h.db.query(`insert into hc.inbound_rereads (mapping_id, sfid, not_before) values ($1, $2, now() + interval '60 seconds')`, [m, late]);
    await h.db.query(`select pg_notify('hc_control', 'salesforce')`);
    // The nudge's re-read of the mapping has armed the timer for the later record: a positive sign is
    // the next nudge being handled, so nudge until a probe record queued for now, read, leaves the queue.
    await withoutChangeEvents(h.emu, () => h.sf.conn.sobject('Account').update({ Id: soon, Name: 'Soon Co' }));
    await h.db.query(`insert into hc.inbound_rereads (mapping_id, sfid, not_before) values ($1, $2, now())`, [m, soon]);
    await h.db.query(`select pg_notify('hc_control', 'salesforce')`);
    await until(async () => (await nameOf(soon)) === 'Soon Co', 'the record due now read again (not after the 60 s one)', 20_000);
    expect((await h.db.query('select count(*)::int n from hc.inbound_rereads where mapping_id = $1 and sfid = $2', [m, late])).rows[0].n).toBe(1);
    await h.db.query('delete from hc.inbound_rereads where mapping_id = $1', [m]);
  });

  it('hc.abort stops a running load between pages (or before it starts); a reload afterwards completes it', async () => {
    h.emu.setLatency(600); // REST pages of 2,000 rows: each page now takes long enough for the abort to land
    try {
      await h.db.query('select hc.create_mapping($1, $2)', ['Contact', cfg(['Id', 'SystemModstamp', 'IsDeleted', 'LastName', 'Email'])]);
      await until(async () => {
        const m = (await h.db.query(`select state, progress from hc._mappings where object_name = 'Contact'`)).rows[0];
        return m?.state === 'POLLING_SF_CHANGES' && Number(m.progress?.rows) >= 2000;
      }, 'first page of the Contact load applied');
      await h.db.query(`select hc.abort('Contact')`);
      const s = await until(async () => {
        const m = await mappingState(h.db, 'Contact');
        return m.state === 'ABORTED' ? m : null;
      }, 'Contact ABORTED');
      expect(s.state_message).toMatch(/aborted/);
      const partial = (await h.db.query('select count(*)::int n from salesforce.contact')).rows[0].n;
      expect(partial).toBeGreaterThan(0);
      expect(partial).toBeLessThan(6000);
      // Nothing runs for an aborted mapping: no subscription, no further pages.
      const loadLog = await h.db.query(`select count(*)::int n from hc.sync_log where event = 'load' and mapping_id = (select id from hc._mappings where object_name = 'Contact')`);
      expect(loadLog.rows[0].n).toBe(0);
    } finally {
      h.emu.setLatency(0);
    }
    // An abort taken while the object is still being described (or the load is queued) wins as well.
    h.emu.setLatency(600);
    try {
      await h.db.query('select hc.create_mapping($1, $2)', ['Opportunity', cfg(['Id', 'SystemModstamp', 'IsDeleted', 'Name'])]);
      await new Promise((r) => setTimeout(r, 250)); // the (slowed) describe is under way
      await h.db.query(`select hc.abort('Opportunity')`);
      await until(async () => (await mappingState(h.db, 'Opportunity')).state === 'ABORTED', 'Opportunity ABORTED');
      // A mapping's work runs one piece at a time, so a poll requested now runs only after whatever was
      // queued before it: a load that ignored the abort would have counted (and said "loading N rows")
      // by then. The poll's query reaching the call ledger is the signal; the load's traces must not exist.
      await h.db.query(`select hc.poll_now('Opportunity')`);
      await until(
        async () => (await h.db.query(`select count(*)::int n from hc.api_calls where path like '%Opportunity%ORDER%BY%SystemModstamp%'`)).rows[0].n > 0,
        'the later poll of Opportunity sent',
      );
      expect((await h.db.query(`select count(*)::int n from hc.api_calls where path like '%COUNT%Opportunity%'`)).rows[0].n).toBe(0);
      const traces = await h.db.query(
        `select event, message from hc.sync_log
          where mapping_id = (select id from hc._mappings where object_name = 'Opportunity') and (event = 'load' or message like 'loading %')`,
      );
      expect(traces.rows).toEqual([]);
    } finally {
      h.emu.setLatency(0);
    }
    await h.db.query(`select hc.reload('Contact')`);
    await until(async () => (await mappingState(h.db, 'Contact')).state === 'DATA_SYNCED', 'Contact reloaded');
    expect((await h.db.query('select count(*)::int n from salesforce.contact')).rows[0].n).toBe(6000);
  });
});
