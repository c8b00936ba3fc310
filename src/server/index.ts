import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerConfig } from '../config/server.js';
import type { Clock, Timers } from '../lib/clock.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { packageVersion } from '../lib/version.js';
import type { Store } from '../store/types.js';
import { createAuthLimiter, createAuthRefusalMetrics } from './auth-limiter.js';
import { createDeadlineEnforcer } from './background/deadline-enforcer.js';
import { createExecutorJanitor } from './background/executor-janitor.js';
import type { BackgroundLoop } from './background/loop.js';
import { createPruneMetrics, createPruner } from './background/pruner.js';
import { createResetter } from './background/resetter.js';
import type { EnqueueHook, RouteDeps } from './deps.js';
import { createEnqueueNotifier } from './enqueue-notifier.js';
import { registerFileRoutes } from './executor-api/files.js';
import { registerGitRoutes } from './executor-api/git.js';
import type { QuickHeartbeat } from './executor-api/heartbeat.js';
import {
  createHeartbeatWriter,
  EXECUTOR_ROW_REFRESH_MS,
  type HeartbeatWriter,
} from './executor-api/heartbeat-writer.js';
import { registerExecutorRoutes } from './executor-api/routes.js';
import { createHandlers } from './handle.js';
import { type BodyTimeouts, bodyTimeouts, createRouter, type Router } from './http.js';
import { createLaneCounters, type LaneAnswer, type LaneCounters } from './lane/lane.js';
import { createLogNotifier } from './log-notifier.js';
import { createMemoryGuard, type MemoryGuard } from './memory-guard.js';
import { createHttpMetrics } from './metrics.js';
import { registerOpsRoutes } from './ops-routes.js';
import { createQueueHistory, type QueueHistory } from './queue-history.js';
import { createRepositories } from './repos/index.js';
import { FOLLOW_FALLBACK_MS } from './user-api/follow-logs.js';
import { createFollowerLimits } from './user-api/follower-limits.js';
import { registerUserRoutes } from './user-api/routes.js';
import { registerWebRoutes } from './web/routes.js';

export interface ServerDeps {
  store: Store;
  config: ServerConfig;
  clock: Clock;
  logger: Logger;
  /** Uniform random in [0, 1) for multi-queue selection (default Math.random). */
  random?: () => number;
  /** The memory guard (default: EXECUTOR_SERVER_MEMORY_LIMIT against this process's RSS). */
  memory?: MemoryGuard;
  /**
   * How long a log follower waits for a wake-up before it reads anyway (default
   * FOLLOW_FALLBACK_MS); tests set it far out to show that wake-ups alone deliver.
   */
  followFallbackMs?: number;
  /** Timers of the heartbeat writer's touches (default: real ones); tests fire them by hand. */
  timers?: Timers;
}

/** The background loops of one server: the store it acts on, and what they report to. */
function createLoops(
  deps: ServerDeps,
  store: Store,
  o: {
    announceEnqueue: (queue: string) => void;
    history: ReturnType<typeof createQueueHistory>;
    pruneMetrics: ReturnType<typeof createPruneMetrics>;
    repoSync: ServerApp['loops']['repoSync'];
  },
): ServerApp['loops'] {
  const { config, clock, logger } = deps;
  return {
    resetter: createResetter({
      store,
      config,
      clock,
      logger,
      onRequeued: (queues) => {
        for (const q of queues) o.announceEnqueue(q);
      },
    }),
    deadlines: createDeadlineEnforcer({ store, config, clock, logger }),
    executorJanitor: createExecutorJanitor({ store, config, clock, logger }),
    history: o.history.loop(deps.store),
    pruner: createPruner({ store: deps.store, config, clock, logger, metrics: o.pruneMetrics }),
    repoSync: o.repoSync,
  };
}

export interface ServerApp {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /**
   * The heartbeat lane (EXECUTOR_SERVER_HEARTBEAT_LANE): what answers the heartbeats it reads, and
   * its counters. Undefined when it is off: node:http reads every connection.
   */
  readonly lane?: { answer: LaneAnswer; count: LaneCounters['count']; body: BodyTimeouts };
  startBackground(): void;
  /** Ends long-polls and log follows, stops background loops. Does not close the Store. */
  close(): Promise<void>;
  /** Dequeues currently parked in a long-poll (tests and diagnostics). */
  waiting(): number;
  /** Log followers subscribed to wake-ups (tests and diagnostics). */
  following(): number;
  /** Heartbeats waiting for their store write (tests and diagnostics). */
  heartbeatsPending(): number;
  /**
   * For the HTTP server: how long a request's headers may take to arrive (Node's headersTimeout),
   * and how long an idle connection stays open (its keepAliveTimeout).
   */
  readonly connectionTimeouts: { headersMs: number; keepAliveMs: number };
  /** The background loops, for tests that drive them with runOnce(now). */
  readonly loops: {
    resetter: BackgroundLoop;
    deadlines: BackgroundLoop;
    executorJanitor: BackgroundLoop;
    /** Samples queues and executor metrics for the dashboard's charts. */
    history: BackgroundLoop;
    /** Retention: deletes old finished jobs and their output. */
    pruner: BackgroundLoop;
    /** Fetches mirrored repositories when due and re-reads the repositories file. */
    repoSync: BackgroundLoop<number>;
  };
}

/**
 * Heartbeats' writes. An unchanged row is written again at most every EXECUTOR_ROW_REFRESH_MS,
 * and at least every half EXECUTOR_SERVER_EXECUTOR_MAX_AGE (its last-seen time is touched every
 * second meanwhile, so the janitor never forgets an executor that is still heartbeating).
 */
