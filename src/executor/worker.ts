/**
 * The worker (Sourcegraph `worker/worker.go` + `workerutil.Worker`): ping until the server answers
 * (job routes need the executor known from a heartbeat), then dequeue into MAXIMUM_NUM_JOBS slots,
 * one handler per job, while the heartbeat and janitor loops run beside it.
 *
 * Stopping: `drain()` stops dequeuing (an in-flight dequeue is aborted) and waits for running jobs;
 * `forceStop()` also aborts every running job with ShutdownError, so each is marked errored
 * "executor shutting down". NumTotalJobs and MaxActiveTime end the dequeue loop the same way as a
 * drain. The heartbeat keeps going until the last handler has sent its mark.
 */
import type { ExecutorConfig } from '../config/executor.js';
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { waitOrAbort } from '../lib/wait.js';
import { recordUid } from '../protocol/job.js';
import type { QueueClient } from './client/queue-client.js';
import { createDiskGuard } from './disk-guard.js';
import { type HandlerDeps, handleJob } from './handler.js';
import { createHeartbeat } from './heartbeat.js';
import { createJanitor } from './janitor.js';
import { createJobSlots } from './job-slots.js';
import type { ExecutorMetrics } from './metrics.js';
import { createPoller } from './poller.js';
import { createRunningJobs, type RunningJobs, ShutdownError } from './running-jobs.js';
import type { Runtime } from './runtimes/types.js';

export const PING_INTERVAL_MS = 1000;

export type WorkerConfig = Pick<
  ExecutorConfig,
  | 'executorName'
  | 'frontendPassword'
  | 'pollIntervalMs'
  | 'maximumNumJobs'
  | 'maximumRuntimePerJobMs'
  | 'maxLogBytes'
  | 'numTotalJobs'
  | 'maxActiveTimeMs'
  | 'minFreeDiskBytes'
  | 'workspaceRoot'
  | 'cleanupTaskIntervalMs'
>;

export interface WorkerDeps {
  config: WorkerConfig;
  client: QueueClient;
  runtime: Runtime;
  logger: Logger;
  metrics: ExecutorMetrics;
  clock?: Clock;
  /** Free bytes of the workspace root's file system; default statfs. */
  freeDiskBytes?: (dir: string) => Promise<number>;
  heartbeatIntervalMs?: number;
  pingIntervalMs?: number;
  logSyncIntervalMs?: number;
  /** More checks before each dequeue, besides free disk space (the isolated network's guard). */
  dequeueGuards?: (() => Promise<boolean>)[];
  /** Extra handler dependencies (tests: findSrc, graceMs). */
  handler?: Partial<Pick<HandlerDeps, 'findSrc' | 'graceMs'>>;
}

export interface Worker {
  readonly running: RunningJobs;
  /** Resolves when the dequeue loop has ended and every handler has reported. */
  run(): Promise<void>;
  drain(): void;
  forceStop(): void;
}

/**
 * Waits until the queue server answers a ping (job routes need the executor known from a
 * heartbeat). Connection refusals are logged only after a minute: a server starting beside the
 * executor is normal. False when the signal ends the wait.
 */
async function pingUntilOk(
  client: QueueClient,
  logger: Logger,
  clock: Clock,
  intervalMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const start = clock.now();
  for (;;) {
    if (signal.aborted) return false;
    try {
      await client.ping(signal);
      logger.info('connected to the queue server', {
        capabilities: [...client.capabilities()].join(',') || 'none',
      });
      return true;
    } catch (e) {
      if (signal.aborted) return false;
      const connectErr = /ECONNREFUSED|fetch failed/.test(String((e as Error)?.cause ?? e));
      if (!connectErr || clock.now() - start > 60_000) logger.warn('ping failed', { error: e });
    }
    await waitOrAbort(intervalMs, signal);
  }
}

