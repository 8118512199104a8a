// The connection's own state, as Heroku Connect shows it (reference §3.4, §7.4). Mapping states belong
// to the inbound reader; this service owns the few connection-level transitions only the sidecar can
// judge:
//   RECOVERY (after `select hc.recover()`) → IDLE once one authenticated Salesforce call succeeds, or
//     UNAUTHORIZED when Salesforce refuses the credentials;
//   any state → UNAUTHORIZED when a session refresh is refused at run time (invalid_grant,
//     invalid_client: the sync cannot go on until the credentials are fixed; HC's "Salesforce
//     authentication expired"). A token endpoint that fails otherwise (a 503, a timeout) is not a
//     refusal: the work that needed the session is retried and the state does not change;
//   UNAUTHORIZED → IDLE once an authenticated call succeeds again (a sidecar started with fixed
//     credentials, or credentials accepted again).
// The state is reported by the sidecar that holds the connection (the inbound leader) only: a second,
// misconfigured sidecar does not get to call a connection UNAUTHORIZED that another one keeps syncing.
// It listens on hc_control like the rest of the sidecar; the table is the truth, the nudge only a hint.
import { subscribeAll } from '../db/notifier.js';
import type { Service, SyncContext } from '../context.js';
import { isRefusal } from '../salesforce/errors.js';
import { limits } from '../salesforce/rest.js';
import { budgetProbeDue, connectionState, setConnectionState } from '../db/hc/control.js';

export async function startConnectionSupervisor(ctx: SyncContext, opts: { holds: () => boolean }): Promise<Service> {
  const log = ctx.log.child({ part: 'connection' });
  const { id, name } = ctx.connection;
  let stopped = false;
  let busy: Promise<void> | undefined;

  const setState = async (state: string, message: string | null) => {
    await setConnectionState(ctx.db, state, message, name);
    log.info({ state, message }, 'connection state');
  };

  // A refused refresh (revoked refresh token, changed password, blocked connected app) cannot heal by
  // retrying: say so where operators look.
  ctx.sf.onRefused.push((err) => {
    if (stopped) return;
    if (!opts.holds()) {
      log.error({ err }, 'Salesforce refused this sidecar\'s credentials; another sidecar holds the connection, so its state is left alone');
      return;
    }
    void setState(
      'UNAUTHORIZED',
      `Salesforce refused the credentials (${err.oauthError}): fix the SF_* credentials, restart hcsync, then run hc.recover() (hcsync recover);`,
    ).catch((e) => log.error({ err: e }, 'could not record UNAUTHORIZED'));
  });

  // While the API budget holds reads back, something must learn when the allowance returns: when no call
  // has reported the org's use for HC_BUDGET_PROBE_SECONDS, one GET /limits does (hc.api_budget_probe_due).
  const probeBudget = async () => {
    const due = await budgetProbeDue(ctx.db, id, `${ctx.config.budgetProbeMs / 1000} seconds`);
    if (!due) return;
    await limits(ctx.sf).catch((err) => log.warn({ err }, 'asking Salesforce for the API usage failed'));
    await ctx.sf.ledger.flush();
  };

  const check = async () => {
    if (!opts.holds()) return;
    await probeBudget();
    const state = await connectionState(ctx.db, id);
    if (state !== 'RECOVERY' && state !== 'UNAUTHORIZED') return;
    try {
      // One cheap authenticated call proves the session (and refreshes it if it had expired).
      await limits(ctx.sf);
      await setState('IDLE', null);
    } catch (err) {
      log.warn({ err, state }, 'connection check failed');
      if (state === 'RECOVERY' && isRefusal(err)) {
        await setState('UNAUTHORIZED', `recovery failed: ${(err as Error).message}`);
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

  const listener = await subscribeAll(ctx.notifications, ctx.config.databaseUrl, ['hc_control'], (_ch, payload) => {
    if (!payload || payload === ctx.connection.schema) nudge(); // null: (re)connected, re-read
  }, { log, application_name: 'hcsync connection' });
  const timer = setInterval(nudge, ctx.config.connectionCheckMs);
  // This process signed in before it started us: credentials that failed before work now.
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
