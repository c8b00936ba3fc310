/**
 * The server's own corrections: stalled jobs (no heartbeat within the lease) requeued or failed
 * after too many resets, and jobs past their deadline errored. Each pass is one IMMEDIATE
 * transaction, which also deletes the tokens and writes the claims of the attempts it ends;
 * requeued queues emit `enqueue` after it commits.
 */

import { deadlineMessage, RESET_FAILURE_MESSAGE } from '../failure-messages.js';
import type { RetryPolicy, Store } from '../types.js';
import type { SqliteContext } from './connection.js';
import { ERRORED_SET, erroredParams, RANK_AT } from './fragments.js';

/** A processing job past its lease, read before the reset clears its claim's start. */
interface StalledRow {
  id: number;
  attempts: number;
  worker_hostname: string;
  started_at: number;
  fail: number;
  queue: string;
}

export function resetQueries(c: SqliteContext): Pick<Store, 'resetStalled' | 'expireDeadlines'> {
  const { q, tx } = c;
  const { events, endAttempt } = c;

  const resetStalledTx = tx((now: number, stalledAfterMs: number, maxResets: number) => {
    const cutoff = now - stalledAfterMs;
    // The claims first: the reset below clears started_at.
    const stalled = q(
      `SELECT id, attempts, worker_hostname, started_at, num_resets >= ? AS fail, queue FROM jobs
         WHERE state = 'processing' AND last_heartbeat_at < ? ORDER BY id`,
    ).all(maxResets, cutoff) as StalledRow[];
    const failed = q(
      `UPDATE jobs SET state = 'failed', finished_at = ?, failure_message = ?
         WHERE state = 'processing' AND last_heartbeat_at < ? AND num_resets >= ? RETURNING id`,
    ).all(now, RESET_FAILURE_MESSAGE, cutoff, maxResets) as { id: number }[];
    const reset = q(
      `UPDATE jobs SET state = 'queued', num_resets = num_resets + 1, started_at = NULL,
         last_heartbeat_at = NULL, process_after = NULL, queued_at = ?, rank_key = ${RANK_AT}
       WHERE state = 'processing' AND last_heartbeat_at < ? AND num_resets < ? RETURNING id, queue`,
    ).all(now, now, cutoff, maxResets) as { id: number; queue: string }[];
    for (const r of stalled) {
      const claim = {
        jobId: r.id,
        attempt: r.attempts,
        executorName: r.worker_hostname,
        claimedAt: r.started_at,
      };
      endAttempt(claim, r.fail ? 'stalled-failed' : 'stalled-reset', now);
    }
    return { reset, failed: failed.map((r) => r.id) };
  });

  const expireTx = tx((now: number, retry: RetryPolicy): number[] => {
    const due = q(
      `SELECT id, attempts, timeout_ms, worker_hostname, started_at FROM jobs
         WHERE state = 'processing' AND started_at + timeout_ms < ?`,
    ).all(now) as {
      id: number;
      attempts: number;
      timeout_ms: number;
      worker_hostname: string;
      started_at: number;
    }[];
    const touched: number[] = [];
    for (const j of due) {
      const message = deadlineMessage(j.timeout_ms);
      const row = q(
        `UPDATE jobs SET ${ERRORED_SET} WHERE id = ? AND state = 'processing' AND attempts = ? RETURNING id`,
      ).get(...erroredParams(message, now, retry), j.id, j.attempts);
      if (row) {
        const claim = {
          jobId: j.id,
          attempt: j.attempts,
          executorName: j.worker_hostname,
          claimedAt: j.started_at,
        };
        endAttempt(claim, 'deadline', now);
        touched.push(j.id);
      }
    }
    return touched;
  });

  return {
    async resetStalled(now: number, stalledAfterMs: number, maxResets: number) {
      const { reset, failed } = resetStalledTx(now, stalledAfterMs, maxResets);
      for (const r of reset) events.emit('enqueue', r.queue);
      return { reset: reset.map((r) => r.id), failed };
    },

    async expireDeadlines(now: number, retry: RetryPolicy) {
      return expireTx(now, retry);
    },
  };
}
