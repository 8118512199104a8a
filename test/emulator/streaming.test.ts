import jsforce from 'jsforce';
import { StreamingExtension } from 'jsforce/api/streaming';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../emulator/index.js';
import { login, start, VERSION, waitFor } from './helpers.js';

let emu: Emulator;
beforeAll(async () => { emu = await start({ cometdTimeoutSec: 2 }); });
afterAll(async () => { await emu?.stop(); });

type Ev = { payload: Record<string, any> & { ChangeEventHeader: Record<string, any> }; event: { replayId: number } };

function subscribe(conn: jsforce.Connection, channel: string, replayId: number | null, onAuthFailure?: (m: unknown) => void) {
  const got: Ev[] = [];
  const exts: any[] = [new StreamingExtension.Replay(channel, replayId as number)];
  if (onAuthFailure) exts.unshift(new StreamingExtension.AuthFailure(onAuthFailure));
  const client = conn.streaming.createClient(exts);
  const sub = client.subscribe(channel, (m: Ev) => { got.push(m); });
  return { got, client, ready: new Promise<void>((resolve, reject) => { sub.callback(() => resolve()); sub.errback((e: Error) => reject(e)); }) };
}

describe('Change Data Capture over CometD', () => {
  it('delivers events from every write path with full headers and client= changeOrigin', async () => {
    const conn = await login(emu, { callOptions: { client: 'hcsync-test' } } as any);
    const s = subscribe(conn, '/data/ChangeEvents', -1);
    await s.ready;
    const a = await conn.sobject('Account').create({ Name: 'Stream A', AnnualRevenue: 20_000_000 }); // REST single + before-save flow
    await conn.sobject('Account').update({ Id: a.id!, Phone: '123' }); // after-save flow -> second UPDATE in the transaction
    const many = await conn.sobject('Contact').create([{ LastName: 'C1', AccountId: a.id }, { LastName: 'C2' }], { allOrNone: true }); // collections
    await conn.requestPost(`/services/data/v${VERSION}/composite`, { compositeRequest: [{ method: 'PATCH', url: `/services/data/v${VERSION}/sobjects/Contact/${many[1].id}`, referenceId: 'r', body: { Title: 'Dr' } }] });
    const job = await conn.bulk2.loadAndWaitForResults({ object: 'Invoice__c', operation: 'insert', input: [{ External_Id__c: 'STREAM-1', Amount__c: 5 }], pollInterval: 50, pollTimeout: 10_000 });
    expect(job.successfulResults).toHaveLength(1);
    await conn.sobject('Contact').destroy(many[0].id!);
    emu.undelete([many[0].id!]);
    const events = await waitFor(() => (s.got.length >= 9 ? s.got : undefined), 'nine change events');
    const h = events.map((e) => e.payload.ChangeEventHeader);
    expect(h.map((x) => `${x.entityName}:${x.changeType}`)).toEqual([
      'Account:CREATE', 'Account:UPDATE', 'Account:UPDATE', 'Contact:CREATE', 'Contact:CREATE', 'Contact:UPDATE', 'Invoice__c:CREATE', 'Contact:DELETE', 'Contact:UNDELETE',
    ]);
    const create = events[0];
    expect(create.payload.Rating).toBe('Hot'); // before-save flow rides in the CREATE
    expect(create.payload.Name).toBe('Stream A');
    expect(create.payload.CreatedDate).toMatch(/\.000Z$/);
    expect(create.payload).not.toHaveProperty('SystemModstamp');
    expect(create.payload).not.toHaveProperty('IsDeleted');
    expect(Object.keys(h[0]).sort()).toEqual(['changeOrigin', 'changeType', 'changedFields', 'commitNumber', 'commitTimestamp', 'commitUser', 'diffFields', 'entityName', 'nulledFields', 'recordIds', 'sequenceNumber', 'transactionKey'].sort());
    expect(h[0]).toMatchObject({ recordIds: [a.id], changeOrigin: `com/salesforce/api/rest/${VERSION};client=hcsync-test`, sequenceNumber: 1, commitUser: conn.userInfo!.id });
    // update: only changed fields; the after-save flow's change is its own event in the same transaction
    expect(h[1].changedFields).toEqual(['Phone', 'LastModifiedDate']);
    expect(Object.keys(events[1].payload).sort()).toEqual(['ChangeEventHeader', 'LastModifiedDate', 'Phone']);
    expect(h[2].changedFields).toEqual(['Last_Touched__c', 'LastModifiedDate']);
    expect(h[2].transactionKey).toBe(h[1].transactionKey);
    expect(h[2].sequenceNumber).toBe(2);
    expect(h[3].transactionKey).toBe(h[4].transactionKey);
    expect(h[6].changeOrigin).toBe(`com/salesforce/api/bulkapi/${VERSION};client=hcsync-test`);
    expect(events[6].payload).not.toHaveProperty('Tax__c'); // formula fields never ride in events
    expect(Object.keys(events[7].payload)).toEqual(['ChangeEventHeader']);
    const ids = events.map((e) => e.event.replayId);
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    s.client.disconnect();

    // replay: a specific id gives what followed it; -2 gives everything retained
    const r = subscribe(conn, '/data/AccountChangeEvent', events[0].event.replayId);
    await r.ready;
    const replayed = await waitFor(() => (r.got.length >= 2 ? r.got : undefined), 'replayed account events');
    expect(replayed.map((e) => e.event.replayId)).toEqual([events[1].event.replayId, events[2].event.replayId]);
    r.client.disconnect();
    const inv = subscribe(conn, '/data/Invoice__ChangeEvent', -2);
    await inv.ready;
    await waitFor(() => inv.got.length >= 1, 'invoice replay');
    expect(inv.got[0].payload.ChangeEventHeader.entityName).toBe('Invoice__c');
    inv.client.disconnect();
  });

  it('rejects a replay id older than retention, and unknown channels', async () => {
    const conn = await login(emu);
    await conn.sobject('Lead').create({ LastName: 'Old', Company: 'X' });
    const last = emu.events().at(-1)!.replayId;
    await conn.sobject('Lead').create({ LastName: 'Old2', Company: 'Y' });
    emu.setReplayRetention(0);
    const s = subscribe(conn, '/data/LeadChangeEvent', last - 1);
    await expect(s.ready).rejects.toMatchObject({ message: expect.stringContaining(`The replayId {${last - 1}} you provided was invalid`) });
    s.client.disconnect();
    emu.setReplayRetention(72 * 3600_000);
    const u = subscribe(conn, '/data/NopeChangeEvent', -1);
    await expect(u.ready).rejects.toMatchObject({ message: expect.stringContaining("doesn't exist") });
    u.client.disconnect();
  });

  it('injected GAP events reach subscribers header-only', async () => {
    const conn = await login(emu);
    const s = subscribe(conn, '/data/AccountChangeEvent', -1);
    await s.ready;
    emu.injectGap('Account', 'GAP_UPDATE', ['001000000000001AAA']);
    emu.injectGap('Account', 'GAP_OVERFLOW');
    await waitFor(() => s.got.length >= 2, 'gap events');
    expect(s.got[0].payload).toEqual({ ChangeEventHeader: expect.objectContaining({ changeType: 'GAP_UPDATE', recordIds: ['001000000000001AAA'] }) });
    expect(s.got[1].payload.ChangeEventHeader).toMatchObject({ changeType: 'GAP_OVERFLOW', recordIds: [] });
    s.client.disconnect();
  });

  it('after dropped sessions the client re-handshakes and resumes from its last replay id', async () => {
    const conn = await login(emu);
    const s = subscribe(conn, '/data/AccountChangeEvent', -1);
    await s.ready;
    await conn.sobject('Account').create({ Name: 'Before drop' });
    await waitFor(() => s.got.length >= 1, 'first event');
    const handshakes = emu.stats().notCounted.streamingHandshakes;
    expect(emu.dropStreamingSessions()).toBeGreaterThan(0);
    await conn.sobject('Account').create({ Name: 'After drop' });
    await waitFor(() => s.got.some((e) => e.payload.Name === 'After drop'), 'event after re-handshake', 20_000);
    expect(emu.stats().notCounted.streamingHandshakes).toBeGreaterThan(handshakes);
    expect(s.got.filter((e) => e.payload.Name === 'Before drop')).toHaveLength(1);
    s.client.disconnect();
  });

  it('an expired token ends the CometD session with 401::Authentication invalid', async () => {
    const conn = await login(emu);
    let failure: any;
    const s = subscribe(conn, '/data/AccountChangeEvent', -1, (m) => { failure = m; });
    await s.ready;
    emu.expireTokens();
    await waitFor(() => failure, 'auth failure', 20_000);
    expect(failure).toMatchObject({ channel: '/meta/connect', successful: false, error: '401::Authentication invalid', advice: { reconnect: 'none' } });
    s.client.disconnect();
  });
});