function createHeartbeats(deps: ServerDeps, store: Store): HeartbeatWriter {
  return createHeartbeatWriter({
    store,
    clock: deps.clock,
    logger: deps.logger,
    timers: deps.timers,
    refreshMs: Math.min(EXECUTOR_ROW_REFRESH_MS, Math.floor(deps.config.executorMaxAgeMs / 2)),
  });
}

export function createServer(deps: ServerDeps): ServerApp {
  const { config, clock, logger } = deps;
  const history = createQueueHistory({ clock, logger });
  // Dispatches and finishes pass through this wrapper so the dashboard can chart them.
  const store = history.observe(deps.store);
  // The safety re-check asks the store itself, not the history wrapper: it claims nothing.
  const notifier = createEnqueueNotifier({
    readyCounts: (queues, now) => deps.store.readyCounts(queues, now),
    clock,
    onError: (e) => logger.warn('long-poll re-check failed', { error: errorMessage(e) }),
  });
  const logNotifier = createLogNotifier({ follow: store.followLogs?.bind(store) });
  const metrics = createHttpMetrics();
  const closing = new AbortController();
  const hook = store as Store & EnqueueHook;
  const storeAnnounces = typeof hook.onEnqueue === 'function';
  const pruneMetrics = createPruneMetrics();
  const repos = createRepositories({ store, config, clock, logger });
  const routeDeps: RouteDeps = {
    store,
    config,
    clock,
    logger,
    notifier,
    announceEnqueue: (queue) => {
      if (!storeAnnounces) notifier.notify(queue);
    },
    logNotifier,
    metrics,
    authLimiter: createAuthLimiter({
      limit: config.authFailureLimit,
      windowMs: config.authFailureWindowMs,
      clock,
    }),
    authRefusals: createAuthRefusalMetrics(),
    pruneMetrics,
    random: deps.random ?? Math.random,
    packageVersion: packageVersion(),
    memory: deps.memory ?? serverMemoryGuard(config.memoryLimitBytes, logger),
    followFallbackMs: deps.followFallbackMs ?? FOLLOW_FALLBACK_MS,
    followers: createFollowerLimits({ perJob: config.maxFollowersPerJob, total: config.maxFollowers }),
    repos,
    heartbeats: createHeartbeats(deps, store),
    lane: createLaneCounters(),
  };
  const { memory } = routeDeps;
  const unsubscribe = storeAnnounces ? hook.onEnqueue?.((q) => notifier.notify(q)) : undefined;
  // Log writes on other replicas (PostgreSQL NOTIFY) wake this replica's followers too.
  const unsubscribeLogs = store.onLogWrite?.((jobId) => logNotifier.notify(jobId));

  const { router, quickHeartbeat } = createRoutes(routeDeps, history);

  const loops = createLoops(deps, store, {
    announceEnqueue: routeDeps.announceEnqueue,
    history,
    pruneMetrics,
    repoSync: repos.loop,
  });

  const { handle, answerLane } = createHandlers({
    router,
    quickHeartbeat,
    logger,
    metrics,
    memory,
    closing: closing.signal,
    timeouts: bodyTimeouts(config),
  });

  let started = false;
  return {
    handle,
    lane: config.heartbeatLane
      ? { answer: answerLane, count: routeDeps.lane.count, body: bodyTimeouts(config) }
      : undefined,
    loops,
    connectionTimeouts: {
      headersMs: Math.min(60_000, config.requestTimeoutMs),
      keepAliveMs: config.keepAliveTimeoutMs,
    },
    waiting: () => notifier.waiting(),
    following: () => logNotifier.subscribers(),
    heartbeatsPending: () => routeDeps.heartbeats.pending(),
    startBackground() {
      if (started) return;
      started = true;
      for (const loop of Object.values(loops)) loop.start();
      // Repositories of the file and ones due are fetched at once, not one interval after the start.
      loops.repoSync.runOnce(clock.now()).catch((e) => logger.error('repository sync failed', { error: e }));
    },
    async close() {
      closing.abort();
      metrics.close();
      notifier.close();
      repos.close();
      if (typeof unsubscribe === 'function') unsubscribe();
      unsubscribeLogs?.();
      logNotifier.close();
      // The loops, and the last second's touches (the store stays open until the caller closes it).
      await Promise.all([...Object.values(loops).map((l) => l.stop()), routeDeps.heartbeats.close()]);
    },
  };
}

/** Every route of the server: the executor API, git, files, the user API, the web UI, ops. */
function createRoutes(
  routeDeps: RouteDeps,
  history: QueueHistory,
): { router: Router; quickHeartbeat: QuickHeartbeat } {
  const router = createRouter();
  const quickHeartbeat = registerExecutorRoutes(router, routeDeps);
  registerGitRoutes(router, routeDeps);
  registerFileRoutes(router, routeDeps);
  registerUserRoutes(router, routeDeps);
  registerWebRoutes(router, routeDeps, history);
  registerOpsRoutes(router, routeDeps);
  return { router, quickHeartbeat };
}

/** The guard of EXECUTOR_SERVER_MEMORY_LIMIT; a sample it cannot read (EMFILE) is logged. */
function serverMemoryGuard(limitBytes: number, logger: Logger): MemoryGuard {
  return createMemoryGuard({
    limitBytes,
    onError: (err) =>
      logger.warn('cannot read the server process memory; the memory guard keeps its last sample', {
        error: errorMessage(err),
      }),
  });
}

export { LISTEN_BACKLOG, type Listening, listen, type TlsFiles } from './listen.js';
