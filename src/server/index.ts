/**
 * The queue server: `createServer(deps)` builds the request handler and the background loops;
 * `listen(app, host, port)` binds it. Nothing listens or starts inside createServer, so tests and
 * `executor up` decide when.
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import type { ServerConfig } from '../config/server.js';
import type { Clock, Timers } from '../lib/clock.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { packageVersion } from '../lib/version.js';
import { CAPABILITIES_HEADER } from '../protocol/capabilities.js';
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
import {
  createHeartbeatWriter,
  EXECUTOR_ROW_REFRESH_MS,
  type HeartbeatWriter,
} from './executor-api/heartbeat-writer.js';
import { CAPABILITIES_VALUE, registerExecutorRoutes } from './executor-api/routes.js';
import { answerFailure, type FailureForms } from './failure.js';
import {
  bodyTimeouts,
  createRouter,
  discardBody,
  type RouteContext,
  type Router,
  sendJson,
  sendText,
} from './http.js';
import { createLogNotifier } from './log-notifier.js';
import { createMemoryGuard, MEMORY_RETRY_AFTER_S, type MemoryGuard } from './memory-guard.js';
import { createHttpMetrics } from './metrics.js';
import { registerOpsRoutes } from './ops-routes.js';
import { createQueueHistory, type QueueHistory } from './queue-history.js';
import { createRepositories } from './repos/index.js';
import { FOLLOW_FALLBACK_MS } from './user-api/follow-logs.js';
import { createFollowerLimits } from './user-api/follower-limits.js';
import { registerUserRoutes } from './user-api/routes.js';
import { sendError } from './user-api/wrap.js';
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
 * Connections the kernel may hold for the server before it accepts them (Linux caps it at
 * net.core.somaxconn, 4096 by default). A fleet that comes back at once, after a restart, sends
 * thousands of SYNs together: with Node's default of 511 the kernel dropped most of them and each
 * dropped client waited 1 s, then 3 s, to try again (docs/operating.md).
 */
export const LISTEN_BACKLOG = 65_535;

/** Routes outside both APIs (dashboard assets, /healthz, /metrics) answer failures as text. */
const PLAIN_FAILURES: FailureForms = {
  unavailableLog: 'request failed: store unavailable',
  failedLog: 'request failed',
  abortedLog: 'request body aborted by the client',
  unavailable: (ctx, e) => sendText(ctx.res, 503, `${e.message}\n`, { 'retry-after': '1' }),
  internal: (ctx) => sendText(ctx.res, 500, `internal error (request id ${ctx.requestId})`),
  afterHeaders: 'destroy',
};

/**
 * Routes that start new work, refused with 503 while the memory guard is over its limit (the
 * follow of a job's log is refused in its handler, where `follow=1` is known). Heartbeats, marks
 * and log writes of running jobs are not: they finish admitted work, which frees memory, and an
 * executor refused them would fail its job.
 */
const GUARDED_ROUTES: ReadonlySet<string> = new Set([
  'POST /api/v1/jobs',
  'POST /api/v1/jobs/:id/retry',
  'POST /.executors/queue/dequeue',
  'POST /.executors/queue/:queue/dequeue',
]);

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

