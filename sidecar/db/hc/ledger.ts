// The API-call ledger as the Salesforce client writes it (hc.api_calls and hc.event_deliveries, through
// hc._record_api_calls and hc._record_deliveries of sql/000060_budget.sql): every call made and every change event delivered, flushed in batches on the sync pool.
import { exec, sql, type Session } from './base.js';

/** One Salesforce call, as hc.api_calls records it. */
export interface ApiCallRow {
  at: string | Date;
  connection_id: number | undefined;
  mapping_id: number | null;
  kind: string;
  method: string;
  path: string;
  status: number | null;
  duration_ms: number;
  api_usage_used: number | null;
  api_usage_limit: number | null;
}

/** Records calls (a mapping id that no longer exists is recorded as none). */
export async function recordApiCalls(s: Session, calls: ApiCallRow[]): Promise<void> {
  await exec(s, sql`select hc._record_api_calls(${JSON.stringify(calls)}::jsonb)`);
}

/** Adds change-event deliveries to the connection's count of this hour, per transport and channel. */
export async function recordDeliveries(s: Session, connectionId: number | undefined, deliveries: { transport: string; channel: string; n: number }[]): Promise<void> {
  await exec(s, sql`select hc._record_deliveries(${connectionId}, ${JSON.stringify(deliveries)}::jsonb)`);
}
