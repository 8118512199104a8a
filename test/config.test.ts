// Every setting is parsed by zod (sidecar/config.ts): durations accept 90s, 15m, 1h (a bare number is in
// the variable's own unit), numbers have a range, and a bad value stops the start with the variable
// named and the fix stated. Timers longer than Node's limit (2^31-1 ms) wait their full time.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, connectionSetting, loadConfig, loadDemoConfig, parseDuration } from '../sidecar/config.js';
import { MAX_TIMER_MS, setLongTimeout } from '../sidecar/timers.js';

const base = { DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' };
const load = (env: Record<string, string>) => loadConfig({ ...base, ...env } as NodeJS.ProcessEnv, { salesforce: false });
function problems(env: Record<string, string>): string[] {
  try {
    load(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
}

describe('durations', () => {
  it('parse 90s, 15m, 1h, 1h30m, 500ms, 2d, and a bare number in the given unit', () => {
    expect(parseDuration('90s', 's')).toBe(90_000);
    expect(parseDuration('15m', 's')).toBe(900_000);
    expect(parseDuration('1h', 's')).toBe(3_600_000);
    expect(parseDuration('1h30m', 's')).toBe(5_400_000);
    expect(parseDuration('500ms', 's')).toBe(500);
    expect(parseDuration('2d', 'ms')).toBe(172_800_000);
    expect(parseDuration('90', 's')).toBe(90_000);
    expect(parseDuration('90', 'ms')).toBe(90);
    for (const bad of ['', 'soon', '1 hour', '-5', '1h-', 'h1', '1e3', '0x10']) expect([bad, parseDuration(bad, 's')]).toEqual([bad, undefined]);
  });

  it('HC_DRIFT_SECONDS=1h and friends become numbers of milliseconds, not NaN', () => {
    const c = load({ HC_DRIFT_SECONDS: '1h', HC_RECONCILE_SECONDS: '2d', HC_INBOUND_RECONCILE_MS: '30s', HC_INBOUND_STANDBY_MS: '500', HC_CONNECTION_CHECK_MS: '1m' });
    expect(c.inbound).toMatchObject({ driftMs: 3_600_000, reconcileIntervalMs: 172_800_000, reconcileMs: 30_000, standbyMs: 500 });
    expect(c.connectionCheckMs).toBe(60_000);
    const d = load({});
    expect(d.inbound).toEqual({ driftMs: 3_600_000, reconcileIntervalMs: 86_400_000, reconcileMs: 30_000, standbyMs: 2_000, bulkPageSize: 25_000, bulkPagesInFlight: 2 });
    expect(d.connectionCheckMs).toBe(30_000);
    // Reconciling on every sweep is a setting the tests use.
    expect(load({ HC_RECONCILE_SECONDS: '0' }).inbound.reconcileIntervalMs).toBe(0);
  });

  it('a value that is not a duration, or out of range, is refused with the variable and the fix', () => {
    const p = problems({ HC_DRIFT_SECONDS: 'hourly' });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^HC_DRIFT_SECONDS: /);
    expect(p[0]).toContain('"hourly"');
    expect(p[0]).toMatch(/such as 90s, 15m or 1h/);
    expect(problems({ HC_DRIFT_SECONDS: '0' })[0]).toMatch(/HC_DRIFT_SECONDS: .*from 1s to 30d/);
    expect(problems({ HC_DRIFT_SECONDS: '31d' })[0]).toMatch(/from 1s to 30d/);
    expect(problems({ HC_INBOUND_STANDBY_MS: '2h' })[0]).toMatch(/^HC_INBOUND_STANDBY_MS: .*to 1h/);
    expect(problems({ HC_CONNECTION_CHECK_MS: '-1' })[0]).toMatch(/^HC_CONNECTION_CHECK_MS: /);
  });
});

describe('numbers have ranges', () => {
  it('refuses negative, zero, fractional, huge and non-numeric values, naming the range', () => {
    for (const [k, v] of [['HC_ARCHIVE_RETENTION_DAYS', '-1'], ['HC_ARCHIVE_RETENTION_DAYS', '30d'], ['HC_ARCHIVE_RETENTION_DAYS', '100000'],
                          ['HC_BULK_WRITE_THRESHOLD', '0'], ['HC_BULK_WRITE_THRESHOLD', '1.5'], ['HC_BULK_PAGE_SIZE', '0'],
                          ['HC_BULK_PAGE_SIZE', 'lots'], ['HC_BULK_PAGE_SIZE', '100000000'], ['HC_BULK_PAGES_IN_FLIGHT', '5'], ['HC_HTTP_PORT', '70000']]) {
      const p = problems({ [k]: v });
      expect([k, v, p.length]).toEqual([k, v, 1]);
      expect(p[0].startsWith(`${k}: `)).toBe(true);
      expect([k, v, p[0]]).toEqual([k, v, expect.stringMatching(/\d/)]);
    }
    expect(load({ HC_BULK_PAGE_SIZE: '10000', HC_ARCHIVE_RETENTION_DAYS: '7' })).toMatchObject({ inbound: { bulkPageSize: 10_000 }, archiveRetentionDays: 7 });
  });

  it('a schema name must leave room for its wake-up channel (48 characters)', () => {
    expect(load({ HC_SCHEMA: 's'.repeat(48) }).schema).toBe('s'.repeat(48));
    expect(problems({ HC_SCHEMA: 's'.repeat(49) })[0]).toMatch(/^HC_SCHEMA: .*48/);
  });
});

describe('no setting is read around zod', () => {
  it('the sync, Salesforce, database and HTTP modules never read process.env (config.ts does, once)', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    const readers = ['sidecar/sync', 'sidecar/salesforce', 'sidecar/db', 'sidecar/http'].flatMap(files)
      .filter((f) => /process\.env\b/.test(readFileSync(f, 'utf8')));
    expect(readers).toEqual([]);
  });

  it('no module but config.ts reads an HC_* or SF_* variable from the environment itself (the CLI and the demo included)', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    const readers = files('sidecar')
      .filter((f) => f !== join('sidecar', 'config.ts'))
      .filter((f) => /process\.env\.(HC|SF)_|process\.env\[/.test(readFileSync(f, 'utf8')));
    expect(readers).toEqual([]);
  });
});

describe('hcsync demo\'s settings', () => {
  it('have their defaults, and 0 picks a free port', () => {
    expect(loadDemoConfig({})).toEqual({ dataDir: '.data', pgPort: 54329, sfPort: 54330, httpPort: 9464, log: { level: 'warn', pretty: true } });
    expect(loadDemoConfig({ HC_DEMO_PG_PORT: '0', HC_DEMO_SF_PORT: '0', HC_HTTP_PORT: '0', HC_LOG_PRETTY: '0', HC_DEMO_DATA: '/tmp/d' }))
      .toEqual({ dataDir: '/tmp/d', pgPort: 0, sfPort: 0, httpPort: 0, log: { level: 'warn', pretty: false } });
  });

  it('refuse a port that is not one, naming the variable and the fix (before, HC_DEMO_PG_PORT=abc became NaN)', () => {
    for (const [k, v] of [['HC_DEMO_PG_PORT', 'abc'], ['HC_DEMO_SF_PORT', '70000'], ['HC_DEMO_PG_PORT', '-1'], ['HC_DEMO_SF_PORT', '5.5']]) {
      let err: unknown;
      try {
        loadDemoConfig({ [k]: v });
      } catch (e) {
        err = e;
      }
      expect(err, `${k}=${v}`).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual([`${k}: ${k} must be a port number from 0 to 65535 (0 picks a free one)`]);
    }
    expect(() => loadDemoConfig({ HC_LOG_LEVEL: 'loud' })).toThrow(/HC_LOG_LEVEL/);
  });

  it('HC_CONNECTION_NAME, the CLI\'s default connection, is null when unset', () => {
    expect(connectionSetting({})).toBeNull();
    expect(connectionSetting({ HC_CONNECTION_NAME: '' })).toBeNull();
    expect(connectionSetting({ HC_CONNECTION_NAME: 'my-app' })).toBe('my-app');
  });
});

describe('timers longer than Node allows', () => {
  afterEach(() => vi.useRealTimers());

  it('setLongTimeout waits the whole time (Node would fire a longer setTimeout after 1 ms)', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    setLongTimeout(fired, 30 * 86_400_000);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(30 * 86_400_000 - MAX_TIMER_MS - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('can be cleared before it fires, in any of its legs', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const t = setLongTimeout(fired, 3 * MAX_TIMER_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS + 5);
    t.clear();
    vi.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
  });
});
