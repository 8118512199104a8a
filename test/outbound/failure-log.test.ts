// A write Salesforce refuses reaches the process log at the default level (HC_LOG_LEVEL=info): one line
// per failed write naming the object, the row, the action and Salesforce's message. Before, only
// hc.sync_log had it, and an operator watching the sidecar's output saw nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard, type Dashboard } from '../dashboard/harness.js';
import { until } from '../support/until.js';

let d: Dashboard;
beforeAll(async () => {
  d = await startDashboard(); // HC_LOG_LEVEL=info, JSON lines
}, 240_000);
afterAll(async () => {
  await d?.stop();
});

describe('write failures in the process log', () => {
  it('each refused write is one line at info level or above, with object, row, action and the message', async () => {
    d.emu.injectFault({ kind: 'collections', status: 400, errorCode: 'INVALID_FIELD', message: 'Refused for the log test', remaining: 1 });
    const { rows: [row] } = await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Log me', 'log-1') returning id`);
    const line = await until(
      () => d.sidecar.output().split('\n').find((l) => l.includes('Refused for the log test') && l.includes('"msg":"write failed')),
      'the failure in the log', 60_000, 100,
    ).catch((e) => { throw new Error(`${e.message}\n${d.sidecar.output().slice(-3000)}`); });
    const entry = JSON.parse(line);
    expect(entry.level).toBeGreaterThanOrEqual(30); // info = 30, warn = 40: shown at HC_LOG_LEVEL=info
    expect(entry).toMatchObject({ part: 'outbound', object: 'Account', table: 'account', record_id: row.id, action: 'insert' });
    expect(entry.error).toMatch(/^INVALID_FIELD: Refused for the log test/);
    // One line per failed write, and none for writes that succeed.
    await d.db.query(`insert into salesforce.account (name, external_id__c) values ('Fine', 'log-2')`);
    await until(async () => (await d.db.query(`select 1 from salesforce.account where external_id__c = 'log-2' and sfid is not null`)).rowCount, 'the good write', 60_000, 100);
    expect(d.sidecar.output().split('\n').filter((l) => l.includes('"msg":"write failed')).length).toBe(1);
  }, 120_000);
});
