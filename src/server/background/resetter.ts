/**
 * Stalled-job resetter: a processing job unheard of for `stalledAfterMs` goes back to the queue
 * (its token dies), or fails once it was reset `maxResets` times (Sourcegraph: 25 s, 3 resets).
 *
 * For one stall window after the server starts nothing is reset: while the server was down no
 * executor could heartbeat, so a job's last heartbeat says nothing about its executor until the
 * executors have had a full window to reach the restarted server.
 */
import type { ServerConfig } from '../../config/server.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Store } from '../../store/types.js';
import { type BackgroundLoop, createLoop } from './loop.js';

export interface ResetterDeps {
  store: Store;
  config: Pick<ServerConfig, 'stalledAfterMs' | 'maxResets' | 'resetIntervalMs'>;
  clock: Clock;
  logger: Logger;
  /** Called with the queues that got jobs back, so long-polls wake. */
  onRequeued?: (queues: string[]) => void;
}

export function createResetter(deps: ResetterDeps): BackgroundLoop<{ reset: number[]; failed: number[] }> {
  const startedAt = deps.clock.now();
  return createLoop({
    name: 'resetter',
    intervalMs: deps.config.resetIntervalMs,
    clock: deps.clock,
    logger: deps.logger,
    async runOnce(now) {
      if (now - startedAt < deps.config.stalledAfterMs) return { reset: [], failed: [] };
      const r = await deps.store.resetStalled(now, deps.config.stalledAfterMs, deps.config.maxResets);
      if (r.reset.length > 0 && deps.onRequeued) {
        const jobs = await Promise.all(r.reset.map((id) => deps.store.getJob(id)));
        deps.onRequeued([...new Set(jobs.flatMap((j) => (j ? [j.queue] : [])))]);
      }
      return r;
    },
    describe: (r) => (r.reset.length || r.failed.length ? { reset: r.reset, failed: r.failed } : undefined),
  });
}
