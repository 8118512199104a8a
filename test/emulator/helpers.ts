import { until } from '../support/until.js';
import jsforce from 'jsforce';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import type { EmulatorOptions } from '../../emulator/server.js';

export const VERSION = '62.0';

export async function start(opts: EmulatorOptions = {}): Promise<Emulator> {
  return startEmulator({ ...opts });
}

/** A connection logged in with the password grant (jsforce's OAuth2 username-password flow). */
export async function login(emu: Emulator, extra: Partial<ConstructorParameters<typeof jsforce.Connection>[0]> = {}) {
  const c = emu.credentials;
  const conn = new jsforce.Connection({
    loginUrl: c.loginUrl, version: VERSION,
    oauth2: { loginUrl: c.loginUrl, clientId: c.clientId, clientSecret: c.clientSecret },
    ...extra,
  });
  await conn.login(c.username, c.password);
  return conn;
}

/** Raw HTTP for asserting exact bodies and headers. */
export async function raw(emu: Emulator, token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(emu.url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

export function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 10_000): Promise<T> {
  return until(fn, what, ms, 25) as Promise<T>;
}
