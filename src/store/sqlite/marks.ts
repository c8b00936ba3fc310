/**
 * The end of an attempt: one UPDATE guarded by the fence (current attempt, processing, owner), the
 * job token deleted and the ended claim written with its outcome (job_claims), in one IMMEDIATE
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

  /**
   * `sql` is the SET clause with its `params`; `now` is when the claim ends. The fence is read first
   * (the claim's start, which the SET clause may clear), then the row updated by id: nothing can
   * come between the two inside the IMMEDIATE transaction.
   */
  const markTx = tx(
    (f: AttemptFence, outcome: ClaimOutcome, now: number, sql: string, params: unknown[]): boolean => {
      const held = q(`SELECT started_at FROM jobs WHERE ${FENCE}`).get(f.jobId, f.executorName, f.attempt) as
        | { started_at: number }
        | undefined;
      if (!held) return false;
      q(`UPDATE jobs SET ${sql} WHERE id = ?`).run(...params, f.jobId);
      endAttempt({ ...f, claimedAt: held.started_at }, outcome, now);
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
         RETURNING attempts, started_at`,
      ).get(now, t.jobId, t.executorName, t.tokenHash, t.jobId, t.executorName, t.queue, t.executorName) as
        | { attempts: number; started_at: number }
        | undefined;
      if (!row) return null;
      const claim = {
        jobId: t.jobId,
        attempt: row.attempts,
        executorName: t.executorName,
        claimedAt: row.started_at,
      };
      endAttempt(claim, 'completed', now);
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
