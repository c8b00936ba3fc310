/**
 * The janitor loop: at start and every EXECUTOR_CLEANUP_TASK_INTERVAL, removes containers and
 * workspaces left by jobs that are not running here any more (a crash, a killed executor):
 * `runtime.cleanupOrphans(active)` and the workspace sweep of the workspace root.
 */
import type { Logger } from '../lib/logger.js';
import type { ExecutorMetrics } from './metrics.js';
import type { RunningJobs } from './running-jobs.js';
import type { Runtime } from './runtimes/types.js';
import { removeOrphanWorkspaces } from './workspace/janitor.js';

export interface JanitorLoopOptions {
  runtime: Pick<Runtime, 'cleanupOrphans'>;
  running: Pick<RunningJobs, 'ids'>;
  workspaceRoot: string;
  executorName: string;
  intervalMs: number;
  logger: Logger;
  metrics?: ExecutorMetrics;
}

export interface JanitorLoop {
  start(): void;
  stop(): Promise<void>;
  /** One sweep now; returns what was removed. */
  sweep(): Promise<string[]>;
}

/**
 * The running jobs as a set read afresh at every lookup. A sweep takes a while (listing containers,
 * reading owner files), and a job dequeued meanwhile already has its container or workspace by the
 * time the sweep looks at them: judged against a set taken when the sweep began, that job's fresh
 * workspace looked orphaned and was deleted under it.
 */
export function liveIdSet(ids: () => Iterable<string>): ReadonlySet<string> {
  const now = () => new Set(ids());
  return {
    has: (v) => now().has(v),
    get size() {
      return now().size;
    },
    forEach: (cb, thisArg) => {
      const s = now();
      for (const v of s) cb.call(thisArg, v, v, s);
    },
    entries: () => now().entries(),
    keys: () => now().keys(),
    values: () => now().values(),
    [Symbol.iterator]: () => now()[Symbol.iterator](),
  };
}

export function createJanitor(opts: JanitorLoopOptions): JanitorLoop {
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<unknown> | undefined;
  let stopped = false;

  async function sweep(): Promise<string[]> {
    const active = liveIdSet(() => opts.running.ids());
    const removed: string[] = [];
    for (const [what, fn] of [
      ['runtime', () => opts.runtime.cleanupOrphans(active)],
      ['workspaces', () => removeOrphanWorkspaces(opts.workspaceRoot, active, opts.executorName)],
    ] as const) {
      try {
        const r = await fn();
        for (const x of r) removed.push(x);
      } catch (e) {
        opts.metrics?.janitorErrors.inc();
        opts.logger.warn('janitor: cleanup failed', { what, error: e });
      }
    }
    if (removed.length > 0) {
      opts.metrics?.janitorRemoved.inc({}, removed.length);
      opts.logger.info('janitor: removed orphans', { removed });
    }
    return removed;
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = sweep().finally(() => {
        inFlight = undefined;
        schedule();
      });
    }, opts.intervalMs);
  };

  return {
    start() {
      stopped = false;
      inFlight = sweep().finally(() => {
        inFlight = undefined;
        schedule();
      });
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight;
    },
    sweep,
  };
}
