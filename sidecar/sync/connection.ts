// The connection's own state, as Heroku Connect shows it (reference §3.4, §7.4). Mapping states belong
// to the inbound reader; this service owns the few connection-level transitions only the sidecar can
// judge:
//   RECOVERY (after `select hc.recover()`) → IDLE once one authenticated Salesforce call succeeds, or
//     UNAUTHORIZED when Salesforce refuses the credentials;
//   any state → UNAUTHORIZED when a sign-in or token refresh is refused at run time (the sync cannot
//     go on until the credentials are fixed; HC's "Salesforce authentication expired");
//   UNAUTHORIZED → IDLE when this process (started with fixed credentials) has signed in.
// It listens on hc_control like the rest of the sidecar; the table is the truth, the nudge only a hint.
import { listen } from '../db/notifier.js';
import type { Service, SyncContext } from '../context.js';

export async function startConnectionSupervisor(ctx: SyncContext): Promise<Service> {
  const log = ctx.log.child({ part: 'connection' });
  const { id, name } = ctx.connection;
  let stopped = false;
  let busy: Promise<void> | undefined;

  const setState = async (state: string, message: string | null) => {
    await ctx.db.query('select hc.set_connection_state($1, $2, $3)', [state, message, name]);
    log.info({ state, message }, 'connection state');
  };

  // A refused token request (invalid_grant, revoked refresh token, changed password) cannot heal by
  // retrying: say so where operators look.
  ctx.sf.ledger.listeners.push((call) => {
    if (stopped || call.kind !== 'oauth' || call.status < 400) return;
    void setState(
      'UNAUTHORIZED',
      `Salesforce refused the sign-in (HTTP ${call.status}): fix the SF_* credentials, restart hcsync, then select hc.recover();`,
    ).catch((err) => log.error({ err }, 'could not record UNAUTHORIZED'));
  });

  const check = async () => {
    const row = (await ctx.db.query('select state from hc.connections where id = $1', [id])).rows[0];
    if (!row) return;
    if (row.state === 'RECOVERY') {
      try {
        // One cheap authenticated call proves the session (and refreshes it if it had expired).
        await ctx.sf.conn.request(`${ctx.sf.basePath}/limits`);
        await setState('IDLE', null);
      } catch (err) {
        const code = (err as { errorCode?: string }).errorCode ?? (err as Error).name;
        log.warn({ err }, 'recovery check failed');
        if (/INVALID_SESSION_ID|invalid_grant|INVALID_AUTH/i.test(String(code))) {
          await setState('UNAUTHORIZED', `recovery failed: ${(err as Error).message}`);
        }
      }
    }
  };
  const nudge = () => {
    if (stopped || busy) return;
    busy = check()
      .catch((err) => log.error({ err }, 'connection check failed'))
      .finally(() => {
        busy = undefined;
      });
  };

  // This process signed in before it started us: credentials that failed before work now.
  await ctx.db.query(
    `select hc.set_connection_state('IDLE', null, $1) from hc.connections where id = $2 and state = 'UNAUTHORIZED'`,
    [name, id],
  );
  const listener = await listen(ctx.config.databaseUrl, ['hc_control'], (_ch, payload) => {
    if (!payload || payload === ctx.connection.schema) nudge();
  }, { log, onConnect: nudge, application_name: 'hcsync connection' });
  const timer = setInterval(nudge, ctx.config.connectionCheckMs);
  nudge();

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await listener.close();
      await busy;
    },
  };
}
