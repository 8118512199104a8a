// The soak's 'lost 2, stuck 2': a create whose attempt could not be recorded (the writer's database
// session was terminated just then) was marked FAILED, with "error: terminating connection due to
// administrator command" in _hc_err, and never sent. Recording the attempt is the database's work, not
// Salesforce's answer about the row: nothing was sent, so the row is tried again.
import { describe, expect, it } from 'vitest';
import type { Connection } from 'jsforce';
import { send, type Op } from '../../sidecar/sync/outbound/salesforce.js';

const op = (id: number): Op => ({
  op_id: id, log_ids: [id], mapping_id: 1, object: 'Account', table: 'account', record_id: id, action: 'insert', sfid: null,
  body: { Name: `Row ${id}` }, upsert_field: null, upsert_value: null, attempts: [],
} as unknown as Op);

describe('a create whose attempt cannot be recorded', () => {
  it('is retried, not FAILED with the database error, and nothing is sent', async () => {
    let calls = 0;
    const conn = { sobject: () => { calls++; throw new Error('no call may be made'); } } as unknown as Connection;
    const terminated = Object.assign(new Error('terminating connection due to administrator command'), { name: 'error', code: '57P01', severity: 'FATAL' });
    const out = await send(conn, [op(1), op(2)], { beforeCreate: async () => { throw terminated; } });
    expect(calls).toBe(0);
    expect(out.map((o) => [o.op_id, o.outcome])).toEqual([[1, 'retry'], [2, 'retry']]);
    expect(out[0].error).toMatch(/recording the create before sending it failed: terminating connection/);
  });
});
