/**
 * Which PostgreSQL client errors mean "the database is unreachable right now" (as opposed to a bad
 * statement or a constraint): those become AppError UNAVAILABLE (HTTP 503), which clients retry, and
 * the pool replaces the broken connections on its own, so the server recovers without a restart.
 */
import { AppError } from '../../lib/errors.js';

/** Socket-level codes of a connection that failed or broke. */
const SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs: class 08 (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown,
 * 57P03 cannot_connect_now (starting up or in recovery), 53300 too_many_connections.
 */
const SQLSTATES: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03', '53300']);

/** Messages pg raises without a code when a connection ends under a query or cannot be had. */
const MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|not queryable|Client was closed|Connection refused/i;

export function isConnectionError(e: unknown): boolean {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur && typeof cur === 'object'; i++) {
    const err = cur as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof err.code === 'string') {
      if (SOCKET_CODES.has(err.code) || SQLSTATES.has(err.code) || /^08[0-9A-Z]{3}$/.test(err.code))
        return true;
    }
    if (typeof err.message === 'string' && MESSAGES.test(err.message)) return true;
    // net.connect to a name with several addresses fails with an AggregateError of the attempts.
    if (Array.isArray(err.errors) && err.errors.some((x) => isConnectionError(x))) return true;
    cur = err.cause;
  }
  return false;
}

export const DATABASE_UNAVAILABLE_MESSAGE = 'The database is unavailable; retry shortly.';

/** Connection failures become AppError UNAVAILABLE (with the pg error as cause); others pass as is. */
export function toStoreError(e: unknown): unknown {
  if (e instanceof AppError) return e;
  if (isConnectionError(e)) return new AppError('UNAVAILABLE', DATABASE_UNAVAILABLE_MESSAGE, { cause: e });
  return e;
}
