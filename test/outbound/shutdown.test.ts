// SIGTERM while the writer has a large backlog: the sidecar drains what is in flight or hands it back
// within 10 s, says what it waits for between "hcsync stopping" and "hcsync stopped", and leaves nothing
// PENDING. After a restart every change reaches Salesforce exactly once: no create made twice, no
// update sent twice (the emulator's own write counters), the last value of every record wins.
import { afterEach, describe, expect, it } from 'vitest';
import { setup, until, type Harness } from './harness.js';
import { spawnSidecar, type SidecarProcess } from '../support/sidecar.js';

let h: Harness | undefined;
let side: SidecarProcess | undefined;

afterEach(async () => {
  await side?.kill9();
  side = undefined;
  await h?.close();
  h = undefined;
});

const ROWS = 5000;
const NEW_ROWS = 1000;

const queueLeft = async (db: Harness['db']) =>
  (await db.query(`select count(*) filter (where state = 'NEW')::int new, count(*) filter (where state = 'PENDING')::int pending,
                          count(*) filter (where state = 'FAILED')::int failed
                     from salesforce._trigger_log`)).rows[0] as { new: number; pending: number; failed: number };

const logLines = (out: string) =>
  out.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } })
    .filter((x): x is Record<string, unknown> => !!x);

describe('SIGTERM during a large outbound backlog', () => {
  it.each([
    { bulk: true, cdc: true, label: 'change events on, Bulk 2.0' },
    { bulk: false, cdc: true, label: 'change events on, collections' },
    { bulk: true, cdc: false, label: 'change events off, Bulk 2.0' },
  ])('exits within 10 s, logs what it waits for, and after a restart nothing is lost or sent twice (ordered writes, $label)', async ({ bulk, cdc }) => {
    h = await setup({ algorithm: 'ordered' });
    if (!cdc) await h.db.query(`update hc._mappings set config = config || '{"sf_notify_enabled": false}'`);
    const env = { ...h.env, HC_LOG_LEVEL: 'info', ...(bulk ? {} : { HC_BULK_WRITE_THRESHOLD: '150000000' }) };
    await h.db.query(`insert into salesforce.account (name, numberofemployees) select 'Stop ' || g, 0 from generate_series(1, $1::int) g`, [ROWS]);
    side = spawnSidecar(env);
    await until(async () => {
      if (side?.child.exitCode !== null) throw new Error(`the sidecar exited: ${side?.output().slice(-2000)}`);
      const q = await queueLeft(h!.db);
      return q.new + q.pending === 0;
    }, 'the first rows created', 240_000, 200)
      .catch((e) => { console.log(side?.output().slice(-4000)); throw e; });
    await side.stop();
    side = undefined;
    const before = h.emu.stats().records;

    // The backlog: every row updated twice (so a record's order matters; not Phone, whose change sets off
    // an after-save flow that is a second update of its own) and new rows, while each call
    // to Salesforce takes 250 ms.
    await h.db.query(`update salesforce.account set numberofemployees = 1, accountnumber = 'first' where name like 'Stop %'`);
    await h.db.query(`update salesforce.account set numberofemployees = 2, accountnumber = 'second' where name like 'Stop %'`);
    await h.db.query(`insert into salesforce.account (name, numberofemployees) select 'Stop new ' || g, 7 from generate_series(1, $1::int) g`, [NEW_ROWS]);
    const entries = 2 * ROWS + NEW_ROWS;
    const mark = (await h.db.query(`select min(id)::int m from salesforce._trigger_log where state = 'NEW'`)).rows[0].m as number;
    h.emu.setLatency(250);
    side = spawnSidecar(env);
    const s = side;
    // SIGTERM once the writer is busy: some of the backlog sent, most of it still queued. (Sent entries
    // move to the archive within a second of their round.)
    await until(async () => {
      const r = await h!.db.query(`select count(*)::int n from (select id, state from salesforce._trigger_log union all
                                                                select id, state from salesforce._trigger_log_archive) x
                                    where state = 'SUCCESS' and id >= $1`, [mark]);
      return r.rows[0].n >= 200;
    }, 'the writer under way', 240_000, 50)
      .catch(async (e) => {
        // (once, in a full run under load: the restarted writer sent nothing for 240 s; what it was doing)
        console.log(s.output().slice(-6000), JSON.stringify((await h!.db.query(
          `select application_name, state, wait_event_type, wait_event, now() - xact_start as xact, left(query, 160) q, pg_blocking_pids(pid) b
             from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`)).rows, null, 1));
        throw e;
      });
    const left = await queueLeft(h.db);
    expect(left.new + left.pending).toBeGreaterThan(entries / 4);
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const probe = setTimeout(async () => {
      const r = await h!.db.query(`select pid, application_name, state, wait_event_type, wait_event, now() - xact_start as xact, left(query, 120) q, pg_blocking_pids(pid) b
                                     from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`);
      console.log('probe', JSON.stringify(r.rows, null, 1));
    }, 4000);
    const code = await new Promise<number | null>((r) => s.child.once('exit', (c) => r(c)));
    clearTimeout(probe);
    const took = Date.now() - t0;
    side = undefined;
    const lines = logLines(s.output());
    const msgs = lines.map((l) => String(l.msg));
    const iStop = msgs.indexOf('hcsync stopping');
    const iDone = msgs.indexOf('hcsync stopped');
    const told = `shutdown (${bulk ? 'bulk' : 'collections'}, CDC ${cdc ? 'on' : 'off'}): exit ${code} after ${took} ms with ${left.new + left.pending} entries queued; between:\n${lines.slice(iStop + 1, iDone).map((l) => `  ${l.msg} ${l.service ?? ''} ${l.waitingFor ?? ''} ${l.handedBack ?? ''}`).join('\n')}`;
    console.log(told);
    expect(code).toBe(0);
    expect(took).toBeLessThan(10_000);
    expect(iStop).toBeGreaterThanOrEqual(0);
    expect(iDone).toBeGreaterThan(iStop);
    // What it stopped and what the writer did with its work are told in between.
    const between = lines.slice(iStop + 1, iDone);
    expect(between.some((l) => l.msg === 'stopping service' && l.service === 'outbound writer')).toBe(true);
    expect(between.some((l) => l.part === 'outbound' && /handed back|in flight/.test(String(l.msg)))).toBe(true);
    // Handed back, not left for a take-over: nothing PENDING.
    // (the stop's own account goes with a failure: a full run under load once left entries PENDING)
    expect((await queueLeft(h.db)).pending, told).toBe(0);

    h.emu.setLatency(0);
    side = spawnSidecar(env);
    await until(async () => { const q = await queueLeft(h!.db); return q.new + q.pending === 0; }, 'the backlog drained after the restart', 300_000, 200);
    await side.stop();
    side = undefined;

    expect((await queueLeft(h.db)).failed).toBe(0);
    const after = h.emu.stats().records;
    // Exactly once: every update entry is one record update, every new row one create.
    expect(after.created - before.created).toBe(NEW_ROWS);
    expect(after.updated - before.updated).toBe(2 * ROWS);
    const recs = await h.sfRecords(`SELECT Id, Name, NumberOfEmployees, AccountNumber FROM Account WHERE Name LIKE 'Stop %'`);
    expect(recs.length).toBe(ROWS + NEW_ROWS);
    expect(new Set(recs.map((r) => r.Name)).size).toBe(ROWS + NEW_ROWS);
    const old = recs.filter((r) => !String(r.Name).startsWith('Stop new '));
    expect(old.filter((r) => r.NumberOfEmployees !== 2 || r.AccountNumber !== 'second')).toEqual([]);
    const rows = (await h.db.query(`select count(*)::int r, count(sfid)::int n, count(distinct sfid)::int s from salesforce.account where name like 'Stop %'`)).rows[0];
    expect(rows).toEqual({ r: ROWS + NEW_ROWS, n: ROWS + NEW_ROWS, s: ROWS + NEW_ROWS });
  }, 900_000);
});

