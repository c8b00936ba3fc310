/**
 * Mirrored repositories (table repositories). Single statements; a register reads the row and then
 * inserts (or, with `replace`, upserts) in one synchronous call, so no other statement comes between.
 */
import {
  credentialText,
  REPOSITORY_COLUMNS,
  type RepositoryRow,
  toRepositoryRecord,
} from '../repository-row.js';
import type { NewRepository, RepositorySync, Store } from '../types.js';
import type { SqliteContext } from './connection.js';

export function repositoryQueries(
  c: SqliteContext,
): Pick<
  Store,
  'addRepository' | 'getRepository' | 'listRepositories' | 'removeRepository' | 'recordRepositorySync'
> {
  const { q } = c;
  const get = (name: string) =>
    q(`SELECT ${REPOSITORY_COLUMNS} FROM repositories WHERE name = ?`).get(name) as RepositoryRow | undefined;
  return {
    // The read and the write run back to back in one synchronous call: nothing interleaves.
    async addRepository(r: NewRepository, now: number, opts: { replace?: boolean } = {}) {
      const existing = get(r.name);
      if (existing && !opts.replace) return { repository: toRepositoryRecord(existing), created: false };
      const row = q(
        `INSERT INTO repositories (name, url, credential, source, state, created_at)
         VALUES (?, ?, ?, ?, 'new', ?)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, credential = excluded.credential,
           source = excluded.source
         RETURNING ${REPOSITORY_COLUMNS}`,
      ).get(r.name, r.url, credentialText(r.credential), r.source, now) as RepositoryRow;
      return { repository: toRepositoryRecord(row), created: !existing };
    },

    async getRepository(name: string) {
      const row = get(name);
      return row ? toRepositoryRecord(row) : null;
    },

    async listRepositories() {
      return (q(`SELECT ${REPOSITORY_COLUMNS} FROM repositories ORDER BY name`).all() as RepositoryRow[]).map(
        toRepositoryRecord,
      );
    },

    async removeRepository(name: string) {
      return q('DELETE FROM repositories WHERE name = ?').run(name).changes > 0;
    },

    async recordRepositorySync(name: string, s: RepositorySync) {
      const row = q(
        `UPDATE repositories SET state = ?,
           last_sync_at = COALESCE(?, last_sync_at),
           last_sync_duration_ms = COALESCE(?, last_sync_duration_ms),
           last_error = CASE WHEN ? THEN ? ELSE last_error END,
           size_bytes = COALESCE(?, size_bytes),
           default_branch = CASE WHEN ? THEN ? ELSE default_branch END
         WHERE name = ? RETURNING ${REPOSITORY_COLUMNS}`,
      ).get(
        s.state,
        s.lastSyncAt ?? null,
        s.lastSyncDurationMs ?? null,
        s.lastError !== undefined ? 1 : 0,
        s.lastError ?? null,
        s.sizeBytes ?? null,
        s.defaultBranch !== undefined ? 1 : 0,
        s.defaultBranch ?? null,
        name,
      ) as RepositoryRow | undefined;
      return row ? toRepositoryRecord(row) : null;
    },
  };
}
