/**
 * The one way a route's failure is answered. Each API keeps its own wire form (the user API's
 * `{"error":{code,...}}` catalogue, the executor API's upstream `{"error":"..."}`, plain text
 * elsewhere); the rules are common and live here:
 *
 * - the store unreachable (AppError UNAVAILABLE), or its disk full (store/disk-full.ts): a warning,
 *   and the API's 503 form, retried;
 * - the client gone mid-body (BodyAbortedError): nobody is left to answer and it is not a server
 *   fault, so a debug line and the connection cut;
 * - anything else: an error logged with the request id, and the API's generic 500 naming that id,
 *   never a driver's message. Once headers went out, the response is ended or cut (per API).
 */
import { type AppError, isAppError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { diskFullAsUnavailable } from '../store/disk-full.js';
import { BodyAbortedError, type RouteContext } from './http.js';

export interface FailureForms {
  /** Log messages: the store unreachable; a handler that failed unexpectedly; a body cut short. */
  unavailableLog: string;
  failedLog: string;
  abortedLog: string;
  /** Answers an unreachable store (headers not sent yet). */
  unavailable(ctx: RouteContext, e: AppError): void;
  /** Answers an unexpected failure (headers not sent yet). */
  internal(ctx: RouteContext): void;
  /**
   * An unexpected failure after the headers went out: `end` closes what was sent (the user API's
   * event streams end cleanly, and clients follow again), `destroy` cuts the connection.
   */
  afterHeaders: 'end' | 'destroy';
}

export function answerFailure(ctx: RouteContext, logger: Logger, forms: FailureForms, thrown: unknown): void {
  // A full disk is a 503 like an unreachable store: nothing was stored, and a retry succeeds later.
  const e = diskFullAsUnavailable(thrown);
  const where = { requestId: ctx.requestId, path: ctx.url.pathname };
  if (isAppError(e) && e.code === 'UNAVAILABLE') {
    logger.warn(forms.unavailableLog, { ...where, error: e.cause });
    if (!ctx.res.headersSent) forms.unavailable(ctx, e);
    else ctx.res.destroy();
    return;
  }
  if (e instanceof BodyAbortedError) {
    logger.debug(forms.abortedLog, where);
    ctx.res.destroy();
    return;
  }
  logger.error(forms.failedLog, { ...where, error: e });
  if (!ctx.res.headersSent) forms.internal(ctx);
  else if (forms.afterHeaders === 'end') ctx.res.end();
  else ctx.res.destroy();
}
