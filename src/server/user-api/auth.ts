/**
 * Who a user-API request is: its Principal, from the request's credentials.
 *
 * - `Authorization: Bearer <EXECUTOR_SERVER_API_TOKEN>`: the bootstrap token, `{bootstrap, admin}`;
 * - a request let in by the dashboard's loopback rule (loopback-access.ts): `{local, admin}`, or the
 *   bootstrap principal when it also carries that token;
 * - `Authorization: Bearer <a token made with POST /api/v1/tokens>`: its name and scope. Its SHA-256
 *   is looked up in the store on every request, without a cache, so a revoke made through any
 *   replica refuses the token on every replica from the next request on. A revoked or expired token
 *   is UNAUTHENTICATED, with a message saying which; an unknown one is just invalid.
 *
 * The principal is kept per request (principalOf) for whatever wants to know who acted.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AppError, isAppError } from '../../lib/errors.js';
import { scopeAllows, type TokenScope } from '../../protocol/user-api.js';
import { peerOf } from '../auth-limiter.js';
import type { RouteDeps } from '../deps.js';
import { constantTimeEqual } from '../executor-api/auth.js';
import type { RouteContext } from '../http.js';
import { loopbackOpen } from '../web/loopback-access.js';

export interface Principal {
  name: string;
  scope: TokenScope;
}

/** The holder of EXECUTOR_SERVER_API_TOKEN. */
export const BOOTSTRAP_PRINCIPAL: Readonly<Principal> = Object.freeze({ name: 'bootstrap', scope: 'admin' });
/** The dashboard on loopback, when EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN lets it in without a token. */
export const LOCAL_PRINCIPAL: Readonly<Principal> = Object.freeze({ name: 'local', scope: 'admin' });
/** Names no stored token may take, so that a principal's name always says who it is. */
export const RESERVED_TOKEN_NAMES: readonly string[] = [BOOTSTRAP_PRINCIPAL.name, LOCAL_PRINCIPAL.name];

/** Prefix of stored tokens' values, so that secret scanners and people can tell what one is. */
export const API_TOKEN_PREFIX = 'exu_';

const principals = new WeakMap<IncomingMessage, Principal>();

/** The principal of an authenticated user-API request; throws when the request was not authenticated. */
export function principalOf(ctx: Pick<RouteContext, 'req'>): Principal {
  const p = principals.get(ctx.req);
  if (!p) throw new Error('principalOf: the request was not authenticated');
  return p;
}

/** SHA-256 (hex) of a token value, as api_tokens stores it. */
export function hashApiToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new stored token's value: 32 random bytes (base64url) behind API_TOKEN_PREFIX, and its hash. */
export function newApiToken(): { token: string; hash: string } {
  const token = API_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, hash: hashApiToken(token) };
}

async function resolvePrincipal(ctx: RouteContext, deps: RouteDeps): Promise<Principal> {
  const m = /^Bearer (.+)$/.exec(ctx.req.headers.authorization ?? '');
  if (loopbackOpen(ctx.req, deps.config)) {
    // Let in without a token; one that carries the bootstrap token is named for it in the trail.
    return m && constantTimeEqual(m[1]!, deps.config.apiToken) ? BOOTSTRAP_PRINCIPAL : LOCAL_PRINCIPAL;
  }
  if (!m) throw new AppError('UNAUTHENTICATED', 'Send "Authorization: Bearer <api token>".');
  const presented = m[1]!;
  if (constantTimeEqual(presented, deps.config.apiToken)) return BOOTSTRAP_PRINCIPAL;
  // Only our own token shape is looked up: anything else cannot be in the table.
  if (!presented.startsWith(API_TOKEN_PREFIX) || presented.length > 100) {
    throw new AppError('UNAUTHENTICATED', 'The API token is not valid.');
  }
  const now = deps.clock.now();
  const t = await deps.store.findApiTokenByHash(hashApiToken(presented), now);
  if (!t) throw new AppError('UNAUTHENTICATED', 'The API token is not valid.');
  if (t.revokedAt !== null) throw new AppError('UNAUTHENTICATED', 'The API token was revoked.');
  if (t.expiresAt !== null && t.expiresAt <= now) {
    throw new AppError('UNAUTHENTICATED', 'The API token has expired.');
  }
  return { name: t.name, scope: t.scope };
}

/**
 * The failure limit around authentication (auth-limiter.ts): while the peer is over it, RATE_LIMITED
 * (429, Retry-After set) before the credentials are looked at; a failed authentication counts
 * against the peer. The loopback rule's requests are neither limited nor counted.
 */
async function limited(
  ctx: RouteContext,
  deps: RouteDeps,
  resolve: () => Promise<Principal>,
): Promise<Principal> {
  if (loopbackOpen(ctx.req, deps.config)) return resolve();
  const { authLimiter, authRefusals } = deps;
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
  try {
    return await resolve();
  } catch (e) {
    if (isAppError(e) && e.code === 'UNAUTHENTICATED') {
      authLimiter.failed(attempt);
      authRefusals.count('user', 'unauthenticated');
    }
    throw e;
  }
}

/**
 * Authenticates the request and checks that its principal's scope covers `needs`: UNAUTHENTICATED
 * (401) or FORBIDDEN (403, naming the scope needed) otherwise. Remembers the principal (principalOf).
 */
export async function authorize(ctx: RouteContext, deps: RouteDeps, needs: TokenScope): Promise<Principal> {
  const p = await limited(ctx, deps, () => resolvePrincipal(ctx, deps));
  principals.set(ctx.req, p);
  if (!scopeAllows(p.scope, needs)) {
    throw new AppError(
      'FORBIDDEN',
      `This needs a token with the ${needs} scope; "${p.name}" has the ${p.scope} scope.`,
    );
  }
  return p;
}
