/**
 * The end of an attempt: one UPDATE guarded by the fence (current attempt, processing, owner), and
 * the job token deleted, in one IMMEDIATE transaction. markCompleteByToken checks the token, the
 * executor's registration and the fence inside the completing statement itself.
 */
import type { AttemptFence, RetryPolicy, Store } from '../types.js';
import type { SqliteContext } from './connection.js';
import { ERRORED_SET, erroredParams, FENCE } from './fragments.js';

export function markQueries(
  c: SqliteContext,
): Pick<Store, 'markComplete' | 'markCompleteByToken' | 'markErrored' | 'markFailed'> {
  const { q, tx } = c;
  const { deleteToken } = c;

  const markTx = tx((f: AttemptFence, sql: string, params: unknown[]): boolean => {
    const row = q(`UPDATE jobs SET ${sql} WHERE ${FENCE} RETURNING id`).get(
      ...params,
      f.jobId,
      f.executorName,
      f.attempt,
    );
    if (!row) return false;
    deleteToken(f.jobId);
    return true;
  });

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
      deleteToken(t.jobId);
      return { jobId: t.jobId, executorName: t.executorName, attempt: row.attempts };
    },
  );

  return {
    async markComplete(f: AttemptFence, now: number) {
      return markTx(f, "state = 'completed', finished_at = ?", [now]);
    },

    async markCompleteByToken(t, now) {
      return markCompleteByTokenTx(t, now);
    },

    async markErrored(f: AttemptFence, message: string, now: number, retry: RetryPolicy) {
      return markTx(f, ERRORED_SET, erroredParams(message, now, retry));
    },

    async markFailed(f: AttemptFence, message: string, now: number) {
      return markTx(
        f,
        `state = CASE WHEN cancel = 1 THEN 'canceled' ELSE 'failed' END,
           num_failures = num_failures + CASE WHEN cancel = 1 THEN 0 ELSE 1 END,
           failure_message = ?, finished_at = ?`,
        [message, now],
      );
    },
  };
}
