// Two kinds of database sessions. Sync sessions carry `xmlbinary = hex` from the moment they connect:
// that is Heroku Connect's marker for "this write comes from the sync", so the capture triggers skip
// them and the status trigger marks their rows SYNCED. Admin sessions are ordinary (base64).
import pg from 'pg';

// Salesforce datetimes are UTC and HC stores them as `timestamp without time zone`: read those columns
// back as UTC, not in the sidecar's local zone.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMP, (v) => (v === null ? null : new Date(v.replace(' ', 'T') + 'Z')));
// bigint counters (ledger, txids) fit in a JS number for any realistic value.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => (v === null ? null : Number(v)));

interface PoolOptions {
  max?: number;
  application_name?: string;
  /** Told about idle sessions that died (server restart, terminated backend); the pool replaces them. */
  onIdleError?: (err: Error) => void;
}

function pool(connectionString: string, opts: PoolOptions, defaults: { max: number; name: string; options: string }): pg.Pool {
  const p = new pg.Pool({
    connectionString,
    max: opts.max ?? defaults.max,
    application_name: opts.application_name ?? defaults.name,
    options: defaults.options,
  });
  // pg-pool re-emits an idle client's error on the pool; unheard, it would kill the process. The dead
  // client is already discarded, and work in flight sees its own error, so noting it is enough.
  p.on('error', (err) => opts.onIdleError?.(err));
  // A checked-out client has no pool listener: one held across a Salesforce call (a load's staging
  // table, the drift sweep's id listing) whose session ends (pg_terminate_backend, a restart, a failover,
  // idle_session_timeout) emits 'error' on the client itself, and an unheard 'error' kills the process.
  // Every client hears it for its whole life: the holder's next query fails ("Client has encountered a
  // connection error"), its work fails and is retried, and the pool drops the dead client on release.
  p.on('connect', (client) => {
    client.on('error', () => {});
  });
  return p;
}

// The sync's sessions run as the owner: a name they resolve through a schema another role may create
// objects in (public, on PostgreSQL 14 by default) could be an overload of that role's, run with the
// owner's rights (an untyped parameter even prefers a text overload: pg_advisory_lock($1, $2)). They
// name what they use schema-qualified or in pg_catalog, and temporary tables as pg_temp.<name>.
const SEARCH_PATH = '-c search_path=pg_catalog,pg_temp';

export function syncPool(connectionString: string, opts: PoolOptions = {}): pg.Pool {
  return pool(connectionString, opts, { max: 8, name: 'hcsync sync', options: `-c xmlbinary=hex -c timezone=UTC ${SEARCH_PATH}` });
}

export function adminPool(connectionString: string, opts: PoolOptions = {}): pg.Pool {
  return pool(connectionString, opts, { max: 2, name: 'hcsync admin', options: '-c timezone=UTC' });
}

/**
 * A session of its own that holds a session-level advisory lock (the inbound leader's, a writer's
 * claimer): other sidecars read the lock as "this one is alive", so the session must end soon after its
 * process or host does. kill -9 closes the socket and Postgres ends the session at once. A host that
 * vanishes (power, a network cut) sends nothing, so the server's TCP keepalives probe it (after 2 s idle,
 * every 1 s, 3 probes: gone within about 5 s) instead of after the OS default of two hours; on this side a
 * statement that gets no answer within 10 s fails. The 'error' listener is there from the start: a
 * session terminated while it connects or registers would otherwise kill the process.
 */
export function lockSession(connectionString: string, application_name: string, onError: (err: Error) => void): pg.Client {
  const c = new pg.Client({
    connectionString,
    application_name,
    // Idle by design: a database's idle_session_timeout must not end it (and hand the lock around).
    options: `-c idle_session_timeout=0 -c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 ${SEARCH_PATH}`,
    keepAlive: true,
    keepAliveInitialDelayMillis: 2_000,
    query_timeout: 10_000,
  });
  c.on('error', onError);
  return c;
}
