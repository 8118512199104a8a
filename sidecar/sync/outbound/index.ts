// Postgres → Salesforce. (Being built: see docs/DESIGN.md.)
import type { Service, SyncContext } from '../../context.js';

export async function startOutbound(_ctx: SyncContext): Promise<Service> {
  return { stop: async () => {} };
}
