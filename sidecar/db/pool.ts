// Two kinds of database sessions. Sync sessions carry `xmlbinary = hex` from the moment they connect:
// that is Heroku Connect's marker for "this write comes from the sync", so the capture triggers skip
// them and the status trigger marks their rows SYNCED. Admin sessions are ordinary (base64).
import pg from 'pg';

// Salesforce datetimes are UTC and HC stores them as `timestamp without time zone`: read those columns
// back as UTC, not in the sidecar's local zone.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMP, (v) => (v === null ? null : new Date(v.replace(' ', 'T') + 'Z')));
// bigint counters (ledger, txids) fit in a JS number for any realistic value.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => (v === null ? null : Number(v)));

export function syncPool(connectionString: string, opts: { max?: number; application_name?: string } = {}): pg.Pool {
  return new pg.Pool({
    connectionString,
    max: opts.max ?? 8,
    application_name: opts.application_name ?? 'hcsync sync',
    options: '-c xmlbinary=hex -c timezone=UTC',
  });
}

export function adminPool(connectionString: string, opts: { max?: number; application_name?: string } = {}): pg.Pool {
  return new pg.Pool({
    connectionString,
    max: opts.max ?? 2,
    application_name: opts.application_name ?? 'hcsync admin',
    options: '-c timezone=UTC',
  });
}
