/**
 * User-API tokens (table api_tokens). Single statements; no transaction needed: a create that
 * replaces a revoked or expired row is one upsert, and the lookup's last-used touch is one guarded
 * UPDATE followed by the read only when the UPDATE changed nothing.
 */
import { API_TOKEN_COLUMNS, type ApiTokenRow, toApiTokenRecord } from '../api-token-row.js';
import { API_TOKEN_TOUCH_MS, type NewApiToken, type Store } from '../types.js';
import type { SqliteContext } from './connection.js';

export function apiTokenQueries(
  c: SqliteContext,
): Pick<Store, 'createApiToken' | 'listApiTokens' | 'revokeApiToken' | 'findApiTokenByHash'> {
  const { q } = c;
  return {
    async createApiToken(t: NewApiToken, now: number) {
      const row = q(
        `INSERT INTO api_tokens (name, scope, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET scope = excluded.scope, token_hash = excluded.token_hash,
           created_at = excluded.created_at, expires_at = excluded.expires_at,
           last_used_at = NULL, revoked_at = NULL
         WHERE api_tokens.revoked_at IS NOT NULL
            OR (api_tokens.expires_at IS NOT NULL AND api_tokens.expires_at <= ?)
         RETURNING ${API_TOKEN_COLUMNS}`,
      ).get(t.name, t.scope, t.tokenHash, now, t.expiresAt, now) as ApiTokenRow | undefined;
      return row ? toApiTokenRecord(row) : null;
    },

    async listApiTokens() {
      return (q(`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens ORDER BY name`).all() as ApiTokenRow[]).map(
        toApiTokenRecord,
      );
    },

    async revokeApiToken(name: string, now: number) {
      const row = q(
        `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?
         RETURNING ${API_TOKEN_COLUMNS}`,
      ).get(now, name) as ApiTokenRow | undefined;
      return row ? toApiTokenRecord(row) : null;
    },

    async findApiTokenByHash(tokenHash: string, now: number) {
      const touched = q(
        `UPDATE api_tokens SET last_used_at = ?
         WHERE token_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
           AND (last_used_at IS NULL OR last_used_at < ?)
         RETURNING ${API_TOKEN_COLUMNS}`,
      ).get(now, tokenHash, now, now - API_TOKEN_TOUCH_MS) as ApiTokenRow | undefined;
      const row =
        touched ??
        (q(`SELECT ${API_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?`).get(tokenHash) as
          | ApiTokenRow
          | undefined);
      return row ? toApiTokenRecord(row) : null;
    },
  };
}
