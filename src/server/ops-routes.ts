/**
 * The operator's routes: `GET /healthz` (200 `ok` while the store answers one round trip, else 503)
 * and `GET /metrics` (Prometheus text: queue figures, this server's HTTP counters, and the metrics
 * executors pushed with their heartbeats). Neither needs a token: load balancers and scrapers call
 * them, and they reveal no job content.
 */
import { isAppError } from '../lib/errors.js';
import type { RouteDeps } from './deps.js';
import { type Router, sendText } from './http.js';
import { renderExecutorMetrics, renderQueueMetrics } from './metrics.js';
import { wrapUser } from './user-api/routes.js';

/** Executors pushing metrics are included in /metrics while seen within this window (Redis TTL upstream). */
const EXECUTOR_METRICS_TTL_MS = 30_000;

export function registerOpsRoutes(router: Router, deps: RouteDeps): void {
  const { store, clock, logger, metrics, authRefusals } = deps;
  router.add('GET', '/healthz', async (ctx) => {
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

  router.add(
    'GET',
    '/metrics',
    wrapUser(
      deps,
      async (ctx) => {
        const now = clock.now();
        const [stats, executors] = await Promise.all([store.queueStats(now), store.listExecutors()]);
        const fresh = executors.filter((e) => now - e.lastSeenAt <= EXECUTOR_METRICS_TTL_MS && e.metrics);
        const body =
          renderQueueMetrics(stats, now) +
          metrics.render() +
          authRefusals.render() +
          renderExecutorMetrics(fresh);
        ctx.res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        ctx.res.end(body);
      },
      { auth: false },
    ),
  );
}
