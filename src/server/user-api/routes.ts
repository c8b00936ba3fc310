/**
 * The user API, `/api/v1`, authenticated with `Authorization: Bearer <api token>` (auth.ts), each
 * route behind the scope scopes.ts gives it; errors in the catalogue's envelope (wrap.ts).
 */

import { parseDurationMs } from '../../lib/duration.js';
import { AppError, type ErrorDetail } from '../../lib/errors.js';
import { byCodeUnits } from '../../lib/order.js';
import { validateJobSpec } from '../../protocol/job-spec.js';
import {
  ACTIVE_WITHIN_MS,
  EXECUTOR_PAGE_MAX,
  type ExecutorListView,
  JOB_ENTRIES_PAGE,
  JOB_STATES,
  type JobDetailView,
  type JobListView,
  type JobLogsView,
  LOG_PAGE,
  type QueueListView,
  type QueueView,
} from '../../protocol/user-api.js';
import { calculateCompatibility, ourVersionOf } from '../../protocol/version.js';
import { type JobRecord, type JobState, TERMINAL_STATES } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import { type Router, sendJson } from '../http.js';
import { logWritten } from '../log-notifier.js';
import { MEMORY_RETRY_AFTER_S } from '../memory-guard.js';
import { principalOf } from './auth.js';
import { followLogs } from './follow-logs.js';
import { jobEventView, jobView } from './job-view.js';
import { entriesPage, logsPage } from './log-pages.js';
import { registerRepositoryRoutes } from './repository-routes.js';
import { addUserRoute } from './scopes.js';
import { registerTokenRoutes } from './token-routes.js';
import { readJson } from './wrap.js';

function parseId(text: string | undefined): number {
  if (!text || !/^\d{1,15}$/.test(text)) throw new AppError('NOT_FOUND', 'No such job.');
  return Number(text);
}

async function getJobOr404(deps: RouteDeps, idText: string | undefined): Promise<JobRecord> {
  const job = await deps.store.getJob(parseId(idText));
  if (!job) throw new AppError('NOT_FOUND', 'No such job.');
  return job;
}

function intParam(
  url: URL,
  name: string,
  min: number,
  max: number,
  problems: ErrorDetail[],
): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    problems.push({ path: name, message: `must be an integer from ${min} to ${max}` });
    return undefined;
  }
  return Number(v);
}

export function registerUserRoutes(router: Router, deps: RouteDeps): void {
  registerJobWriteRoutes(router, deps);
  registerJobReadRoutes(router, deps);
  registerFleetRoutes(router, deps);
  registerTokenRoutes(router, deps);
  registerRepositoryRoutes(router, deps);
}

/** Submit, cancel, retry: the routes that change jobs (and wake the queue's waiters). */
function registerJobWriteRoutes(router: Router, deps: RouteDeps): void {
  const { store, config, clock } = deps;

  addUserRoute(router, deps, 'POST /api/v1/jobs', async (ctx) => {
    const input = await readJson(ctx, deps);
    const v = validateJobSpec(input);
    if (!v.ok) throw new AppError('VALIDATION', 'The job spec has invalid fields.', { details: v.problems });
    const spec = v.spec;
    const commit = spec.repository
      ? await deps.repos.resolveCommit(spec.repository.name, spec.repository.commit)
      : '';
    const job = await store.enqueue(
      {
        queue: spec.queue,
        spec,
        repositoryName: spec.repository?.name ?? '',
        commit,
        priority: spec.priority ?? 0,
        maxAttempts: spec.maxAttempts ?? config.defaultMaxAttempts,
        timeoutMs: (spec.timeout ? parseDurationMs(spec.timeout) : undefined) ?? config.defaultJobTimeoutMs,
      },
      clock.now(),
      // Recorded by the enqueue's own statement: no round trip before the wake-up below.
      principalOf(ctx).name,
    );
    deps.announceEnqueue(job.queue);
    sendJson(ctx.res, 201, jobView(job), { location: `/api/v1/jobs/${job.id}` });
  });

  addUserRoute(router, deps, 'POST /api/v1/jobs/:id/cancel', async (ctx) => {
    const before = await getJobOr404(deps, ctx.params.id);
    if (TERMINAL_STATES.includes(before.state)) {
      throw new AppError('CONFLICT', `Job ${before.id} already ended (${before.state}).`);
    }
    const job = await store.cancelJob(before.id, clock.now(), principalOf(ctx).name);
    if (!job) throw new AppError('NOT_FOUND', 'No such job.');
    sendJson(ctx.res, 200, jobView(job));
    logWritten(deps, job.id);
  });

  addUserRoute(router, deps, 'POST /api/v1/jobs/:id/retry', async (ctx) => {
    const before = await getJobOr404(deps, ctx.params.id);
    if (!['failed', 'errored', 'canceled'].includes(before.state)) {
      throw new AppError(
        'CONFLICT',
        `Job ${before.id} is ${before.state}; only failed, errored or canceled jobs can be retried.`,
      );
    }
    const job = await store.retryJob(before.id, clock.now(), principalOf(ctx).name);
    if (!job) throw new AppError('CONFLICT', `Job ${before.id} cannot be retried now.`);
    deps.announceEnqueue(job.queue);
    sendJson(ctx.res, 200, jobView(job));
    logWritten(deps, job.id);
  });
}

