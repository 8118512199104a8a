// The governor's own setting and the claim that every numeric setting is range-checked: each variable
// sidecar/config.ts parses as a number or a duration refuses a value below and above its range, naming
// the variable and the range. (The governor's thresholds live in the database and are range-checked by
// hc.set_api_budget: test/governor/budget.test.ts.)
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig } from '../../sidecar/config.js';

const base = { DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' };
const load = (env: Record<string, string>) => loadConfig({ ...base, ...env } as NodeJS.ProcessEnv, { salesforce: false });
function problems(env: Record<string, string>): string[] {
  try {
    load(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('HC_BUDGET_PROBE_SECONDS', () => {
  it('defaults to 5 minutes, takes durations, and refuses what is out of 1s–1d naming the range', () => {
    expect(load({}).budgetProbeMs).toBe(300_000);
    expect(load({ HC_BUDGET_PROBE_SECONDS: '90' }).budgetProbeMs).toBe(90_000);
    expect(load({ HC_BUDGET_PROBE_SECONDS: '1h' }).budgetProbeMs).toBe(3_600_000);
    expect(problems({ HC_BUDGET_PROBE_SECONDS: '0' })[0]).toMatch(/^HC_BUDGET_PROBE_SECONDS: 0 is out of range: give a duration from 1s to 1d/);
    expect(problems({ HC_BUDGET_PROBE_SECONDS: '2d' })[0]).toMatch(/^HC_BUDGET_PROBE_SECONDS: .*from 1s to 1d/);
    expect(problems({ HC_BUDGET_PROBE_SECONDS: 'often' })[0]).toMatch(/^HC_BUDGET_PROBE_SECONDS: "often" is not a duration/);
  });
});

describe('every numeric setting', () => {
  // The variables config.ts declares as whole numbers, durations or coerced numbers.
  const source = readFileSync(new URL('../../sidecar/config.ts', import.meta.url), 'utf8');
  const numeric = [...source.matchAll(/^\s+((?:HC|SF)_[A-Z_]+): (?:whole\(|duration\(|z\.coerce\.number)/gm)].map((m) => m[1]);

  it('is found (the list is not empty by accident)', () => {
    expect(numeric).toContain('HC_BUDGET_PROBE_SECONDS');
    expect(numeric).toContain('HC_DRIFT_SECONDS');
    expect(numeric).toContain('HC_HTTP_PORT');
    expect(numeric.length).toBeGreaterThanOrEqual(10);
  });

  it('refuses a value below and above its range, naming the variable', () => {
    for (const k of numeric) {
      for (const v of ['-1', '99999999999999']) {
        const p = problems({ [k]: v });
        expect([k, v, p.length]).toEqual([k, v, 1]);
        expect(p[0].startsWith(`${k}: `) || p[0].includes(k)).toBe(true);
      }
    }
  });
});

describe('SF_PUBSUB_ENDPOINT', () => {
  it('range-checks the port of its host:port, naming the variable and an example', () => {
    expect(load({ SF_PUBSUB_ENDPOINT: 'api.pubsub.salesforce.com:7443' }).changeStream.pubsubEndpoint).toBe('api.pubsub.salesforce.com:7443');
    expect(load({ SF_PUBSUB_ENDPOINT: '[::1]:65535' }).changeStream.pubsubEndpoint).toBe('[::1]:65535');
    for (const v of ['api.pubsub.salesforce.com:0', 'api.pubsub.salesforce.com:65536', '127.0.0.1:99999']) {
      const p = problems({ SF_PUBSUB_ENDPOINT: v });
      expect([v, p.length]).toEqual([v, 1]);
      expect(p[0]).toMatch(/^SF_PUBSUB_ENDPOINT: SF_PUBSUB_ENDPOINT's port must be from 1 to 65535, such as api.pubsub.salesforce.com:7443/);
    }
    // Not host:port at all: the format's own message, once.
    expect(problems({ SF_PUBSUB_ENDPOINT: 'https://api.pubsub.salesforce.com' })).toEqual([
      'SF_PUBSUB_ENDPOINT: SF_PUBSUB_ENDPOINT must be host:port, such as api.pubsub.salesforce.com:7443 (api.deu.pubsub.salesforce.com:8443 for Hyperforce Germany)',
    ]);
  });
});
