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
  /** The Postgres database to sync (the sync's own sessions, migrations and the CLI's verbs). */
  DATABASE_URL: z
    .string({ error: 'DATABASE_URL is not set: give the Postgres URL, e.g. postgres://user:pass@host:5432/db' })
    .refine((v) => /^postgres(ql)?:\/\//.test(v), 'DATABASE_URL must start with postgres:// or postgresql://'),
  /** The connection's schema: where the mapped tables and Heroku Connect's _trigger_log live. */
  HC_SCHEMA: z.string().regex(schemaName, 'HC_SCHEMA must be a lower-case Postgres identifier of at most 48 characters, such as salesforce').default('salesforce'),
  /** The connection's name in hc.connections (default: the schema name), and the CLI's default for --connection. */
  HC_CONNECTION_NAME: z.string().min(1).optional(),
  /** Where to sign in: https://login.salesforce.com, https://test.salesforce.com for sandboxes, or a My Domain URL. */
  SF_LOGIN_URL: z.url({ error: 'SF_LOGIN_URL must be a URL such as https://login.salesforce.com (or https://test.salesforce.com for sandboxes)' }).default('https://login.salesforce.com'),
  /** The Salesforce API version every call uses; hcsync run refuses one the org does not serve. */
  SF_API_VERSION: z.string().regex(apiVersion, 'SF_API_VERSION must look like 65.0').default('65.0'),
  /** How to sign in (OAuth flow); unset, it is inferred from the SF_* variables given. */
  SF_AUTH: z.enum(['password', 'refresh_token', 'client_credentials', 'jwt'], { error: 'SF_AUTH must be password, refresh_token, client_credentials or jwt (or unset: inferred from the SF_* variables given)' }).optional(),
  /** The connected app's consumer key. */
  SF_CLIENT_ID: z.string().min(1).optional(),
  /** The connected app's consumer secret. */
  SF_CLIENT_SECRET: z.string().min(1).optional(),
  /** The integration user (password and JWT flows). */
  SF_USERNAME: z.string().min(1).optional(),
  /** The integration user's password, with its security token appended when the org asks for one (password flow). */
  SF_PASSWORD: z.string().min(1).optional(),
  /** A refresh token of the connected app for the integration user (refresh_token flow). */
  SF_REFRESH_TOKEN: z.string().min(1).optional(),
  /** JWT bearer flow: the private key (PEM) whose certificate is uploaded to the connected app. */
  SF_PRIVATE_KEY: z.string().min(1).optional(),
  /** JWT bearer flow: a file holding that private key (PEM), instead of SF_PRIVATE_KEY. */
  SF_PRIVATE_KEY_FILE: z.string().min(1).optional(),
  /** The address the HTTP server (dashboard, /api, /healthz, /metrics) listens on. */
  HC_HTTP_HOST: z.string().default('127.0.0.1'),
  /** The HTTP server's port (0 picks a free one and logs it). */
  HC_HTTP_PORT: z.coerce.number({ error: 'HC_HTTP_PORT must be a port number (0 picks a free one, logged at start)' }).int().min(0).max(65535).default(9464),
  /** The dashboard's and HTTP API's tokens: admin (every action) and viewer (read only). Admin is generated when unset. */
  HC_DASHBOARD_TOKEN: z.string().min(16, 'HC_DASHBOARD_TOKEN must be at least 16 characters: use a random string, e.g. openssl rand -hex 24').optional(),
  /** The dashboard's and HTTP API's read-only token (GET only); unset, there is no viewer access. */
  HC_DASHBOARD_VIEWER_TOKEN: z.string().min(16, 'HC_DASHBOARD_VIEWER_TOKEN must be at least 16 characters: use a random string, e.g. openssl rand -hex 24').optional(),
  /** Notifications (write failures, error states) are also POSTed here as JSON, retried; each attempt is recorded in hc.notification_deliveries. */
  HC_NOTIFY_WEBHOOK_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL that accepts a JSON POST (a Slack or Teams incoming webhook, say), or unset' })
    .optional(),
  HC_NOTIFY_WEBHOOK_ATTEMPTS: whole('attempts per notification before the webhook gives up on it', 1, 20, 6),
  /** The least severe log level written. */
  HC_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** 1: readable log lines instead of JSON; 0: JSON (default: readable when stdout is a terminal). */
  HC_LOG_PRETTY: z.enum(['0', '1']).optional(),
  HC_ARCHIVE_RETENTION_DAYS: whole('days processed _trigger_log entries are kept; Heroku Connect keeps 31', 1, 3650, 31),
  /** While the API budget holds background reads back: ask Salesforce for the usage (one GET /limits) when no call has reported it for this long. */
  HC_BUDGET_PROBE_SECONDS: duration('s', '300', 1000, 86_400_000),
  HC_BULK_WRITE_THRESHOLD: whole('records of one object and operation in one ordered batch that go as one Bulk 2.0 job', 1, 150_000_000, 2000),
  /** Salesforce write calls (collections calls or Bulk 2.0 jobs) the writer keeps in flight at once. */
  HC_WRITE_CONCURRENCY: whole('Salesforce write calls the writer keeps in flight at once; 1 sends one call at a time', 1, 32, 4),
  /** A stop (SIGTERM) waits this long for calls in flight, then hands back what is left and exits. */
  HC_STOP_SECONDS: duration('s', '8', 1000, 600_000),
  /** Rows per Bulk 2.0 query result page of a load or id listing. A page streams into COPY as it arrives; it is never held whole. */
  HC_BULK_PAGE_SIZE: whole('rows per Bulk 2.0 result page', 1, 1_000_000, 25_000),
  /** Result pages a load reads at once, each COPYed and merged on a database session of its own. */
  HC_BULK_PAGES_IN_FLIGHT: whole('Bulk 2.0 result pages a load reads at once, each on a database session of its own', 1, 4, 2),
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
  /** How change events arrive: the Pub/Sub API (gRPC) or the Streaming API (CometD). */
  HC_CHANGE_STREAM: z.enum(['pubsub', 'cometd'], { error: 'HC_CHANGE_STREAM must be pubsub (the Pub/Sub API, the default) or cometd (the Streaming API)' }).default('pubsub'),
  /** The one Pub/Sub channel carrying every mapped object (/data/ChangeEvents or a custom /data/<Name>__chn); "per-object" subscribes to each object's own channel. */
  HC_CHANGE_CHANNEL: z
    .string()
    .regex(/^(per-object|\/data\/ChangeEvents|\/data\/[A-Za-z][A-Za-z0-9_]*__chn)$/, 'HC_CHANGE_CHANNEL must be /data/ChangeEvents, a custom channel such as /data/Sync__chn, or per-object')
    .default('/data/ChangeEvents'),
  /** The Pub/Sub API's host:port (HC_CHANGE_STREAM=pubsub). */
  SF_PUBSUB_ENDPOINT: z
    .string()
    .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'SF_PUBSUB_ENDPOINT must be host:port, such as api.pubsub.salesforce.com:7443 (api.deu.pubsub.salesforce.com:8443 for Hyperforce Germany)')
    .refine((v) => { const port = /:(\d{1,5})$/.exec(v)?.[1]; return port === undefined || (Number(port) >= 1 && Number(port) <= 65535); }, "SF_PUBSUB_ENDPOINT's port must be from 1 to 65535, such as api.pubsub.salesforce.com:7443")
    .default('api.pubsub.salesforce.com:7443'),
  /** PEM file of a certificate authority the Pub/Sub endpoint is trusted by, besides the system's (a test endpoint's self-signed certificate). */
  SF_PUBSUB_CA_FILE: z.string().min(1).optional(),
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
  /** HC_BUDGET_PROBE_SECONDS in milliseconds (hc.api_budget_probe_due). */
  budgetProbeMs: number;
  salesforce: SalesforceConfig;
  /** adminToken/viewerToken: the dashboard's tokens (HC_DASHBOARD_TOKEN, HC_DASHBOARD_VIEWER_TOKEN). */
  http: { host: string; port: number; adminToken?: string; viewerToken?: string };
  /** The notification webhook (HC_NOTIFY_WEBHOOK_URL) and its attempts per notification. */
  notify: { webhookUrl?: string; attempts: number };
  log: { level: string; pretty: boolean };
  archiveRetentionDays: number;
  /** Ordered writer: this many updates/upserts/deletes of one object in one batch go as one Bulk 2.0 ingest job. */
  bulkWriteThreshold: number;
  /** The writer's Salesforce calls in flight at once (HC_WRITE_CONCURRENCY). */
  writeConcurrency: number;
  /** HC_STOP_SECONDS in milliseconds: how long a stop waits for work in flight before handing it back. */
  stopMs: number;
  /** Inbound timings (milliseconds) and the Bulk 2.0 result page size. */
  inbound: { driftMs: number; reconcileIntervalMs: number; reconcileMs: number; standbyMs: number; bulkPageSize: number; bulkPagesInFlight: number };
  connectionCheckMs: number;
  /** The change stream: transport, the Pub/Sub channel (or per-object), endpoint and extra CA (PEM text). */
  changeStream: { transport: 'pubsub' | 'cometd'; channel: string; pubsubEndpoint: string; pubsubCa?: string };
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
    notify: { webhookUrl: e.HC_NOTIFY_WEBHOOK_URL, attempts: e.HC_NOTIFY_WEBHOOK_ATTEMPTS },
    log: { level: e.HC_LOG_LEVEL, pretty: e.HC_LOG_PRETTY ? e.HC_LOG_PRETTY === '1' : Boolean(process.stdout.isTTY) },
    archiveRetentionDays: e.HC_ARCHIVE_RETENTION_DAYS,
    budgetProbeMs: e.HC_BUDGET_PROBE_SECONDS,
    bulkWriteThreshold: e.HC_BULK_WRITE_THRESHOLD,
    writeConcurrency: e.HC_WRITE_CONCURRENCY,
    stopMs: e.HC_STOP_SECONDS,
    inbound: {
      driftMs: e.HC_DRIFT_SECONDS,
      reconcileIntervalMs: e.HC_RECONCILE_SECONDS,
      reconcileMs: e.HC_INBOUND_RECONCILE_MS,
      standbyMs: e.HC_INBOUND_STANDBY_MS,
      bulkPageSize: e.HC_BULK_PAGE_SIZE,
      bulkPagesInFlight: e.HC_BULK_PAGES_IN_FLIGHT,
    },
    connectionCheckMs: e.HC_CONNECTION_CHECK_MS,
    changeStream: { transport: e.HC_CHANGE_STREAM, channel: e.HC_CHANGE_CHANNEL, pubsubEndpoint: e.SF_PUBSUB_ENDPOINT, pubsubCa: pubsubRoots(readPubsubCa(e.SF_PUBSUB_CA_FILE), env.NODE_EXTRA_CA_CERTS) },
  };
}

