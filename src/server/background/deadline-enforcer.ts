/**
 * Deadline enforcer: the server ends a processing job past startedAt + timeoutMs itself (errored,
 * retried by the retry policy), whatever its executor does. The executor learns it from the next
 * heartbeat (the job is no longer known) and its token is already dead.
 */
import type { ServerConfig } from '../../config/server.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { Store } from '../../store/types.js';
import { type BackgroundLoop, createLoop } from './loop.js';

export interface DeadlineEnforcerDeps {
  store: Store;
  config: Pick<ServerConfig, 'deadlineIntervalMs' | 'retryBackoffBaseMs' | 'retryBackoffMaxMs'>;
  clock: Clock;
  logger: Logger;
}

export function createDeadlineEnforcer(deps: DeadlineEnforcerDeps): BackgroundLoop<number[]> {
  return createLoop({
    name: 'deadline-enforcer',
    intervalMs: deps.config.deadlineIntervalMs,
    clock: deps.clock,
    logger: deps.logger,
    runOnce: (now) =>
      deps.store.expireDeadlines(now, {
        baseMs: deps.config.retryBackoffBaseMs,
        maxMs: deps.config.retryBackoffMaxMs,
      }),
    describe: (ids) => (ids.length ? { expired: ids } : undefined),
  });
}
