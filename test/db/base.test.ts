// The SQL boundary's base runs what kysely builds on the session the caller holds: a pool, or a client
// inside its own transaction (a statement run through the boundary sees that transaction's work).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, first, ident, qb, rows, sql } from '../../sidecar/db/hc/base.js';
import { createTestDb, type TestDb } from '../support/db.js';

let db: TestDb;
beforeAll(async () => {
  db = await createTestDb();
});
afterAll(async () => {
  await db?.drop();
});

describe('the SQL boundary base', () => {
  it('runs a sql template with typed parameters and quoted identifiers on a pool', async () => {
    const r = await rows<{ n: number; s: string; c: number }>(db.pool, sql`select ${41}::int + 1 as n, ${"it's"}::text as s, (select count(*)::int from ${ident('hc', 'connections')}) as c`);
    expect(r).toEqual([{ n: 42, s: "it's", c: 0 }]);
  });

  it('runs builder queries and statements inside the caller’s transaction', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query(`select hc.create_connection('boundary', 'salesforce')`);
      const q = qb.selectFrom('hc.connections').select(['name', 'schema_name']).where('name', '=', 'boundary');
      expect(await first(c, q)).toEqual({ name: 'boundary', schema_name: 'salesforce' });
      expect(await exec(c, sql`update hc.connections set state = state where name = ${'boundary'}`)).toBe(1);
      // Another session does not see it: the boundary ran on the client, in its transaction.
      expect(await first(db.pool, q)).toBeUndefined();
      await c.query('rollback');
    } finally {
      c.release();
    }
  });
});
