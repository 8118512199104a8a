// What a Salesforce failure means, in one place. Every error Salesforce (or the way to it) gives falls in
// one of four kinds:
//   transient    try again later, nothing is wrong with the request: 5xx, a reset or refused socket, a
//                timeout, UNABLE_TO_LOCK_ROW, SERVER_UNAVAILABLE;
//   credentials  an invalid session (INVALID_SESSION_ID, HTTP 401: the refresh that should have healed it
//                did not), or credentials Salesforce refused (invalid_grant, invalid_client), which nothing
//                heals until the SF_* settings change (`refused`). A sign-in that failed without a
//                refusal (the token endpoint answered 503, a reset) is transient;
//   limit        the org's allowance: REQUEST_LIMIT_EXCEEDED, HTTP 429;
//   record       the request itself is wrong, and sending it again fails the same way: a record's error
//                code (FIELD_CUSTOM_VALIDATION_EXCEPTION, REQUIRED_FIELD_MISSING), an unknown field or
//                object (INVALID_FIELD, INVALID_TYPE, NOT_FOUND).
// `retry` says whether the work that failed stays queued: it does for every transient, limit and session
// failure (the writer retries the rows; a refused session is the connection supervisor's to report), and
// it does not for a record failure. Its rule is the writer's from before this module existed, unchanged.
// This module imports nothing: the sync, the CLI and the HTTP API share it.

export type ErrorKind = 'transient' | 'credentials' | 'limit' | 'record';

export interface Classified {
  kind: ErrorKind;
  /** Salesforce's error code (errorCode, or the name jsforce gives the error), '' when there is none. */
  code: string;
  /** The work stays queued and is tried again (see the top of this file). */
  retry: boolean;
  /** Credentials Salesforce refused: no retry succeeds until they are fixed. */
  refused: boolean;
}

/** Codes of answers that say "try again later", never "this row is wrong" (a call's or a record's). */
const RETRY_CODES = new Set([
  'UNABLE_TO_LOCK_ROW', 'REQUEST_LIMIT_EXCEEDED', 'SERVER_UNAVAILABLE', 'INVALID_SESSION_ID', 'UNKNOWN_EXCEPTION',
  'INTERNAL_ERROR', 'REQUEST_RUNNING_TOO_LONG', 'QUERY_TIMEOUT', 'API_CURRENTLY_DISABLED', 'TIMEOUT',
]);
const RETRY_NET = /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|ENOTFOUND|ENETUNREACH|EHOSTDOWN|UND_ERR|socket hang up|fetch failed|terminated|aborted|network|timed out/i;

/** The org's allowance: the call may succeed once usage falls (jsforce names an HTTP error ERROR_HTTP_<status>). */
const LIMIT_CODES = new Set(['REQUEST_LIMIT_EXCEEDED', 'ERROR_HTTP_429', 'ERROR_HTTP_420']);
/** The session: expired, revoked or never valid. */
const SESSION_CODES = new Set(['INVALID_SESSION_ID', 'INVALID_AUTH_HEADER', 'ERROR_HTTP_401', 'INVALID_LOGIN', 'LOGIN_MUST_USE_SECURITY_TOKEN']);
/** OAuth errors that refuse the credentials themselves: no retry can succeed until they are fixed. */
const REFUSED = new Set(['invalid_grant', 'invalid_client', 'invalid_client_id', 'unauthorized_client']);

type ErrorLike = { errorCode?: string; name?: string; message?: string; code?: string; statusCode?: number };

/** Salesforce's error code for an error: its errorCode, else the name jsforce gives it ('' when none). */
export function errorCode(err: unknown): string {
  const e = err as ErrorLike | undefined;
  return e?.errorCode ?? e?.name ?? '';
}

/** A code of a per-record result (or a call) that asks for a retry rather than failing the row. */
export function isRetryCode(code: string | undefined): boolean {
  return !!code && RETRY_CODES.has(code);
}

/** True when the work that failed should be tried again later (see the top of this file). */
export function isTransient(err: unknown): boolean {
  const e = err as ErrorLike | undefined;
  const code = errorCode(err);
  if (RETRY_CODES.has(code)) return true;
  if (/^ERROR_HTTP_(5\d\d|429|420|401)$/.test(code)) return true;
  if (typeof e?.statusCode === 'number' && (e.statusCode >= 500 || e.statusCode === 429)) return true;
  return RETRY_NET.test(`${e?.code ?? ''} ${e?.message ?? ''} ${code}`);
}

