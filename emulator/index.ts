// Salesforce org emulator: library entry point.
import { EmulatorServer, type EmulatorOptions, type EmulatorStats, type Fault } from './server.js';
import type { ChangeEvent, Rec, SaveResult } from './org.js';
import type { StoredEvent } from './cdc.js';
import { seedOrg } from './seed.js';

export type { OrgDefinition, ObjectDefinition, FieldDefinition, ValidationRule, FlowDefinition, DuplicateRule, Condition } from './schema.js';
export type { EmulatorOptions, EmulatorStats, Fault } from './server.js';
export { defaultOrg } from './orgs/default.js';
import { normalizeId } from './ids.js';
export { checksum, normalizeId } from './ids.js';

export interface Emulator {
  /** Instance and login base URL, e.g. http://127.0.0.1:PORT */
  url: string;
  /** The same org over HTTPS (when started with httpsPort), e.g. https://127.0.0.1:PORT */
  httpsUrl?: string;
  /** PEM of the self-signed certificate of the HTTPS and Pub/Sub listeners, for clients to trust. */
  certificate?: string;
  /** host:port of the Pub/Sub API (TLS gRPC), unless started with pubsubPort: false. */
  pubsubEndpoint?: string;
  /** Defines a custom change event channel /data/<name> (name ends in __chn) carrying these objects. */
  defineChannel(name: string, objects: string[]): { channel: string; objects: string[] };
  credentials: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string };
  stop(): Promise<void>;
  stats(): EmulatorStats;
  /** Empties the org (and events, faults, API counter); optionally seeds it again. */
  reset(seed?: Record<string, number>): void;
  /** Snapshot of an object's records (formula fields evaluated). */
  records(objectName: string, opts?: { includeDeleted?: boolean }): Rec[];
  record(id: string): Rec | undefined;
  seed(counts: Record<string, number>): void;
  setLatency(ms: number): void;
  /** Error injection: see docs/EMULATOR.md. */
  injectFault(f: Partial<Fault>): Fault;
  clearFaults(): void;
  /** The next n record writes fail with UNABLE_TO_LOCK_ROW. */
  failNextLocks(n: number): void;
  setDailyApiLimit(limit: number, used?: number): void;
  expireTokens(): number;
  setTokenTtl(ms: number): void;
  mintRefreshToken(): string;
  dropStreamingSessions(): number;
  setReplayRetention(ms: number): void;
  injectGap(object: string, changeType: ChangeEvent['changeType'], recordIds?: string[]): void;
  events(afterReplayId?: number): StoredEvent[];
  undelete(ids: string[]): SaveResult[];
  /** Rows per Bulk 2.0 query results page when the client sends no maxRecords. */
  setBulkQueryPageSize(n: number): void;
  /** What /limits/recordCount reports for the object (real orgs report estimates); undefined: the live count. */
  setRecordCountEstimate(objectName: string, count: number | undefined): void;
  /** The object is deleted from the org's schema (describe and queries answer NOT_FOUND / INVALID_TYPE). */
  removeObject(objectName: string): void;
  server: EmulatorServer;
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const s = new EmulatorServer(opts);
  const url = await s.listen();
  return {
    url,
    httpsUrl: s.httpsUrl,
    certificate: s.certificate,
    pubsubEndpoint: s.pubsubEndpoint,
    defineChannel: (name, objects) => s.cdc.defineChannel(name, objects),
    credentials: s.credentials(),
    stop: () => s.close(),
    stats: () => s.stats(),
    reset: (seed) => s.reset(seed),
    records: (name, o) => s.records(name, o?.includeDeleted ?? false),
    record: (id) => {
      const hit = s.org.find(normalizeId(id) ?? '');
      return hit ? s.records(hit.obj.name, true).find((r) => r.Id === hit.rec.Id) : undefined;
    },
    seed: (counts) => seedOrg(s.org, counts, Date.now() & 0xffff),
    setLatency: (ms) => { s.latencyMs = ms; },
    injectFault: (f) => s.addFault(f),
    clearFaults: () => { s.faults = []; s.org.lockFailures = 0; },
    failNextLocks: (n) => { s.org.lockFailures = n; },
    setDailyApiLimit: (limit, used) => { s.limits.dailyApiRequests = limit; if (used !== undefined) s.limits.used = used; },
    expireTokens: () => s.auth.expireAll(),
    setTokenTtl: (ms) => { s.auth.tokenTtlMs = ms; },
    mintRefreshToken: () => s.auth.mintRefreshToken(),
    dropStreamingSessions: () => s.cdc.dropSessions(),
    setReplayRetention: (ms) => s.cdc.setRetention(ms),
    injectGap: (object, changeType, recordIds = []) => s.injectGap(object, changeType, recordIds),
    events: (after = -1) => s.cdc.retained().filter((e) => e.replayId > after),
    undelete: (ids) => s.undelete(ids),
    setBulkQueryPageSize: (n) => { s.bulk.defaultPageSize = n; },
    setRecordCountEstimate: (name, count) => {
      if (count === undefined) s.org.recordCountEstimates.delete(name.toLowerCase());
      else s.org.recordCountEstimates.set(name.toLowerCase(), count);
    },
    removeObject: (name) => {
      const o = s.org.object(name);
      if (!o) throw new Error(`the org has no object ${name}`);
      s.org.meta.objects.delete(o.name.toLowerCase());
      s.org.meta.ordered.splice(s.org.meta.ordered.indexOf(o), 1);
    },
    server: s,
  };
}
