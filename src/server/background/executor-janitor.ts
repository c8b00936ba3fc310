/**
 * Executor janitor: forgets executors unseen for `executorMaxAgeMs` (Sourcegraph: 168 h, checked
 * every 30 min).
 */
import type { ServerConfig } from '../../config/server.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Store } from '../../store/types.js';
import { type BackgroundLoop, createLoop } from './loop.js';

export interface ExecutorJanitorDeps {
  store: Store;
  config: Pick<ServerConfig, 'executorJanitorIntervalMs' | 'executorMaxAgeMs'>;
  clock: Clock;
  logger: Logger;
}

export function createExecutorJanitor(deps: ExecutorJanitorDeps): BackgroundLoop<number> {
  return createLoop({
    name: 'executor-janitor',
    intervalMs: deps.config.executorJanitorIntervalMs,
    clock: deps.clock,
    logger: deps.logger,
    runOnce: (now) => deps.store.deleteExecutorsSeenBefore(now - deps.config.executorMaxAgeMs),
    describe: (n) => (n > 0 ? { deleted: n } : undefined),
  });
}
