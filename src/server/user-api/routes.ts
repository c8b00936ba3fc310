/**
 * The user API, `/api/v1`, authenticated with `Authorization: Bearer <api token>`.
 *
 * Errors use the catalogue of lib/errors.ts: `{"error":{"code","message","details?","requestId"}}`.
 * Anything unexpected is INTERNAL (500) with the request id; its real message goes to the log only.
 */

import { parseDurationMs } from '../../lib/duration.js';
import { AppError, ERRORS, type ErrorDetail, isAppError } from '../../lib/errors.js';
import { validateJobSpec } from '../../protocol/job-spec.js';
import {
  type ExecutorListView,
  encodeLogStreamEvent,
  JOB_STATES,
  type JobDetailView,
  type JobListView,
  type JobLogsView,
  type LogStreamEvent,
  type QueueListView,
  SSE_KEEPALIVE,
} from '../../protocol/user-api.js';
import { calculateCompatibility, isOurExecutorVersion } from '../../protocol/version.js';
import { type JobRecord, type JobState, TERMINAL_STATES } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import { maskSecrets } from '../executor-api/mask-secrets.js';
import { answerFailure, type FailureForms } from '../failure.js';
import { BodyTooLargeError, type RouteContext, type Router, readBody, sendJson } from '../http.js';
import { actorOf, authenticateUser } from './actor.js';
import { jobEventView, jobView, logEntryView, secretValues } from './job-view.js';
import { resolveCommit } from './resolve-commit.js';

/** An executor counts as active when seen within three heartbeat intervals (Sourcegraph: 3 x 5 s). */
export const ACTIVE_WITHIN_MS = 15_000;
/** How often a log follower looks for new output. */
const FOLLOW_POLL_MS = 250;
const FOLLOW_KEEPALIVE_MS = 15_000;

export function sendError(
  ctx: RouteContext,
  code: keyof typeof ERRORS,
  message?: string,
  details?: ErrorDetail[],
): void {
  const status = ERRORS[code].status;
  sendJson(ctx.res, status, {
    error: {
      code,
      message: message ?? ERRORS[code].message,
      ...(details ? { details } : {}),
      requestId: ctx.requestId,
    },
  });
}

/** The catalogue's forms: UNAVAILABLE with Retry-After, INTERNAL naming the request id. */
const USER_API_FAILURES: FailureForms = {
  unavailableLog: 'user api: store unavailable',
  failedLog: 'user api handler failed',
  abortedLog: 'user api: request body aborted by the client',
  unavailable: (ctx, e) => {
    ctx.res.setHeader('retry-after', '1');
    sendError(ctx, e.code, e.message, e.details);
  },
  internal: (ctx) => sendError(ctx, 'INTERNAL', `Internal error; quote request id ${ctx.requestId}.`),
  afterHeaders: 'end',
};

/** Runs a user-API handler: auth, then the catalogue's error envelope around it. */
export function wrapUser(
  deps: RouteDeps,
  fn: (ctx: RouteContext) => Promise<void>,
  opts: { auth?: boolean } = {},
) {
  return async (ctx: RouteContext) => {
    try {
      if (opts.auth !== false) authenticateUser(ctx, deps);
      await fn(ctx);
    } catch (e) {
      if (isAppError(e) && e.code !== 'UNAVAILABLE') {
        sendError(ctx, e.code, e.message, e.details);
        return;
      }
      if (e instanceof BodyTooLargeError) {
        sendError(ctx, 'PAYLOAD_TOO_LARGE', `The request body is larger than ${e.limit} bytes.`);
        return;
      }
      answerFailure(ctx, deps.logger, USER_API_FAILURES, e);
    }
  };
}

async function readJson(ctx: RouteContext, deps: RouteDeps): Promise<unknown> {
  const type = ctx.req.headers['content-type'];
  if (type && !/\bjson\b/i.test(type)) throw new AppError('UNSUPPORTED_MEDIA_TYPE');
  const body = await readBody(ctx.req, deps.config.apiBodyLimitBytes);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new AppError('BAD_REQUEST', `The body is not valid JSON: ${(e as Error).message}`);
  }
}

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
}

