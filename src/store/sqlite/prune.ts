/**
 * Retention: finished jobs deleted, and output of older finished jobs dropped, in bounded batches;
 * freed pages given back to the file system (incremental vacuum).
 *
 * Locking: each batch is one IMMEDIATE transaction over at most `limit` jobs, so the writer lock is
 * held for one batch only and dispatches run between batches (the pruner yields to the event loop
 * after each one). The state guard is in the statements: a job that is not terminal is never
 * selected, and nothing can make a terminal job non-terminal inside the transaction.
 */
import type { Store } from '../types.js';
import { PRUNED_OUTPUT_MARKER } from '../types.js';
import type { SqliteContext } from './connection.js';

/** Terminal states, as the partial indexes of migration 7 spell them (SQLite matches them textually). */
const TERMINAL = "state IN ('completed', 'failed', 'canceled')";

const MARKER = Buffer.from(PRUNED_OUTPUT_MARKER, 'utf8');

export function pruneQueries(
  c: SqliteContext,
): Pick<Store, 'pruneFinishedJobs' | 'pruneLogOutput' | 'reclaimSpace'> {
  const { q, tx, db } = c;

  /**
   * Ids of the batch, oldest finish first, named index required: without statistics the planner
   * prefers jobs_state_id and sorts every terminal job for each batch (15-20 ms per batch at
   * 100,000 jobs, measured), where the partial index reads only the batch.
   */
  const pickIds = (sql: string, finishedBefore: number, limit: number): number[] =>
    (q(sql).all(finishedBefore, limit) as { id: number }[]).map((r) => r.id);

  const outputBytes = (ids: number[]): number =>
    ids.length === 0
      ? 0
      : (
          q(
            `SELECT COALESCE(SUM(length(data)), 0) AS b FROM log_chunks
             WHERE job_id IN (SELECT value FROM json_each(?))`,
          ).get(JSON.stringify(ids)) as { b: number }
        ).b;

  const pruneJobsTx = tx((finishedBefore: number, limit: number) => {
    const ids = pickIds(
      `SELECT id FROM jobs INDEXED BY jobs_finished WHERE ${TERMINAL} AND finished_at < ?
       ORDER BY finished_at LIMIT ?`,
      finishedBefore,
      limit,
    );
    if (ids.length === 0) return { jobs: 0, bytes: 0 };
    const json = JSON.stringify(ids);
    const logBytes = outputBytes(ids);
    // Foreign keys cascade to job_tokens, job_claims, job_events, log_entries and log_chunks.
    const deleted = q(
      `DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?)) AND ${TERMINAL}
       RETURNING length(CAST(spec AS BLOB)) AS s`,
    ).all(json) as { s: number }[];
    return { jobs: deleted.length, bytes: logBytes + deleted.reduce((n, r) => n + r.s, 0) };
  });

  const pruneLogsTx = tx((finishedBefore: number, limit: number) => {
    const ids = pickIds(
      `SELECT id FROM jobs INDEXED BY jobs_logs_unpruned WHERE ${TERMINAL} AND logs_pruned = 0 AND finished_at < ?
       ORDER BY finished_at LIMIT ?`,
      finishedBefore,
      limit,
    );
    if (ids.length === 0) return { jobs: 0, bytes: 0 };
    const json = JSON.stringify(ids);
    const bytes = outputBytes(ids);
    q('DELETE FROM log_chunks WHERE job_id IN (SELECT value FROM json_each(?))').run(json);
    q(
      `INSERT INTO log_chunks (job_id, attempt, entry_id, seq, byte_offset, data)
       SELECT job_id, attempt, entry_id, 1, 0, ? FROM log_entries
       WHERE job_id IN (SELECT value FROM json_each(?)) AND out_length > 0`,
    ).run(MARKER, json);
    q(
      `UPDATE log_entries SET out_length = ?
       WHERE job_id IN (SELECT value FROM json_each(?)) AND out_length > 0`,
    ).run(MARKER.length, json);
    q('UPDATE jobs SET logs_pruned = 1 WHERE id IN (SELECT value FROM json_each(?))').run(json);
    return { jobs: ids.length, bytes };
  });

  return {
    async pruneFinishedJobs(finishedBefore: number, limit: number) {
      return pruneJobsTx(finishedBefore, Math.max(1, Math.floor(limit)));
    },
    async pruneLogOutput(finishedBefore: number, limit: number) {
      return pruneLogsTx(finishedBefore, Math.max(1, Math.floor(limit)));
    },
    /**
     * Needs auto_vacuum = INCREMENTAL (set on new files by openSqlite, and on older ones by
     * migrate()); elsewhere freelist pages are only reused, and 0 is answered.
     */
    async reclaimSpace(maxPages: number) {
      if (db.pragma('auto_vacuum', { simple: true }) !== 2) return 0;
      const before = db.pragma('freelist_count', { simple: true }) as number;
      db.pragma(`incremental_vacuum(${Math.max(1, Math.floor(maxPages))})`);
      return before - (db.pragma('freelist_count', { simple: true }) as number);
    },
  };
}
