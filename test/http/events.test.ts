// The dashboard's live updates (sidecar/http/events.ts) against a real database: what the page hears on
// /api/events when the sync log grows (the Logs tab and the charts re-read), when an operator acts, and
// when a notification is recorded, each pushed from the database's NOTIFY, not polled. Another
// connection's activity is not this page's news.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { createTestDb, type TestDb } from '../support/db.js';
import { until } from '../support/until.js';
import { startEvents, type EventHub } from '../../sidecar/http/events.js';
import type { SyncContext } from '../../sidecar/context.js';

let db: TestDb;
let hub: EventHub;
let text = '';
let mine: number;
let other: number;
const page = Object.assign(new EventEmitter(), {
  write(chunk: string) {
    text += chunk;
    return true;
  },
  end() {},
}) as unknown as ServerResponse;
const log = { info() {}, warn() {}, error() {}, debug() {}, child: () => log };

beforeAll(async () => {
  db = await createTestDb();
  mine = (await db.query(`select hc.create_connection('live', 'salesforce') as id`)).rows[0].id;
  other = (await db.query(`select hc.create_connection('elsewhere', 'other_schema') as id`)).rows[0].id;
  const ctx = { config: { databaseUrl: db.url }, log, connection: { id: mine, name: 'live', schema: 'salesforce' } } as unknown as SyncContext;
  hub = await startEvents(ctx, 50);
  hub.add(page);
  await until(() => text.includes('event: hello'), 'the hello event', 10_000);
  // The catch-up nudge every (re)connect sends.
  await until(() => text.includes('"kind":"control"'), 'the catch-up nudge', 10_000);
});
afterAll(async () => {
  await hub?.close();
  await db?.drop();
});

const nudge = (kind: string) => `event: nudge\ndata: {"kind":"${kind}"}\n\n`;

describe('live updates pushed to the page', () => {
  it('a sync-log row of this connection nudges activity (the Logs tab re-reads); one of another connection does not', async () => {
    text = '';
    await db.query(`insert into hc.sync_log (connection_id, level, event, message) values ($1, 'warn', 'write_failed', 'elsewhere')`, [other]);
    // A marker after it: the bare control nudge the operator functions send for this schema.
    await db.query(`select pg_notify('hc_control', 'salesforce')`);
    await until(() => text.includes(nudge('control')), 'the marker', 10_000);
    // NOTIFY is delivered in commit order: had the other connection's row nudged, it would be here already.
    expect(text).not.toContain(nudge('activity'));
    await db.query(`insert into hc.sync_log (connection_id, level, event, message) values ($1, 'warn', 'write_failed', 'here')`, [mine]);
    await until(() => text.includes(nudge('activity')), 'the activity nudge', 10_000);
  });

  it('the connection entering an error state nudges notifications (the banner re-reads)', async () => {
    text = '';
    await db.query(`select hc.set_connection_state('SYSTEM_ERROR', 'boom', 'live')`);
    await until(() => text.includes(nudge('notifications')), 'the notifications nudge', 10_000);
  });
});
