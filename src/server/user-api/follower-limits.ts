/**
 * Concurrent log followers (`GET /api/v1/jobs/:id/logs?follow=1`), per job and per server. Each
 * follower costs a few store reads per poll and a socket; the limits keep many viewers of one job
 * (429 TOO_MANY_FOLLOWERS) or of all jobs (503 OVERLOADED) from adding up to a blocked event loop.
 * In-process counts: with several replicas each replica counts its own followers.
 */
import { AppError } from '../../lib/errors.js';

/** Retry-After of a refused follower: a viewer that left frees its slot at once. */
const FOLLOWER_RETRY_AFTER_S = 5;

export interface FollowerLimits {
  /** Takes a slot for a follower of `jobId`, or throws the 429/503; call the returned release once. */
  acquire(jobId: number): () => void;
  /** Followers now, in all and of one job. */
  count(jobId?: number): number;
}

export function createFollowerLimits(limits: { perJob: number; total: number }): FollowerLimits {
  const byJob = new Map<number, number>();
  let total = 0;
  return {
    acquire(jobId) {
      if (total >= limits.total) {
        throw new AppError(
          'OVERLOADED',
          `This server already streams ${total} log followers (EXECUTOR_SERVER_MAX_FOLLOWERS=${limits.total}); retry later, or read the log without follow.`,
          { retryAfterSeconds: FOLLOWER_RETRY_AFTER_S },
        );
      }
      const n = byJob.get(jobId) ?? 0;
      if (n >= limits.perJob) {
        throw new AppError(
          'TOO_MANY_FOLLOWERS',
          `Job ${jobId} already has ${n} log followers (EXECUTOR_SERVER_MAX_FOLLOWERS_PER_JOB=${limits.perJob}); retry later, or read the log without follow.`,
          { retryAfterSeconds: FOLLOWER_RETRY_AFTER_S },
        );
      }
      byJob.set(jobId, n + 1);
      total++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total--;
        const left = (byJob.get(jobId) ?? 1) - 1;
        if (left > 0) byJob.set(jobId, left);
        else byJob.delete(jobId);
      };
    },
    count: (jobId) => (jobId === undefined ? total : (byJob.get(jobId) ?? 0)),
  };
}
