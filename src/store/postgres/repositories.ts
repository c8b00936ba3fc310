/**
 * Mirrored repositories (table repositories). Single statements: a register is one insert (or
 * upsert with `replace`) followed, when it inserted nothing, by the read of the row that was there;
 * a concurrent register of the same name on another replica loses the insert and reads the winner.
 * Times are the caller's (registration and sync times are shown, never compared with leases).
 */
import {
  credentialText,
  REPOSITORY_COLUMNS,
  type RepositoryRow,
  toRepositoryRecord,
} from '../repository-row.js';
import type { NewRepository, RepositorySync, Store } from '../types.js';
import type { PgContext } from './connection.js';
import { sql } from './fragments.js';

export function repositoryQueries(
  c: PgContext,
): Pick<
  Store,
  'addRepository' | 'getRepository' | 'listRepositories' | 'removeRepository' | 'recordRepositorySync'
> {
  const { rows, query } = c;
  const get = async (name: string) =>
    (
      await rows<RepositoryRow>(sql`SELECT ${REPOSITORY_COLUMNS} FROM repositories WHERE name = $1`, [name])
    )[0];
  return {
    async addRepository(r: NewRepository, now: number, opts: { replace?: boolean } = {}) {
      const onConflict = opts.replace
        ? 'DO UPDATE SET url = excluded.url, credential = excluded.credential, source = excluded.source'
        : 'DO NOTHING';
      // xmax = 0 only on a row this statement inserted (an upsert's update sets it).
      const [row] = await rows<RepositoryRow & { fresh: boolean }>(
        sql`INSERT INTO repositories (name, url, credential, source, state, created_at)
         VALUES ($1, $2, $3, $4, 'new', $5::bigint)
         ON CONFLICT (name) ${onConflict}
         RETURNING ${REPOSITORY_COLUMNS}, (xmax = 0) AS fresh`,
        [r.name, r.url, credentialText(r.credential), r.source, now],
      );
      if (row) return { repository: toRepositoryRecord(row), created: row.fresh };
      const existing = await get(r.name);
      if (!existing) throw new Error(`repository ${r.name} vanished during its registration`);
      return { repository: toRepositoryRecord(existing), created: false };
    },

    async getRepository(name: string) {
      const row = await get(name);
      return row ? toRepositoryRecord(row) : null;
    },

    async listRepositories() {
      return (
        await rows<RepositoryRow>(
          sql`SELECT ${REPOSITORY_COLUMNS} FROM repositories ORDER BY name COLLATE "C"`,
        )
      ).map(toRepositoryRecord);
    },

    async removeRepository(name: string) {
      return ((await query('DELETE FROM repositories WHERE name = $1', [name])).rowCount ?? 0) > 0;
    },

    async recordRepositorySync(name: string, s: RepositorySync) {
      const [row] = await rows<RepositoryRow>(
        sql`UPDATE repositories SET state = $2,
           last_sync_at = COALESCE($3::bigint, last_sync_at),
           last_sync_duration_ms = COALESCE($4::bigint, last_sync_duration_ms),
           last_error = CASE WHEN $5::boolean THEN $6::text ELSE last_error END,
           size_bytes = COALESCE($7::bigint, size_bytes),
           default_branch = CASE WHEN $8::boolean THEN $9::text ELSE default_branch END
         WHERE name = $1 RETURNING ${REPOSITORY_COLUMNS}`,
        [
          name,
          s.state,
          s.lastSyncAt ?? null,
          s.lastSyncDurationMs ?? null,
          s.lastError !== undefined,
          s.lastError ?? null,
          s.sizeBytes ?? null,
          s.defaultBranch !== undefined,
          s.defaultBranch ?? null,
        ],
      );
      return row ? toRepositoryRecord(row) : null;
    },
  };
}