/** Submit, cancel, retry: the routes that change jobs (and wake the queue's waiters). */
function registerJobWriteRoutes(router: Router, deps: RouteDeps): void {
  const { store, config, clock, notifier } = deps;

  router.add(
    'POST',
    '/api/v1/jobs',
    wrapUser(deps, async (ctx) => {
      const input = await readJson(ctx, deps);
      const v = validateJobSpec(input);
      if (!v.ok)
        throw new AppError('VALIDATION', 'The job spec has invalid fields.', { details: v.problems });
      const spec = v.spec;
      const commit = spec.repository
        ? await resolveCommit(config.reposDir, spec.repository.name, spec.repository.commit)
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
        actorOf(ctx),
      );
      notifier.notify(job.queue);
      sendJson(ctx.res, 201, jobView(job), { location: `/api/v1/jobs/${job.id}` });
    }),
  );

  router.add(
    'POST',
    '/api/v1/jobs/:id/cancel',
    wrapUser(deps, async (ctx) => {
      const before = await getJobOr404(deps, ctx.params.id);
      if (TERMINAL_STATES.includes(before.state)) {
        throw new AppError('CONFLICT', `Job ${before.id} already ended (${before.state}).`);
      }
      const job = await store.cancelJob(before.id, clock.now(), actorOf(ctx));
      if (!job) throw new AppError('NOT_FOUND', 'No such job.');
      sendJson(ctx.res, 200, jobView(job));
    }),
  );

  router.add(
    'POST',
    '/api/v1/jobs/:id/retry',
    wrapUser(deps, async (ctx) => {
      const before = await getJobOr404(deps, ctx.params.id);
      if (!['failed', 'errored', 'canceled'].includes(before.state)) {
        throw new AppError(
          'CONFLICT',
          `Job ${before.id} is ${before.state}; only failed, errored or canceled jobs can be retried.`,
        );
      }
      const job = await store.retryJob(before.id, clock.now(), actorOf(ctx));
      if (!job) throw new AppError('CONFLICT', `Job ${before.id} cannot be retried now.`);
      notifier.notify(job.queue);
      sendJson(ctx.res, 200, jobView(job));
    }),
  );
}

/** List, get, logs (and their follow). */
function registerJobReadRoutes(router: Router, deps: RouteDeps): void {
  const { store } = deps;

  router.add(
    'GET',
    '/api/v1/jobs',
    wrapUser(deps, async (ctx) => {
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
    }),
  );

  router.add(
    'GET',
    '/api/v1/jobs/:id',
    wrapUser(deps, async (ctx) => {
      const job = await getJobOr404(deps, ctx.params.id);
      const [entries, events] = await Promise.all([
        job.attempts > 0 ? store.getLogEntries(job.id, { attempt: job.attempts }) : [],
        store.listJobEvents(job.id),
      ]);
      const secrets = secretValues(job);
      sendJson(ctx.res, 200, {
        ...jobView(job),
        logEntries: entries.map((e) => logEntryView(e, secrets)),
        events: events.map(jobEventView),
      } satisfies JobDetailView);
    }),
  );

  router.add(
    'GET',
    '/api/v1/jobs/:id/logs',
    wrapUser(deps, async (ctx) => {
      const job = await getJobOr404(deps, ctx.params.id);
      const problems: ErrorDetail[] = [];
      const attempt = intParam(ctx.url, 'attempt', 1, 1_000_000, problems);
      const follow = ['1', 'true'].includes(ctx.url.searchParams.get('follow') ?? '');
      if (problems.length > 0)
        throw new AppError('VALIDATION', 'The query has invalid parameters.', { details: problems });
      if (follow) {
        await followLogs(ctx, deps, job, attempt);
        return;
      }
      const which = attempt ?? job.attempts;
      const entries =
        which > 0 ? await store.getLogEntries(job.id, { attempt: which, withOutput: true }) : [];
      const secrets = secretValues(job);
      sendJson(ctx.res, 200, {
        jobId: job.id,
        attempt: which,
        entries: entries.map((e) => logEntryView(e, secrets)),
      } satisfies JobLogsView);
    }),
  );
}

