/**
 * SQL fragments more than one operation of the SQLite store uses. The PostgreSQL twin keeps its own
 * (its parameters are numbered), with the same meaning.
 */
import type { RetryPolicy } from '../types.js';

/** rank_key of a row being (re)queued at `?` (the only parameter). */
export const RANK_AT = '(? - priority * (SELECT rank_step_ms FROM store_settings WHERE id = 1))';

/** The fence: current attempt, processing, owned by the executor. Parameters: id, executor, attempt. */
export const FENCE = "id = ? AND state = 'processing' AND worker_hostname = ? AND attempts = ?";

/**
 * SET clause shared by markErrored and expireDeadlines. Parameters, in order: message, now (finished),
 * now (process_after base), maxMs, baseMs, now (queued_at), now (rank). `1 << min(num_failures, 40)`
 * is 2^(n-1) for the n = num_failures + 1 failure being recorded (retryDelayMs in types.ts).
 */
export const ERRORED_SET = `
  state = CASE WHEN cancel = 1 THEN 'canceled' WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
  num_failures = num_failures + CASE WHEN cancel = 1 THEN 0 ELSE 1 END,
  failure_message = ?,
  finished_at = CASE WHEN cancel = 0 AND attempts < max_attempts THEN NULL ELSE ? END,
  process_after = CASE WHEN cancel = 0 AND attempts < max_attempts
    THEN ? + min(?, ? * (1 << min(num_failures, 40))) ELSE process_after END,
  queued_at = CASE WHEN cancel = 0 AND attempts < max_attempts THEN ? ELSE queued_at END,
  rank_key = CASE WHEN cancel = 0 AND attempts < max_attempts THEN ${RANK_AT} ELSE rank_key END,
  started_at = CASE WHEN cancel = 0 AND attempts < max_attempts THEN NULL ELSE started_at END`;

export function erroredParams(message: string, now: number, retry: RetryPolicy): unknown[] {
  return [message, now, now, retry.maxMs, retry.baseMs, now, now];
}
