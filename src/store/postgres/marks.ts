/**
 * The end of an attempt: the guarded update, the token deletion and the claim's outcome
 * (job_claims) in one statement. markCompleteByToken checks the token, the executor's registration
 * and the fence inside the completing statement itself.
 */
import type { AttemptFence, RetryPolicy, Store } from '../types.js';
import type { PgContext } from './connection.js';
import { at, ERRORED_SET, sql } from './fragments.js';

export function markQueries(
  c: PgContext,
): Pick<Store, 'markComplete' | 'markCompleteByToken' | 'markErrored' | 'markFailed'> {
  const { t, rows } = c;
  /**
   * A mark: the guarded update, the token deletion and the claim's outcome (job_claims) in one
   * statement. `set` uses $1..$n; $nowAt is the time parameter.
   */
  async function mark(
    f: AttemptFence,
    outcome: string,
    set: string,
    params: unknown[],
    nowAt: number,
  ): Promise<boolean> {
    const n = params.length;
    const r = await rows<{ n: number }>(
      sql`WITH m AS (
         UPDATE jobs SET ${set}
         WHERE id = $${n + 1} AND state = 'processing' AND worker_hostname = $${n + 2} AND attempts = $${n + 3}
         RETURNING id, attempts),
       t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM m)),
       h AS (
         UPDATE job_claims c SET ended_at = ${at(nowAt)}, outcome = $${n + 4}
         FROM m WHERE c.job_id = m.id AND c.attempt = m.attempts AND c.outcome IS NULL)
       SELECT count(*)::int AS n FROM m`,
      [...params, f.jobId, f.executorName, f.attempt, outcome],
    );
    return r[0]!.n > 0;
  }

  return {
    async markComplete(f: AttemptFence, now: number) {
      return mark(f, 'completed', sql`state = 'completed', finished_at = ${at(1)}`, [t(now)], 1);
    },

    async markCompleteByToken(tk, now) {
      // One statement: the token, the executor's registration and the fence are checked together.
      const r = await rows<{ attempts: number }>(
        sql`WITH tok AS (
           SELECT attempt FROM job_tokens
           WHERE token_hash = $1 AND job_id = $2 AND executor_name = $3 AND queue = $4
             AND EXISTS (SELECT 1 FROM executors WHERE name = $3)),
         m AS (
           UPDATE jobs SET state = 'completed', finished_at = ${at(5)}
           WHERE id = $2 AND state = 'processing' AND worker_hostname = $3
             AND attempts = (SELECT attempt FROM tok)
           RETURNING id, attempts),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM m)),
         h AS (
           UPDATE job_claims c SET ended_at = ${at(5)}, outcome = 'completed'
           FROM m WHERE c.job_id = m.id AND c.attempt = m.attempts AND c.outcome IS NULL)
         SELECT attempts FROM m`,
        [tk.tokenHash, tk.jobId, tk.executorName, tk.queue, t(now)],
      );
      const row = r[0];
      return row ? { jobId: tk.jobId, executorName: tk.executorName, attempt: row.attempts } : null;
    },

    async markErrored(f: AttemptFence, message: string, now: number, retry: RetryPolicy) {
      return mark(f, 'errored', ERRORED_SET, [message, t(now), retry.maxMs, retry.baseMs], 2);
    },

    async markFailed(f: AttemptFence, message: string, now: number) {
      return mark(
        f,
        'failed',
        sql`state = CASE WHEN cancel THEN 'canceled' ELSE 'failed' END,
         num_failures = num_failures + CASE WHEN cancel THEN 0 ELSE 1 END,
         failure_message = $1::text, finished_at = ${at(2)}`,
        [message, t(now)],
        2,
      );
    },
  };
}