/** Executors and queues, as the dashboard's fleet pages show them. */
function registerFleetRoutes(router: Router, deps: RouteDeps): void {
  const { store, config, clock } = deps;

  router.add(
    'GET',
    '/api/v1/executors',
    wrapUser(deps, async (ctx) => {
      const now = clock.now();
      const executors = await store.listExecutors();
      sendJson(ctx.res, 200, {
        executors: executors.map((e) => {
          const active = now - e.lastSeenAt <= ACTIVE_WITHIN_MS;
          const serverVersion = isOurExecutorVersion(e.executorVersion)
            ? deps.packageVersion
            : config.sourcegraphVersion;
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
            compatibility: calculateCompatibility(e.executorVersion, serverVersion, active),
          };
        }),
      } satisfies ExecutorListView);
    }),
  );

  router.add(
    'GET',
    '/api/v1/queues',
    wrapUser(deps, async (ctx) => {
      const now = clock.now();
      const stats = await store.queueStats(now);
      sendJson(ctx.res, 200, {
        queues: stats.map((s) => ({
          queue: s.queue,
          depth: s.queued,
          processing: s.processing,
          oldestQueuedAt: s.oldestQueuedAt === null ? null : new Date(s.oldestQueuedAt).toISOString(),
          oldestAgeSeconds: s.oldestQueuedAt === null ? null : Math.max(0, (now - s.oldestQueuedAt) / 1000),
        })),
      } satisfies QueueListView);
    }),
  );
}

/**
 * Server-sent events until the job ends: `entry` (a new entry, or changed fields), `output`
 * (`{attempt, entryId, data}` chunks in order), then `end` with the final job. The stream follows
 * the latest attempt unless `attempt` is given. It also ends when the client leaves or the server
 * closes.
 */
async function followLogs(
  ctx: RouteContext,
  deps: RouteDeps,
  initial: JobRecord,
  fixedAttempt?: number,
): Promise<void> {
  const { res } = ctx;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  // Headers go out now, so a client sees the stream open before the first event.
  res.flushHeaders();
  const send = (e: LogStreamEvent) => res.write(encodeLogStreamEvent(e));
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  const signal = AbortSignal.any([gone.signal, ctx.closing]);
  const seen = new Map<string, { sent: number; fields: string }>();
  const secrets = secretValues(initial);
  let lastWrite = Date.now();
  let endedSeen = false;
  while (!signal.aborted) {
    const job = await deps.store.getJob(initial.id);
    if (!job) break;
    const ended = TERMINAL_STATES.includes(job.state);
    const attempt = fixedAttempt ?? job.attempts;
    const entries = attempt > 0 ? await deps.store.getLogEntries(job.id, { attempt }) : [];
    for (const e of entries) {
      const k = `${e.attempt}:${e.entryId}`;
      const fields = JSON.stringify([e.exitCode, e.durationMs, e.truncated]);
      let s = seen.get(k);
      if (!s || s.fields !== fields) {
        send({ event: 'entry', data: logEntryView(e, secrets) });
        lastWrite = Date.now();
        if (!s) {
          s = { sent: 0, fields };
          seen.set(k, s);
        }
        s.fields = fields;
      }
      if (e.outLength > s.sent) {
        const data = await deps.store.readLogOutput(job.id, e.attempt, e.entryId, s.sent);
        if (data.length > 0) {
          s.sent += Buffer.byteLength(data, 'utf8');
          send({
            event: 'output',
            data: { attempt: e.attempt, entryId: e.entryId, data: maskSecrets(data, secrets) },
          });
          lastWrite = Date.now();
        }
      }
    }
    // One more pass after the job is seen ended catches writes that raced the final mark.
    if (ended && endedSeen) {
      send({ event: 'end', data: jobView(job) });
      break;
    }
    endedSeen = ended;
    if (ended) continue;
    if (Date.now() - lastWrite > FOLLOW_KEEPALIVE_MS) {
      res.write(SSE_KEEPALIVE);
      lastWrite = Date.now();
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, FOLLOW_POLL_MS);
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }
  res.end();
}
