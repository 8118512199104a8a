// An object removed from Salesforce while it is mapped: the sidecar finds out on its own (the next poll,
// reload or subscription fails with INVALID_TYPE / NOT_FOUND) and puts the mapping in SYNC_REMOVED,
// Heroku Connect's "orphaned" state, with a message that says what to do: not a retry loop, not
// BAD_CONFIG (the config was right), not a connection-wide error. The table and its rows stay; the
// dashboard's Settings lists it for removal, and it is news (hc.notifications mapping_error).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../dashboard/harness.js';
import { until } from '../support/until.js';

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard();
  d.emu.seed({ Contact: 3 });
  await d.db.query(`select hc.create_mapping('Contact', $1::jsonb)`, [JSON.stringify({
    access: 'read_only', sf_notify_enabled: false, sf_polling_seconds: 600,
    fields: { Id: {}, SystemModstamp: {}, IsDeleted: {}, LastName: {} },
  })]);
  await until(async () => (await d.db.query(`select 1 from hc.mappings where object_name = 'Contact' and state = 'DATA_SYNCED'`)).rowCount, 'Contact loaded', 60_000, 200);
}, 240_000);
afterAll(async () => {
  await d?.stop();
});

const state = async () => (await d.db.query(`select state, state_message from hc.mappings where object_name = 'Contact'`)).rows[0];

describe('an object removed from Salesforce', () => {
  it('found on the next poll: SYNC_REMOVED with what to do, the rows kept, the connection and other mappings fine', async () => {
    d.emu.removeObject('Contact');
    await d.db.query(`select hc.poll_now('Contact')`);
    const s = await until(async () => {
      const r = await state();
      return r.state === 'SYNC_REMOVED' ? r : undefined;
    }, 'SYNC_REMOVED', 60_000, 200).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await state())}\n${d.sidecar.output().slice(-2500)}`);
    });
    expect(s.state_message).toMatch(/Salesforce has no object Contact/);
    expect(s.state_message).toMatch(/remove the mapping/);
    expect(Number((await d.db.query(`select count(*) from salesforce.contact`)).rows[0].count)).toBe(3);
    expect((await d.db.query(`select state from hc.connections`)).rows[0].state).toBe('IDLE');
    expect((await d.db.query(`select state from hc.mappings where object_name = 'Account'`)).rows[0].state).toBe('DATA_SYNCED');
    expect((await d.db.query(`select count(*)::int as n from hc.notifications where kind = 'mapping_error' and object_name = 'Contact' and detail->>'state' = 'SYNC_REMOVED'`)).rows[0].n).toBe(1);
  }, 90_000);
});
