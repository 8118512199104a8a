// A mapping's lifecycle lives in one table, hc.mapping_states: its phases (what the sidecar does in a
// state), which states hc.abort can stop, which hold local changes back, and the allowed transitions,
// which hc.set_mapping_state enforces. hc._request, hc.outbound_claim and the sidecar read it; none of
// them keeps a list of states of its own.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from '../support/db.js';
import { contactConfig, createConnection, createMapping, describe_, errorOf } from './helpers.js';

let db: TestDb;
let id: number;
let states: { state: string; category: string; phase: string; abortable: boolean; holds_writes: boolean; next: string[] }[];

beforeAll(async () => {
  db = await createTestDb();
  await createConnection(db);
  id = await createMapping(db, 'Contact', contactConfig, describe_('contact'));
  states = (await db.query('select state, category, phase, abortable, holds_writes, next from hc.mapping_states order by state')).rows;
});
afterAll(async () => db?.drop());

const to = (state: string, message: string | null = null) => db.query('select hc.set_mapping_state($1, $2, $3)', [id, state, message]);
const now = async () => (await db.query('select state from hc._mappings where id = $1', [id])).rows[0].state as string;

describe('hc.mapping_states', () => {
  it('names only states it has; INITIAL is only a start; every state can stay and can reach DATA_SYNCED', async () => {
    const names = new Set(states.map((s) => s.state));
    for (const s of states) {
      for (const n of s.next) expect(names, `${s.state} → ${n}`).toContain(n);
      expect(s.next).toContain(s.state);
      if (s.state !== 'INITIAL') expect(s.next).not.toContain('INITIAL');
    }
    const reach = await db.query(`
      with recursive r(start, at) as (
        select state, state from hc.mapping_states
        union
        select r.start, n from r join hc.mapping_states s on s.state = r.at, unnest(s.next) n)
      select s.state from hc.mapping_states s
       where not exists (select 1 from r where r.start = s.state and r.at = 'DATA_SYNCED') order by 1`);
    expect(reach.rows).toEqual([]);
  });

  it('gives each state the phase the sidecar acts on', () => {
    const phase = (p: string) => states.filter((s) => s.phase === p).map((s) => s.state);
    expect(phase('describe')).toEqual(['INITIAL', 'SCHEMA_CHANGED']);
    expect(phase('load')).toEqual(['POLLING_SF_BULK', 'POLLING_SF_CHANGES', 'RESYNC']);
    expect(phase('reload')).toEqual(['RELOAD_TABLE']);
    expect(phase('live')).toEqual(['DATA_SYNCED', 'POLLING_SF_FOR_DELETES', 'RECOVERY']);
    expect(phase('stopped')).toContain('ABORTED');
    expect(states.filter((s) => s.category === 'error').every((s) => s.phase === 'stopped')).toBe(true);
  });

  it('the paths the sidecar takes are allowed, and the sync log records each', async () => {
    // create → describe → load → synced; abort and a poll; reload; config change; orphaned; recovery.
    for (const s of ['POLLING_SF_CHANGES', 'POLLING_SF_BULK', 'DATA_SYNCED', 'ABORTED', 'DATA_SYNCED', 'RELOAD_TABLE', 'DATA_SYNCED',
      'SCHEMA_CHANGED', 'BAD_CONFIG', 'SCHEMA_CHANGED', 'POLLING_SF_CHANGES', 'DATA_SYNCED', 'SYSTEM_ERROR', 'RECOVERY', 'DATA_SYNCED',
      'RESYNC', 'POLLING_SF_CHANGES', 'DATA_SYNCED']) {
      await to(s);
      expect(await now()).toBe(s);
    }
    const log = await db.query(`select detail from hc.sync_log where mapping_id = $1 and event = 'state' order by id`, [id]);
    expect(log.rows.slice(0, 3).map((r) => r.detail)).toEqual([
      { from: 'INITIAL', to: 'POLLING_SF_CHANGES' }, { from: 'POLLING_SF_CHANGES', to: 'POLLING_SF_BULK' }, { from: 'POLLING_SF_BULK', to: 'DATA_SYNCED' },
    ]);
  });

  it('a move the lifecycle does not allow is refused, naming the states that may follow, and changes nothing', async () => {
    await to('DATA_SYNCED');
    const cases: [string, string][] = [
      ['DATA_SYNCED', 'INITIAL'], // never re-created in place
      ['DATA_SYNCED', 'POLLING_SF_CHANGES'], // a load starts from a load state (a reload goes through RELOAD_TABLE)
      ['DATA_SYNCED', 'RECOVERY'], // only an error state recovers
    ];
    for (const [from, target] of cases) {
      expect(await now()).toBe(from);
      const e = await errorOf(() => to(target));
      expect(e.code).toBe('55000');
      expect(e.message).toBe(`hcsync: mapping Contact cannot go from ${from} to ${target}`);
      expect(e.hint).toMatch(new RegExp(`^From ${from} it may go to: .*DATA_SYNCED`));
      expect(e.hint).not.toMatch(new RegExp(`: (.*, )?${target}(,|\\.)`));
      expect(await now()).toBe(from);
    }
    // An orphaned mapping is not "fine again" by itself: a config change, a removal or a reload would be.
    await to('SYNC_REMOVED', 'gone');
    expect((await errorOf(() => to('DATA_SYNCED'))).message).toBe('hcsync: mapping Contact cannot go from SYNC_REMOVED to DATA_SYNCED');
    expect((await errorOf(() => to('RELOAD_TABLE'))).message).toMatch(/cannot go from SYNC_REMOVED to RELOAD_TABLE/);
    await to('SCHEMA_CHANGED');
    await to('DATA_SYNCED');
  });

  it('hc.abort asks the table whether a state has something to stop', async () => {
    await to('DATA_SYNCED');
    expect((await errorOf(() => db.query(`select hc.abort('Contact')`))).message).toMatch(/nothing to abort on Contact \(state DATA_SYNCED\)/);
    // The table decides, not a list in hc._request: mark DATA_SYNCED abortable (in this test database only).
    await db.query(`update hc.mapping_states set abortable = true where state = 'DATA_SYNCED'`);
    try {
      expect((await db.query(`select hc.abort('Contact') as r`)).rows[0].r).toBe('abort');
    } finally {
      await db.query(`update hc.mapping_states set abortable = false where state = 'DATA_SYNCED'`);
      await db.query(`update hc._mappings set requested = null, requested_at = null where id = $1`, [id]);
    }
  });

  it('hc.outbound_claim holds a table\'s changes while its state holds_writes, and sends them otherwise', async () => {
    await db.query(`select hc.set_connection_state('IDLE')`);
    await to('DATA_SYNCED');
    const conn = (await db.query('select id from hc.connections')).rows[0].id;
    const claimer = (await db.query('select hc.outbound_new_claimer() as n')).rows[0].n;
    await db.query(`insert into salesforce.contact (lastname) values ('Held')`);
    const claim = async () => (await db.query('select hc.outbound_claim($1, $2, 100) as op', [conn, claimer])).rows.map((r) => r.op);
    const release = () => db.query('select hc.outbound_release($1, $2)', [conn, claimer]);
    await db.query(`update hc.mapping_states set holds_writes = true where state = 'DATA_SYNCED'`);
    try {
      expect(await claim()).toEqual([]);
    } finally {
      await db.query(`update hc.mapping_states set holds_writes = false where state = 'DATA_SYNCED'`);
    }
    const ops = await claim();
    expect(ops).toHaveLength(1);
    await release();
    for (const s of ['RELOAD_TABLE', 'POLLING_SF_CHANGES', 'POLLING_SF_BULK']) expect(states.find((x) => x.state === s)!.holds_writes).toBe(true);
    expect(states.filter((x) => x.holds_writes).map((x) => x.state)).toEqual(['POLLING_SF_BULK', 'POLLING_SF_CHANGES', 'RELOAD_TABLE']);
  });
});

describe('no other list of mapping states', () => {
  const names = () => states.map((s) => s.state);
  /**
   * Bracketed or parenthesised lists in `text` naming at least three mapping states (quoted). A rule
   * about one or two named states (INITIAL or SCHEMA_CHANGED need a describe) is not a list.
   */
  const lists = (text: string, min = 3) =>
    [...text.matchAll(/[[(][^[\]()]*[\])]/g)]
      .map((m) => m[0])
      .filter((l) => names().filter((n) => l.includes(`'${n}'`)).length >= min);

  it('the sidecar keeps none: it reads the phase with the mapping row', () => {
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|js)$/.test(e.name)) for (const l of lists(readFileSync(p, 'utf8'))) found.push(`${p}: ${l}`);
      }
    };
    walk('sidecar');
    expect(found).toEqual([]);
  });

  it('the SQL keeps none outside hc.mapping_states', () => {
    const found: string[] = [];
    for (const f of readdirSync('sql').filter((x) => x.endsWith('.sql') && x !== '000001_core.sql')) {
      for (const l of lists(readFileSync(join('sql', f), 'utf8'))) found.push(`${f}: ${l}`);
    }
    expect(found).toEqual([]);
  });
});
