/**
 * The dequeue loop's one step (Sourcegraph `workerutil.Worker` dequeue): ask for a job; on an empty
 * answer or an error wait the poll interval and ask again. Against a server that advertises
 * long-poll the client asks it to hold the empty dequeue instead, so the wait happens there.
 * A `beforeDequeue` hook may veto a round (disk space), which then also waits the interval.
 */
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { waitOrAbort } from '../lib/wait.js';
import type { Job } from '../protocol/job.js';

export interface PollerOptions {
  client: { dequeue(signal?: AbortSignal): Promise<Job | null> };
  intervalMs: number;
  logger: Logger;
  clock?: Clock;
  /** Resolves false to skip this round (the reason is logged by the hook). */
  beforeDequeue?: () => Promise<boolean>;
}

export interface Poller {
  /** The next job; null only when `signal` is aborted. */
  next(signal: AbortSignal): Promise<Job | null>;
}

export function createPoller(opts: PollerOptions): Poller {
  const clock = opts.clock ?? systemClock;
  let lastSuccess = clock.now();
  return {
    async next(signal) {
      while (!signal.aborted) {
        if (opts.beforeDequeue && !(await opts.beforeDequeue())) {
          await waitOrAbort(opts.intervalMs, signal);
          continue;
        }
        try {
          const job = await opts.client.dequeue(signal);
          lastSuccess = clock.now();
          if (job) return job;
        } catch (e) {
          if (signal.aborted) break;
          opts.logger.warn('dequeue failed', { error: e, sinceLastSuccessMs: clock.now() - lastSuccess });
        }
        await waitOrAbort(opts.intervalMs, signal);
      }
      return null;
    },
  };
}
