/**
 * The operator's routes: `GET /healthz` (liveness: 200 `ok` while the store answers one round trip
 * and the process's memory is below EXECUTOR_SERVER_MEMORY_LIMIT, else 503), `GET /readyz`
 * (readiness: as /healthz, and every schema migration of this build applied, and not shutting down)
 * and `GET /metrics` (Prometheus text: queue figures, this server's HTTP counters, and the metrics
 * executors pushed with their heartbeats). /healthz needs no token (load balancers call it);
 * /metrics needs `Authorization: Bearer <EXECUTOR_SERVER_METRICS_TOKEN>` when that is set, and is
 * open otherwise: it reveals no job content, but queue and executor names.
 */
import { AppError, isAppError } from '../lib/errors.js';
import { ACTIVE_WITHIN_MS } from '../protocol/user-api.js';
import { peerOf } from './auth-limiter.js';
import type { RouteDeps } from './deps.js';
import { constantTimeEqual } from './executor-api/auth.js';
import { type Router, sendText } from './http.js';
import { MEMORY_RETRY_AFTER_S } from './memory-guard.js';
import { renderQueueMetrics } from './metrics.js';
import { renderProcessFds } from './process-metrics.js';
import { createPushedMetricsRenderer } from './pushed-metrics.js';
import { wrapUser } from './user-api/wrap.js';

/** Executors pushing metrics are included in /metrics while seen within this window (Redis TTL upstream). */
const EXECUTOR_METRICS_TTL_MS = 30_000;

export function registerOpsRoutes(router: Router, deps: RouteDeps): void {
  const { store, clock, logger, metrics, config, authLimiter, authRefusals } = deps;
  const pushed = createPushedMetricsRenderer();
  router.add('GET', '/healthz', async (ctx) => {
    // Over the memory limit the server takes no new work: a load balancer should send it none.
    const refusal = deps.memory.refusal();
    if (refusal) {
      sendText(ctx.res, 503, `memory above limit: ${refusal}\n`, {
        'retry-after': String(MEMORY_RETRY_AFTER_S),
      });
      return;
    }
    try {
      await store.ping();
      sendText(ctx.res, 200, 'ok');
    } catch (e) {
      if (isAppError(e) && e.code === 'UNAVAILABLE')
        logger.warn('health check: store unavailable', { error: e.cause });
      else logger.error('health check: store failed', { error: e });
      sendText(ctx.res, 503, 'store unavailable');
    }
  });

  // Readiness, for load balancers and Kubernetes readiness probes: this replica should get traffic.
  // Unlike /healthz (liveness) it also says no while the schema is behind this build (another
  // replica is migrating, or migrate() has not run) and once shutdown began, so traffic drains.
  router.add('GET', '/readyz', async (ctx) => {
    const no = (why: string) => sendText(ctx.res, 503, `not ready: ${why}\n`, { 'retry-after': '1' });
    if (ctx.closing.aborted) return no('shutting down');
    const refusal = deps.memory.refusal();
    if (refusal) return no(`memory above limit: ${refusal}`);
    let pending: number[];
    try {
      await store.ping();
      pending = await store.pendingMigrations();
    } catch (e) {
      logger.warn('readiness check: store unavailable', { error: isAppError(e) ? e.cause : e });
      return no('store unavailable');
    }
    if (pending.length > 0) return no(`schema migrations ${pending.join(', ')} not applied`);
    sendText(ctx.res, 200, 'ready');
  });

  router.add(
    'GET',
    '/metrics',
    wrapUser(
      deps,
      async (ctx) => {
        if (config.metricsToken !== '') {
          // The metrics token is guessed no faster than the API tokens: the same failure limit.
          const attempt = { peer: peerOf(ctx.req) };
          const wait = authLimiter.blocked(attempt);
          if (wait !== null) {
            authRefusals.count('metrics', 'rate_limited');
            ctx.res.setHeader('retry-after', String(wait));
            throw new AppError(
              'RATE_LIMITED',
              `Too many failed authentication attempts from this address; retry in ${wait}s.`,
            );
          }
          const m = /^Bearer (.+)$/.exec(ctx.req.headers.authorization ?? '');
          if (!m || !constantTimeEqual(m[1]!, config.metricsToken)) {
            authLimiter.failed(attempt);
            authRefusals.count('metrics', 'unauthenticated');
            throw new AppError('UNAUTHENTICATED', 'Send "Authorization: Bearer <metrics token>".');
          }
        }
        const now = clock.now();
        const [stats, executors, pollers] = await Promise.all([
          store.queueStats(now),
          store.recentExecutorMetrics(now, EXECUTOR_METRICS_TTL_MS),
          store.queuePollers(now, ACTIVE_WITHIN_MS),
        ]);
        const body =
          renderQueueMetrics(stats, now, pollers) +
          metrics.render() +
          authRefusals.render() +
          deps.pruneMetrics.render() +
          deps.repos.renderMetrics() +
          deps.heartbeats.render() +
          deps.lane.render() +
          renderProcessFds() +
          pushed.render(executors);
        ctx.res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        ctx.res.end(body);
      },
      { auth: false },
    ),
  );
}