/**
 * The certificates the Pub/Sub endpoint is checked against besides the system's: SF_PUBSUB_CA_FILE's,
 * and Node's NODE_EXTRA_CA_CERTS (which gRPC does not read by itself; the emulator prints it). An
 * unreadable NODE_EXTRA_CA_CERTS is Node's to warn about at start.
 */
function pubsubRoots(ca: string | undefined, nodeExtra: string | undefined): string | undefined {
  let extra: string | undefined;
  if (nodeExtra) {
    try {
      extra = readFileSync(nodeExtra, 'utf8');
    } catch {
      extra = undefined;
    }
  }
  const all = [ca, extra].filter((x): x is string => Boolean(x));
  return all.length ? all.join('\n') : undefined;
}

function readPubsubCa(path: string | undefined): string | undefined {
  if (!path) return undefined;
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`SF_PUBSUB_CA_FILE=${path} cannot be read (${(err as Error).message}): give the PEM file of the certificate the Pub/Sub endpoint presents, or unset it`]);
  }
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) throw new ConfigError([`SF_PUBSUB_CA_FILE=${path}: not a PEM certificate (-----BEGIN CERTIFICATE-----): give the certificate the Pub/Sub endpoint presents`]);
  return pem;
}

/** The configuration as it may be logged or printed: secrets and URL passwords masked. */
export function redacted(c: Config): Record<string, unknown> {
  const url = new URL(c.databaseUrl);
  if (url.password) url.password = '***';
  return {
    ...c,
    databaseUrl: url.toString(),
    http: { ...c.http, adminToken: c.http.adminToken && '***', viewerToken: c.http.viewerToken && '***' },
    // A webhook's path is often its secret (Slack, Teams): only the origin is shown.
    notify: { ...c.notify, webhookUrl: c.notify.webhookUrl && `${new URL(c.notify.webhookUrl).origin}/***` },
    salesforce: {
      ...c.salesforce,
      clientSecret: c.salesforce.clientSecret && '***',
      password: c.salesforce.password && '***',
      refreshToken: c.salesforce.refreshToken && '***',
      privateKey: c.salesforce.privateKey && '***',
    },
  };
}

