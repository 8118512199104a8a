// What Salesforce automation does to a value the application wrote comes back to the application's row,
// with CDC on (the reader and the writer together). The emulator's default org has a real org's kind of
// automation: a before-save flow lower-casing Contact.Email, one setting Account.Rating to 'Hot' when
// AnnualRevenue reaches 10,000,000, and an after-save flow stamping Account.Last_Touched__c when Phone
// changes. The change events of our own writes carry those values; before this test they were left out
// (the echo of a create whose sfid was not written back yet) or kept out as "sent" with nothing that read
// the record again, so the row read SYNCED while Salesforce held something else. Found by the
// convergence test's full mix (every run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { ACCOUNT_FIELDS, setup, until, queueEmpty, type Harness } from '../outbound/harness.js';

let h: Harness;
let reader: Service;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged', accountFields: [...ACCOUNT_FIELDS, 'AnnualRevenue', 'Rating', 'Last_Touched__c'] });
  const contact = await h.ctx.sf.conn.sobject('Contact').describe();
  const fields = ['Id', 'LastName', 'FirstName', 'Email', 'SystemModstamp', 'IsDeleted'];
  await h.db.query('select hc.create_mapping($1, $2, $3)', ['Contact', { access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])) }, contact]);
  reader = await startInbound(h.ctx);
  await h.startWriter({ maxBackoffMs: 300 });
  await until(async () => {
    const m = (await h.db.query(`select state, last_poll_at from hc._mappings`)).rows;
    return m.length === 2 && m.every((x) => x.state === 'DATA_SYNCED' && x.last_poll_at);
  }, 'mappings synced and subscribed', 90_000);
}, 120_000);
afterAll(async () => {
  await reader?.stop();
  await h?.close();
});

/** Waits until the row matches Salesforce's record on `fields` (and nothing is left to send). */
async function converges(table: 'account' | 'contact', id: number, fields: string[]): Promise<Record<string, unknown>> {
  let last = '';
  return until(async () => {
    const row = (await h.db.query(`select * from salesforce.${table} where id = $1`, [id])).rows[0];
    if (!row?.sfid || !(await queueEmpty(h.db))) return false;
    const rec = h.emu.records(table === 'account' ? 'Account' : 'Contact').find((r) => r.Id === row.sfid)!;
    const diff = fields.filter((f) => {
      const a = row[f.toLowerCase()];
      const b = rec[f];
      if (a instanceof Date || f === 'SystemModstamp' || f.endsWith('__c')) return (a ? new Date(a + (a instanceof Date ? '' : 'Z')).getTime() : null) !== (b ? Date.parse(String(b).replace(/\+0000$/, 'Z')) : null);
      return String(a ?? '') !== String(b ?? '');
    });
    last = diff.map((f) => `${f}: pg ${JSON.stringify(row[f.toLowerCase()])} sf ${JSON.stringify(rec[f])}`).join('; ');
    return diff.length === 0 && row;
  }, () => `row ${table} ${id} matches Salesforce (${last})`, 30_000);
}

