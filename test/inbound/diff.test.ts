// A large text field (Description, a Long Text Area) changed by a line: Salesforce may send the change as
// data differences, a unified diff in place of the value, named in the header's diffFields (Pub/Sub; CometD
// wraps it as {"diff": ...}). Written as the value, the row would hold the diff. The record is read whole
// instead. Runs on Pub/Sub, and on CometD with `make test-cometd`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../sidecar/context.js';
import { startInbound } from '../../sidecar/sync/inbound/index.js';
import { ACCOUNT_FIELDS, otherUser, setup, until, type Harness } from '../outbound/harness.js';

let h: Harness;
let reader: Service;

beforeAll(async () => {
  h = await setup({ accountFields: [...ACCOUNT_FIELDS, 'Description'] });
  reader = await startInbound(h.ctx);
  await until(async () => {
    const m = (await h.db.query(`select state, last_poll_at from hc._mappings`)).rows[0];
    return m?.state === 'DATA_SYNCED' && m.last_poll_at;
  }, 'mapping synced and subscribed', 90_000);
}, 120_000);
afterAll(async () => {
  await reader?.stop();
  await h?.close();
});

const long = Array.from({ length: 40 }, (_, i) => `line ${i} of a long description, about sixty characters`).join('\n');

describe('a large text field sent as data differences', { timeout: 90_000 }, () => {
  it('the row gets the whole new value, never the diff', async () => {
    const other = await otherUser(h.emu);
    const { id } = (await other.sobject('Account').create({ Name: 'Long text', Description: long })) as { id: string };
    await until(async () => (await h.db.query(`select description from salesforce.account where sfid = $1`, [id])).rows[0]?.description === long,
      'the record arrived', 30_000);
    const changed = long.replace('line 17 of', 'line seventeen of');
    await other.sobject('Account').update({ Id: id, Description: changed });
    // The emulator sent it as Salesforce would: a diff, named in diffFields.
    const ev = h.emu.events().filter((e) => e.entity === 'Account' && e.source?.recordIds.includes(id) && e.source.changeType === 'UPDATE').at(-1)!;
    expect(ev.source!.diffFields).toEqual(['Description']);
    expect(String(ev.source!.fields.Description)).toMatch(/^--- \n\+\+\+ [0-9a-f]{64}\n@@ /);
    expect(ev.data.payload.Description).toEqual({ diff: ev.source!.fields.Description }); // CometD's shape
    const row = await until(async () => {
      const r = (await h.db.query(`select description from salesforce.account where sfid = $1`, [id])).rows[0];
      return r?.description !== long && r;
    }, 'the change arrived', 30_000);
    expect(row.description).toBe(changed);
  });
});
