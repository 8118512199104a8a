// /healthz and /metrics. (Being built: see docs/DESIGN.md.)
import type { Service, SyncContext } from '../context.js';

export async function startHttp(_ctx: SyncContext): Promise<Service> {
  return { stop: async () => {} };
}
