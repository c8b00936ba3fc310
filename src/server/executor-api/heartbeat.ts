/**
 * `POST /.executors/queue/heartbeat` (multi-queue, job ids grouped by queue) and
 * `POST /.executors/queue/:queue/heartbeat`: record the executor (its versions and pushed metrics),
 * renew the leases of the jobs it reports, and answer which of them the server still knows and
 * which it wants cancelled. The writes of heartbeats arriving together go to the store as one
 * (heartbeat-writer.ts); an executor's row is written when it changed or has aged, and otherwise
 * only when it was last seen, with the others seen in the same second.
 */
import type { IncomingMessage } from 'node:http';
import { type HeartbeatRequest, heartbeatRequestSchema } from '../../protocol/http.js';
import type { ExecutorHeartbeat } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import { type Router, sendJson } from '../http.js';
import { normalizePushedMetrics } from '../pushed-metrics.js';
import { createDecodeCache } from './decode-cache.js';
import { decode, HandlerError, wrapExecutorHandler as wrap } from './envelope.js';
import { executorAcceptedAgain, requireExecutor } from './guards.js';
import { rowKey } from './heartbeat-writer.js';

/**
 * What a heartbeat may carry besides its metrics (job ids, telemetry): the body limit is
 * EXECUTOR_SERVER_MAX_EXECUTOR_METRICS plus this.
 */
export const HEARTBEAT_BODY_MARGIN_BYTES = 1024 * 1024;

/**
 * An idle executor's heartbeat on the single-queue route, whose body has whole (the heartbeat
 * lane's): answered without the route's promises when nothing in it needs the store (its token
 * accepted on this connection before, its body decoded before, no job ids, its row not due). True
 * when it was recorded and its answer is `{"knownIds":[],"cancelIds":[]}`; false when the route
 * must answer it.
 */
export type QuickHeartbeat = (queue: string, req: IncomingMessage, body: Buffer) => boolean;

export function registerHeartbeatRoutes(router: Router, deps: RouteDeps): QuickHeartbeat {
  const { clock, logger, heartbeats } = deps;
  // An idle executor sends the same body at every heartbeat: it is parsed and validated once.
  const decoded = createDecodeCache<HeartbeatRequest>();
  const keys = new WeakMap<HeartbeatRequest, { route: string | null; key: string }>();

  const heartbeat = (multi: boolean) =>
    wrap(deps, async (ctx) => {
      requireExecutor(ctx, deps);
      // A heartbeat is its metrics and a little more: a larger body is refused (413) before it is
      // read or parsed, so pushed metrics cannot make the server parse megabytes on its event loop.
      const limit = Math.min(
        deps.config.executorBodyLimitBytes,
        deps.config.maxExecutorMetricsBytes + HEARTBEAT_BODY_MARGIN_BYTES,
      );
      const body = await decode(ctx, deps, heartbeatRequestSchema, limit, decoded);
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
      const jobs = groups
        .map((g) => ({
          queue: g.queue,
          jobIds: g.ids
            .filter((id) => /^\d+$/.test(id))
            .map(Number)
            .filter(Number.isSafeInteger),
        }))
        .filter((g) => g.jobIds.length > 0);
      const now = clock.now();
      const queues = {
        queueName: multi ? null : ctx.params.queue!,
        queueNames: multi ? (body.queueNames ?? []) : null,
      };
      // A body from the decode cache is the same object every time: its key is made once per
      // route it came to (the route names the queue).
      const route = multi ? null : queues.queueName;
      let known = keys.get(body);
      if (known === undefined || known.route !== route) {
        known = { route, key: rowKey({ ...body, ...queues }, body.prometheusMetrics) };
        keys.set(body, known);
      }
      const key = known.key;
      let row: ExecutorHeartbeat | null = null;
      if (heartbeats.rowDue(body.executorName, key, now)) {
        // Parsed once here, with the labels the server owns set by the server (pushed-metrics.ts).
        const pushed = normalizePushedMetrics(
          body.executorName,
          body.prometheusMetrics,
          deps.config.maxExecutorMetricsBytes,
        );
        if (!pushed.ok)
          logger.warn('executor metrics dropped', { executor: body.executorName, reason: pushed.reason });
        row = {
          name: body.executorName,
          hostname: body.executorName,
          ...queues,
          os: body.os,
          architecture: body.architecture,
          dockerVersion: body.dockerVersion,
          executorVersion: body.executorVersion,
          gitVersion: body.gitVersion,
          igniteVersion: body.igniteVersion,
          srcCliVersion: body.srcCliVersion,
          metrics: pushed.ok ? pushed.text : '',
        };
      }
      // An unchanged row is not written: when its executor was seen goes in the next touch.
      if (row === null) heartbeats.seen(body.executorName, now);
      // Nothing to write, nothing to answer: no job ids, and a row this server wrote moments ago.
      const answers =
        row === null && jobs.length === 0
          ? []
          : await heartbeats.write({ executorName: body.executorName, row, jobs }, key);
      const knownIds: string[] = [];
      const cancelIds: string[] = [];
      jobs.forEach((g, i) => {
        const r = answers[i]!;
        const suffix = multi ? `-${g.queue}` : '';
        for (const id of r.knownIds) knownIds.push(`${id}${suffix}`);
        for (const id of r.cancelIds) cancelIds.push(`${id}${suffix}`);
        const lost = g.jobIds.filter((id) => !r.knownIds.includes(id));
        if (lost.length > 0)
          logger.info('heartbeat lost a job', { executor: body.executorName, queue: g.queue, ids: lost });
      });
      sendJson(ctx.res, 200, { knownIds, cancelIds });
    });

  router.add('POST', '/.executors/queue/heartbeat', heartbeat(true), '/.executors/queue/heartbeat');
  router.add(
    'POST',
    '/.executors/queue/:queue/heartbeat',
    heartbeat(false),
    '/.executors/queue/:queue/heartbeat',
  );

  return (queue, req, bytes) => {
    if (!executorAcceptedAgain(req, deps)) return false;
    const body = decoded.get(bytes.toString('utf8'));
    if (body === undefined || body.executorName === '' || body.jobIds.length > 0) return false;
    // The row's key was made when the route answered this body on this queue before.
    const known = keys.get(body);
    if (known === undefined || known.route !== queue) return false;
    const now = clock.now();
    if (heartbeats.rowDue(body.executorName, known.key, now)) return false;
    heartbeats.seen(body.executorName, now);
    return true;
  };
}