describe('SIGTERM while the reader reads queued re-reads', () => {
  it('stops between its Salesforce reads without applying them, and the re-reads stay queued for the next start', async () => {
    // The flake this catches (1 in 5 full runs of the test above): at SIGTERM the reader was reading
    // 2,000 records queued for a re-read (ten queries at 250 ms each), then applied them, and the
    // writer's last results waited for that apply's row locks: both were still at it when the stop's
    // 8 s were up, and the writer's claimed entries were left PENDING.
    h = await setup({ algorithm: 'ordered' });
    const N = 2000;
    await h.db.query(`insert into salesforce.account (name) select 'Reread ' || g from generate_series(1, $1::int) g`, [N]);
    const env = { ...h.env, HC_LOG_LEVEL: 'info' };
    side = spawnSidecar(env);
    await until(async () => (await h!.db.query(`select count(sfid)::int n from salesforce.account`)).rows[0].n === N, 'the records created', 240_000, 200);
    await side.stop();
    side = undefined;

    const m = (await h.db.query(`select id from hc._mappings where object_name = 'Account'`)).rows[0].id as number;
    // (the first run may have queued some already)
    await h.db.query(`insert into hc.inbound_rereads (mapping_id, sfid, not_before) select $1, sfid, now() from salesforce.account
                      on conflict (mapping_id, sfid) do update set not_before = now()`, [m]);
    // Every call takes a second: the re-read of 2,000 records (ten queries) takes ten.
    h.emu.setLatency(1000);
    side = spawnSidecar(env);
    const s = side;
    const queries = () => h!.emu.stats().api.byKind.query ?? 0;
    await until(() => s.output().includes('inbound sync started'), 'the reader started', 60_000, 50);
    const q0 = queries();
    await until(() => queries() >= q0 + 2, 'the re-read under way', 60_000, 50);
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => s.child.once('exit', (c) => r(c)));
    const took = Date.now() - t0;
    side = undefined;
    const lines = logLines(s.output());
    const msgs = lines.map((l) => String(l.msg));
    // (the stop found the reader at it)
    expect(lines.find((l) => l.msg === 'stopping service' && l.service === 'inbound reader')?.waitingFor).toMatch(/reread-queue/);
    expect(code).toBe(0);
    expect(msgs).not.toContain('service did not stop within HC_STOP_SECONDS: exiting without it; the next start takes over what it holds');
    // One query in flight finishes (a second), and nothing of the re-read is applied.
    expect(took).toBeLessThan(4000);
    const queued = async () => (await h!.db.query('select count(*)::int n from hc.inbound_rereads where mapping_id = $1', [m])).rows[0].n as number;
    expect(await queued()).toBe(N);

    h.emu.setLatency(0);
    side = spawnSidecar(env);
    await until(async () => (await queued()) === 0, 'the re-reads done after the restart', 120_000, 200);
  }, 600_000);
});
