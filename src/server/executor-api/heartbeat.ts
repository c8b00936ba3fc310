/**
 * `POST /.executors/queue/heartbeat` (multi-queue, job ids grouped by queue) and
 * `POST /.executors/queue/:queue/heartbeat`: record the executor (its versions and pushed metrics),
 * renew the leases of the jobs it reports, and answer which of them the server still knows and
 * which it wants cancelled.
 */
import { heartbeatRequestSchema } from '../../protocol/http.js';
import type { RouteDeps } from '../deps.js';
import { type Router, sendJson } from '../http.js';
import { normalizePushedMetrics } from '../pushed-metrics.js';
import { decode, HandlerError, wrapExecutorHandler as wrap } from './envelope.js';
import { requireExecutor } from './guards.js';

/**
 * What a heartbeat may carry besides its metrics (job ids, telemetry): the body limit is
 * EXECUTOR_SERVER_MAX_EXECUTOR_METRICS plus this.
 */
export const HEARTBEAT_BODY_MARGIN_BYTES = 1024 * 1024;

export function registerHeartbeatRoutes(router: Router, deps: RouteDeps): void {
  const { store, clock, logger } = deps;

  const heartbeat = (multi: boolean) =>
    wrap(deps, async (ctx) => {
      requireExecutor(ctx, deps);
      // A heartbeat is its metrics and a little more: a larger body is refused (413) before it is
      // read or parsed, so pushed metrics cannot make the server parse megabytes on its event loop.
      const limit = Math.min(
        deps.config.executorBodyLimitBytes,
        deps.config.maxExecutorMetricsBytes + HEARTBEAT_BODY_MARGIN_BYTES,
      );
      const body = await decode(ctx, deps, heartbeatRequestSchema, limit);
      if (body.executorName === '') throw new HandlerError('worker hostname cannot be empty');
      const groups: { queue: string; ids: string[] }[] = [];
      if (multi) {
        const names = body.queueNames ?? [];
        if (names.length === 0) throw new HandlerError('queueNames must be set for multi-queue heartbeats');
        const byQueue = body.jobIdsByQueue ?? [];
        const bad = byQueue.map((g) => g.queueName).filter((q) => !names.includes(q));
        if (bad.length > 0) {
          throw new HandlerError(
            `unsupported queue name(s) '${bad.join(', ')}' submitted in queueJobIds, executor is configured for queues '${names.join(', ')}'`,
          );
        }
        for (const g of byQueue) groups.push({ queue: g.queueName, ids: g.jobIds });
      } else {
        groups.push({ queue: ctx.params.queue!, ids: body.jobIds });
      }
      const now = clock.now();
      // Parsed once here, with the labels the server owns set by the server (pushed-metrics.ts).
      const pushed = normalizePushedMetrics(
        body.executorName,
        body.prometheusMetrics,
        deps.config.maxExecutorMetricsBytes,
      );
      if (!pushed.ok)
        logger.warn('executor metrics dropped', { executor: body.executorName, reason: pushed.reason });
      try {
        await store.upsertExecutor(
          {
            name: body.executorName,
            hostname: body.executorName,
            queueName: multi ? null : ctx.params.queue!,
            queueNames: multi ? (body.queueNames ?? []) : null,
            os: body.os,
            architecture: body.architecture,
            dockerVersion: body.dockerVersion,
            executorVersion: body.executorVersion,
            gitVersion: body.gitVersion,
            igniteVersion: body.igniteVersion,
            srcCliVersion: body.srcCliVersion,
            metrics: pushed.ok ? pushed.text : '',
          },
          now,
        );
      } catch (e) {
        // Upstream only logs this: losing the registry row must not cost the executor its jobs.
        logger.error('upserting executor heartbeat failed', { executor: body.executorName, error: e });
      }
      const knownIds: string[] = [];
      const cancelIds: string[] = [];
      for (const g of groups) {
        const ids = g.ids
          .filter((id) => /^\d+$/.test(id))
          .map(Number)
          .filter(Number.isSafeInteger);
        if (ids.length === 0) continue;
        const r = await store.heartbeat(body.executorName, g.queue, ids, now);
        const suffix = multi ? `-${g.queue}` : '';
        for (const id of r.knownIds) knownIds.push(`${id}${suffix}`);
        for (const id of r.cancelIds) cancelIds.push(`${id}${suffix}`);
        const lost = ids.filter((id) => !r.knownIds.includes(id));
        if (lost.length > 0)
          logger.info('heartbeat lost a job', { executor: body.executorName, queue: g.queue, ids: lost });
      }
      sendJson(ctx.res, 200, { knownIds, cancelIds });
    });

  router.add('POST', '/.executors/queue/heartbeat', heartbeat(true), '/.executors/queue/heartbeat');
  router.add(
    'POST',
    '/.executors/queue/:queue/heartbeat',
    heartbeat(false),
    '/.executors/queue/:queue/heartbeat',
  );
}
