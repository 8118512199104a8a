// Configuration comes from the environment (and, optionally, a JSON file named by HC_CONFIG_FILE whose
// keys are the same variable names; the environment wins). It is validated once at start-up: a bad
// value stops the process with the variable named and the fix stated.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

// At most 48 characters: the writer's wake-up channel is '<schema>.hc_trigger_log', and Postgres refuses
// a channel name longer than 63 bytes (hc.create_connection has the same rule).
const schemaName = /^[a-z_][a-z0-9_]{0,47}$/;
const apiVersion = /^\d{2,3}\.0$/;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "90s", "15m", "1h30m", "500ms", "2d"; a bare number is in `bareUnit`. Undefined when not a duration. */
export function parseDuration(text: string, bareUnit: 'ms' | 's'): number | undefined {
  const t = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * UNIT_MS[bareUnit];
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) return undefined;
  let ms = 0;
  for (const [, n, unit] of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(n) * UNIT_MS[unit as keyof typeof UNIT_MS];
  return ms;
}

function formatMs(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A duration setting: parsed to milliseconds, or refused naming the accepted forms and range. */
function duration(bareUnit: 'ms' | 's', fallback: string, minMs: number, maxMs: number) {
  return z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const ms = parseDuration(v, bareUnit);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration: give one such as 90s, 15m or 1h (a bare number counts as ${bareUnit === 's' ? 'seconds' : 'milliseconds'})` });
        return z.NEVER;
      }
      if (ms < minMs || ms > maxMs) {
        ctx.addIssue({ code: 'custom', message: `${v} is out of range: give a duration from ${formatMs(minMs)} to ${formatMs(maxMs)}` });
        return z.NEVER;
      }
      return Math.round(ms);
    });
}

/** A whole-number setting with its range; the message names both. */
function whole(what: string, min: number, max: number, fallback: number) {
  const range = `a whole number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}`;
  return z.coerce
    .number({ error: `must be ${range} (${what})` })
    .int({ error: `must be ${range} (${what})` })
    .min(min, { error: `must be ${range} (${what})` })
    .max(max, { error: `must be ${range} (${what})` })
    .default(fallback);
}

const Env = z.object({
  DATABASE_URL: z
    .string({ error: 'DATABASE_URL is not set: give the Postgres URL, e.g. postgres://user:pass@host:5432/db' })
    .refine((v) => /^postgres(ql)?:\/\//.test(v), 'DATABASE_URL must start with postgres:// or postgresql://'),
  HC_SCHEMA: z.string().regex(schemaName, 'HC_SCHEMA must be a lower-case Postgres identifier of at most 48 characters, such as salesforce').default('salesforce'),
  HC_CONNECTION_NAME: z.string().min(1).optional(),
  SF_LOGIN_URL: z.url({ error: 'SF_LOGIN_URL must be a URL such as https://login.salesforce.com (or https://test.salesforce.com for sandboxes)' }).default('https://login.salesforce.com'),
  SF_API_VERSION: z.string().regex(apiVersion, 'SF_API_VERSION must look like 65.0').default('65.0'),
  SF_AUTH: z.enum(['password', 'refresh_token', 'client_credentials', 'jwt'], { error: 'SF_AUTH must be password, refresh_token, client_credentials or jwt (or unset: inferred from the SF_* variables given)' }).optional(),
  SF_CLIENT_ID: z.string().min(1).optional(),
  SF_CLIENT_SECRET: z.string().min(1).optional(),
  SF_USERNAME: z.string().min(1).optional(),
  SF_PASSWORD: z.string().min(1).optional(),
  SF_REFRESH_TOKEN: z.string().min(1).optional(),
  /** JWT bearer flow: the private key (PEM) whose certificate is uploaded to the connected app. */
  SF_PRIVATE_KEY: z.string().min(1).optional(),
  SF_PRIVATE_KEY_FILE: z.string().min(1).optional(),
  HC_HTTP_HOST: z.string().default('127.0.0.1'),
  HC_HTTP_PORT: z.coerce.number({ error: 'HC_HTTP_PORT must be a port number (0 picks a free one, logged at start)' }).int().min(0).max(65535).default(9464),
  /** The dashboard's and HTTP API's tokens: admin (every action) and viewer (read only). Admin is generated when unset. */
  HC_DASHBOARD_TOKEN: z.string().min(16, 'HC_DASHBOARD_TOKEN must be at least 16 characters: use a random string, e.g. openssl rand -hex 24').optional(),
  HC_DASHBOARD_VIEWER_TOKEN: z.string().min(16, 'HC_DASHBOARD_VIEWER_TOKEN must be at least 16 characters: use a random string, e.g. openssl rand -hex 24').optional(),
  HC_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  HC_LOG_PRETTY: z.enum(['0', '1']).optional(),
  HC_ARCHIVE_RETENTION_DAYS: whole('days processed _trigger_log entries are kept; Heroku Connect keeps 31', 1, 3650, 31),
  HC_BULK_WRITE_THRESHOLD: whole('records of one object and operation in one ordered batch that go as one Bulk 2.0 job', 1, 150_000_000, 2000),
  /** Rows per Bulk 2.0 query result page of a load or id listing. */
  HC_BULK_PAGE_SIZE: whole('rows per Bulk 2.0 result page', 1, 1_000_000, 25_000),
  /** The drift sweep: every mapping compares its row count with Salesforce's this often. */
  HC_DRIFT_SECONDS: duration('s', '3600', 1000, 30 * 86_400_000),
  /** How often the sweep compares the table id by id even when the counts agree (0: every sweep). */
  HC_RECONCILE_SECONDS: duration('s', '86400', 0, 365 * 86_400_000),
  /** The inbound leader re-reads hc._mappings this often even without a notification. */
  HC_INBOUND_RECONCILE_MS: duration('ms', '30000', 10, 86_400_000),
  /** A sidecar standing by for inbound leadership tries to take it this often. */
  HC_INBOUND_STANDBY_MS: duration('ms', '2000', 10, 3_600_000),
  /** The connection supervisor checks the org (and the connection's state) this often. */
  HC_CONNECTION_CHECK_MS: duration('ms', '30000', 10, 86_400_000),
});

export type SalesforceAuth = 'password' | 'refresh_token' | 'client_credentials' | 'jwt';

export interface SalesforceConfig {
  loginUrl: string;
  apiVersion: string;
  auth: SalesforceAuth;
  clientId?: string;
  clientSecret?: string;
  username?: string;
  password?: string;
  refreshToken?: string;
  privateKey?: string;
}

export interface Config {
  databaseUrl: string;
  schema: string;
  connectionName: string;
  salesforce: SalesforceConfig;
  /** adminToken/viewerToken: the dashboard's tokens (HC_DASHBOARD_TOKEN, HC_DASHBOARD_VIEWER_TOKEN). */
  http: { host: string; port: number; adminToken?: string; viewerToken?: string };
  log: { level: string; pretty: boolean };
  archiveRetentionDays: number;
  /** Ordered writer: this many updates/upserts/deletes of one object in one batch go as one Bulk 2.0 ingest job. */
  bulkWriteThreshold: number;
  /** Inbound timings (milliseconds) and the Bulk 2.0 result page size. */
  inbound: { driftMs: number; reconcileIntervalMs: number; reconcileMs: number; standbyMs: number; bulkPageSize: number };
  connectionCheckMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`hcsync cannot start, the configuration needs fixing:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function fromFile(path: string | undefined): Record<string, string> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`HC_CONFIG_FILE=${path} cannot be read (${(e as Error).message}): fix the path or unset it`]);
  }
  try {
    const obj = JSON.parse(text) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, String(v)]));
  } catch (e) {
    throw new ConfigError([`HC_CONFIG_FILE=${path} is not valid JSON (${(e as Error).message}): it must be an object of VARIABLE: value`]);
  }
}

