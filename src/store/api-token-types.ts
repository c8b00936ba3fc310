/** User-API tokens as the Store keeps them (table api_tokens). */
import type { TokenScope } from '../protocol/user-api.js';

/** A user-API token (table api_tokens); the value itself is never stored, only its SHA-256. */
export interface ApiTokenRecord {
  name: string;
  scope: TokenScope;
  createdAt: number;
  /** Updated at most once per API_TOKEN_TOUCH_MS by findApiTokenByHash. */
  lastUsedAt: number | null;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface NewApiToken {
  name: string;
  scope: TokenScope;
  /** SHA-256 (hex) of the token value. */
  tokenHash: string;
  expiresAt: number | null;
}

/** findApiTokenByHash writes last_used_at only when the stored one is older than this. */
export const API_TOKEN_TOUCH_MS = 60_000;