describe('values Salesforce automation sets come back to the row that sent them', { timeout: 120_000 }, () => {
  it('an insert: Rating set from AnnualRevenue before save, and SystemModstamp', async () => {
    const id = (await h.db.query(`insert into salesforce.account (name, annualrevenue) values ('Flow insert', 20000000) returning id`)).rows[0].id as number;
    const row = await converges('account', id, ['Rating', 'AnnualRevenue', 'SystemModstamp']);
    expect(row.rating).toBe('Hot');
    expect(row.systemmodstamp).not.toBeNull();
    expect(row._hc_lastop).not.toBe('PENDING');
  });

  it('an update: Rating set before save; Last_Touched__c stamped after save on a Phone change', async () => {
    const id = (await h.db.query(`insert into salesforce.account (name, annualrevenue, rating) values ('Flow update', 5, 'Cold') returning id`)).rows[0].id as number;
    await converges('account', id, ['Rating', 'AnnualRevenue']);
    await h.db.query(`update salesforce.account set annualrevenue = 15000000 where id = $1`, [id]);
    expect((await converges('account', id, ['Rating', 'AnnualRevenue', 'SystemModstamp'])).rating).toBe('Hot');
    await h.db.query(`update salesforce.account set phone = '555-0199' where id = $1`, [id]);
    expect((await converges('account', id, ['Phone', 'Last_Touched__c', 'SystemModstamp'])).last_touched__c).not.toBeNull();
  });

  it('an Email lower-cased before save, on insert and on update', async () => {
    const id = (await h.db.query(`insert into salesforce.contact (lastname, email) values ('Flow', 'Ada.Lovelace@Example.COM') returning id`)).rows[0].id as number;
    expect((await converges('contact', id, ['Email', 'SystemModstamp'])).email).toBe('ada.lovelace@example.com');
    await h.db.query(`update salesforce.contact set email = 'Grace.Hopper@Example.COM' where id = $1`, [id]);
    expect((await converges('contact', id, ['Email', 'SystemModstamp'])).email).toBe('grace.hopper@example.com');
  });

  it('a burst of inserts: every row gets what automation set, with a handful of extra reads at most', async () => {
    const before = h.emu.stats().api.byKind.query ?? 0;
    const ids = (await h.db.query(`insert into salesforce.account (name, annualrevenue) select 'Flow burst ' || g, 10000000 + g from generate_series(1, 300) g returning id`)).rows.map((r) => r.id as number);
    for (const id of ids) await converges('account', id, ['Rating', 'SystemModstamp']);
    const reads = (h.emu.stats().api.byKind.query ?? 0) - before;
    console.log(`300 inserts rewritten by a flow: ${reads} queries`);
    expect(reads).toBeLessThanOrEqual(10);
  });
});

describe('the echo of a write whose outcome is not recorded yet', () => {
  it('a value Salesforce rewrote, arriving while our entry is still PENDING, makes the record be read again', async () => {
    // The write went out and Salesforce answered; the writer has not recorded the answer yet (its entry
    // is PENDING), and the echo, carrying the flow's lower-cased Email, is applied first. The column is
    // "pending" then, and kept; only a re-read of the record can bring the rewritten value back.
    const m = (await h.db.query(`select id from hc._mappings where object_name = 'Contact'`)).rows[0].id as number;
    const id = (await h.db.query(`insert into salesforce.contact (lastname, email) values ('Race', 'race@example.com') returning id`)).rows[0].id as number;
    const { sfid } = await converges('contact', id, ['Email']);
    await h.db.query(`select hc.pause()`);
    try {
      await h.db.query(`update salesforce.contact set email = 'Race.Two@Example.COM' where id = $1`, [id]);
      await h.db.query(`update salesforce._trigger_log set state = 'PENDING' where record_id = $1 and state = 'NEW'`, [id]);
      const batch = {
        touched: [sfid],
        waves: [{ groups: [{ origin: 'cdc-echo', fields: ['Id', 'Email', 'hcsync_at'], rows: [{ Id: sfid, Email: 'race.two@example.com', hcsync_at: new Date().toISOString() }] }], deletes: [] }],
        echo: [sfid],
      };
      await h.db.query(`delete from hc.inbound_rereads`);
      await h.db.query('select hc.inbound_apply($1, $2)', [m, JSON.stringify(batch)]);
      expect((await h.db.query(`select email from salesforce.contact where id = $1`, [id])).rows[0].email).toBe('Race.Two@Example.COM'); // kept: pending
      expect((await h.db.query(`select sfid from hc.inbound_rereads where mapping_id = $1`, [m])).rows.map((r) => r.sfid)).toEqual([sfid]);
      // Not for someone else's change (that one is a conflict with the pending value, which will be sent).
      await h.db.query(`delete from hc.inbound_rereads`);
      batch.waves[0].groups[0].origin = 'cdc';
      await h.db.query('select hc.inbound_apply($1, $2)', [m, JSON.stringify(batch)]);
      expect((await h.db.query(`select count(*)::int n from hc.inbound_rereads where mapping_id = $1`, [m])).rows[0].n).toBe(0);
      await h.db.query(`update salesforce._trigger_log set state = 'NEW' where record_id = $1 and state = 'PENDING'`, [id]);
    } finally {
      await h.db.query(`select hc.resume()`);
    }
    expect((await converges('contact', id, ['Email'])).email).toBe('race.two@example.com');
  });
});