export function createWorker(deps: WorkerDeps): Worker {
  const { config, client, logger, metrics } = deps;
  const clock = deps.clock ?? systemClock;
  const running = createRunningJobs();
  const stopDequeue = new AbortController();
  let forced = false;
  const handlers = new Set<Promise<unknown>>();
  const slots = createJobSlots(config.maximumNumJobs);

  const heartbeat = createHeartbeat({ client, running, logger, intervalMs: deps.heartbeatIntervalMs, clock });
  const janitor = createJanitor({
    runtime: deps.runtime,
    running,
    workspaceRoot: config.workspaceRoot,
    executorName: config.executorName,
    intervalMs: config.cleanupTaskIntervalMs,
    logger,
    metrics,
  });

  const diskOk = createDiskGuard({
    minFreeBytes: config.minFreeDiskBytes,
    dir: config.workspaceRoot,
    freeDiskBytes: deps.freeDiskBytes,
    logger,
    metrics,
  });

  const poller = createPoller({
    client,
    intervalMs: config.pollIntervalMs,
    logger,
    clock,
    beforeDequeue: async () => {
      if (!(await diskOk())) return false;
      for (const guard of deps.dequeueGuards ?? []) if (!(await guard())) return false;
      return true;
    },
  });

  const handlerDeps: HandlerDeps = {
    runtime: deps.runtime,
    reporter: client,
    sinkFor: (job) => client.logSink(job),
    executorName: config.executorName,
    frontendPassword: config.frontendPassword,
    maximumRuntimePerJobMs: config.maximumRuntimePerJobMs,
    maxLogBytes: config.maxLogBytes,
    logger,
    clock: deps.clock,
    metrics,
    logSyncIntervalMs: deps.logSyncIntervalMs,
    ...deps.handler,
  };

  async function run(): Promise<void> {
    const signal = stopDequeue.signal;
    if (!(await pingUntilOk(client, logger, clock, deps.pingIntervalMs ?? PING_INTERVAL_MS, signal))) return;
    janitor.start();
    heartbeat.start();
    const activeUntil =
      config.maxActiveTimeMs > 0 ? clock.now() + config.maxActiveTimeMs : Number.POSITIVE_INFINITY;
    const activeTimer =
      config.maxActiveTimeMs > 0
        ? setTimeout(() => {
            logger.info('EXECUTOR_MAX_ACTIVE_TIME reached; no more dequeues');
            stopDequeue.abort();
          }, config.maxActiveTimeMs)
        : undefined;
    let dequeued = 0;
    try {
      while (!signal.aborted) {
        if (config.numTotalJobs > 0 && dequeued >= config.numTotalJobs) {
          logger.info('EXECUTOR_NUM_TOTAL_JOBS reached; no more dequeues', { jobs: dequeued });
          break;
        }
        if (clock.now() >= activeUntil) break;
        if (!(await slots.acquire(signal))) break;
        const job = await poller.next(signal);
        if (!job) {
          slots.release();
          break;
        }
        dequeued++;
        const uid = recordUid(job);
        const controller = new AbortController();
        if (forced) controller.abort(new ShutdownError());
        if (!running.add(uid, { job, controller })) {
          logger.warn('dequeued a job that is already running; leaving it alone', { job: uid });
          slots.release();
          continue;
        }
        logger.info('dequeued job', { job: uid });
        const h = handleJob(job, handlerDeps, { controller }).finally(() => {
          running.release(uid, controller);
          handlers.delete(h);
          slots.release();
        });
        handlers.add(h);
      }
    } finally {
      if (activeTimer) clearTimeout(activeTimer);
      while (handlers.size > 0) await Promise.allSettled([...handlers]);
      await heartbeat.stop();
      await janitor.stop();
      await deps.runtime.close?.().catch((e) => logger.warn('runtime cleanup failed', { error: e }));
    }
  }

  return {
    running,
    run,
    drain() {
      if (!stopDequeue.signal.aborted)
        logger.info('draining: no new jobs; waiting for running jobs to finish');
      stopDequeue.abort();
    },
    forceStop() {
      forced = true;
      stopDequeue.abort();
      logger.warn('stopping now: aborting running jobs', { jobs: running.ids() });
      running.abortAll(new ShutdownError());
    },
  };
}
