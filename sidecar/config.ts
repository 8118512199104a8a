// Configuration comes from the environment (and, optionally, a JSON file named by HC_CONFIG_FILE whose
// keys are the same variable names; the environment wins). It is validated once at start-up: a bad
// value stops the process with the variable named and the fix stated.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const schemaName = /^[a-z_][a-z0-9_]{0,62}$/;
const apiVersion = /^\d{2,3}\.0$/;

const Env = z.object({
  DATABASE_URL: z
    .string({ error: 'DATABASE_URL is not set: give the Postgres URL, e.g. postgres://user:pass@host:5432/db' })
    .refine((v) => /^postgres(ql)?:\/\//.test(v), 'DATABASE_URL must start with postgres:// or postgresql://'),
  HC_SCHEMA: z.string().regex(schemaName, 'HC_SCHEMA must be a lower-case Postgres identifier such as salesforce').default('salesforce'),
  HC_CONNECTION_NAME: z.string().min(1).optional(),
  SF_LOGIN_URL: z.url({ error: 'SF_LOGIN_URL must be a URL such as https://login.salesforce.com (or https://test.salesforce.com for sandboxes)' }).default('https://login.salesforce.com'),
  SF_API_VERSION: z.string().regex(apiVersion, 'SF_API_VERSION must look like 62.0').default('62.0'),
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
  HC_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  HC_LOG_PRETTY: z.enum(['0', '1']).optional(),
  HC_ARCHIVE_RETENTION_DAYS: z.coerce.number().int().min(1, 'HC_ARCHIVE_RETENTION_DAYS must be at least 1').default(31),
  HC_BULK_WRITE_THRESHOLD: z.coerce.number().int().min(1, 'HC_BULK_WRITE_THRESHOLD must be at least 1 (records of one object and operation in one ordered batch)').default(2000),
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
  http: { host: string; port: number };
  log: { level: string; pretty: boolean };
  archiveRetentionDays: number;
  /** Ordered writer: this many updates/upserts/deletes of one object in one batch go as one Bulk 2.0 ingest job. */
  bulkWriteThreshold: number;
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
    http: { host: e.HC_HTTP_HOST, port: e.HC_HTTP_PORT },
    log: { level: e.HC_LOG_LEVEL, pretty: e.HC_LOG_PRETTY ? e.HC_LOG_PRETTY === '1' : Boolean(process.stdout.isTTY) },
    archiveRetentionDays: e.HC_ARCHIVE_RETENTION_DAYS,
    bulkWriteThreshold: e.HC_BULK_WRITE_THRESHOLD,
  };
}

/** The configuration as it may be logged or printed: secrets and URL passwords masked. */
export function redacted(c: Config): Record<string, unknown> {
  const url = new URL(c.databaseUrl);
  if (url.password) url.password = '***';
  return {
    ...c,
    databaseUrl: url.toString(),
    salesforce: {
      ...c.salesforce,
      clientSecret: c.salesforce.clientSecret && '***',
      password: c.salesforce.password && '***',
      refreshToken: c.salesforce.refreshToken && '***',
      privateKey: c.salesforce.privateKey && '***',
    },
  };
}
