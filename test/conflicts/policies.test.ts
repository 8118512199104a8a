// Two writers, one record, under each conflict_policy, end to end: the sidecar's reader and writer
// in-process against the emulator, with another Salesforce user. The interleavings are forced, not hoped
// for: the writer is held back (stopped) so that a local change is still waiting when Salesforce's change
// event is applied, and the reader is held back (a late reader) when Salesforce's change must arrive
// after a later local one. Each test asserts the outcome on both sides, the hc.conflicts row, and that
// the sides converge; for manual, that nothing is overwritten until hc.resolve_conflict decides, and
// that both sides then hold the chosen values.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { conflictFound, conflictsOf, created, rig, rowById, rowBySfid, setPolicy, settled, sfRecord, until, writerPassed, type Rig } from './harness.js';

let r: Rig;
beforeAll(async () => {
  r = await rig();
}, 120_000);
afterAll(async () => {
  await r?.close();
});

const POLICIES = ['sf_wins', 'pg_wins', 'latest', 'manual'] as const;
/** Who wins when Salesforce's change is the later one. */
const laterSfWinner = { sf_wins: 'sf', pg_wins: 'pg', latest: 'sf', manual: null } as const;

describe.each(POLICIES)('conflict_policy %s', { timeout: 120_000 }, (policy) => {
  beforeAll(async () => {
    await setPolicy(r.h, policy);
  });
  beforeEach(async () => {
    await r.writerOn();
    await r.readerOn();
  });

  it('the same field changed on both sides', async () => {
    const { h, other } = r;
    const { id, sfid } = await created(h, `Same ${policy}`);
    await r.writerOff();
    await h.db.query(`update salesforce.account set phone = 'pg-phone' where id = $1`, [id]);
    await other.sobject('Account').update({ Id: sfid, Phone: 'sf-phone' });
    const [c] = await conflictFound(h, sfid);
    expect(c).toMatchObject({ kind: 'update', fields: ['Phone'], columns: ['phone'], policy, winner: laterSfWinner[policy],
                              pg_values: { phone: 'pg-phone' }, sf_values: { phone: 'sf-phone' }, base_values: { phone: null } });
    expect(c.pg_at).toBeTruthy();
    expect(c.sf_at).toBeTruthy();
    expect(c.resolved_at === null).toBe(policy === 'manual');
    await r.writerOn();
    await settled(h);
    const want = { sf_wins: 'sf-phone', pg_wins: 'pg-phone', latest: 'sf-phone', manual: null }[policy];
    if (want) {
      expect((await rowById(h, id)).phone).toBe(want);
      expect(sfRecord(h, sfid)?.Phone).toBe(want);
    } else {
      // Parked: each side keeps its own value, and the local entry ended IGNORED naming the conflict.
      await writerPassed(h, `Probe ${policy} same`);
      expect((await rowById(h, id)).phone).toBe('pg-phone');
      expect(sfRecord(h, sfid)?.Phone).toBe('sf-phone');
      const e = (await h.db.query(`select state, sf_message from (select * from salesforce._trigger_log union all select * from salesforce._trigger_log_archive) l
                                    where record_id = $1 and action = 'UPDATE' order by id desc limit 1`, [id])).rows[0];
      expect(e).toMatchObject({ state: 'IGNORED' });
      expect(e.sf_message).toMatch(new RegExp(`conflict ${c.id} is parked`));
      expect(await rowById(h, id)).toMatchObject({ _hc_lastop: 'FAILED', _hc_err: `CONFLICT: ${e.sf_message}` }); // not PENDING for ever
      const done = (await h.db.query(`select hc.resolve_conflict($1, 'pg') r`, [c.id])).rows[0].r;
      expect(done).toMatchObject({ winner: 'pg', resolution: 'operator' });
      await settled(h);
      expect((await rowById(h, id)).phone).toBe('pg-phone');
      expect(sfRecord(h, sfid)?.Phone).toBe('pg-phone');
    }
    expect(await conflictsOf(h, sfid)).toHaveLength(1);
  });

  it.runIf(policy === 'latest')('latest: a Salesforce change made before the local one, arriving after it (late reader), loses', async () => {
    const { h, other } = r;
    const { id, sfid } = await created(h, 'Latest late');
    await r.writerOff();
    await r.readerOff();
    await other.sobject('Account').update({ Id: sfid, Phone: 'sf-earlier' });
    await new Promise((res) => setTimeout(res, 1100)); // the commit times differ by more than Salesforce's whole seconds
    await h.db.query(`update salesforce.account set phone = 'pg-later' where id = $1`, [id]);
    await r.readerOn();
    expect(await conflictFound(h, sfid)).toMatchObject([{ policy: 'latest', winner: 'pg', pg_values: { phone: 'pg-later' }, sf_values: { phone: 'sf-earlier' } }]);
    await r.writerOn();
    await settled(h);
    expect((await rowById(h, id)).phone).toBe('pg-later');
    expect(sfRecord(h, sfid)?.Phone).toBe('pg-later');
  });

  it('different fields changed on both sides are merged, not a conflict', async () => {
    const { h, other } = r;
    const { id, sfid } = await created(h, `Merge ${policy}`);
    await r.writerOff();
    await h.db.query(`update salesforce.account set accountnumber = 'pg-an' where id = $1`, [id]);
    await other.sobject('Account').update({ Id: sfid, Phone: 'sf-merge' });
    await until(async () => (await rowById(h, id)).phone === 'sf-merge', 'Salesforce\'s change applied');
    expect(await conflictsOf(h, sfid)).toEqual([]);
    expect(await rowById(h, id)).toMatchObject({ accountnumber: 'pg-an', phone: 'sf-merge' });
    await r.writerOn();
    await settled(h);
    expect(await rowById(h, id)).toMatchObject({ accountnumber: 'pg-an', phone: 'sf-merge' });
    expect(sfRecord(h, sfid)).toMatchObject({ AccountNumber: 'pg-an', Phone: 'sf-merge' });
  });

  it('a conflict during a reload: the reload\'s page meets a local change made while it runs', async () => {
    const { h, other } = r;
    const { id, sfid } = await created(h, `Reload ${policy}`);
    // Every query is answered 2.5 s late, so the local change and Salesforce's both land after the reload
    // began (it refuses to begin while local changes wait) and before its page is read.
    h.emu.injectFault({ kind: 'any', path: '/query', action: 'delay', delayMs: 2500, remaining: -1 });
    try {
      await h.db.query(`select hc.reload('Account')`);
      await until(async () => (await h.db.query(`select state from hc._mappings`)).rows[0].state === 'RELOAD_TABLE', 'reload running');
      await new Promise((res) => setTimeout(res, 500)); // (hc.inbound_begin_reload follows the state at once)
      await h.db.query(`update salesforce.account set phone = 'pg-reload' where id = $1`, [id]);
      await other.sobject('Account').update({ Id: sfid, Phone: 'sf-reload' });
      expect((await h.db.query(`select state from hc._mappings`)).rows[0].state).toBe('RELOAD_TABLE'); // both edits during the reload
      const [c] = await conflictFound(h, sfid);
      // (found by the reload's page, or by the change event when it is applied first)
      expect(c).toMatchObject({ kind: 'update', columns: ['phone'], policy, winner: laterSfWinner[policy],
                                pg_values: { phone: 'pg-reload' }, sf_values: { phone: 'sf-reload' } });
      expect(['load', 'cdc']).toContain(c.origin);
    } finally {
      h.emu.clearFaults();
    }
    await until(async () => (await h.db.query(`select state from hc._mappings`)).rows[0].state === 'DATA_SYNCED', 'reload done');
    await settled(h);
    const [c] = await conflictsOf(h, sfid);
    if (policy === 'manual') {
      expect((await rowById(h, id)).phone).toBe('pg-reload');
      expect(sfRecord(h, sfid)?.Phone).toBe('sf-reload');
      await h.db.query(`select hc.resolve_conflict($1, 'sf')`, [c.id]);
      await settled(h);
    }
    const want = { sf_wins: 'sf-reload', pg_wins: 'pg-reload', latest: 'sf-reload', manual: 'sf-reload' }[policy];
    await until(async () => (await rowById(h, id)).phone === want, `the row holds ${want}`);
    expect(sfRecord(h, sfid)?.Phone).toBe(want);
    expect(await conflictsOf(h, sfid)).toHaveLength(1);
  });

  it('a conflict while paused: both sides edited, then resume', async () => {
    const { h, other } = r;
    const { id, sfid } = await created(h, `Paused ${policy}`);
    await h.db.query(`select hc.pause()`);
    await h.db.query(`update salesforce.account set phone = 'pg-paused' where id = $1`, [id]);
    await other.sobject('Account').update({ Id: sfid, Phone: 'sf-paused' });
    await h.db.query(`select hc.resume()`);
    const [c] = await conflictFound(h, sfid);
    expect(c).toMatchObject({ kind: 'update', columns: ['phone'], policy, winner: laterSfWinner[policy],
                              pg_values: { phone: 'pg-paused' }, sf_values: { phone: 'sf-paused' } });
    await settled(h);
    if (policy === 'manual') {
      expect((await rowById(h, id)).phone).toBe('pg-paused');
      // Salesforce keeps its value unless the writer had sent ours before the change event was read
      // (after a resume both start at once): then the conflict says so, and the choice is sent anyway.
      if (!c.sf_overwritten) expect(sfRecord(h, sfid)?.Phone).toBe('sf-paused');
      const done = (await h.db.query(`select hc.resolve_conflict($1, $2::jsonb) r`, [c.id, JSON.stringify({ Phone: 'chosen' })])).rows[0].r;
      expect(done).toMatchObject({ winner: 'values', resolution: 'operator' });
      await settled(h);
    }
    const want = { sf_wins: 'sf-paused', pg_wins: 'pg-paused', latest: 'sf-paused', manual: 'chosen' }[policy];
    await until(async () => (await rowById(h, id)).phone === want && sfRecord(h, sfid)?.Phone === want, `both sides hold ${want}`);
  });

  it('deleted in Postgres while changed in Salesforce', async () => {
    const { h, other } = r;
    const { id, sfid } = await created(h, `PgDel ${policy}`);
    await r.writerOff();
    // Local changes before the delete: when Salesforce's change wins, the value of the field it changed
    // is not sent (Salesforce's stands), and a field it did not change goes as any local change does.
    await h.db.query(`update salesforce.account set accountnumber = 'pg-acct', phone = 'pg-phone' where id = $1`, [id]);
    await h.db.query(`delete from salesforce.account where id = $1`, [id]);
    await other.sobject('Account').update({ Id: sfid, Phone: 'sf-kept' });
    const [c] = await conflictFound(h, sfid);
    expect(c).toMatchObject({ kind: 'pg_delete', record_id: id, policy, winner: laterSfWinner[policy] });
    expect(c.sf_values).toMatchObject({ phone: 'sf-kept' });
    if (!c.winner || c.winner === 'pg') expect(await rowBySfid(h, sfid)).toBeUndefined(); // nothing revived unless Salesforce won
    await r.writerOn();
    await settled(h);
    const sfWins = async () => {
      // The record stays, and the row comes back from it (read again): recorded, not silent.
      await until(async () => (await rowBySfid(h, sfid))?.phone === 'sf-kept', 'the row read back');
      expect(sfRecord(h, sfid)?.Phone).toBe('sf-kept');
      await until(async () => (await rowBySfid(h, sfid))?.accountnumber === 'pg-acct' && sfRecord(h, sfid)?.AccountNumber === 'pg-acct',
                  'the change Salesforce did not touch sent');
      await writerPassed(h, `Probe ${policy} pgdel sent`);
      expect(sfRecord(h, sfid)?.Phone).toBe('sf-kept');
      expect((await rowBySfid(h, sfid))?.phone).toBe('sf-kept');
    };
    if (policy === 'pg_wins') {
      expect(sfRecord(h, sfid)).toBeUndefined();
      expect(await rowBySfid(h, sfid)).toBeUndefined();
    } else if (policy === 'manual') {
      await writerPassed(h, `Probe ${policy} pgdel`);
      expect(sfRecord(h, sfid)?.Phone).toBe('sf-kept'); // the delete is held, not sent
      expect(await rowBySfid(h, sfid)).toBeUndefined(); // and the row is not revived
      await h.db.query(`select hc.resolve_conflict($1, 'sf')`, [c.id]);
      await sfWins();
    } else {
      await sfWins();
    }
  });

  it('deleted in Salesforce while changed in Postgres', async () => {
    const { h, other } = r;
    const { id, sfid } = await created(h, `SfDel ${policy}`);
    await r.writerOff();
    await h.db.query(`update salesforce.account set phone = 'pg-edit' where id = $1`, [id]);
    await other.sobject('Account').destroy(sfid);
    const [c] = await conflictFound(h, sfid);
    expect(c).toMatchObject({ kind: 'sf_delete', record_id: id, policy, winner: laterSfWinner[policy], pg_values: { phone: 'pg-edit' } });
    await r.writerOn();
    await settled(h);
    const recreated = async () => {
      const row = await until(async () => { const x = await rowById(h, id); return x?.sfid && x.sfid !== sfid && x; }, 'the record created again');
      expect(row.phone).toBe('pg-edit');
      expect(sfRecord(h, row.sfid)?.Phone).toBe('pg-edit');
    };
    if (policy === 'pg_wins') {
      await recreated();
    } else if (policy === 'manual') {
      await writerPassed(h, `Probe ${policy} sfdel`);
      expect((await rowById(h, id))?.phone).toBe('pg-edit'); // the row is not removed
      expect(sfRecord(h, sfid)).toBeUndefined(); // and nothing is sent for it
      await h.db.query(`select hc.resolve_conflict($1, 'pg')`, [c.id]);
      await settled(h);
      await recreated();
    } else {
      expect(await rowById(h, id)).toBeUndefined();
      expect(sfRecord(h, sfid)).toBeUndefined();
    }
  });
});

