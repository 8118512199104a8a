// `hcsync diagnose`: Heroku Connect's diagnose, RED / YELLOW / GREEN / SKIPPED per check. The database
// answers its own rules (hc.diagnose()); this adds what only the code knows (is the schema the one this
// hcsync expects?) and what only Salesforce knows (API version, remaining API requests).
import type pg from 'pg';
import { checkCompatible, migrations } from '../db/contractor.js';
import { appliedMigrations, connectionIdBySchema, diagnoseChecks, hasDiagnose, schemaInstalled } from '../db/hc/ops.js';
import { loadConfig, ConfigError } from '../config.js';
import { SalesforceClient } from '../salesforce/client.js';
import { apiVersions, limits } from '../salesforce/rest.js';
import { adminPool } from '../db/pool.js';

export type Status = 'RED' | 'YELLOW' | 'GREEN' | 'SKIPPED';
export interface Check { scope: string; subject: string | null; rule: string; status: Status; message: string }

async function schemaChecks(c: pg.Client): Promise<Check[]> {
  const base = { scope: 'database', subject: null, rule: 'HCSYNC_SCHEMA' };
  if (!(await schemaInstalled(c))) return [{ ...base, status: 'RED', message: 'hcsync is not installed in this database: run hcsync migrate' }];
  const rows = await appliedMigrations(c);
  try {
    checkCompatible(rows);
  } catch (e) {
    return [{ ...base, status: 'RED', message: (e as Error).message }];
  }
  const missing = migrations().filter((m) => !rows.some((r) => r.id === m.id));
  if (missing.length) return [{ ...base, status: 'RED', message: `migration(s) ${missing.map((m) => m.name).join(', ')} not applied: run hcsync migrate` }];
  return [{ ...base, status: 'GREEN', message: `all ${rows.length} migrations applied (latest ${rows.at(-1)?.name})` }];
}

async function salesforceChecks(databaseUrl: string, c: pg.Client, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const base = { scope: 'salesforce', subject: null as string | null };
  let config;
  try {
    config = loadConfig(env, { salesforce: true });
  } catch (e) {
    const why = e instanceof ConfigError ? e.problems.join('; ') : (e as Error).message;
    return [{ ...base, rule: 'SALESFORCE', status: 'SKIPPED', message: `Salesforce is not configured (${why})` }];
  }
  const connectionId = await connectionIdBySchema(c, config.schema).catch(() => undefined);
  const pool = adminPool(databaseUrl, { max: 1, application_name: 'hcsync diagnose' });
  let sf: SalesforceClient;
  try {
    // Calls made by diagnose count against the org's allowance like any other: they go in the ledger.
    sf = await SalesforceClient.connect(config.salesforce, { pool: connectionId !== undefined ? pool : undefined, connectionId });
  } catch (e) {
    await pool.end();
    return [{ ...base, rule: 'SIGN_IN', status: 'RED', message: `cannot sign in to ${config.salesforce.loginUrl} (${config.salesforce.auth}): ${(e as Error).message}` }];
  }
  const out: Check[] = [{ ...base, subject: sf.organizationId ?? null, rule: 'SIGN_IN', status: 'GREEN', message: `signed in to ${sf.instanceUrl} (${config.salesforce.auth})` }];
  base.subject = sf.organizationId ?? null;
  try {
    const offered = (await apiVersions(sf)).sort((a, b) => Number(a) - Number(b));
    const latest = offered.at(-1);
    const mine = config.salesforce.apiVersion;
    if (!offered.includes(mine)) {
      out.push({ ...base, rule: 'API_VERSION', status: 'RED', message: `API version ${mine} is not offered by the org (latest ${latest}): set SF_API_VERSION` });
    } else if (latest && Number(latest) - Number(mine) > 3) {
      out.push({ ...base, rule: 'API_VERSION', status: 'YELLOW', message: `API version ${mine} is more than three releases behind the org's ${latest}: consider raising SF_API_VERSION` });
    } else {
      out.push({ ...base, rule: 'API_VERSION', status: 'GREEN', message: `API version ${mine} (org's latest ${latest})` });
    }
  } catch (e) {
    out.push({ ...base, rule: 'API_VERSION', status: 'RED', message: `cannot list API versions: ${(e as Error).message}` });
  }
  try {
    const d = (await limits(sf)).DailyApiRequests;
    if (!d) {
      out.push({ ...base, rule: 'API_LIMITS', status: 'YELLOW', message: 'the org reports no DailyApiRequests limit' });
    } else {
      const share = d.Max ? d.Remaining / d.Max : 0;
      out.push({
        ...base,
        rule: 'API_LIMITS',
        status: share < 0.1 ? 'RED' : share < 0.25 ? 'YELLOW' : 'GREEN',
        message: `${d.Remaining} of ${d.Max} daily API requests remaining`,
      });
    }
  } catch (e) {
    out.push({ ...base, rule: 'API_LIMITS', status: 'RED', message: `cannot read the org's limits: ${(e as Error).message}` });
  }
  await sf.close();
  await pool.end();
  return out;
}

/** The checks, with Salesforce's settings read from `env` (the environment of the command line). */
export async function diagnose(databaseUrl: string, c: pg.Client, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const checks = await schemaChecks(c);
  if (checks[0].status !== 'RED' || checks[0].message.includes('not applied')) {
    if (await hasDiagnose(c)) checks.push(...(await diagnoseChecks(c)));
  }
  checks.push(...(await salesforceChecks(databaseUrl, c, env)));
  return checks;
}
