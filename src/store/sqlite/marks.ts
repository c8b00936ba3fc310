/**
 * The end of an attempt: one UPDATE guarded by the fence (current attempt, processing, owner), the
 * job token deleted and the claim closed with its outcome (job_claims), in one IMMEDIATE
 * transaction. markCompleteByToken checks the token, the executor's registration and the fence
 * inside the completing statement itself.
 */
import type { AttemptFence, ClaimOutcome, RetryPolicy, Store } from '../types.js';
import type { SqliteContext } from './connection.js';
import { ERRORED_SET, erroredParams, FENCE } from './fragments.js';

export function markQueries(
  c: SqliteContext,
): Pick<Store, 'markComplete' | 'markCompleteByToken' | 'markErrored' | 'markFailed'> {
  const { q, tx } = c;
  const { endAttempt } = c;

  /** `sql` is the SET clause with its `params`; `now` is when the claim ends. */
  const markTx = tx(
    (f: AttemptFence, outcome: ClaimOutcome, now: number, sql: string, params: unknown[]): boolean => {
      const row = q(`UPDATE jobs SET ${sql} WHERE ${FENCE} RETURNING id`).get(
        ...params,
        f.jobId,
        f.executorName,
        f.attempt,
      );
      if (!row) return false;
      endAttempt(f.jobId, f.attempt, outcome, now);
      return true;
    },
  );

  const markCompleteByTokenTx = tx(
    (t: { tokenHash: string; jobId: number; executorName: string; queue: string }, now: number) => {
      const row = q(
        `UPDATE jobs SET state = 'completed', finished_at = ?
         WHERE id = ? AND state = 'processing' AND worker_hostname = ? AND attempts = (
             SELECT attempt FROM job_tokens
             WHERE token_hash = ? AND job_id = ? AND executor_name = ? AND queue = ?)
           AND EXISTS (SELECT 1 FROM executors WHERE name = ?)
         RETURNING attempts`,
      ).get(now, t.jobId, t.executorName, t.tokenHash, t.jobId, t.executorName, t.queue, t.executorName) as
        | { attempts: number }
        | undefined;
      if (!row) return null;
      endAttempt(t.jobId, row.attempts, 'completed', now);
      return { jobId: t.jobId, executorName: t.executorName, attempt: row.attempts };
    },
  );

  return {
    async markComplete(f: AttemptFence, now: number) {
      return markTx(f, 'completed', now, "state = 'completed', finished_at = ?", [now]);
    },

    async markCompleteByToken(t, now) {
      return markCompleteByTokenTx(t, now);
    },

    async markErrored(f: AttemptFence, message: string, now: number, retry: RetryPolicy) {
      return markTx(f, 'errored', now, ERRORED_SET, erroredParams(message, now, retry));
    },

    async markFailed(f: AttemptFence, message: string, now: number) {
      return markTx(
        f,
        'failed',
        now,
        `state = CASE WHEN cancel = 1 THEN 'canceled' ELSE 'failed' END,
           num_failures = num_failures + CASE WHEN cancel = 1 THEN 0 ELSE 1 END,
           failure_message = ?, finished_at = ?`,
        [message, now],
      );
    },
  };
}
