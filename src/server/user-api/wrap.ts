/**
 * The user API's envelope: authentication and scope (auth.ts), and errors in the catalogue's form
 * (lib/errors.ts): `{"error":{"code","message","details?","requestId"}}`. Anything unexpected is
 * INTERNAL (500) with the request id; its real message goes to the log only.
 */
import { AppError, ERRORS, type ErrorDetail, isAppError } from '../../lib/errors.js';
import type { TokenScope } from '../../protocol/user-api.js';
import type { RouteDeps } from '../deps.js';
import { answerFailure, type FailureForms } from '../failure.js';
import {
  BodyTimeoutError,
  BodyTooLargeError,
  bodyTimeouts,
  type RouteContext,
  readBody,
  sendJson,
} from '../http.js';
import { authorize } from './auth.js';

export function sendError(
  ctx: RouteContext,
  code: keyof typeof ERRORS,
  message?: string,
  details?: ErrorDetail[],
): void {
  const status = ERRORS[code].status;
  sendJson(ctx.res, status, {
    error: {
      code,
      message: message ?? ERRORS[code].message,
      ...(details ? { details } : {}),
      requestId: ctx.requestId,
    },
  });
}

/** The catalogue's forms: UNAVAILABLE with Retry-After, INTERNAL naming the request id. */
const USER_API_FAILURES: FailureForms = {
  unavailableLog: 'user api: store unavailable',
  failedLog: 'user api handler failed',
  abortedLog: 'user api: request body aborted by the client',
  unavailable: (ctx, e) => {
    ctx.res.setHeader('retry-after', '1');
    sendError(ctx, e.code, e.message, e.details);
  },
  internal: (ctx) => sendError(ctx, 'INTERNAL', `Internal error; quote request id ${ctx.requestId}.`),
  afterHeaders: 'end',
};

/**
 * Runs a user-API handler: authentication and the scope check (auth.ts; `scope` defaults to admin,
 * so a route nobody classified is closed rather than open), then the catalogue's error envelope
 * around it. `auth: false` skips both (for /metrics).
 */
export function wrapUser(
  deps: RouteDeps,
  fn: (ctx: RouteContext) => Promise<void>,
  opts: { auth?: boolean; scope?: TokenScope } = {},
) {
  const needs = opts.scope ?? 'admin';
  return async (ctx: RouteContext) => {
    try {
      if (opts.auth !== false) await authorize(ctx, deps, needs);
      await fn(ctx);
    } catch (e) {
      if (isAppError(e) && e.code !== 'UNAVAILABLE') {
        if (e.retryAfterSeconds !== undefined && !ctx.res.headersSent)
          ctx.res.setHeader('retry-after', String(e.retryAfterSeconds));
        sendError(ctx, e.code, e.message, e.details);
        return;
      }
      if (e instanceof BodyTooLargeError) {
        sendError(ctx, 'PAYLOAD_TOO_LARGE', `The request body is larger than ${e.limit} bytes.`);
        return;
      }
      if (e instanceof BodyTimeoutError) {
        // The rest of the body is not waited for: the connection closes after the answer.
        ctx.res.setHeader('connection', 'close');
        sendError(
          ctx,
          'REQUEST_TIMEOUT',
          `${e.message.replace(/^./, (c) => c.toUpperCase())}; send it again.`,
        );
        return;
      }
      answerFailure(ctx, deps.logger, USER_API_FAILURES, e);
    }
  };
}

/** The request body as JSON: UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE or BAD_REQUEST otherwise. */
export async function readJson(ctx: RouteContext, deps: RouteDeps): Promise<unknown> {
  const type = ctx.req.headers['content-type'];
  if (type && !/\bjson\b/i.test(type)) throw new AppError('UNSUPPORTED_MEDIA_TYPE');
  const body = await readBody(ctx.req, deps.config.apiBodyLimitBytes, bodyTimeouts(deps.config));
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new AppError('BAD_REQUEST', `The body is not valid JSON: ${(e as Error).message}`);
  }
}
