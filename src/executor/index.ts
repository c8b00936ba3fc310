/**
 * The executor's lifecycle: build the clients, runtime, metrics and worker from the config, start
 * them, and stop them in two stages. `drain()` (first SIGTERM/SIGINT) stops dequeuing while
 * heartbeats go on and running jobs finish; `forceStop()` (second signal) aborts running jobs, which
 * are marked errored "executor shutting down". `done` resolves when everything has stopped.
 * Signal wiring is the CLI's job (cli/run.ts); this module installs no process handlers.
 */
import type { ExecutorConfig } from '../config/executor.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { MAX_LONG_POLL_MS } from '../protocol/capabilities.js';
import type { Telemetry } from '../protocol/http.js';
import { createControlTransport } from './client/control-transport.js';
import { createFilesClient } from './client/files-client.js';
import { createQueueClient, type QueueClient } from './client/queue-client.js';
import { createExecutorMetrics, type ExecutorMetrics, serveMetrics } from './metrics.js';
import { type JobNetworkOverrides, jobNetworkGuards } from './network/job-network-guards.js';
import { createRuntime } from './runtimes/index.js';
import type { Runtime } from './runtimes/types.js';
import { gatherTelemetry } from './telemetry.js';
import { createWorker, type Worker, type WorkerDeps } from './worker.js';
import { diskQuotaProblem } from './workspace/disk-confinement.js';

export interface ExecutorDeps {
  logger: Logger;
  clock?: Clock;
  /**
   * Every request of the executor when given (tests that watch or fake them all). Default: the
   * global fetch for logs, marks and files, and a pool of its own for ping, heartbeats and
   * dequeues (client/control-transport.ts).
   */
  fetch?: typeof fetch;
  /** Default: createRuntime(config). */
  runtime?: Runtime;
  metrics?: ExecutorMetrics;
  /** Default: gathered from the host (git, docker via the runtime, src). */
  telemetry?: Telemetry;
  /** Test knobs of EXECUTOR_JOB_NETWORK=isolated (check only, host facts). */
  jobNetwork?: JobNetworkOverrides;
  /** Test knobs passed to the worker. */
  worker?: Partial<
    Pick<
      WorkerDeps,
      'freeDiskBytes' | 'heartbeatIntervalMs' | 'pingIntervalMs' | 'logSyncIntervalMs' | 'handler'
    >
  >;
}

export interface RunningExecutor {
  readonly client: QueueClient;
  readonly worker: Worker;
  drain(): Promise<void>;
  forceStop(): Promise<void>;
  done: Promise<void>;
}

/** How long an empty dequeue is held by a long-poll-capable server. */
export const LONG_POLL_MS = Math.min(25_000, MAX_LONG_POLL_MS);

export async function startExecutor(config: ExecutorConfig, deps: ExecutorDeps): Promise<RunningExecutor> {
  const logger = deps.logger.child({ executor: config.executorName });
  const metrics = deps.metrics ?? createExecutorMetrics();
  const files = createFilesClient({
    frontendUrl: config.frontendUrl,
    password: config.frontendPassword,
    executorName: config.executorName,
    retry: config.httpRetry,
    fetch: deps.fetch,
    logger,
    metrics: metrics.filesClient,
  });
  if (!deps.runtime) {
    // The runtime built from the configuration applies EXECUTOR_JOB_DISK_SPACE; it never runs a job
    // without the quota it was given.
    const problem = await diskQuotaProblem(config);
    if (problem) throw new Error(problem);
  }
  const runtime =
    deps.runtime ??
    createRuntime(config, { logger, files: (job) => files.forJob({ id: job.id, token: job.token }) });
  // A runtime with preconditions (vm: KVM or EXECUTOR_VM_ALLOW_EMULATION, QEMU, guest assets)
  // refuses here, before any job is taken.
  const refusal = await runtime.startupProblem?.();
  if (refusal) throw new Error(refusal);
  const telemetry = deps.telemetry ?? (await gatherTelemetry(runtime, logger, config.reportedVersion));
  // Closed when the executor stops, so that its idle connections do not outlive it.
  const control = deps.fetch ? undefined : createControlTransport();
  const client = createQueueClient({
    frontendUrl: config.frontendUrl,
    password: config.frontendPassword,
    executorName: config.executorName,
    queueName: config.queueName,
    queueNames: config.queueNames,
    version: config.reportedVersion,
    resources: {
      numCPUs: config.jobNumCpus,
      memory: config.jobMemory,
      diskSpace: config.firecrackerDiskSpace,
    },
    telemetry: () => telemetry,
    prometheusMetrics: () => metrics.registry.render(),
    longPollMs: LONG_POLL_MS,
    retry: config.httpRetry,
    fetch: deps.fetch,
    controlFetch: control?.fetch,
    logger,
    metrics: metrics.queueClient,
  });
  const metricsServer = config.metricsAddr
    ? await serveMetrics(metrics.registry, config.metricsAddr, logger)
    : undefined;

  const worker = createWorker({
    config,
    client,
    runtime,
    logger,
    metrics,
    clock: deps.clock,
    dequeueGuards: jobNetworkGuards(config, runtime.name, logger, deps.jobNetwork),
    ...deps.worker,
  });
  logger.info('executor starting', {
    runtime: runtime.name,
    queues: config.queueName ?? config.queueNames.join(','),
    slots: config.maximumNumJobs,
    version: config.reportedVersion,
  });
  const done = worker.run().finally(async () => {
    control?.close();
    await metricsServer?.close();
    logger.info('executor stopped');
  });
  return {
    client,
    worker,
    done,
    async drain() {
      worker.drain();
      await done;
    },
    async forceStop() {
      worker.forceStop();
      await done;
    },
  };
}