function inferAuth(e: z.infer<typeof Env>): SalesforceAuth {
  if (e.SF_AUTH) return e.SF_AUTH;
  if (e.SF_REFRESH_TOKEN) return 'refresh_token';
  if (e.SF_PRIVATE_KEY || e.SF_PRIVATE_KEY_FILE) return 'jwt';
  if (e.SF_USERNAME || e.SF_PASSWORD) return 'password';
  return 'client_credentials';
}

/** Only the database is needed (migrate, sql, status verbs …): Salesforce settings are checked by loadConfig. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, opts: { salesforce?: boolean } = {}): Config {
  const merged = { ...fromFile(env.HC_CONFIG_FILE), ...env };
  // Empty variables count as unset, as shells make them easily.
  for (const k of Object.keys(merged)) if (merged[k] === '') delete merged[k];
  const parsed = Env.safeParse(merged);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => (i.path.length ? `${String(i.path[0])}: ${i.message}` : i.message)));
  }
  const e = parsed.data;
  const auth = inferAuth(e);
  if (opts.salesforce !== false) {
    const need: Record<SalesforceAuth, (keyof typeof e)[]> = {
      password: ['SF_CLIENT_ID', 'SF_CLIENT_SECRET', 'SF_USERNAME', 'SF_PASSWORD'],
      refresh_token: ['SF_CLIENT_ID', 'SF_CLIENT_SECRET', 'SF_REFRESH_TOKEN'],
      client_credentials: ['SF_CLIENT_ID', 'SF_CLIENT_SECRET'],
      jwt: ['SF_CLIENT_ID', 'SF_USERNAME', 'SF_PRIVATE_KEY'],
    };
    const missing = need[auth].filter((k) => !e[k] && !(k === 'SF_PRIVATE_KEY' && e.SF_PRIVATE_KEY_FILE));
    if (missing.length) {
      throw new ConfigError(
        missing.map(
          (k) =>
            `${k} is not set: ${auth} authentication needs ${need[auth].join(', ')}${auth === 'jwt' ? ' (or SF_PRIVATE_KEY_FILE)' : ''} (from your connected app and integration user)`,
        ),
      );
    }
  }
  let privateKey = e.SF_PRIVATE_KEY;
  if (!privateKey && e.SF_PRIVATE_KEY_FILE) {
    try {
      privateKey = readFileSync(e.SF_PRIVATE_KEY_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError([`SF_PRIVATE_KEY_FILE=${e.SF_PRIVATE_KEY_FILE} cannot be read (${(err as Error).message}): give the PEM file of the connected app's key`]);
    }
  }
  if (auth === 'jwt' && privateKey && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) {
    throw new ConfigError([`${e.SF_PRIVATE_KEY ? 'SF_PRIVATE_KEY' : 'SF_PRIVATE_KEY_FILE'}: not a PEM private key (-----BEGIN PRIVATE KEY-----): give the key whose certificate the connected app holds`]);
  }
  return {
    databaseUrl: e.DATABASE_URL,
    schema: e.HC_SCHEMA,
    connectionName: e.HC_CONNECTION_NAME ?? e.HC_SCHEMA,
    salesforce: {
      loginUrl: e.SF_LOGIN_URL.replace(/\/+$/, ''),
      apiVersion: e.SF_API_VERSION,
      auth,
      clientId: e.SF_CLIENT_ID,
      clientSecret: e.SF_CLIENT_SECRET,
      username: e.SF_USERNAME,
      password: e.SF_PASSWORD,
      refreshToken: e.SF_REFRESH_TOKEN,
      privateKey,
    },
    http: { host: e.HC_HTTP_HOST, port: e.HC_HTTP_PORT, adminToken: e.HC_DASHBOARD_TOKEN, viewerToken: e.HC_DASHBOARD_VIEWER_TOKEN },
    log: { level: e.HC_LOG_LEVEL, pretty: e.HC_LOG_PRETTY ? e.HC_LOG_PRETTY === '1' : Boolean(process.stdout.isTTY) },
    archiveRetentionDays: e.HC_ARCHIVE_RETENTION_DAYS,
    bulkWriteThreshold: e.HC_BULK_WRITE_THRESHOLD,
    inbound: {
      driftMs: e.HC_DRIFT_SECONDS,
      reconcileIntervalMs: e.HC_RECONCILE_SECONDS,
      reconcileMs: e.HC_INBOUND_RECONCILE_MS,
      standbyMs: e.HC_INBOUND_STANDBY_MS,
      bulkPageSize: e.HC_BULK_PAGE_SIZE,
    },
    connectionCheckMs: e.HC_CONNECTION_CHECK_MS,
  };
}

/** The configuration as it may be logged or printed: secrets and URL passwords masked. */
export function redacted(c: Config): Record<string, unknown> {
  const url = new URL(c.databaseUrl);
  if (url.password) url.password = '***';
  return {
    ...c,
    databaseUrl: url.toString(),
    http: { ...c.http, adminToken: c.http.adminToken && '***', viewerToken: c.http.viewerToken && '***' },
    salesforce: {
      ...c.salesforce,
      clientSecret: c.salesforce.clientSecret && '***',
      password: c.salesforce.password && '***',
      refreshToken: c.salesforce.refreshToken && '***',
      privateKey: c.salesforce.privateKey && '***',
    },
  };
}