/** 503 (the executors' form or the user API's) with Retry-After while the memory guard refuses. */
function refuseOverMemory(ctx: RouteContext, executorRoute: boolean, refusal: string): void {
  ctx.req.resume();
  const retryAfter = { 'retry-after': String(MEMORY_RETRY_AFTER_S) };
  if (executorRoute) sendJson(ctx.res, 503, { error: refusal }, retryAfter);
  else {
    ctx.res.setHeader('retry-after', retryAfter['retry-after']);
    sendError(ctx, 'OVERLOADED', refusal);
  }
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
  };
  const { memory } = routeDeps;
  const unsubscribe = storeAnnounces ? hook.onEnqueue?.((q) => notifier.notify(q)) : undefined;
  // Log writes on other replicas (PostgreSQL NOTIFY) wake this replica's followers too.
  const unsubscribeLogs = store.onLogWrite?.((jobId) => logNotifier.notify(jobId));

  const router = createRoutes(routeDeps, history);

  const loops = createLoops(deps, store, {
    announceEnqueue: routeDeps.announceEnqueue,
    history,
    pruneMetrics,
    repoSync: repos.loop,
  });

  // Request ids need to be unique, not secret: a random prefix per server and a counter, instead
  // of a call into the random generator per request.
  const requestIdPrefix = randomBytes(4).toString('hex');
  const timeouts = bodyTimeouts(config);
  let requestCount = 0;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const arrived = performance.now();
    requestCount = (requestCount + 1) % 0x100000000;
    const requestId = requestIdPrefix + requestCount.toString(16).padStart(8, '0');
    res.setHeader('x-request-id', requestId);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://server');
    } catch {
      sendText(res, 400, 'bad request');
      return;
    }
    const method = req.method ?? 'GET';
    const match = router.match(method, url.pathname);
    const executorRoute = url.pathname.startsWith('/.executors/');
    const routeName = match.kind === 'none' ? 'unmatched' : match.name;
    res.on('finish', () =>
      metrics.observe(routeName, method, res.statusCode, (performance.now() - arrived) / 1000),
    );
    if (executorRoute) res.setHeader(CAPABILITIES_HEADER, CAPABILITIES_VALUE);
    const ctx: RouteContext = { req, res, url, params: {}, requestId, closing: closing.signal };
    if (match.kind === 'none') {
      discardBody(req, timeouts);
      if (url.pathname.startsWith('/api/')) sendError(ctx, 'NOT_FOUND', 'No such route.');
      else sendText(res, 404, '404 page not found\n');
      return;
    }
    if (match.kind === 'method') {
      discardBody(req, timeouts);
      const allow = match.allow.join(', ');
      if (url.pathname.startsWith('/api/')) {
        res.setHeader('allow', allow);
        sendError(ctx, 'METHOD_NOT_ALLOWED', `Use ${allow} on this route.`);
      } else sendText(res, 405, '405 method not allowed\n', { allow });
      return;
    }
    ctx.params = match.params;
    const refusal = GUARDED_ROUTES.has(`${method} ${match.name}`) ? memory.refusal() : null;
    if (refusal) {
      refuseOverMemory(ctx, executorRoute, refusal);
      return;
    }
    Promise.resolve()
      .then(() => match.handler(ctx))
      .catch((e) => answerFailure(ctx, logger, PLAIN_FAILURES, e))
      .finally(() => {
        // A handler that answered without reading the body (a refused request) leaves it unread:
        // it is drained without being kept, so the connection can be reused, and cut if the
        // sender goes silent or takes too long.
        discardBody(req, timeouts);
      });
  };

  let started = false;
  return {
    handle,
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

export interface Listening {
  url: string;
  port: number;
  /** Stops accepting, ends long-polls and follows, waits for in-flight requests, stops loops. */
  close(): Promise<void>;
  /**
   * HTTPS only: reads the certificate and key files again and uses them for new TLS handshakes;
   * open connections (long-polls, log follows) keep theirs. Throws, keeping the old pair, when the
   * files cannot be read or do not match.
   */
  reloadTls(): void;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** Every route of the server: the executor API, git, files, the user API, the web UI, ops. */
function createRoutes(routeDeps: RouteDeps, history: QueueHistory): Router {
  const router = createRouter();
  registerExecutorRoutes(router, routeDeps);
  registerGitRoutes(router, routeDeps);
  registerFileRoutes(router, routeDeps);
  registerUserRoutes(router, routeDeps);
  registerWebRoutes(router, routeDeps, history);
  registerOpsRoutes(router, routeDeps);
  return router;
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

/** The pair as Node's TLS wants it; createSecureContext checks that key and certificate match. */
function readTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const pair = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  tls.createSecureContext(pair);
  return pair;
}

/** `tls`: serve HTTPS (HTTP/1.1) with these files instead of HTTP. */
export function listen(app: ServerApp, host: string, port: number, tlsFiles?: TlsFiles): Promise<Listening> {
  const handler = (req: IncomingMessage, res: ServerResponse) => app.handle(req, res);
  const server = tlsFiles ? https.createServer(readTls(tlsFiles), handler) : http.createServer(handler);
  // Node's requestTimeout stays off: request bodies are timed where they are read
  // (EXECUTOR_SERVER_REQUEST_TIMEOUT and EXECUTOR_SERVER_BODY_IDLE_TIMEOUT, see readBody and
  // discardBody), and a long-poll or log follow, which sends nothing after its headers, is never cut.
  server.requestTimeout = 0;
  server.headersTimeout = app.connectionTimeouts.headersMs;
  // By default idle connections stay open well past the executors' 5 s heartbeat interval (and a
  // load balancer's usual 60 s idle timeout): with Node's 5 s default, fetch dropped each
  // connection before the next heartbeat, so every heartbeat paid a new TCP connection (and TLS
  // handshake). EXECUTOR_SERVER_KEEP_ALIVE_TIMEOUT trades that for descriptors.
  server.keepAliveTimeout = app.connectionTimeouts.keepAliveMs;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      let closed: Promise<void> | undefined;
      resolve({
        url: `${tlsFiles ? 'https' : 'http'}://${shownHost}:${addr.port}`,
        port: addr.port,
        reloadTls() {
          if (!tlsFiles) throw new Error('the server is not serving HTTPS');
          (server as https.Server).setSecureContext(readTls(tlsFiles));
        },
        close() {
          closed ??= (async () => {
            const done = new Promise<void>((r) => server.close(() => r()));
            server.closeIdleConnections();
            await app.close();
            // In-flight requests get a grace period, then their connections are cut.
            const grace = setTimeout(() => server.closeAllConnections(), 10_000);
            grace.unref();
            const idle = setInterval(() => server.closeIdleConnections(), 100);
            await done;
            clearTimeout(grace);
            clearInterval(idle);
          })();
          return closed;
        },
      });
    });
  });
}