/** A port setting: 0 to 65535, 0 picking a free port; anything else refused naming the variable. */
function port(name: string, fallback: number) {
  const error = `${name} must be a port number from 0 to 65535 (0 picks a free one)`;
  return z.coerce.number({ error }).int({ error }).min(0, { error }).max(65535, { error }).default(fallback);
}

/**
 * Settings only `hcsync demo` reads. The demo starts before any database exists, so they stand apart from
 * Env; it also reads HC_HTTP_PORT, HC_LOG_LEVEL and HC_LOG_PRETTY, with Env's rules (see loadDemoConfig).
 */
const DemoEnv = z.object({
  /** Where hcsync demo keeps its Postgres data, the emulator's state and demo.json (--data wins over it). */
  HC_DEMO_DATA: z.string().min(1).default('.data'),
  /** The demo's Postgres port (any free one when it is taken; 0 picks any free port). */
  HC_DEMO_PG_PORT: port('HC_DEMO_PG_PORT', 54329),
  /** The demo's Salesforce emulator port (any free one when it is taken; 0 picks any free port). */
  HC_DEMO_SF_PORT: port('HC_DEMO_SF_PORT', 54330),
});

export interface DemoConfig {
  dataDir: string;
  pgPort: number;
  sfPort: number;
  httpPort: number;
  log: { level: string; pretty: boolean };
}

function withoutEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
}

function problems(issues: z.core.$ZodIssue[]): ConfigError {
  return new ConfigError(issues.map((i) => (i.path.length ? `${String(i.path[0])}: ${i.message}` : i.message)));
}

/** hcsync demo's settings: its own, and HC_HTTP_PORT, HC_LOG_LEVEL (warn here) and HC_LOG_PRETTY (on here). */
export function loadDemoConfig(env: NodeJS.ProcessEnv = process.env): DemoConfig {
  const schema = DemoEnv.extend({
    HC_HTTP_PORT: Env.shape.HC_HTTP_PORT,
    HC_LOG_LEVEL: Env.shape.HC_LOG_LEVEL.unwrap().default('warn'),
    HC_LOG_PRETTY: Env.shape.HC_LOG_PRETTY,
  });
  const parsed = schema.safeParse(withoutEmpty(env));
  if (!parsed.success) throw problems(parsed.error.issues);
  const e = parsed.data;
  return {
    dataDir: e.HC_DEMO_DATA,
    pgPort: e.HC_DEMO_PG_PORT,
    sfPort: e.HC_DEMO_SF_PORT,
    httpPort: e.HC_HTTP_PORT,
    log: { level: e.HC_LOG_LEVEL, pretty: e.HC_LOG_PRETTY !== '0' },
  };
}

/** HC_CONNECTION_NAME as the CLI's default for --connection: null when unset (the SQL API then takes the one connection). */
export function connectionSetting(env: NodeJS.ProcessEnv = process.env): string | null {
  const parsed = Env.shape.HC_CONNECTION_NAME.safeParse(env.HC_CONNECTION_NAME || undefined);
  if (!parsed.success) throw problems(parsed.error.issues.map((i) => ({ ...i, path: ['HC_CONNECTION_NAME'] })));
  return parsed.data ?? null;
}

/** Every variable the schemas above read: docs/SETTINGS.md lists each (scripts/settings-doc.mjs). */
export const SETTING_NAMES: readonly string[] = [...Object.keys(Env.shape), ...Object.keys(DemoEnv.shape)];
