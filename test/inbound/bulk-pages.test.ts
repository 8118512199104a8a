// Bulk 2.0 result pages are streams: each page's CSV goes into COPY as it arrives, and a load reads
// HC_BULK_PAGES_IN_FLIGHT pages at once. What that must not break: every record handed over exactly once,
// no more pages open than allowed, a failing page stopping the rest and the job, and a page cut off
// midway leaving nothing of itself in the table.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bulkQuery } from '../../sidecar/salesforce/bulk.js';
import type { SyncContext } from '../../sidecar/context.js';
import { CsvStage, headerOf } from '../../sidecar/sync/inbound/rows.js';
import { setup, until, type Harness } from './harness.js';

const ROWS = 3_000;
let h: Harness;
let ctx: SyncContext;

beforeAll(async () => {
  h = await setup({ seed: { Account: ROWS } });
  ctx = await h.context();
}, 120_000);
afterAll(async () => {
  await h?.close();
});

async function text(body: Readable): Promise<string> {
  let s = '';
  for await (const chunk of body) s += chunk.toString();
  return s;
}

describe('Bulk 2.0 result pages as streams', () => {
  it('hands every record over once, with no more pages open at once than asked for', async () => {
    const seen: string[] = [];
    let open = 0;
    let most = 0;
    let pages = 0;
    await bulkQuery(ctx.sf, 'SELECT Id, Name FROM Account', { pageSize: 400, inFlight: 2 }, async (csv) => {
      open++;
      most = Math.max(most, open);
      pages++;
      try {
        await new Promise((r) => setTimeout(r, 30)); // a slow handler: the next page is asked for meanwhile
        const lines = (await text(csv)).split('\n').filter(Boolean);
        expect(lines[0]).toBe('"Id","Name"');
        seen.push(...lines.slice(1).map((l) => l.split(',')[0].replaceAll('"', '')));
      } finally {
        open--;
      }
    });
    expect(pages).toBe(Math.ceil(ROWS / 400));
    expect(most).toBe(2);
    expect(seen.length).toBe(ROWS);
    expect(new Set(seen).size).toBe(ROWS);
  });

  it('a page whose connection is reset, before its answer or midway, is read again: every record still once', async () => {
    // Two result GETs answered by a reset socket (before any answer), and page 2 broken off after its first
    // chunk, as a connection reset midway shows to the reader.
    const reset = h.emu.injectFault({ path: '/results', action: 'reset', remaining: 2 });
    const seen: string[] = [];
    let cut = false;
    await bulkQuery(ctx.sf, 'SELECT Id, Name FROM Account', { pageSize: 500, inFlight: 2 }, async (csv, page) => {
      let text = '';
      for await (const chunk of csv) {
        if (page === 2 && !cut) {
          cut = true;
          throw Object.assign(new Error('terminated'), { cause: { code: 'ECONNRESET' } });
        }
        text += chunk.toString();
      }
      seen.push(...text.split('\n').filter(Boolean).slice(1).map((l) => l.split(',')[0].replaceAll('"', '')));
    });
    expect(cut).toBe(true);
    expect(reset.remaining).toBe(0);
    expect(seen.length).toBe(ROWS);
    expect(new Set(seen).size).toBe(ROWS);
  });

  it('a failing page stops the rest, waits for the pages in hand, stops the job and is thrown', async () => {
    let running = 0;
    let started = 0;
    const failure = bulkQuery(ctx.sf, 'SELECT Id, Name FROM Account', { pageSize: 200, inFlight: 2 }, async (csv, page) => {
      running++;
      started++;
      try {
        if (page === 1) throw new Error('page 1 refused by its handler');
        await text(csv);
      } finally {
        running--;
      }
    });
    await expect(failure).rejects.toThrow('page 1 refused by its handler');
    expect(running).toBe(0);
    expect(started).toBeLessThan(Math.ceil(ROWS / 200));
    // Told to stop (best effort: the emulator, like Salesforce, refuses that for a complete job), in the ledger.
    await until(async () => (await h.db.query(`select count(*)::int n from hc.api_calls where method = 'PATCH' and path like '%/jobs/query/%'`)).rows[0].n >= 1, 'the job abort in the ledger', 10_000);
  });

  it('reads a header split over several chunks, and keeps the whole CSV behind it', async () => {
    const chunks = ['"Id","Na', 'me"\r', '\n"001A","x"\n', '"001B","y"\n'].map((s) => Buffer.from(s));
    const split = await headerOf(Readable.from(chunks));
    expect(split?.header).toBe('"Id","Name"');
    expect(await text(split!.csv)).toBe(chunks.map(String).join(''));
    expect(await headerOf(Readable.from([]))).toBeNull();
    const only = await headerOf(Readable.from([Buffer.from('"Id"')]));
    expect(only?.header).toBe('"Id"');
  });

  it('a page cut off midway leaves nothing of itself, and the next page merges on the same stage', async () => {
    // With Salesforce's describe, the mapping's table exists at once (no sidecar runs here).
    const describe = await h.sf.conn.sobject('Account').describe();
    await h.db.query('select hc.create_mapping($1, $2, $3)', ['Account', { access: 'read_only', fields: { Id: {}, Name: {}, SystemModstamp: {}, IsDeleted: {} } }, JSON.stringify(describe)]);
    const mappingId = (await h.db.query(`select id from hc._mappings where object_name = 'Account'`)).rows[0].id as number;
    const stage = await CsvStage.open(ctx.db, mappingId, ['Id', 'Name', 'SystemModstamp', 'IsDeleted']);
    try {
      const head = '"Id","Name","SystemModstamp","IsDeleted"\n';
      const row = (i: number) => `"001000000000${String(i).padStart(3, '0')}AAA","Cut ${i}","2026-11-30T10:00:00.000Z","false"\n`;
      const cut = new Readable({ read() {} });
      cut.push(head + row(1) + row(2));
      setTimeout(() => cut.destroy(new Error('the connection was reset')), 50);
      await expect(stage.apply(cut, 'load')).rejects.toThrow();
      expect((await h.db.query(`select count(*)::int n from salesforce.account where name like 'Cut %'`)).rows[0].n).toBe(0);
      const r = await stage.apply(Readable.from([head + row(3) + row(4)]), 'load');
      expect(r.rows).toBe(2);
      expect((await h.db.query(`select name from salesforce.account where name like 'Cut %' order by name`)).rows.map((x) => x.name)).toEqual(['Cut 3', 'Cut 4']);
    } finally {
      await stage.close();
    }
  });
});
