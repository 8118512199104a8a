// The error taxonomy (sidecar/salesforce/errors.ts) on the errors jsforce really throws: each is made by
// the emulator over HTTP (an injected fault, an expired session, a spent allowance, a validation rule),
// caught as the sidecar would catch it, and classified.
import jsforce from 'jsforce';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { SalesforceConfig } from '../../sidecar/config.js';
import { SalesforceClient } from '../../sidecar/salesforce/client.js';
import { save } from '../../sidecar/salesforce/collections.js';
import {
  classify, classifyRecordError, isAlreadyDeleted, isDescribeMissing, isObjectGone, isObjectMissing, isRecordMissing, isRefusal, isRefusedSignIn, isTransient, SignInError,
} from '../../sidecar/salesforce/errors.js';
import { allRecords, count, describe as describeObject, retrieve } from '../../sidecar/salesforce/rest.js';

type Emulator = Awaited<ReturnType<typeof startEmulator>>;
let emu: Emulator;
let sf: SalesforceClient;
let cfg: SalesforceConfig;

beforeAll(async () => {
  emu = await startEmulator({});
  const c = emu.credentials;
  cfg = { loginUrl: c.loginUrl, apiVersion: '62.0', auth: 'password', clientId: c.clientId, clientSecret: c.clientSecret, username: c.username, password: c.password };
  sf = await SalesforceClient.connect(cfg);
});
afterAll(async () => {
  await sf?.close();
  await emu?.stop();
});
beforeEach(() => {
  emu.clearFaults();
});

/** What `p` rejected with (fails the test when it resolved). */
async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

const query = (soql = 'SELECT Id FROM Account LIMIT 1') => allRecords(sf, soql);

describe('transient: try again later', () => {
  it('HTTP 503 and 500 answers', async () => {
    // On a collections call: jsforce retries a GET that answered 5xx by itself, a POST it does not.
    const create = () => save(sf, 'create', 'Account', [{ Name: '5xx' }], { timeoutMs: 10_000 });
    emu.injectFault({ kind: 'collections', status: 503 });
    expect(classify(await caught(create()))).toMatchObject({ kind: 'transient', code: 'SERVER_UNAVAILABLE', retry: true, refused: false });
    emu.injectFault({ kind: 'collections', status: 500, errorCode: 'UNKNOWN_EXCEPTION' });
    expect(classify(await caught(create()))).toMatchObject({ kind: 'transient', code: 'UNKNOWN_EXCEPTION', retry: true });
  });

  it('a reset socket', async () => {
    emu.injectFault({ kind: 'query', action: 'reset' });
    const err = await caught(query());
    expect(classify(err)).toMatchObject({ kind: 'transient', retry: true });
  });

  it('a call that does not answer in time (the collections timeout)', async () => {
    emu.injectFault({ kind: 'collections', action: 'hang' });
    let late: Promise<unknown> | undefined;
    const err = await caught(save(sf, 'create', 'Account', [{ Name: 'Timeout' }], { timeoutMs: 300, onTimeout: (p) => { late = p; } }));
    expect(classify(err)).toMatchObject({ kind: 'transient', code: 'TIMEOUT', retry: true });
    expect(late).toBeInstanceOf(Promise);
    void late!.catch(() => {});
    emu.clearFaults();
  });

  it('UNABLE_TO_LOCK_ROW, for a whole call and for one record', async () => {
    emu.injectFault({ kind: 'query', errorCode: 'UNABLE_TO_LOCK_ROW' });
    expect(classify(await caught(query()))).toMatchObject({ kind: 'transient', code: 'UNABLE_TO_LOCK_ROW', retry: true });
    const [ok] = await save(sf, 'create', 'Account', [{ Name: 'Locked' }], { timeoutMs: 10_000 });
    emu.failNextLocks(1);
    const [res] = await save(sf, 'update', 'Account', [{ Id: ok.id, Phone: '1' }], { timeoutMs: 10_000 });
    expect(res.success).toBe(false);
    expect(classifyRecordError(res.errors?.[0])).toMatchObject({ kind: 'transient', code: 'UNABLE_TO_LOCK_ROW', retry: true });
  });

  it('a sign-in the token endpoint could not answer (503) is no refusal', async () => {
    emu.injectFault({ kind: 'oauth', status: 503 });
    const err = await caught(SalesforceClient.connect(cfg));
    expect(err).toBeInstanceOf(SignInError);
    expect(isRefusal(err)).toBe(false);
    expect(isRefusedSignIn(err)).toBe(false);
    expect(classify(err)).toMatchObject({ kind: 'transient', retry: true, refused: false });
  });
});

