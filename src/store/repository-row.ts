/** The columns of a `repositories` row the stores read, and the record both make of them. */
import type { RepositoryCredential, RepositoryRecord, RepositorySource, RepositoryState } from './types.js';

export interface RepositoryRow {
  name: string;
  url: string;
  credential: string | null;
  source: RepositorySource;
  state: RepositoryState;
  created_at: number;
  last_sync_at: number | null;
  last_sync_duration_ms: number | null;
  last_error: string | null;
  size_bytes: number | null;
  default_branch: string | null;
}

export const REPOSITORY_COLUMNS =
  'name, url, credential, source, state, created_at, last_sync_at, last_sync_duration_ms, last_error, size_bytes, default_branch';

/** The credential column: the JSON of where the secret comes from (names), never a secret. */
export const credentialText = (c: RepositoryCredential | null): string | null =>
  c === null ? null : JSON.stringify(c);

export function toRepositoryRecord(r: RepositoryRow): RepositoryRecord {
  return {
    name: r.name,
    url: r.url,
    credential: r.credential === null ? null : (JSON.parse(r.credential) as RepositoryCredential),
    source: r.source,
    state: r.state,
    createdAt: r.created_at,
    lastSyncAt: r.last_sync_at,
    lastSyncDurationMs: r.last_sync_duration_ms,
    lastError: r.last_error,
    sizeBytes: r.size_bytes,
    defaultBranch: r.default_branch,
  };
}
