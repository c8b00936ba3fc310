/**
 * Retention: finished jobs deleted, and output of older finished jobs dropped, in bounded batches.
 * Freed space is reused by PostgreSQL after autovacuum (migration 7 tunes it for the log tables);
 * reclaimSpace has nothing to do here.
 *
 * Locking: each batch locks its job rows with FOR UPDATE SKIP LOCKED, so replicas pruning at once
 * split the work, and a job another transaction is changing (a user retry) is skipped this round.
 * The state guard is in the selecting statement, re-checked on the locked row version.
 */
import type { PruneResult, Store } from '../types.js';
import { PRUNED_OUTPUT_MARKER } from '../types.js';
import type { PgContext } from './connection.js';
import { sql } from './fragments.js';

const TERMINAL = "state IN ('completed', 'failed', 'canceled')";
const MARKER = Buffer.from(PRUNED_OUTPUT_MARKER, 'utf8');
const batch = (limit: number) => Math.max(1, Math.floor(limit));

export function pruneQueries(
  c: PgContext,
): Pick<Store, 'pruneFinishedJobs' | 'pruneLogOutput' | 'reclaimSpace'> {
  const { rows, inTransaction } = c;
  return {
    /**
     * One statement: the CTEs share a snapshot, so the output bytes are counted before the delete,
     * which cascades to tokens, claims, events, log entries and output.
     */
    async pruneFinishedJobs(finishedBefore: number, limit: number): Promise<PruneResult> {
      const r = await rows<{ jobs: number; bytes: number }>(
        sql`WITH v AS (
           SELECT id FROM jobs WHERE ${TERMINAL} AND finished_at < $1::bigint
           ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED),
         b AS (SELECT COALESCE(SUM(octet_length(data)), 0)::bigint AS n
               FROM log_chunks WHERE job_id IN (SELECT id FROM v)),
         d AS (DELETE FROM jobs j USING v WHERE j.id = v.id RETURNING octet_length(j.spec::text) AS s)
         SELECT (SELECT count(*) FROM d)::int AS jobs,
                ((SELECT COALESCE(SUM(s), 0) FROM d) + (SELECT n FROM b))::bigint AS bytes`,
        [finishedBefore, batch(limit)],
      );
      return { jobs: r[0]!.jobs, bytes: Number(r[0]!.bytes) };
    },

    /** One short transaction: lock the batch, count and delete its output, leave the marker. */
    async pruneLogOutput(finishedBefore: number, limit: number): Promise<PruneResult> {
      return inTransaction(async (tx) => {
        const ids = (
          await tx.query<{ id: number }>(
            sql`SELECT id FROM jobs WHERE ${TERMINAL} AND NOT logs_pruned AND finished_at < $1::bigint
             ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
            [finishedBefore, batch(limit)],
          )
        ).rows.map((r) => r.id);
        if (ids.length === 0) return { jobs: 0, bytes: 0 };
        const del = await tx.query<{ n: number }>(
          `WITH d AS (DELETE FROM log_chunks WHERE job_id = ANY($1::bigint[]) RETURNING octet_length(data) AS n)
           SELECT COALESCE(SUM(n), 0)::bigint AS n FROM d`,
          [ids],
        );
        await tx.query(
          `INSERT INTO log_chunks (job_id, attempt, entry_id, seq, byte_offset, data)
           SELECT job_id, attempt, entry_id, 1, 0, $2 FROM log_entries
           WHERE job_id = ANY($1::bigint[]) AND out_length > 0`,
          [ids, MARKER],
        );
        await tx.query(
          'UPDATE log_entries SET out_length = $2 WHERE job_id = ANY($1::bigint[]) AND out_length > 0',
          [ids, MARKER.length],
        );
        await tx.query('UPDATE jobs SET logs_pruned = TRUE WHERE id = ANY($1::bigint[])', [ids]);
        return { jobs: ids.length, bytes: Number(del.rows[0]!.n) };
      });
    },

    async reclaimSpace() {
      return 0;
    },
  };
}
