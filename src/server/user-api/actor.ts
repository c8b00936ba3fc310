/**
 * Who made a user-API request, as the audit trail names them. `authenticateUser` decides it once
 * per request (wrapUser calls it before the handler); `actorOf` reads it back in the handler.
 *
 * Today there is one API token, so the actor is `admin` for a request with that token and `local`
 * for a request the dashboard's loopback rule let in without one. When named tokens land, the
 * token's name goes here, and nowhere else changes.
 */
import type { IncomingMessage } from 'node:http';
import { AppError } from '../../lib/errors.js';
import { peerOf } from '../auth-limiter.js';
import type { RouteDeps } from '../deps.js';
import { constantTimeEqual } from '../executor-api/auth.js';
import type { RouteContext } from '../http.js';
import { loopbackOpen } from '../web/loopback-access.js';

/** The actor of a request that presented the bootstrap API token (EXECUTOR_SERVER_API_TOKEN). */
export const BOOTSTRAP_ACTOR = 'admin';
/** The actor of a request the dashboard's loopback rule let in without a token. */
export const LOOPBACK_ACTOR = 'local';

const actors = new WeakMap<IncomingMessage, string>();

/** The bearer token of a request, if it sends one. Never logged. */
function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  return m ? m[1] : undefined;
}

/**
 * Authenticates a user-API request and returns its actor, or throws: RATE_LIMITED (429, Retry-After
 * set) while its peer is over the failure limit, before the token is looked at; UNAUTHENTICATED
 * (401) for a missing or wrong token, counted against the peer. A request the loopback rule lets in
 * is `admin` when it also carries the right token, so the trail names the token's holder.
 */
export function authenticateUser(ctx: RouteContext, deps: RouteDeps): string {
  const { authLimiter, authRefusals, config } = deps;
  const token = bearerToken(ctx.req);
  const right = (t: string | undefined) => t !== undefined && constantTimeEqual(t, config.apiToken);
  // The loopback rule lets the request in whatever token it carries (as before the limiter).
  if (loopbackOpen(ctx.req, config)) return remember(ctx, right(token) ? BOOTSTRAP_ACTOR : LOOPBACK_ACTOR);
  // Named tokens will add the presented name here, bounding guesses at one name from many peers.
  const attempt = { peer: peerOf(ctx.req) };
  const wait = authLimiter.blocked(attempt);
  if (wait !== null) {
    authRefusals.count('user', 'rate_limited');
    ctx.res.setHeader('retry-after', String(wait));
    throw new AppError(
      'RATE_LIMITED',
      `Too many failed authentication attempts from this address; retry in ${wait}s.`,
    );
  }
  if (right(token)) return remember(ctx, BOOTSTRAP_ACTOR);
  authLimiter.failed(attempt);
  authRefusals.count('user', 'unauthenticated');
  throw new AppError('UNAUTHENTICATED', 'Send "Authorization: Bearer <api token>".');
}

function remember(ctx: RouteContext, actor: string): string {
  actors.set(ctx.req, actor);
  return actor;
}

/** The actor wrapUser authenticated this request as; `local` for routes that take no token. */
export function actorOf(ctx: RouteContext): string {
  return actors.get(ctx.req) ?? LOOPBACK_ACTOR;
}
