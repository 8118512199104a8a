// The demo's traffic: a few edits a second on both sides, so there is always something moving.
// Salesforce side: a Contact's Department changes (through jsforce, as any integration would).
// Postgres side: a Contact's Title changes (an ordinary application session, captured by the triggers).
// Accounts are left alone so the things to try (which use Accounts) see only their own effect.
import jsforce from 'jsforce';
import pg from 'pg';
import type { Logger } from '../log.js';

const departments = ['Sales', 'Marketing', 'Finance', 'Operations', 'Engineering', 'Support', 'Legal'];
const titles = ['Buyer', 'CFO', 'Director of Operations', 'Engineer', 'Office Manager', 'Purchasing Lead', 'VP Sales'];
const pick = <T>(a: T[]): T => a[Math.floor(Math.random() * a.length)];

export interface TrafficOptions {
  databaseUrl: string;
  schema: string;
  sf: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string; apiVersion: string };
  log: Logger;
  /** Milliseconds between changes; sides alternate. */
  everyMs?: number;
}

export async function startTraffic(o: TrafficOptions): Promise<{ stop(): Promise<void>; changes(): { salesforce: number; postgres: number } }> {
  const conn = new jsforce.Connection({
    loginUrl: o.sf.loginUrl,
    version: o.sf.apiVersion,
    oauth2: { loginUrl: o.sf.loginUrl, clientId: o.sf.clientId, clientSecret: o.sf.clientSecret, redirectUri: 'http://localhost/callback' },
  });
  await conn.login(o.sf.username, o.sf.password);
  const contactIds = ((await conn.query<{ Id: string }>('SELECT Id FROM Contact LIMIT 500')).records ?? []).map((r) => r.Id);
  const db = new pg.Pool({ connectionString: o.databaseUrl, max: 1, application_name: 'hcsync demo traffic' });
  // An idle session that Postgres ends (a restart, a terminated backend) must not take the demo down.
  db.on('error', (err) => o.log.debug({ err }, 'demo traffic: session ended'));
  const counts = { salesforce: 0, postgres: 0 };
  let turn = 0;
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    turn++;
    try {
      if (turn % 2 === 0 && contactIds.length) {
        await conn.sobject('Contact').update({ Id: pick(contactIds), Department: pick(departments) });
        counts.salesforce++;
      } else {
        const r = await db.query(
          `update ${pg.escapeIdentifier(o.schema)}.contact set title = $1
            where id = (select id from ${pg.escapeIdentifier(o.schema)}.contact where sfid is not null order by random() limit 1)`,
          [pick(titles)],
        );
        counts.postgres += r.rowCount ?? 0;
      }
    } catch (err) {
      // The demo keeps going through faults (a paused connection, a table being reloaded …).
      o.log.debug({ err }, 'demo traffic: change skipped');
    }
  };
  const timer = setInterval(() => {
    running = running.then(tick);
  }, o.everyMs ?? 400);
  return {
    changes: () => ({ ...counts }),
    async stop() {
      clearInterval(timer);
      await running;
      await db.end();
    },
  };
}
