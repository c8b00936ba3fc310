/**
 * User-API tokens (table api_tokens). Single statements: a create that replaces a revoked or expired
 * row is one upsert; the lookup reads the row and touches last_used_at (at most once per
 * API_TOKEN_TOUCH_MS) in one statement, so a request costs one round trip. Nothing is cached: every
 * replica sees a revoke with its next request.
 */
import { API_TOKEN_COLUMNS, type ApiTokenRow, toApiTokenRecord } from '../api-token-row.js';
import { API_TOKEN_TOUCH_MS, type NewApiToken, type Store } from '../types.js';
import type { PgContext } from './connection.js';
import { at, sql } from './fragments.js';

export function apiTokenQueries(
  c: PgContext,
): Pick<Store, 'createApiToken' | 'listApiTokens' | 'revokeApiToken' | 'findApiTokenByHash'> {
  const { t, rows } = c;
  return {
    /** expiresAt is the caller's time (days away; clock skew does not matter at that scale). */
    async createApiToken(n: NewApiToken, now: number) {
      const [row] = await rows<ApiTokenRow>(
        sql`INSERT INTO api_tokens (name, scope, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, ${at(4)}, $5::bigint)
         ON CONFLICT (name) DO UPDATE SET scope = excluded.scope, token_hash = excluded.token_hash,
           created_at = excluded.created_at, expires_at = excluded.expires_at,
           last_used_at = NULL, revoked_at = NULL
         WHERE api_tokens.revoked_at IS NOT NULL
            OR (api_tokens.expires_at IS NOT NULL AND api_tokens.expires_at <= ${at(4)})
         RETURNING ${API_TOKEN_COLUMNS}`,
        [n.name, n.scope, n.tokenHash, t(now), n.expiresAt],
      );
      return row ? toApiTokenRecord(row) : null;
    },

    async listApiTokens() {
      return (
        await rows<ApiTokenRow>(sql`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens ORDER BY name COLLATE "C"`)
      ).map(toApiTokenRecord);
    },

    async revokeApiToken(name: string, now: number) {
      const [row] = await rows<ApiTokenRow>(
        sql`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ${at(2)}) WHERE name = $1
         RETURNING ${API_TOKEN_COLUMNS}`,
        [name, t(now)],
      );
      return row ? toApiTokenRecord(row) : null;
    },

    /**
     * The touch is a data-modifying CTE next to the read: the SELECT sees the row as it was when the
     * statement started, so the touched value comes from the CTE's RETURNING when there is one.
     */
    async findApiTokenByHash(tokenHash: string, now: number) {
      const [row] = await rows<ApiTokenRow>(
        sql`WITH touched AS (
           UPDATE api_tokens SET last_used_at = ${at(2)}
           WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ${at(2)})
             AND (last_used_at IS NULL OR last_used_at < ${at(2)} - $3::bigint)
           RETURNING last_used_at)
         SELECT name, scope, created_at,
           COALESCE((SELECT last_used_at FROM touched), last_used_at) AS last_used_at,
           expires_at, revoked_at
         FROM api_tokens WHERE token_hash = $1`,
        [tokenHash, t(now), API_TOKEN_TOUCH_MS],
      );
      return row ? toApiTokenRecord(row) : null;
    },
  };
}
