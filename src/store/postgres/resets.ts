/**
 * The server's own corrections: stalled jobs (no heartbeat within the lease) requeued or failed
 * after too many resets, and jobs past their deadline errored. One statement each, guards in the
 * WHERE clauses (re-checked on the latest row version under READ COMMITTED); requeued queues are
 * NOTIFYed after it.
 */

import { deadlineMessage, RESET_FAILURE_MESSAGE } from '../failure-messages.js';
import type { RetryPolicy, Store } from '../types.js';
import type { PgContext } from './connection.js';
import { at, ERRORED_SET, RANK_STEP, sql } from './fragments.js';

export function resetQueries(c: PgContext): Pick<Store, 'resetStalled' | 'expireDeadlines'> {
  const { t, rows, notify } = c;
  return {
    /**
     * Two statements (fail, then reset), each locking its rows with SKIP LOCKED so replicas running
     * the resetter at once split the work instead of queueing behind each other.
     */
    async resetStalled(now: number, stalledAfterMs: number, maxResets: number) {
      const failed = await rows<{ id: number }>(
        sql`WITH stalled AS (
           SELECT id FROM jobs
           WHERE state = 'processing' AND last_heartbeat_at < ${at(1)} - $2::bigint AND num_resets >= $3
           FOR UPDATE SKIP LOCKED),
         f AS (
           UPDATE jobs j SET state = 'failed', finished_at = ${at(1)}, failure_message = $4
           FROM stalled s WHERE j.id = s.id RETURNING j.id, j.attempts, j.finished_at),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM f)),
         h AS (
           UPDATE job_claims c SET ended_at = f.finished_at, outcome = 'stalled-failed'
           FROM f WHERE c.job_id = f.id AND c.attempt = f.attempts AND c.outcome IS NULL)
         SELECT id FROM f ORDER BY id`,
        [t(now), stalledAfterMs, maxResets, RESET_FAILURE_MESSAGE],
      );
      const reset = await rows<{ id: number; queue: string }>(
        sql`WITH stalled AS (
           SELECT id FROM jobs
           WHERE state = 'processing' AND last_heartbeat_at < ${at(1)} - $2::bigint AND num_resets < $3
           FOR UPDATE SKIP LOCKED),
         r AS (
           UPDATE jobs j SET state = 'queued', num_resets = j.num_resets + 1, started_at = NULL,
             last_heartbeat_at = NULL, process_after = NULL, queued_at = ${at(1)},
             rank_key = ${at(1)} - j.priority * ${RANK_STEP}
           FROM stalled s WHERE j.id = s.id RETURNING j.id, j.queue, j.attempts, j.queued_at),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM r)),
         h AS (
           UPDATE job_claims c SET ended_at = r.queued_at, outcome = 'stalled-reset'
           FROM r WHERE c.job_id = r.id AND c.attempt = r.attempts AND c.outcome IS NULL)
         SELECT id, queue FROM r ORDER BY id`,
        [t(now), stalledAfterMs, maxResets],
      );
      await notify(reset.map((r) => r.queue));
      return { reset: reset.map((r) => r.id), failed: failed.map((r) => r.id) };
    },

    /**
     * Finds overdue attempts, then ends each with its own guarded statement (the message names the
     * job's own timeout). The guard includes the attempt, so a job that finished or was reset in
     * between is left alone.
     */
    async expireDeadlines(now: number, retry: RetryPolicy) {
      const due = await rows<{ id: number; attempts: number; timeout_ms: number }>(
        sql`SELECT id, attempts, timeout_ms FROM jobs
         WHERE state = 'processing' AND started_at + timeout_ms < ${at(1)} ORDER BY id`,
        [t(now)],
      );
      const touched: number[] = [];
      for (const j of due) {
        const message = deadlineMessage(j.timeout_ms);
        const r = await rows<{ n: number }>(
          sql`WITH m AS (
             UPDATE jobs SET ${ERRORED_SET}
             WHERE id = $5 AND state = 'processing' AND attempts = $6 RETURNING id, attempts),
           t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM m)),
           h AS (
             UPDATE job_claims c SET ended_at = ${at(2)}, outcome = 'deadline'
             FROM m WHERE c.job_id = m.id AND c.attempt = m.attempts AND c.outcome IS NULL)
           SELECT count(*)::int AS n FROM m`,
          [message, t(now), retry.maxMs, retry.baseMs, j.id, j.attempts],
        );
        if (r[0]!.n > 0) touched.push(j.id);
      }
      return touched;
    },
  };
}