describe('limit: the org\'s allowance', () => {
  it('REQUEST_LIMIT_EXCEEDED once the daily requests are spent', async () => {
    const { limit } = emu.stats().api;
    emu.setDailyApiLimit(10, 10);
    try {
      const err = await caught(query());
      expect(classify(err)).toMatchObject({ kind: 'limit', code: 'REQUEST_LIMIT_EXCEEDED', retry: true, refused: false });
    } finally {
      emu.setDailyApiLimit(limit, 0);
    }
    expect(await query()).toBeInstanceOf(Array);
  });
});

describe('credentials: the session or the sign-in', () => {
  it('an expired session nothing refreshes: INVALID_SESSION_ID (retried, not refused)', async () => {
    const bare = new jsforce.Connection({ instanceUrl: sf.instanceUrl, accessToken: sf.conn.accessToken!, version: '62.0' });
    expect(emu.expireTokens()).toBeGreaterThan(0);
    const err = await caught(bare.query('SELECT Id FROM Account LIMIT 1'));
    expect(classify(err)).toMatchObject({ kind: 'credentials', code: 'INVALID_SESSION_ID', retry: true, refused: false });
    // The client's own session is renewed on the next call (a password session signs in again).
    expect(await query()).toBeInstanceOf(Array);
  });

  it('a wrong password: refused, as jsforce throws it and as the client does', async () => {
    const c = emu.credentials;
    const raw = new jsforce.Connection({ loginUrl: c.loginUrl, version: '62.0', oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret } });
    const jsforceErr = await caught(raw.login(c.username, 'wrong'));
    expect(classify(jsforceErr)).toMatchObject({ kind: 'credentials', code: 'invalid_grant', refused: true });
    const clientErr = await caught(SalesforceClient.connect({ ...cfg, password: 'wrong' }));
    expect(clientErr).toBeInstanceOf(SignInError);
    expect(isRefusal(clientErr)).toBe(true);
    expect(isRefusedSignIn(clientErr)).toBe(true);
    // The writer keeps such rows queued (retry); the connection goes UNAUTHORIZED instead.
    expect(classify(clientErr)).toMatchObject({ kind: 'credentials', refused: true, retry: true });
  });
});

describe('record: the request itself is wrong', () => {
  it('a validation rule and a missing required field fail that record alone', async () => {
    const res = await save(sf, 'create', 'Account', [{ Name: 'INVALID' }, { Phone: '2' }, { Name: 'Fine' }], { timeoutMs: 10_000 });
    expect(res.map((r) => r.success)).toEqual([false, false, true]);
    expect(classifyRecordError(res[0].errors?.[0])).toEqual({ kind: 'record', code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', retry: false, refused: false });
    expect(classifyRecordError(res[1].errors?.[0])).toMatchObject({ kind: 'record', code: 'REQUIRED_FIELD_MISSING', retry: false });
  });

  it('an unknown field fails the whole call, and is not retried', async () => {
    const err = await caught(query('SELECT Id, No_Such_Field__c FROM Account'));
    expect(classify(err)).toMatchObject({ kind: 'record', code: 'INVALID_FIELD', retry: false, refused: false });
    expect(isTransient(err)).toBe(false);
  });

  it('no such object, no such record, a record deleted already', async () => {
    const described = await caught(describeObject(sf, 'No_Such_Object__c'));
    expect(isObjectMissing(described)).toBe(true);
    expect(isDescribeMissing(described)).toBe(true);
    expect(classify(described).kind).toBe('record');
    const counted = await caught(count(sf, 'No_Such_Object__c'));
    expect(isObjectGone(counted)).toBe(true);
    expect(isDescribeMissing(counted)).toBe(true);
    const [made] = await save(sf, 'create', 'Account', [{ Name: 'Gone soon' }], { timeoutMs: 10_000 });
    await save(sf, 'delete', 'Account', [{ Id: made.id }], { timeoutMs: 10_000 });
    const [again] = await save(sf, 'delete', 'Account', [{ Id: made.id }], { timeoutMs: 10_000 });
    expect(again.success).toBe(false);
    expect(isAlreadyDeleted(classifyRecordError(again.errors?.[0]).code)).toBe(true);
    const fetched = await caught(retrieve(sf, 'Account', '001000000000000AAA', ['Name']));
    expect(isRecordMissing(fetched)).toBe(true);
    expect(isObjectGone(fetched)).toBe(false);
  });
});
