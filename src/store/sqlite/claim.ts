/**
 * Claiming work: dequeue (the oldest ready job by rank, a new attempt and its token hash, in one
 * IMMEDIATE transaction: SQLite has one writer, so no two dequeues can claim the same row), the ready
 * counts the multi-queue pick weighs, the per-queue figures of /metrics, and the claim history (a
 * single read).
 *
 * The claim history the PostgreSQL twin keeps, kept more cheaply: a claim that is still open is the
 * jobs row itself (processing: attempts, worker_hostname, started_at), so a dequeue writes nothing
 * for it; the attempt's end writes its one job_claims row (connection.ts endAttempt). The history
 * reads the ended claims, then the open one.
 */
import { CLAIM_COLUMNS, type ClaimRow, type QueueStatsRow, toClaimRecord, toQueueStats } from '../rows.js';
import type { DequeueOptions, JobRecord, QueueStats, Store } from '../types.js';
import type { SqliteContext } from './connection.js';
import { type JobRow, toJob } from './rows.js';

export function claimQueries(
  c: SqliteContext,
): Pick<Store, 'dequeue' | 'readyCounts' | 'queueStats' | 'claimHistory'> {
  const { q, tx } = c;
  let rankStepMs: number | undefined;

  /**
   * Brings rank_key in line with the priority step the caller dequeues with. The step is server
   * configuration, so this re-ranks once after a configuration change and is a no-op afterwards.
   */
  const syncRankStep = (stepMs: number) => {
    if (rankStepMs === stepMs) return;
    const row = q('SELECT rank_step_ms FROM store_settings WHERE id = 1').get() as { rank_step_ms: number };
    if (row.rank_step_ms !== stepMs) {
      q('UPDATE store_settings SET rank_step_ms = ? WHERE id = 1').run(stepMs);
      q("UPDATE jobs SET rank_key = queued_at - priority * ? WHERE state = 'queued'").run(stepMs);
    }
    rankStepMs = stepMs;
  };

  const dequeueTx = tx((o: DequeueOptions): { job: JobRecord; attempt: number } | null => {
    syncRankStep(o.priorityStepMs);
    const cand = q(
      `SELECT id FROM jobs WHERE queue = ? AND state = 'queued' AND (process_after IS NULL OR process_after <= ?)
       ORDER BY rank_key, id LIMIT 1`,
    ).get(o.queue, o.now) as { id: number } | undefined;
    if (!cand) return null;
    const row = q(
      `UPDATE jobs SET state = 'processing', started_at = ?, last_heartbeat_at = ?, finished_at = NULL,
         failure_message = NULL, worker_hostname = ?, attempts = attempts + 1
       WHERE id = ? RETURNING *`,
    ).get(o.now, o.now, o.executorName, cand.id) as JobRow;
    // A number reused after retryJob: the new attempt starts with an empty log.
    q('DELETE FROM log_entries WHERE job_id = ? AND attempt = ?').run(row.id, row.attempts);
    q(
      `INSERT INTO job_tokens (token_hash, job_id, attempt, queue, repository_name, executor_name, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (job_id) DO UPDATE SET token_hash = excluded.token_hash, attempt = excluded.attempt,
         queue = excluded.queue, repository_name = excluded.repository_name,
         executor_name = excluded.executor_name, created_at = excluded.created_at`,
    ).run(o.tokenHash, row.id, row.attempts, row.queue, row.repository_name, o.executorName, o.now);
    return { job: toJob(row), attempt: row.attempts };
  });

  return {
    async dequeue(o: DequeueOptions) {
      return dequeueTx(o);
    },

    async readyCounts(queues: string[], now: number) {
      const counts = new Map<string, number>(queues.map((name) => [name, 0]));
      const stmt = q(
        `SELECT COUNT(*) AS n FROM jobs
           WHERE queue = ? AND state = 'queued' AND (process_after IS NULL OR process_after <= ?)`,
      );
      for (const name of counts.keys()) counts.set(name, (stmt.get(name, now) as { n: number }).n);
      return counts;
    },

    async queueStats(now: number): Promise<QueueStats[]> {
      const rows = q(
        `SELECT queue,
             SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END) AS queued,
             SUM(CASE WHEN state = 'processing' THEN 1 ELSE 0 END) AS processing,
             MIN(CASE WHEN state = 'queued' AND (process_after IS NULL OR process_after <= ?)
                 THEN max(queued_at, COALESCE(process_after, queued_at)) END) AS oldest
           FROM jobs GROUP BY queue ORDER BY queue`,
      ).all(now) as QueueStatsRow[];
      return rows.map(toQueueStats);
    },

    async claimHistory(jobId: number) {
      const rows = q(
        `SELECT ${CLAIM_COLUMNS} FROM (
           SELECT ${CLAIM_COLUMNS}, 0 AS open, id FROM job_claims WHERE job_id = ?
           UNION ALL
           SELECT id AS job_id, attempts AS attempt, worker_hostname AS executor_name,
             started_at AS claimed_at, NULL AS ended_at, NULL AS outcome, 1 AS open, 0 AS id
           FROM jobs WHERE id = ? AND state = 'processing')
         ORDER BY open, id`,
      ).all(jobId, jobId) as ClaimRow[];
      return rows.map(toClaimRecord);
    },
  };
}
