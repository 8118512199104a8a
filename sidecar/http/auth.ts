// Who may use the dashboard and its API. Two tokens: admin (HC_DASHBOARD_TOKEN, generated for the run
// when unset) and viewer (HC_DASHBOARD_VIEWER_TOKEN, read only). A request carries one as
// `Authorization: Bearer <token>` or in the hcsync_token cookie, which the page gets by opening the
// printed URL once with ?token=<token> (the server sets the cookie and redirects to the bare URL, so the
// token leaves the address bar and the history).
//
// CSRF: the cookie is SameSite=Strict and HttpOnly, and every request that is not a GET must carry the
// header X-HCSync-CSRF: 1, which a page of another origin cannot add without a CORS preflight this server
// never grants; a cross-origin Origin header is refused as well.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export type Role = 'admin' | 'viewer';
export interface Principal {
  role: Role;
  /** The name hc.audit_log records (column principal). */
  name: string;
}

export const COOKIE = 'hcsync_token';
export const CSRF_HEADER = 'x-hcsync-csrf';

const digest = (t: string) => createHash('sha256').update(t).digest();

export function generateToken(): string {
  return randomBytes(24).toString('base64url');
}

export class Tokens {
  private readonly admin: Buffer;
  private readonly viewer?: Buffer;
  constructor(admin: string, viewer?: string) {
    this.admin = digest(admin);
    this.viewer = viewer ? digest(viewer) : undefined;
  }

  /** The principal a token names, or undefined. Compared in constant time. */
  check(token: string | undefined): Principal | undefined {
    if (!token) return undefined;
    const d = digest(token);
    if (timingSafeEqual(d, this.admin)) return { role: 'admin', name: 'dashboard:admin' };
    if (this.viewer && timingSafeEqual(d, this.viewer)) return { role: 'viewer', name: 'dashboard:viewer' };
    return undefined;
  }
}

export function cookieToken(req: FastifyRequest): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === COOKIE) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

export function bearerToken(req: FastifyRequest): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

export function setTokenCookie(reply: FastifyReply, token: string): void {
  reply.header('set-cookie', `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`);
}

const SAFE = new Set(['GET', 'HEAD']);

/** Why a request may not go on (status and message), or undefined when it may. */
export function refuse(req: FastifyRequest, who: Principal | undefined): { status: number; message: string } | undefined {
  if (!who) {
    return {
      status: 401,
      message: 'a dashboard token is required: open the URL hcsync printed at start (…/?token=…) or send Authorization: Bearer <token>',
    };
  }
  if (SAFE.has(req.method)) return undefined;
  if (who.role !== 'admin') return { status: 403, message: 'the viewer token is read-only: this action needs the admin token (HC_DASHBOARD_TOKEN)' };
  if (req.headers[CSRF_HEADER] !== '1') return { status: 403, message: `a change needs the header X-HCSync-CSRF: 1 (cross-site request protection)` };
  const origin = req.headers.origin;
  if (origin && origin !== 'null') {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host !== req.headers.host) return { status: 403, message: `requests from another origin (${origin}) are refused` };
  } else if (origin === 'null') {
    return { status: 403, message: 'requests from an opaque origin are refused' };
  }
  return undefined;
}
