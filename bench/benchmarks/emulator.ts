// 7. The emulator's own ceiling: how fast the Salesforce emulator accepts records through sObject
// Collections (200 per call, the path the outbound writer uses), ingests and serves Bulk 2.0 jobs (the
// path the initial load uses). When an hcsync figure approaches these, the emulator is the bottleneck,
// not hcsync. Issue 3 asks for >= 5,000 records/s through collections and a 1M-row Bulk query streamed in
// bounded memory: the emulator runs in a child process so its resident memory is its own (the 1M-row
// query and its memory are reported by the initial-load benchmark, which holds 1M rows anyway).
import { join } from 'node:path';
import { accountGenerator, writeAccountCsv } from '../lib/accounts.js';
import { type BenchContext, type BenchResult, type Benchmark, type Row } from '../lib/bench.js';
import { bulkIngest, bulkQuery } from '../lib/bulk.js';
import { collections, withOrg } from '../lib/rig.js';

export const emulatorCeiling: Benchmark = {
  name: 'emulator',
  title: '7. Emulator ceiling',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const collectionRecords = ctx.quick ? 4_000 : 40_000;
    // The 1M-row query (issue 3) is measured by the initial-load benchmark, which holds 1M rows anyway.
    const bulkRows = ctx.quick ? 20_000 : 200_000;
    const inFlight = 4;
    return withOrg(ctx, async ({ emu, conn, describe }) => {
      const gen = accountGenerator(describe.fields as never, 7);
      const rows: Row[] = [];

      // Collections: 200 records per POST (create) and PATCH (update), `inFlight` calls at a time.
      const batches: Record<string, unknown>[][] = [];
      for (let i = 0; i < collectionRecords; i += 200) {
        batches.push(Array.from({ length: Math.min(200, collectionRecords - i) }, (_, k) => ({ attributes: { type: 'Account' }, ...gen.row(i + k + 1) })));
      }
      const ids: string[] = [];
      const timed = async (method: 'POST' | 'PATCH', payloads: Record<string, unknown>[][]) => {
        let next = 0;
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: inFlight }, async () => {
            while (next < payloads.length) {
              const records = payloads[next++];
              const res = await collections<{ id?: string; success: boolean; errors: unknown[] }[]>(conn, method, records);
              const bad = res.filter((r) => !r.success);
              if (bad.length) throw new Error(`collections ${method}: ${bad.length} of ${records.length} failed, e.g. ${JSON.stringify(bad[0].errors)}`);
              if (method === 'POST') for (const r of res) ids.push(r.id!);
            }
          }),
        );
        return (performance.now() - t0) / 1000;
      };
      const createSeconds = await timed('POST', batches);
      rows.push({ metric: 'collections create', value: collectionRecords / createSeconds, unit: 'records/s', note: `${collectionRecords.toLocaleString('en-US')} records, 200 per call, ${inFlight} calls in flight` });
      ctx.progress(`collections create: ${Math.round(collectionRecords / createSeconds)} records/s`);
      const updates = [];
      for (let i = 0; i < ids.length; i += 200) {
        updates.push(ids.slice(i, i + 200).map((id, k) => ({ attributes: { type: 'Account' }, Id: id, Description: `updated ${i + k}`, NumberOfEmployees: (i + k) % 5000 })));
      }
      const updateSeconds = await timed('PATCH', updates);
      rows.push({ metric: 'collections update', value: ids.length / updateSeconds, unit: 'records/s', note: 'same records, 2 fields changed' });
      ctx.progress(`collections update: ${Math.round(ids.length / updateSeconds)} records/s`);

      // Bulk 2.0: ingest N Account-like rows, then query them back, streaming every page.
      const csv = join(ctx.workDir, `emulator-accounts-${bulkRows}.csv`);
      const { bytes, files } = await writeAccountCsv(csv, gen, bulkRows);
      const rssBefore = emu.rssMiB();
      const ingest = await bulkIngest(conn, 'Account', files);
      if (ingest.failed) throw new Error(`Bulk ingest: ${ingest.failed} of ${bulkRows} rows failed`);
      rows.push({ metric: 'Bulk 2.0 ingest', value: ingest.processed / ingest.seconds, unit: 'rows/s', note: `${bulkRows.toLocaleString('en-US')} rows, ${(bytes / 2 ** 20).toFixed(0)} MiB CSV, ${files.length} job(s)` });
      ctx.progress(`bulk ingest: ${Math.round(ingest.processed / ingest.seconds)} rows/s`);
      const fields = ['Id', 'SystemModstamp', 'IsDeleted', 'CreatedDate', ...gen.columns];
      const rssLoaded = emu.rssMiB();
      const watch = emu.watchPeak();
      const q = await bulkQuery(conn, `SELECT ${fields.join(', ')} FROM Account`);
      const peak = watch.stop();
      rows.push({ metric: 'Bulk 2.0 query', value: q.rows / q.seconds, unit: 'rows/s', note: `${q.rows.toLocaleString('en-US')} rows in ${q.pages} pages, ${(q.bytes / 2 ** 20).toFixed(0)} MiB; first byte after ${q.firstByteSeconds.toFixed(2)} s` });
      if (peak !== undefined && rssLoaded !== undefined) {
        rows.push({ metric: 'emulator RSS growth while serving the query', value: Math.max(0, peak - rssLoaded), unit: 'MiB', note: `RSS ${rssLoaded} MiB with the rows loaded (${rssBefore} MiB before), peak ${peak} MiB during the query` });
      }
      ctx.progress(`bulk query: ${Math.round(q.rows / q.seconds)} rows/s`);
      return {
        rows,
        config: { collectionRecords, inFlight, bulkRows, csvBytes: bytes, queryFields: fields.length, emulator: 'child process' },
      };
    });
  },
};
