// Outcome unknown: Salesforce applied a call whose answer never reached us. Either the socket dropped
// after the write (emulator fault drop-response) or our call timeout fired while Salesforce was still
// working on it (fault delay, longer than the timeout: the write lands after we gave up). The writer
// must treat both as "maybe done": with an upsert field the create is sent again as an upsert by external
// id (idempotent); without one the lost-create lookup runs before any re-send, and a call that is still
// running is waited for before that. Each row ends up in Salesforce exactly once.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { driftSweep } from '../../sidecar/sync/inbound/drift.js';
import type { MappingRow } from '../../sidecar/sync/inbound/rows.js';
import { setup, until, queueEmpty, type Harness } from './harness.js';

for (const upsert of [false, true]) {
  describe(`outcome unknown, ${upsert ? 'with' : 'without'} an upsert field`, () => {
    let h: Harness;
    let n = 0;
    beforeAll(async () => {
      h = await setup({ algorithm: 'merged', upsert });
      await h.startWriter({ callTimeoutMs: 1000, maxBackoffMs: 300 });
    });
    afterAll(async () => {
      await h?.close();
    });
    beforeEach(() => {
      h.emu.clearFaults();
      n++;
    });

    async function insertAndCheck(label: string, fault: Parameters<Harness['emu']['injectFault']>[0], settleMs = 0): Promise<void> {
      const prefix = `${upsert ? 'U' : 'C'}${n} ${label}`;
      const created = h.emu.stats().records.created;
      h.emu.injectFault(fault);
      await h.db.query(
        `insert into salesforce.account (name, external_id__c) select $1 || ' ' || g, ${upsert ? `$1 || '-' || g` : 'null'}
           from generate_series(1, 5) g`, [prefix]);
      await until(async () => {
        const r = await h.db.query(`select count(*) filter (where _hc_lastop = 'INSERTED' and sfid is not null)::int ok
                                      from salesforce.account where name like $1`, [`${prefix} %`]);
        return r.rows[0].ok === 5 && (await queueEmpty(h.db));
      }, `${label}: rows written back`, 60_000);
      // A delayed call lands only after its delay: give it that long before counting.
      await new Promise((r) => setTimeout(r, settleMs));
      // The fault really hit a write that happened (otherwise this test proves nothing).
      expect(h.emu.stats().records.created - created).toBe(5);
      const recs = h.emu.records('Account').filter((r) => String(r.Name).startsWith(`${prefix} `));
      expect(recs).toHaveLength(5);
      expect(new Set(recs.map((r) => r.Name)).size).toBe(5);
      const rows = (await h.db.query(`select sfid from salesforce.account where name like $1`, [`${prefix} %`])).rows;
      expect(new Set(rows.map((r) => r.sfid))).toEqual(new Set(recs.map((r) => r.Id)));
      // (finished entries move to the archive within a second of their round)
      const failed = await h.db.query(`select count(*)::int n from (select state from salesforce._trigger_log union all
                                         select state from salesforce._trigger_log_archive) x where state = 'FAILED'`);
      expect(failed.rows[0].n).toBe(0);
    }

    it('the socket drops after Salesforce created the records: no second create', async () => {
      await insertAndCheck('dropped', { kind: 'collections', action: 'drop-response', remaining: 1 });
    });

    for (const fault of ['drop-response', 'reset'] as const) {
      const landed = fault === 'drop-response';
      it(`the row is deleted while its create’s outcome is unknown (${landed ? 'it landed' : 'it did not land'}): Salesforce ends up without the record and the row does not come back`, async () => {
        const name = `${upsert ? 'U' : 'C'}${n} lost delete`;
        // The create lands and its answer is lost (or the call is cut before it lands); every later write
        // call is refused for now, so the application deletes the row while the outcome is still unknown.
        h.emu.injectFault({ kind: 'collections', action: fault, remaining: 1 });
        h.emu.injectFault({ kind: 'collections', errorCode: 'UNABLE_TO_LOCK_ROW', remaining: -1 });
        const calls = h.emu.stats().api.byKind.collections ?? 0;
        const id = (await h.db.query(`insert into salesforce.account (name, external_id__c) values ($1, $2) returning id`,
          [name, upsert ? `${name}-x` : null])).rows[0].id;
        const inSalesforce = () => h.emu.records('Account').filter((r) => r.Name === name);
        await until(async () => (h.emu.stats().api.byKind.collections ?? 0) >= calls + 2, 'the create sent, and sent again in vain');
        expect(inSalesforce()).toHaveLength(landed ? 1 : 0);
        await h.db.query('delete from salesforce.account where id = $1', [id]);
        h.emu.clearFaults();
        await until(async () => (await queueEmpty(h.db)) && inSalesforce().length === 0, 'the record deleted in Salesforce', 30_000);
        expect(h.emu.records('Account', { includeDeleted: true }).filter((r) => r.Name === name)).toHaveLength(landed ? 1 : 0); // created at most once
        expect((await h.db.query('select count(*)::int n from hc._outbound_attempts where record_id = $1', [id])).rows[0].n).toBe(0);
        // A drift sweep (the whole id list compared) does not bring the row back.
        const m = (await h.db.query(`select id, object_name, table_name, config, state, requested, revision from hc._mappings where object_name = 'Account'`)).rows[0] as MappingRow;
        await driftSweep(h.ctx, m, { reconcile: true });
        expect((await h.db.query('select id from salesforce.account where name = $1', [name])).rows).toEqual([]);
      });
    }

    it('our timeout fires while Salesforce still completes the create: the late write is waited for, not repeated', async () => {
      await insertAndCheck('late', { kind: 'collections', action: 'delay', delayMs: 2500, remaining: 1 }, 2500);
    });
  });
}
