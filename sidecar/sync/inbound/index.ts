// Salesforce → Postgres. (Being built: see docs/DESIGN.md.)
import type { Service, SyncContext } from '../../context.js';

export async function startInbound(_ctx: SyncContext): Promise<Service> {
  return { stop: async () => {} };
}
