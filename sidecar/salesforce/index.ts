// Salesforce behind one door: the operations the sync, the CLI and the HTTP API use, and what a failure
// means. Every call goes through the client (client.ts), so it is counted in the API-call ledger.
//   client.ts       sign-in, the session, the ledger (SalesforceClient, withMapping)
//   errors.ts       the error taxonomy: transient, credentials, limit, record
//   rest.ts         describe, limits, versions, identity, query pages, count, records by id
//   collections.ts  sObject Collections saves (200 records a call)
//   ingest.ts       Bulk 2.0 ingest jobs
//   bulk.ts         Bulk 2.0 query jobs, page by page
//   streaming.ts    change events over CometD; pubsub.ts: over the Pub/Sub API
export { CLIENT_NAME, SalesforceClient, withMapping, type Sf } from './client.js';
export * from './errors.js';
export * from './rest.js';
export { save, withTimeout, type SaveKind, type SaveResult } from './collections.js';
export { ingest, isJobTimeout, toCsv, type IngestKind, type IngestResults } from './ingest.js';
export { bulkQuery, type BulkQueryOptions } from './bulk.js';
