// What every sync service is handed, and the one shape every service returns.
import type pg from 'pg';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import type { Notifications } from './db/notifier.js';
import type { SalesforceClient } from './salesforce/client.js';

export interface ConnectionRef {
  id: number;
  name: string;
  schema: string;
}

export interface SyncContext {
  config: Config;
  /** Sessions with xmlbinary = hex: the sync's own writes are never captured. */
  db: pg.Pool;
  log: Logger;
  sf: SalesforceClient;
  connection: ConnectionRef;
  /**
   * The process's one LISTEN session (hcsync run makes it); services subscribe to their channels on it.
   * A service started without it (tests, tools) listens on a session of its own.
   */
  notifications?: Notifications;
}

export interface Service {
  /** Finishes or releases in-flight work, then resolves. */
  stop(): Promise<void>;
  /** While stopping: what it still waits for, in words (logged until the stop resolves). */
  waitingFor?(): string;
}
