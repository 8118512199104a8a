// Creates without an upsert field whose values Salesforce automation rewrites on save, when the answer of
// the create is lost (emulator fault drop-response): the lost-create lookup must still recognise the
// record instead of creating it a second time. The emulator's default org has the automation of a real
// one: a before-save flow lower-casing Contact.Email, and one setting Account.Rating to 'Hot' from
// AnnualRevenue. Someone else's record created by the same user in the same minutes is never adopted.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { driftSweep } from '../../sidecar/sync/inbound/drift.js';
import type { MappingRow } from '../../sidecar/sync/inbound/rows.js';
import { ACCOUNT_FIELDS, setup, until, queueEmpty, type Harness } from './harness.js';

let h: Harness;
let n = 0;

beforeAll(async () => {
  h = await setup({ algorithm: 'merged', accountFields: [...ACCOUNT_FIELDS, 'AnnualRevenue', 'Rating'] });
  const describe_ = await h.ctx.sf.conn.sobject('Contact').describe();
  const fields = ['Id', 'LastName', 'FirstName', 'Email', 'SystemModstamp', 'IsDeleted'];
  await h.db.query('select hc.create_mapping($1, $2, $3)', ['Contact', { access: 'read_write', fields: Object.fromEntries(fields.map((f) => [f, {}])) }, describe_]);
  await h.startWriter({ callTimeoutMs: 1000, maxBackoffMs: 300 });
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => {
  h.emu.clearFaults();
  n++;
});

const mapping = async (object: string) =>
  (await h.db.query(`select id, object_name, table_name, config, state, requested, revision from hc._mappings where object_name = $1`, [object])).rows[0] as MappingRow;

/** Waits until every row of `table` whose `column` starts with `prefix` is written back; returns them. */
async function writtenBack(table: string, column: string, prefix: string, count: number): Promise<{ id: number; sfid: string }[]> {
  return until(async () => {
    const r = await h.db.query(`select id, sfid, _hc_lastop from salesforce.${table} where ${column} like $1 order by id`, [`${prefix}%`]);
    return r.rows.length === count && r.rows.every((x) => x.sfid && x._hc_lastop === 'INSERTED') && (await queueEmpty(h.db)) && r.rows;
  }, `${prefix}: rows written back`, 60_000);
}

describe('lost creates rewritten by Salesforce automation are found, not created again', { timeout: 120_000 }, () => {
  it('a before-save flow lower-cases Email', async () => {
    const prefix = `Flow${n} `;
    const created = h.emu.stats().records.created;
    h.emu.injectFault({ kind: 'collections', action: 'drop-response', remaining: 1 });
    await h.db.query(`insert into salesforce.contact (lastname, firstname, email)
                      select $1 || g, 'Ada', 'Ada.Lovelace' || g || '@Example.COM' from generate_series(1, 5) g`, [prefix]);
    const rows = await writtenBack('contact', 'lastname', prefix, 5);
    const recs = h.emu.records('Contact').filter((r) => String(r.LastName).startsWith(prefix));
    expect(h.emu.stats().records.created - created).toBe(5); // each created once
    expect(recs).toHaveLength(5);
    expect(recs.every((r) => r.Email === String(r.Email).toLowerCase())).toBe(true); // the flow did rewrite it
    expect(new Set(rows.map((r) => r.sfid))).toEqual(new Set(recs.map((r) => r.Id)));
    await driftSweep(h.ctx, await mapping('Contact'), { reconcile: true });
    expect((await h.db.query(`select count(*)::int n from salesforce.contact where lastname like $1`, [`${prefix}%`])).rows[0].n).toBe(5);
  });

  it('a before-save flow sets Rating from AnnualRevenue', async () => {
    const prefix = `Rated${n} `;
    const created = h.emu.stats().records.created;
    h.emu.injectFault({ kind: 'collections', action: 'drop-response', remaining: 1 });
    await h.db.query(`insert into salesforce.account (name, annualrevenue, rating)
                      select $1 || g, 20000000 + g, 'Cold' from generate_series(1, 5) g`, [prefix]);
    const rows = await writtenBack('account', 'name', prefix, 5);
    const recs = h.emu.records('Account').filter((r) => String(r.Name).startsWith(prefix));
    expect(h.emu.stats().records.created - created).toBe(5);
    expect(recs.map((r) => r.Rating)).toEqual(Array(5).fill('Hot'));
    expect(new Set(rows.map((r) => r.sfid))).toEqual(new Set(recs.map((r) => r.Id)));
    await driftSweep(h.ctx, await mapping('Account'), { reconcile: true });
    expect((await h.db.query(`select count(*)::int n from salesforce.account where name like $1`, [`${prefix}%`])).rows[0].n).toBe(5);
  });

  it('a record the same user created meanwhile that only shares the name is not taken for a create that did not land', async () => {
    const name = `Other${n}`;
    // The create is cut before it lands (reset); meanwhile the same user creates a record with that name.
    h.emu.injectFault({ kind: 'collections', action: 'reset', remaining: 1 });
    h.emu.injectFault({ kind: 'collections', errorCode: 'UNABLE_TO_LOCK_ROW', remaining: 1 });
    const calls = h.emu.stats().api.byKind.collections ?? 0;
    const other = (await h.ctx.sf.conn.sobject('Account').create({ Name: name, AnnualRevenue: 5, Rating: 'Warm' })) as { id: string };
    await h.db.query(`insert into salesforce.account (name, annualrevenue, rating) values ($1, 20000000, 'Cold')`, [name]);
    const [row] = await writtenBack('account', 'name', name, 1);
    expect(h.emu.stats().api.byKind.collections ?? 0).toBeGreaterThanOrEqual(calls + 3);
    expect(row.sfid).not.toBe(other.id);
    const recs = h.emu.records('Account').filter((r) => r.Name === name);
    expect(recs.map((r) => [r.Id, r.AnnualRevenue, r.Rating]).sort()).toEqual([[other.id, 5, 'Warm'], [row.sfid, 20000000, 'Hot']].sort());
  });
});
