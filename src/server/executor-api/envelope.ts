/**
 * The /.executors response envelope, exactly as upstream's `wrapHandler`: 400 text `Failed to
 * unmarshal payload: ...` on a body that does not decode, 413 text over the body limit, 500
 * `{"error":"..."}` on a handler error (a generic one with the request id for anything unexpected),
 * 503 `{"error"}` with Retry-After when the store is unreachable, the handler's status otherwise.
 * Every answer carries the capabilities and server-version headers.
 */
import { isUtf8 } from 'node:buffer';
import type { ZodType, z } from 'zod';
import { errorMessage } from '../../lib/errors.js';
import { CAPABILITY, SERVER_VERSION_HEADER } from '../../protocol/capabilities.js';
import { executorVersion, InvalidVersionError } from '../../protocol/version.js';
import type { RouteDeps } from '../deps.js';
import { answerFailure, type FailureForms } from '../failure.js';
import {
  BodyTimeoutError,
  BodyTooLargeError,
  bodyTimeouts,
  type RouteContext,
  readBody,
  sendBodyTimeout,
  sendJson,
  sendText,
} from '../http.js';
import type { DecodeCache } from './decode-cache.js';

/** Every extension this server has, in their declaration order. */
export const CAPABILITIES_VALUE = Object.values(CAPABILITY).join(', ');

/** Ends a handler with a response already written. */
export class Responded extends Error {
  constructor() {
    super('responded');
  }
}

/** A handler error answered as 500 `{"error": message}` (the message is safe to show). */
export class HandlerError extends Error {}

/** Go-like decode error text for a zod failure. */
function describeZod(error: z.ZodError): string {
  const i = error.issues[0]!;
  const where = i.path.length ? ` (field ${i.path.join('.')})` : '';
  return `json: ${i.message}${where}`;
}

/**
 * Each request's body, read once: the quick markComplete path reads its small body (at most
 * QUICK_BODY_LIMIT) in the same store statement that checks the token; every other route reads
 * only after authentication.
 */
const bodies = new WeakMap<RouteContext, Promise<Buffer>>();

export function bodyOf(ctx: RouteContext, deps: RouteDeps, limitBytes?: number): Promise<Buffer> {
  let body = bodies.get(ctx);
  if (!body) {
    body = readBody(ctx.req, limitBytes ?? deps.config.executorBodyLimitBytes, bodyTimeouts(deps.config));
    // Whoever awaits it handles a failure; this only keeps an unawaited one from being unhandled.
    body.catch(() => {});
    bodies.set(ctx, body);
  }
  return body;
}

export async function decode<T extends ZodType>(
  ctx: RouteContext,
  deps: RouteDeps,
  schema: T,
  /** A route's own body limit, below EXECUTOR_SERVER_EXECUTOR_BODY_LIMIT. */
  limitBytes?: number,
  /** Bodies decoded before, by text (decode-cache.ts). */
  cache?: DecodeCache<z.output<T>>,
): Promise<z.output<T>> {
  const body = await bodyOrAnswer(ctx, deps, limitBytes);
  const text = body.toString('utf8');
  const known = cache?.get(text);
  if (known !== undefined) return known;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    sendText(ctx.res, 400, `Failed to unmarshal payload: ${errorMessage(e)}\n`);
    throw new Responded();
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    sendText(ctx.res, 400, `Failed to unmarshal payload: ${describeZod(r.error)}\n`);
    throw new Responded();
  }
  cache?.set(text, r.data);
  return r.data;
}

/** The request's body; a body over the limit or too slow is answered here (413, 408). */
async function bodyOrAnswer(ctx: RouteContext, deps: RouteDeps, limitBytes?: number): Promise<Buffer> {
  try {
    return await bodyOf(ctx, deps, limitBytes);
  } catch (e) {
    if (e instanceof BodyTooLargeError) {
      sendText(ctx.res, 413, `request body too large (limit ${e.limit} bytes)\n`);
      throw new Responded();
    }
    if (e instanceof BodyTimeoutError) {
      sendBodyTimeout(ctx.res, `${e.message}\n`);
      throw new Responded();
    }
    throw e;
  }
}

/**
 * A `log-append-bytes` request: the fields from the query string (those named in `numbers` as
 * numbers when they are written as integers), checked by `schema` as if they were the JSON
 * body's, and the raw body, which must be UTF-8 (400 otherwise, as a JSON string
 * could not carry anything else either). Nothing of the body is decoded or copied.
 */
export async function decodeBytes<T extends ZodType>(
  ctx: RouteContext,
  deps: RouteDeps,
  schema: T,
  numbers: ReadonlySet<string>,
  limitBytes?: number,
): Promise<{ fields: z.output<T>; bytes: Buffer }> {
  const raw: Record<string, string | number> = {};
  for (const [k, v] of ctx.url.searchParams)
    raw[k] = numbers.has(k) && /^-?\d{1,16}$/.test(v) ? Number(v) : v;
  const r = schema.safeParse(raw);
  if (!r.success) {
    sendText(ctx.res, 400, `Failed to unmarshal payload: ${describeZod(r.error)}\n`);
    throw new Responded();
  }
  const bytes = await bodyOrAnswer(ctx, deps, limitBytes);
  if (!isUtf8(bytes)) {
    sendText(ctx.res, 400, 'Failed to unmarshal payload: the output is not valid UTF-8\n');
    throw new Responded();
  }
  return { fields: r.data, bytes };
}

/** Upstream's forms: 503 `{"error"}` (executors retry it) and 500 `{"error"}` with the request id. */
const EXECUTOR_API_FAILURES: FailureForms = {
  unavailableLog: 'executor api: store unavailable',
  failedLog: 'executor api handler failed',
  abortedLog: 'executor api: request body aborted by the client',
  unavailable: (ctx, e) => sendJson(ctx.res, 503, { error: e.message }, { 'retry-after': '1' }),
  internal: (ctx) => sendJson(ctx.res, 500, { error: `internal error (request id ${ctx.requestId})` }),
  afterHeaders: 'destroy',
};

/**
 * Runs a /.executors handler with upstream's error envelope. The capabilities header is the
 * server's (createServer's handle sets it on every /.executors answer, 404s included).
 */
export function wrapExecutorHandler(deps: RouteDeps, fn: (ctx: RouteContext) => Promise<void>) {
  return async (ctx: RouteContext) => {
    ctx.res.setHeader(SERVER_VERSION_HEADER, executorVersion());
    try {
      await fn(ctx);
    } catch (e) {
      if (e instanceof Responded) return;
      if (e instanceof HandlerError || e instanceof InvalidVersionError) {
        sendJson(ctx.res, 500, { error: e.message });
        return;
      }
      answerFailure(ctx, deps.logger, EXECUTOR_API_FAILURES, e);
    }
  };
}