/** List, get, logs (and their follow). */
function registerJobReadRoutes(router: Router, deps: RouteDeps): void {
  const { store } = deps;

  addUserRoute(router, deps, 'GET /api/v1/jobs', async (ctx) => {
    const problems: ErrorDetail[] = [];
    const state = ctx.url.searchParams.get('state') || undefined;
    if (state !== undefined && !JOB_STATES.includes(state as JobState)) {
      problems.push({ path: 'state', message: `must be one of ${JOB_STATES.join(', ')}` });
    }
    const queue = ctx.url.searchParams.get('queue') || undefined;
    const limit = intParam(ctx.url, 'limit', 1, 500, problems) ?? 50;
    const before = intParam(ctx.url, 'before', 1, Number.MAX_SAFE_INTEGER, problems);
    if (problems.length > 0)
      throw new AppError('VALIDATION', 'The query has invalid parameters.', { details: problems });
    const { jobs, total } = await store.listJobs({
      state: state as JobState | undefined,
      queue,
      limit,
      before,
    });
    const last = jobs[jobs.length - 1];
    const hasMore = jobs.length === limit && last !== undefined;
    sendJson(ctx.res, 200, {
      jobs: jobs.map(jobView),
      total,
      nextBefore: hasMore ? last.id : null,
    } satisfies JobListView);
  });

  addUserRoute(router, deps, 'GET /api/v1/jobs/:id', async (ctx) => {
    const job = await getJobOr404(deps, ctx.params.id);
    const problems: ErrorDetail[] = [];
    const after = intParam(ctx.url, 'entriesAfter', 0, Number.MAX_SAFE_INTEGER, problems) ?? 0;
    const limit = intParam(ctx.url, 'limit', 1, JOB_ENTRIES_PAGE.max, problems);
    if (problems.length > 0)
      throw new AppError('VALIDATION', 'The query has invalid parameters.', { details: problems });
    const [page, events] = await Promise.all([
      entriesPage(store, job, after, limit),
      store.listJobEvents(job.id),
    ]);
    sendJson(ctx.res, 200, {
      ...jobView(job),
      ...page,
      events: events.map(jobEventView),
    } satisfies JobDetailView);
  });

  addUserRoute(router, deps, 'GET /api/v1/jobs/:id/logs', async (ctx) => {
    const job = await getJobOr404(deps, ctx.params.id);
    const problems: ErrorDetail[] = [];
    const attempt = intParam(ctx.url, 'attempt', 1, 1_000_000, problems);
    const follow = ['1', 'true'].includes(ctx.url.searchParams.get('follow') ?? '');
    const after = intParam(ctx.url, 'entriesAfter', 0, Number.MAX_SAFE_INTEGER, problems) ?? 0;
    const outputFrom = intParam(ctx.url, 'outputFrom', 0, Number.MAX_SAFE_INTEGER, problems) ?? 0;
    const limit = intParam(ctx.url, 'limit', 1, LOG_PAGE.max, problems);
    if (problems.length > 0)
      throw new AppError('VALIDATION', 'The query has invalid parameters.', { details: problems });
    if (follow) {
      const refusal = deps.memory.refusal();
      if (refusal) throw new AppError('OVERLOADED', refusal, { retryAfterSeconds: MEMORY_RETRY_AFTER_S });
      const release = deps.followers.acquire(job.id);
      try {
        await followLogs(ctx, deps, job, attempt);
      } finally {
        release();
      }
      return;
    }
    const which = attempt ?? job.attempts;
    const page = await logsPage(store, job, which, { entriesAfter: after, outputFrom }, limit);
    sendJson(ctx.res, 200, { jobId: job.id, attempt: which, ...page } satisfies JobLogsView);
  });
}

