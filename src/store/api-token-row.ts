/** The columns of an `api_tokens` row the stores read, and the record both make of them. */
import type { TokenScope } from '../protocol/user-api.js';
import type { ApiTokenRecord } from './types.js';

export interface ApiTokenRow {
  name: string;
  scope: TokenScope;
  created_at: number;
  last_used_at: number | null;
  expires_at: number | null;
  revoked_at: number | null;
}

/** The columns selected for an ApiTokenRow (never token_hash). */
export const API_TOKEN_COLUMNS = 'name, scope, created_at, last_used_at, expires_at, revoked_at';

export function toApiTokenRecord(r: ApiTokenRow): ApiTokenRecord {
  return {
    name: r.name,
    scope: r.scope,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
  };
}
