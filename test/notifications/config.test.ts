// The notification webhook's settings: an http(s) URL and 1–20 attempts, refused with the fix named;
// the URL's path (a Slack or Teams webhook's secret) never appears in the configuration as logged.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redacted } from '../../sidecar/config.js';

const base = { DATABASE_URL: 'postgres://u:p@localhost/db' };
const problems = (env: Record<string, string>) => {
  try {
    loadConfig({ ...base, ...env }, { salesforce: false });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe('HC_NOTIFY_WEBHOOK_URL and HC_NOTIFY_WEBHOOK_ATTEMPTS', () => {
  it('default: no webhook, 6 attempts', () => {
    expect(loadConfig(base, { salesforce: false }).notify).toEqual({ webhookUrl: undefined, attempts: 6 });
  });
  it('refuses what is not an http(s) URL, and attempts outside 1–20, naming the fix', () => {
    expect(problems({ HC_NOTIFY_WEBHOOK_URL: 'hooks.slack.com/services/x' })[0]).toMatch(/^HC_NOTIFY_WEBHOOK_URL: must be an http:\/\/ or https:\/\/ URL/);
    expect(problems({ HC_NOTIFY_WEBHOOK_URL: 'ftp://example.com/x' })[0]).toMatch(/^HC_NOTIFY_WEBHOOK_URL: must be an http/);
    expect(problems({ HC_NOTIFY_WEBHOOK_ATTEMPTS: '0' })[0]).toMatch(/^HC_NOTIFY_WEBHOOK_ATTEMPTS: must be a whole number from 1 to 20/);
    expect(problems({ HC_NOTIFY_WEBHOOK_ATTEMPTS: '21' })[0]).toMatch(/from 1 to 20/);
  });
  it('the logged configuration shows the origin only', () => {
    const c = loadConfig({ ...base, HC_NOTIFY_WEBHOOK_URL: 'https://hooks.slack.com/services/T0/B0/sEcReT', HC_NOTIFY_WEBHOOK_ATTEMPTS: '3' }, { salesforce: false });
    expect(c.notify).toEqual({ webhookUrl: 'https://hooks.slack.com/services/T0/B0/sEcReT', attempts: 3 });
    const shown = JSON.stringify(redacted(c));
    expect(shown).not.toContain('sEcReT');
    expect(shown).toContain('"webhookUrl":"https://hooks.slack.com/***"');
  });
});
