/**
 * `/api/v1/tokens` (admin scope): create a stored token (its value is in the answer once, then only
 * its SHA-256 exists), list them (never values, never hashes), revoke one by name; and
 * `/api/v1/whoami` (any scope): who the request's credentials are, for the dashboard.
 */
import { parseLifetimeMs } from '../../lib/duration.js';
import { AppError, type ErrorDetail } from '../../lib/errors.js';
import {
  type ApiTokenCreatedView,
  type ApiTokenListView,
  type ApiTokenView,
  TOKEN_SCOPES,
  type TokenScope,
  type WhoamiView,
} from '../../protocol/user-api.js';
import type { ApiTokenRecord } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import { type Router, sendJson } from '../http.js';
import { newApiToken, principalOf, RESERVED_TOKEN_NAMES } from './auth.js';
import { addUserRoute } from './scopes.js';
import { readJson } from './wrap.js';

export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The longest expiry accepted: ten years (keeps expiresAt a sane date). */
export const MAX_TOKEN_LIFETIME_MS = 3650 * 86_400_000;
const CREATE_FIELDS = ['name', 'scope', 'expires'];

export function apiTokenView(t: ApiTokenRecord, now: number): ApiTokenView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    name: t.name,
    scope: t.scope,
    state:
      t.revokedAt !== null ? 'revoked' : t.expiresAt !== null && t.expiresAt <= now ? 'expired' : 'active',
    createdAt: new Date(t.createdAt).toISOString(),
    lastUsedAt: iso(t.lastUsedAt),
    expiresAt: iso(t.expiresAt),
    revokedAt: iso(t.revokedAt),
  };
}

/** The create body's fields, or VALIDATION naming every problem. */
function parseCreate(input: unknown): { name: string; scope: TokenScope; lifetimeMs: number | null } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AppError('VALIDATION', 'Send a JSON object {"name", "scope", "expires"?}.');
  }
  const body = input as Record<string, unknown>;
  const problems: ErrorDetail[] = [];
  for (const k of Object.keys(body)) {
    if (!CREATE_FIELDS.includes(k)) problems.push({ path: k, message: 'unknown field' });
  }
  const { name, scope, expires } = body;
  if (typeof name !== 'string' || !TOKEN_NAME_PATTERN.test(name)) {
    problems.push({
      path: 'name',
      message: 'must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
  } else if (RESERVED_TOKEN_NAMES.includes(name)) {
    problems.push({ path: 'name', message: `"${name}" is reserved` });
  }
  if (typeof scope !== 'string' || !(TOKEN_SCOPES as readonly string[]).includes(scope)) {
    problems.push({ path: 'scope', message: `must be one of ${TOKEN_SCOPES.join(', ')}` });
  }
  let lifetimeMs: number | null = null;
  if (expires !== undefined && expires !== null) {
    const ms = typeof expires === 'string' ? parseLifetimeMs(expires) : undefined;
    if (ms === undefined || ms <= 0 || ms > MAX_TOKEN_LIFETIME_MS) {
      problems.push({
        path: 'expires',
        message: 'must be a lifetime such as "30d", "12h" or "1d12h", at most 3650d',
      });
    } else lifetimeMs = ms;
  }
  if (problems.length > 0)
    throw new AppError('VALIDATION', 'The token request has invalid fields.', { details: problems });
  return { name: name as string, scope: scope as TokenScope, lifetimeMs };
}

export function registerTokenRoutes(router: Router, deps: RouteDeps): void {
  const { store, clock } = deps;

  addUserRoute(router, deps, 'GET /api/v1/whoami', async (ctx) => {
    const p = principalOf(ctx);
    sendJson(ctx.res, 200, { name: p.name, scope: p.scope } satisfies WhoamiView);
  });

  addUserRoute(router, deps, 'POST /api/v1/tokens', async (ctx) => {
    const req = parseCreate(await readJson(ctx, deps));
    const now = clock.now();
    const { token, hash } = newApiToken();
    const created = await store.createApiToken(
      {
        name: req.name,
        scope: req.scope,
        tokenHash: hash,
        expiresAt: req.lifetimeMs === null ? null : now + req.lifetimeMs,
      },
      now,
    );
    if (!created) {
      throw new AppError(
        'CONFLICT',
        `A token named "${req.name}" exists; revoke it first, or pick another name.`,
      );
    }
    sendJson(ctx.res, 201, { ...apiTokenView(created, now), token } satisfies ApiTokenCreatedView, {
      location: `/api/v1/tokens/${encodeURIComponent(created.name)}`,
      'cache-control': 'no-store',
    });
  });

  addUserRoute(router, deps, 'GET /api/v1/tokens', async (ctx) => {
    const now = clock.now();
    const tokens = await store.listApiTokens();
    sendJson(ctx.res, 200, { tokens: tokens.map((t) => apiTokenView(t, now)) } satisfies ApiTokenListView);
  });

  addUserRoute(router, deps, 'DELETE /api/v1/tokens/:name', async (ctx) => {
    const name = ctx.params.name!;
    const now = clock.now();
    const revoked = await store.revokeApiToken(name, now);
    if (!revoked) throw new AppError('NOT_FOUND', `No token is named "${name}".`);
    sendJson(ctx.res, 200, apiTokenView(revoked, now));
  });
}