/** Which kind a failure is (see the top of this file). */
export function classify(err: unknown): Classified {
  const e = err as ErrorLike | undefined;
  const code = errorCode(err);
  const retry = isTransient(err);
  const refused = isRefusal(err);
  let kind: ErrorKind;
  if (refused) kind = 'credentials';
  // A sign-in or refresh that failed without a refusal (a 503 or a reset from the token endpoint).
  else if (err instanceof SignInError || (e as { name?: string } | undefined)?.name === 'SignInError') kind = 'transient';
  else if (SESSION_CODES.has(code)) kind = 'credentials';
  else if (LIMIT_CODES.has(code) || e?.statusCode === 429) kind = 'limit';
  else if (retry) kind = 'transient';
  else kind = 'record';
  return { kind, code, retry, refused };
}

/** The kind of a per-record error in a save result ({statusCode, message, fields}). */
export function classifyRecordError(e: { statusCode?: string; errorCode?: string } | undefined): Classified {
  const code = e?.statusCode ?? e?.errorCode ?? '';
  const kind: ErrorKind = LIMIT_CODES.has(code) ? 'limit' : SESSION_CODES.has(code) ? 'credentials' : isRetryCode(code) ? 'transient' : 'record';
  return { kind, code, retry: isRetryCode(code), refused: false };
}

/** "CODE: message (fields: A, B)", the form failures are stored and shown in. */
export function errorText(code: string | undefined, message: string | undefined, fields?: string[]): string {
  const f = fields?.length ? ` (fields: ${fields.join(', ')})` : '';
  return `${code ?? 'UNKNOWN_ERROR'}: ${message ?? 'no message'}${f}`;
}

/** A delete's answer that the record is gone already: the delete is done. */
export function isAlreadyDeleted(code: string | undefined): boolean {
  return code === 'ENTITY_IS_DELETED' || code === 'NOT_FOUND';
}

/** Salesforce has no such record (a retrieve by id). */
export function isRecordMissing(err: unknown): boolean {
  return errorCode(err) === 'NOT_FOUND';
}

/** Salesforce has no such object, or the integration user cannot see it (a describe or a REST call). */
export function isObjectMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'NOT_FOUND' || code === 'INVALID_TYPE';
}

/** A describe found no object: NOT_FOUND or INVALID_TYPE in the code, or a NOT_FOUND name. */
export function isDescribeMissing(err: unknown): boolean {
  const e = err as ErrorLike | undefined;
  return e?.errorCode === 'NOT_FOUND' || e?.name === 'NOT_FOUND' || /NOT_FOUND|INVALID_TYPE/.test(String(e?.errorCode ?? e?.name));
}

/** Salesforce no longer has the object: a query says INVALID_TYPE ("sObject type 'X' is not supported"). */
export function isObjectGone(err: unknown): boolean {
  const e = err as ErrorLike | undefined;
  return errorCode(err) === 'INVALID_TYPE' && /sObject type/i.test(String(e?.message ?? ''));
}

/**
 * A sign-in or session refresh that did not succeed. `refused` only for a definite refusal of the
 * credentials (invalid_grant, invalid_client); anything else (a 503 or an HTML page from the token
 * endpoint, a reset connection, a timeout) is transient and retried. Its errorCode is the call's own
 * answer, INVALID_SESSION_ID: the session could not be renewed (yet), so callers retry the work rather
 * than fail its rows.
 */
export class SignInError extends Error {
  readonly errorCode = 'INVALID_SESSION_ID';
  constructor(
    /** The token endpoint's error (invalid_grant, ERROR_HTTP_503, ...) or the network error's code. */
    readonly oauthError: string,
    message: string,
    readonly refused: boolean,
  ) {
    super(message);
    this.name = 'SignInError';
  }
}

/** Classifies what a token request threw (jsforce names an OAuth error after its `error` field). */
export function signInError(err: unknown, what = 'signing in to Salesforce'): SignInError {
  if (err instanceof SignInError) return err;
  const e = err as { name?: string; code?: string; message?: string };
  const code = e?.name && e.name !== 'Error' ? e.name : (e?.code ?? 'Error');
  const refused = REFUSED.has(code);
  return new SignInError(code, `${what} failed: ${code}: ${e?.message ?? String(err)}`, refused);
}

/** True when Salesforce refused the credentials (not when it could not answer). */
export function isRefusal(err: unknown): boolean {
  return signInError(err).refused;
}

/** A SignInError that refused the credentials, also across module copies (checked by name). */
export function isRefusedSignIn(err: unknown): err is SignInError {
  const e = err as { name?: string; refused?: boolean } | undefined;
  return e?.name === 'SignInError' && e.refused === true;
}
