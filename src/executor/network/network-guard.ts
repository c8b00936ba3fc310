/**
 * EXECUTOR_JOB_NETWORK=isolated before each dequeue (as disk-guard.ts does for free space): the
 * network and firewall rules must be in place, or the executor takes no job. With the privilege it
 * (re)installs them; without, it only checks. The verdict is kept for recheckMs, so a dequeue loop
 * does not run iptables on every round; a rule removed behind the executor's back stops dequeuing
 * within that time. Logs once when the rules go missing (what and how to fix it) and once when
 * they are back.
 */
import type { Clock } from '../../lib/clock.js';
import { systemClock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { IsolationReport } from './job-isolation.js';

export const DEFAULT_RECHECK_MS = 30_000;

export interface NetworkGuardOptions {
  /** installIsolation when privileged, else checkIsolation. */
  ensure: () => Promise<IsolationReport>;
  logger: Logger;
  recheckMs?: number;
  clock?: Clock;
}

/** Returns the check the poller calls before each dequeue: true when the isolation is in place. */
export function createNetworkGuard(opts: NetworkGuardOptions): () => Promise<boolean> {
  const clock = opts.clock ?? systemClock;
  const recheckMs = opts.recheckMs ?? DEFAULT_RECHECK_MS;
  let checkedAt = Number.NEGATIVE_INFINITY;
  let ok: boolean | undefined;
  let warned = false;
  return async function networkOk(): Promise<boolean> {
    if (clock.now() - checkedAt < recheckMs && ok !== undefined) return ok;
    const r = await opts.ensure();
    checkedAt = clock.now();
    if (!warned) for (const w of r.warnings) opts.logger.warn(w);
    warned = true;
    if (!r.ok && ok !== false) {
      opts.logger.error('not dequeuing: EXECUTOR_JOB_NETWORK=isolated but the job network is not in place', {
        missing: r.problems.join('; '),
        fix: r.fix,
      });
    } else if (r.ok && ok === false) {
      opts.logger.info('the isolated job network is in place; dequeuing again');
    }
    ok = r.ok;
    return ok;
  };
}