/** Executors and queues, as the dashboard's fleet pages show them. */
function registerFleetRoutes(router: Router, deps: RouteDeps): void {
  const { store, config, clock } = deps;

  addUserRoute(router, deps, 'GET /api/v1/executors', async (ctx) => {
    const problems: ErrorDetail[] = [];
    // Without `limit`, every executor (as before paging); with it, a page by name after `after`.
    const limit = intParam(ctx.url, 'limit', 1, EXECUTOR_PAGE_MAX, problems);
    const after = ctx.url.searchParams.get('after') || undefined;
    if (after !== undefined && limit === undefined && problems.length === 0)
      problems.push({ path: 'after', message: 'needs limit' });
    if (problems.length > 0)
      throw new AppError('VALIDATION', 'The query has invalid parameters.', { details: problems });
    const now = clock.now();
    const [executors, counts] = await Promise.all([
      store.listExecutors(limit === undefined ? undefined : { after, limit }),
      store.countExecutors(now, ACTIVE_WITHIN_MS),
    ]);
    const last = executors[executors.length - 1];
    sendJson(ctx.res, 200, {
      total: counts.total,
      active: counts.active,
      nextAfter: limit !== undefined && executors.length === limit && last ? last.name : null,
      executors: executors.map((e) => {
        const active = now - e.lastSeenAt <= ACTIVE_WITHIN_MS;
        // Ours is judged by our own version in its build metadata against this server's; any other
        // by its version against the Sourcegraph release this server stands in for.
        const ours = ourVersionOf(e.executorVersion);
        const serverVersion = ours !== undefined ? deps.packageVersion : config.sourcegraphVersion;
        return {
          name: e.name,
          hostname: e.hostname,
          queueName: e.queueName,
          queueNames: e.queueNames,
          os: e.os,
          architecture: e.architecture,
          dockerVersion: e.dockerVersion,
          executorVersion: e.executorVersion,
          gitVersion: e.gitVersion,
          igniteVersion: e.igniteVersion,
          srcCliVersion: e.srcCliVersion,
          firstSeenAt: new Date(e.firstSeenAt).toISOString(),
          lastSeenAt: new Date(e.lastSeenAt).toISOString(),
          active,
          compatibility: calculateCompatibility(ours ?? e.executorVersion, serverVersion, active),
        };
      }),
    } satisfies ExecutorListView);
  });

  addUserRoute(router, deps, 'GET /api/v1/queues', async (ctx) => {
    const now = clock.now();
    const [stats, pollers] = await Promise.all([
      store.queueStats(now),
      store.queuePollers(now, ACTIVE_WITHIN_MS),
    ]);
    const polledBy = new Map(pollers.map((p) => [p.queue, p.executors]));
    const views = stats.map(
      (s): QueueView => ({
        queue: s.queue,
        depth: s.queued,
        processing: s.processing,
        pollers: polledBy.get(s.queue) ?? 0,
        oldestQueuedAt: s.oldestQueuedAt === null ? null : new Date(s.oldestQueuedAt).toISOString(),
        oldestAgeSeconds: s.oldestQueuedAt === null ? null : Math.max(0, (now - s.oldestQueuedAt) / 1000),
      }),
    );
    // A queue with pollers and no jobs is listed too: where a job sent now would start at once.
    const listed = new Set(views.map((v) => v.queue));
    for (const p of pollers) {
      if (listed.has(p.queue)) continue;
      views.push({
        queue: p.queue,
        depth: 0,
        processing: 0,
        pollers: p.executors,
        oldestQueuedAt: null,
        oldestAgeSeconds: null,
      });
    }
    views.sort((a, b) => byCodeUnits(a.queue, b.queue));
    sendJson(ctx.res, 200, { queues: views } satisfies QueueListView);
  });
}
