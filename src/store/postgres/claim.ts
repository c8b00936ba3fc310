/**
 * Claiming work: dequeue takes the best ready row with FOR UPDATE SKIP LOCKED inside the claiming
 * statement (which also writes the attempt's token and its claim record), so replicas never wait on
 * each other's candidate and no transaction stays open; the ready counts the multi-queue pick
 * weighs; the per-queue figures of /metrics; the claim history (a single read). The rank step is
 * re-synced in a short transaction on the settings row when the configuration changes.
 */
import { CLAIM_COLUMNS, type ClaimRow, type QueueStatsRow, toClaimRecord, toQueueStats } from '../rows.js';
import type { DequeueOptions, Store } from '../types.js';
import type { PgContext } from './connection.js';
import { at, sql } from './fragments.js';
import { type PgJobRow, toJob } from './rows.js';

export function claimQueries(
  c: PgContext,
): Pick<Store, 'dequeue' | 'readyCounts' | 'queueStats' | 'claimHistory'> {
  const { t, rows, inTransaction } = c;
  let rankStepMs: number | undefined;

  /**
   * Re-ranks queued jobs when the dequeue's priority step differs from the one rank_key was computed
   * with (a configuration change): a short transaction that locks the settings row, so concurrent
   * replicas re-rank once. Replicas must share one step or they re-rank in turn.
   */
  async function syncRankStep(stepMs: number): Promise<void> {
    if (rankStepMs === stepMs) return;
    await inTransaction(async (c) => {
      const cur = await c.query<{ rank_step_ms: number }>(
        'SELECT rank_step_ms FROM store_settings WHERE id = 1 FOR UPDATE',
      );
      if (cur.rows[0]?.rank_step_ms === stepMs) return;
      await c.query('UPDATE store_settings SET rank_step_ms = $1 WHERE id = 1', [stepMs]);
      await c.query("UPDATE jobs SET rank_key = queued_at - priority * $1::bigint WHERE state = 'queued'", [
        stepMs,
      ]);
    });
    rankStepMs = stepMs;
  }

  return {
    async dequeue(o: DequeueOptions) {
      await syncRankStep(o.priorityStepMs);
      const [row] = await rows<PgJobRow>(
        sql`WITH candidate AS (
           SELECT id FROM jobs
           WHERE queue = $1 AND state = 'queued' AND (process_after IS NULL OR process_after <= ${at(2)})
           ORDER BY rank_key, id
           FOR UPDATE SKIP LOCKED
           LIMIT 1),
         claimed AS (
           UPDATE jobs j SET state = 'processing', started_at = ${at(2)}, last_heartbeat_at = ${at(2)},
             finished_at = NULL,
             failure_message = NULL, worker_hostname = $3, attempts = j.attempts + 1
           FROM candidate c WHERE j.id = c.id
           RETURNING j.*),
         token AS (
           INSERT INTO job_tokens (token_hash, job_id, attempt, queue, repository_name, executor_name, created_at)
           SELECT $4, id, attempts, queue, repository_name, $3, started_at FROM claimed
           ON CONFLICT (job_id) DO UPDATE SET token_hash = excluded.token_hash, attempt = excluded.attempt,
             queue = excluded.queue, repository_name = excluded.repository_name,
             executor_name = excluded.executor_name, created_at = excluded.created_at),
         stale_log AS (
           DELETE FROM log_entries l USING claimed c WHERE l.job_id = c.id AND l.attempt = c.attempts),
         history AS (
           INSERT INTO job_claims (job_id, attempt, executor_name, claimed_at)
           SELECT id, attempts, $3, started_at FROM claimed)
         SELECT * FROM claimed`,
        [o.queue, t(o.now), o.executorName, o.tokenHash],
      );
      return row ? { job: toJob(row), attempt: row.attempts } : null;
    },

    async readyCounts(queues: string[], now: number) {
      const counts = new Map<string, number>(queues.map((name) => [name, 0]));
      const r = await rows<{ queue: string; n: number }>(
        sql`SELECT queue, count(*) AS n FROM jobs
         WHERE queue = ANY($1::text[]) AND state = 'queued'
           AND (process_after IS NULL OR process_after <= ${at(2)})
         GROUP BY queue`,
        [queues, t(now)],
      );
      for (const { queue, n } of r) counts.set(queue, n);
      return counts;
    },

    async queueStats(now: number) {
      const r = await rows<QueueStatsRow>(
        sql`SELECT queue,
           count(*) FILTER (WHERE state = 'queued') AS queued,
           count(*) FILTER (WHERE state = 'processing') AS processing,
           MIN(GREATEST(queued_at, COALESCE(process_after, queued_at)))
             FILTER (WHERE state = 'queued' AND (process_after IS NULL OR process_after <= ${at(1)})) AS oldest
         FROM jobs GROUP BY queue ORDER BY queue COLLATE "C"`,
        [t(now)],
      );
      return r.map(toQueueStats);
    },

    async claimHistory(jobId: number) {
      const r = await rows<ClaimRow>(
        sql`SELECT ${CLAIM_COLUMNS} FROM job_claims WHERE job_id = $1 ORDER BY id`,
        [jobId],
      );
      return r.map(toClaimRecord);
    },
  };
}
