/** The columns of a `job_tokens` row the stores read, and the record both make of them. */
import type { TokenRecord } from './types.js';

export interface TokenRow {
  job_id: number;
  attempt: number;
  queue: string;
  repository_name: string;
  executor_name: string;
}

export function toTokenRecord(r: TokenRow): TokenRecord {
  return {
    jobId: r.job_id,
    attempt: r.attempt,
    executorName: r.executor_name,
    queue: r.queue,
    repositoryName: r.repository_name,
  };
}
