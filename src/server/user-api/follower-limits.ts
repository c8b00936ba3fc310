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
  /**
   * Waits for one of the server's FOLLOWER_POLLS_AT_ONCE poll slots; resolves with its release.
   * A follower holds one while it reads and sends, so that however many followers catch up at
   * once, one turn of the event loop runs the reads of only that many (a request such as /healthz
   * waits behind those, not behind every follower's).
   */
  pollSlot(): Promise<() => void>;
}

/** Followers reading at the same time, server-wide. */
export const FOLLOWER_POLLS_AT_ONCE = 2;

export function createFollowerLimits(limits: { perJob: number; total: number }): FollowerLimits {
  const byJob = new Map<number, number>();
  let total = 0;
  let polling = 0;
  const waiting: (() => void)[] = [];
  const releaseSlot = () => {
    const next = waiting.shift();
    if (next) next();
    else polling--;
  };
  return {
    pollSlot() {
      const grant = () => {
        let done = false;
        return () => {
          if (done) return;
          done = true;
          releaseSlot();
        };
      };
      if (polling < FOLLOWER_POLLS_AT_ONCE) {
        polling++;
        return Promise.resolve(grant());
      }
      return new Promise((resolve) => waiting.push(() => resolve(grant())));
    },
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