// Heroku Connect resolves a conflict by whichever sync cycle writes last, and says nothing: a Salesforce
// user's later edit is overwritten by the older pending Postgres change when the writer's cycle runs
// after it. pg_wins gives that same outcome (it is the policy closest to Heroku Connect's), so the
// contrast is what remains: the overwritten edit is a row of hc.conflicts, with its value and time.
describe('for contrast: Heroku Connect\'s silent last-writer-wins', { timeout: 120_000 }, () => {
  it('under pg_wins (Heroku Connect\'s outcome) a later Salesforce edit is overwritten on both sides, but recorded with its value', async () => {
    const { h, other } = r;
    await r.writerOn();
    await r.readerOn();
    await setPolicy(h, 'pg_wins');
    const { id, sfid } = await created(h, 'HC contrast');
    await r.writerOff(); // the writer's next cycle comes after the Salesforce user's edit
    await h.db.query(`update salesforce.account set phone = '555-0100 (app, earlier)' where id = $1`, [id]);
    await new Promise((res) => setTimeout(res, 1100)); // Salesforce's edit is later by whole seconds
    await other.sobject('Account').update({ Id: sfid, Phone: '555-0199 (sales rep, later)' });
    const [c] = await conflictFound(h, sfid);
    await r.writerOn();
    await settled(h);
    // Heroku Connect's outcome: the sales rep's later edit is gone from both sides.
    expect((await rowById(h, id)).phone).toBe('555-0100 (app, earlier)');
    expect(sfRecord(h, sfid)?.Phone).toBe('555-0100 (app, earlier)');
    // What Heroku Connect does not have: the overwritten edit, its time, and who won by which rule.
    expect(c).toMatchObject({ policy: 'pg_wins', winner: 'pg', resolution: 'policy', sf_values: { phone: '555-0199 (sales rep, later)' } });
    expect(new Date(c.sf_at).getTime()).toBeGreaterThanOrEqual(new Date(c.pg_at).getTime() - 1000);
    // Under latest the same interleaving keeps the later edit: the one a careful user expects to stand.
    await setPolicy(h, 'latest');
    const b = await created(h, 'HC contrast latest');
    await r.writerOff();
    await h.db.query(`update salesforce.account set phone = '555-0100 (app, earlier)' where id = $1`, [b.id]);
    await new Promise((res) => setTimeout(res, 1100));
    await other.sobject('Account').update({ Id: b.sfid, Phone: '555-0199 (sales rep, later)' });
    expect(await conflictFound(h, b.sfid)).toMatchObject([{ policy: 'latest', winner: 'sf' }]);
    await r.writerOn();
    await settled(h);
    expect((await rowById(h, b.id)).phone).toBe('555-0199 (sales rep, later)');
    expect(sfRecord(h, b.sfid)?.Phone).toBe('555-0199 (sales rep, later)');
  });
});
