/**
 * The /.executors API (Sourcegraph `queuehandler.go` and `handler/*.go`): dequeue and heartbeat,
 * single and multi-queue; log entries; marks; test/auth; plus our negotiated extensions (long-poll
 * dequeue, appendExecutionLogEntry). Git and files routes live in their own files.
 *
 * Response conventions, exactly as upstream's `wrapHandler`: 400 text `Failed to unmarshal
 * payload: ...` on a body that does not decode, 500 `{"error":"..."}` on a handler error, the
 * handler's status otherwise, with a JSON body unless 204 (so "not found" is 404 `null`).
 */
import type { ZodType, z } from 'zod';
import { errorMessage, isAppError } from '../../lib/errors.js';
import {
  CAPABILITIES_HEADER,
  CAPABILITY,
  LONG_POLL_HEADER,
  MAX_LONG_POLL_MS,
  SERVER_VERSION_HEADER,
} from '../../protocol/capabilities.js';
import {
  addExecutionLogEntryRequestSchema,
  appendExecutionLogEntryRequestSchema,
  dequeueRequestSchema,
  heartbeatRequestSchema,
  markCompleteRequestSchema,
  markErroredRequestSchema,
  updateExecutionLogEntryRequestSchema,
} from '../../protocol/http.js';
import { encodeJob } from '../../protocol/job.js';
import { executorVersion, InvalidVersionError, supportsV2Payload } from '../../protocol/version.js';
import type { AttemptFence, JobRecord, LogEntryInput } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import {
  BodyAbortedError,
  BodyTooLargeError,
  type RouteContext,
  type Router,
  readBody,
  sendEmpty,
  sendJson,
  sendText,
} from '../http.js';
import { checkExecutorToken, checkJobRequest, hashJobToken, type JobCaller, newJobToken } from './auth.js';
import { buildJob } from './build-job.js';
import { maskSecrets } from './mask-secrets.js';

export const CAPABILITIES_VALUE = [CAPABILITY.longPoll, CAPABILITY.logAppend].join(', ');

/** Ends a handler with a response already written. */
class Responded extends Error {
  constructor() {
    super('responded');
  }
}

/** A handler error answered as 500 `{"error": message}` (the message is safe to show). */
export class HandlerError extends Error {}

/** Go-like decode error text for a zod failure. */
function describeZod(error: z.ZodError): string {
  const i = error.issues[0]!;
  const where = i.path.length ? ` (field ${i.path.join('.')})` : '';
  return `json: ${i.message}${where}`;
}

/** Each request's body, read once: the quick markComplete path reads it before authentication. */
const bodies = new WeakMap<RouteContext, Promise<Buffer>>();

function bodyOf(ctx: RouteContext, deps: RouteDeps): Promise<Buffer> {
  let body = bodies.get(ctx);
  if (!body) {
    body = readBody(ctx.req, deps.config.executorBodyLimitBytes);
    // Whoever awaits it handles a failure; this only keeps an unawaited one from being unhandled.
    body.catch(() => {});
    bodies.set(ctx, body);
  }
  return body;
}

async function decode<T extends ZodType>(
  ctx: RouteContext,
  deps: RouteDeps,
  schema: T,
): Promise<z.output<T>> {
  let body: Buffer;
  try {
    body = await bodyOf(ctx, deps);
  } catch (e) {
    if (e instanceof BodyTooLargeError) {
      sendText(ctx.res, 413, `request body too large (limit ${e.limit} bytes)\n`);
      throw new Responded();
    }
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (e) {
    sendText(ctx.res, 400, `Failed to unmarshal payload: ${errorMessage(e)}\n`);
    throw new Responded();
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    sendText(ctx.res, 400, `Failed to unmarshal payload: ${describeZod(r.error)}\n`);
    throw new Responded();
  }
  return r.data;
}

/** Runs a /.executors handler with upstream's error envelope. */
function wrap(deps: RouteDeps, fn: (ctx: RouteContext) => Promise<void>) {
  return async (ctx: RouteContext) => {
    ctx.res.setHeader(CAPABILITIES_HEADER, CAPABILITIES_VALUE);
    ctx.res.setHeader(SERVER_VERSION_HEADER, executorVersion());
    try {
      await fn(ctx);
    } catch (e) {
      if (e instanceof Responded) return;
      if (e instanceof HandlerError || e instanceof InvalidVersionError) {
        sendJson(ctx.res, 500, { error: e.message });
        return;
      }
      // The store is unreachable (database away): 503, which executors retry.
      if (isAppError(e) && e.code === 'UNAVAILABLE') {
        deps.logger.warn('executor api: store unavailable', {
          requestId: ctx.requestId,
          path: ctx.url.pathname,
          error: e.cause,
        });
        if (!ctx.res.headersSent) sendJson(ctx.res, 503, { error: e.message }, { 'retry-after': '1' });
        else ctx.res.destroy();
        return;
      }
      if (e instanceof BodyAbortedError) {
        // The client went away mid-body: nobody is left to answer, and it is not a server fault.
        deps.logger.debug('executor api: request body aborted by the client', {
          requestId: ctx.requestId,
          path: ctx.url.pathname,
        });
        ctx.res.destroy();
        return;
      }
      deps.logger.error('executor api handler failed', {
        requestId: ctx.requestId,
        path: ctx.url.pathname,
        error: e,
      });
      sendJson(ctx.res, 500, { error: `internal error (request id ${ctx.requestId})` });
    }
  };
}

function requireExecutor(ctx: RouteContext, deps: RouteDeps): void {
  const failure = checkExecutorToken(ctx.req, deps.config.executorsAccessToken);
  if (failure) {
    if (failure.text === '') sendEmpty(ctx.res, failure.status);
    else sendText(ctx.res, failure.status, `${failure.text}\n`);
    throw new Responded();
  }
}

/**
 * markComplete on the Bearer path in one store round trip. When the headers and the body are
 * well-formed and agree, the store checks the token, the executor's registration and the fence in
 * the statement that completes the job. Anything else, or a refusal, returns false and the handler
 * takes the full path, which answers with the status of the first check that fails (the store has
 * changed nothing then). Returns true when the job was completed and 204 sent.
 */
async function completeByToken(ctx: RouteContext, deps: RouteDeps): Promise<boolean> {
  const auth = ctx.req.headers.authorization;
  if (!auth?.startsWith('Bearer ')) return false;
  const tokenHash = hashJobToken(auth.slice('Bearer '.length));
  const jobIdText = ctx.req.headers['x-sourcegraph-job-id'];
  const executorName = ctx.req.headers['x-sourcegraph-executor-name'];
  if (!tokenHash || typeof jobIdText !== 'string' || typeof executorName !== 'string' || executorName === '')
    return false;
  let json: unknown;
  try {
    json = JSON.parse((await bodyOf(ctx, deps)).toString('utf8'));
  } catch {
    return false;
  }
  const body = markCompleteRequestSchema.safeParse(json);
  if (!body.success || body.data.executorName !== executorName || String(body.data.jobId) !== jobIdText)
    return false;
  const fence = await deps.store.markCompleteByToken(
    { tokenHash, jobId: body.data.jobId, executorName, queue: ctx.params.queue! },
    deps.clock.now(),
  );
  if (!fence) return false;
  sendEmpty(ctx.res, 204);
  return true;
}

async function requireJob(ctx: RouteContext, deps: RouteDeps, queue: string): Promise<JobCaller> {
  const r = await checkJobRequest(
    ctx.req,
    { kind: 'queue', queue },
    {
      store: deps.store,
      executorsAccessToken: deps.config.executorsAccessToken,
    },
  );
  if (!r.ok) {
    if (r.failure.text === '') sendEmpty(ctx.res, r.failure.status);
    else sendText(ctx.res, r.failure.status, `${r.failure.text}\n`);
    throw new Responded();
  }
  return r.caller;
}

/**
 * The fence of a job write. On the Bearer path the token names the attempt and the body must agree
 * with the token and headers (403 otherwise). On the shared-token path upstream trusts the body; we
 * fence on the job's current attempt and still refuse a body that contradicts the headers.
 */
async function fenceFor(
  ctx: RouteContext,
  deps: RouteDeps,
  caller: JobCaller,
  body: { jobId: number; executorName: string },
  /** False when the caller needs no job row (markComplete: no message to mask, no queue to wake). */
  needJob = true,
): Promise<{ fence: AttemptFence; job: JobRecord | null }> {
  if (caller.token) {
    if (body.jobId !== caller.jobId || body.executorName !== caller.executorName) {
      sendText(ctx.res, 403, 'invalid token\n');
      throw new Responded();
    }
    // The token names the attempt, so the row is read only for what the handler does with it.
    const job = needJob ? await deps.store.getJob(body.jobId) : null;
    return {
      fence: { jobId: body.jobId, executorName: body.executorName, attempt: caller.token.attempt },
      job,
    };
  }
  if (
    (caller.jobId !== 0 && caller.jobId !== body.jobId) ||
    (caller.executorName !== '' && caller.executorName !== body.executorName)
  ) {
    sendText(ctx.res, 403, 'invalid token\n');
    throw new Responded();
  }
  const job = await deps.store.getJob(body.jobId);
  return { fence: { jobId: body.jobId, executorName: body.executorName, attempt: job?.attempts ?? 0 }, job };
}

function pickWeighted(
  queues: string[],
  weights: Readonly<Record<string, number>>,
  random: () => number,
): string {
  const w = queues.map((q) => weights[q] ?? 1);
  const total = w.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (let i = 0; i < queues.length; i++) {
    r -= w[i]!;
    if (r < 0) return queues[i]!;
  }
  return queues[queues.length - 1]!;
}

function logEntry(body: LogEntryInput, secrets: string[]): LogEntryInput {
  return {
    key: body.key,
    command: body.command ? body.command.map((c) => maskSecrets(c, secrets)) : null,
    startTime: body.startTime,
    exitCode: body.exitCode,
    durationMs: body.durationMs,
    out: body.out === undefined ? undefined : maskSecrets(body.out, secrets),
  };
}

const secretsOf = (job: JobRecord | null): string[] => Object.values(job?.spec.secrets ?? {});

export function registerExecutorRoutes(router: Router, deps: RouteDeps): void {
  const { store, config, clock, logger, notifier } = deps;
  const unknownJob = (ctx: RouteContext) => sendJson(ctx.res, 500, { error: 'unknown job' });

  router.add(
    'GET',
    '/.executors/test/auth',
    wrap(deps, async (ctx) => {
      requireExecutor(ctx, deps);
      sendText(ctx.res, 200, 'ok');
    }),
  );

  /** One dequeue try over `queues`; null when nothing was ready (or a race was lost). */
  const tryDequeue = async (queues: string[], multi: boolean, executorName: string, v2: boolean) => {
    let queue = queues[0]!;
    if (multi) {
      const counts = await store.readyCounts(queues, clock.now());
      const ready = queues.filter((q) => (counts.get(q) ?? 0) > 0);
      if (ready.length === 0) return null;
      queue = pickWeighted(ready, config.queueWeights, deps.random);
    }
    const { token, hash: tokenHash } = newJobToken();
    const claimed = await store.dequeue({
      queue,
      executorName,
      now: clock.now(),
      tokenHash,
      priorityStepMs: config.priorityStepMs,
    });
    if (!claimed) return null;
    const { job: record, attempt } = claimed;
    try {
      const job = buildJob(record, attempt, token, {
        fileInlineLimitBytes: config.fileInlineLimitBytes,
        queue: multi ? queue : undefined,
      });
      return encodeJob(job, v2 ? 2 : 1);
    } catch (e) {
      const message = errorMessage(e);
      await store.markFailed(
        { jobId: record.id, executorName, attempt },
        `failed to transform record: ${message}`,
        clock.now(),
      );
      throw new HandlerError(
        multi ? `RecordTransformer ${queue}: ${message}` : `RecordTransformer: ${message}`,
      );
    }
  };

  const dequeue = (multi: boolean) =>
    wrap(deps, async (ctx) => {
      requireExecutor(ctx, deps);
      const body = await decode(ctx, deps, dequeueRequestSchema);
      if (body.executorName === '') throw new HandlerError('worker hostname cannot be empty');
      const v2 = supportsV2Payload(body.version);
      const queues = multi ? [...new Set(body.queues ?? [])] : [ctx.params.queue!];
      if (queues.length === 0) {
        sendEmpty(ctx.res, 204);
        return;
      }
      const asked = Number(ctx.req.headers[LONG_POLL_HEADER]);
      const holdMs = Number.isFinite(asked) && asked > 0 ? Math.min(asked, MAX_LONG_POLL_MS) : 0;
      const deadline = Date.now() + holdMs;
      // Set up on the first empty try only: most dequeues of a busy queue answer at once, and
      // two abort signals and a listener per request are a measurable part of a dequeue.
      let wait: { gone: AbortController; signal: AbortSignal } | undefined;
      const clientGone = () => wait?.gone.signal.aborted === true || ctx.req.socket.destroyed;
      for (;;) {
        // Nobody would receive a job claimed now.
        if (clientGone()) return;
        const payload = await tryDequeue(queues, multi, body.executorName, v2);
        if (payload) {
          if (clientGone()) {
            logger.warn('dequeued job for a client that went away; the resetter will requeue it', {
              jobId: payload.id,
              executor: body.executorName,
            });
          }
          sendJson(ctx.res, 200, payload);
          return;
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0 || ctx.closing.aborted) break;
        if (!wait) {
          // The client going away ends the wait without claiming a job nobody would receive.
          const gone = new AbortController();
          ctx.res.once('close', () => gone.abort());
          wait = { gone, signal: AbortSignal.any([gone.signal, ctx.closing]) };
        }
        // Woken at once by an enqueue; the 1 s re-check covers jobs becoming due (retry backoff)
        // and enqueues this process cannot see.
        await notifier.wait(queues, Math.min(remaining, 1000), wait.signal);
        if (wait.gone.signal.aborted) return;
        if (wait.signal.aborted) break;
      }
      sendEmpty(ctx.res, 204);
    });

  router.add('POST', '/.executors/queue/dequeue', dequeue(true), '/.executors/queue/dequeue');
  router.add('POST', '/.executors/queue/:queue/dequeue', dequeue(false), '/.executors/queue/:queue/dequeue');

  const heartbeat = (multi: boolean) =>
    wrap(deps, async (ctx) => {
      requireExecutor(ctx, deps);
      const body = await decode(ctx, deps, heartbeatRequestSchema);
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
            metrics: body.prometheusMetrics,
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
        knownIds.push(...r.knownIds.map((id) => `${id}${suffix}`));
        cancelIds.push(...r.cancelIds.map((id) => `${id}${suffix}`));
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

  router.add(
    'POST',
    '/.executors/queue/:queue/addExecutionLogEntry',
    wrap(deps, async (ctx) => {
      const caller = await requireJob(ctx, deps, ctx.params.queue!);
      const body = await decode(ctx, deps, addExecutionLogEntryRequestSchema);
      const { fence, job } = await fenceFor(ctx, deps, caller, body);
      const id = await store.addLogEntry(fence, logEntry(body, secretsOf(job)), config.maxLogBytesPerJob);
      if (id === null) return unknownJob(ctx);
      sendJson(ctx.res, 200, id);
    }),
  );

  router.add(
    'POST',
    '/.executors/queue/:queue/updateExecutionLogEntry',
    wrap(deps, async (ctx) => {
      const caller = await requireJob(ctx, deps, ctx.params.queue!);
      const body = await decode(ctx, deps, updateExecutionLogEntryRequestSchema);
      const { fence, job } = await fenceFor(ctx, deps, caller, body);
      const ok = await store.updateLogEntry(
        fence,
        body.entryId,
        logEntry(body, secretsOf(job)),
        config.maxLogBytesPerJob,
      );
      if (!ok) return unknownJob(ctx);
      sendEmpty(ctx.res, 204);
    }),
  );

  router.add(
    'POST',
    '/.executors/queue/:queue/appendExecutionLogEntry',
    wrap(deps, async (ctx) => {
      const caller = await requireJob(ctx, deps, ctx.params.queue!);
      const body = await decode(ctx, deps, appendExecutionLogEntryRequestSchema);
      const { fence, job } = await fenceFor(ctx, deps, caller, body);
      // Masking keeps the byte length, so offsets stay those the executor counts.
      const r = await store.appendLogOutput(
        fence,
        body.entryId,
        body.offset,
        maskSecrets(body.out, secretsOf(job)),
        { exitCode: body.exitCode, durationMs: body.durationMs },
        config.maxLogBytesPerJob,
      );
      if (r.ok) sendJson(ctx.res, 200, { length: r.length });
      else if (r.reason === 'gap') sendJson(ctx.res, 409, { length: r.length });
      else unknownJob(ctx);
    }),
  );

  const mark = (kind: 'complete' | 'errored' | 'failed') =>
    wrap(deps, async (ctx) => {
      if (kind === 'complete' && (await completeByToken(ctx, deps))) return;
      const caller = await requireJob(ctx, deps, ctx.params.queue!);
      const body =
        kind === 'complete'
          ? { ...(await decode(ctx, deps, markCompleteRequestSchema)), errorMessage: '' }
          : await decode(ctx, deps, markErroredRequestSchema);
      const { fence, job } = await fenceFor(ctx, deps, caller, body, kind !== 'complete');
      const message = maskSecrets(body.errorMessage, secretsOf(job));
      const now = clock.now();
      const retry = { baseMs: config.retryBackoffBaseMs, maxMs: config.retryBackoffMaxMs };
      const ok =
        kind === 'complete'
          ? await store.markComplete(fence, now)
          : kind === 'errored'
            ? await store.markErrored(fence, message, now, retry)
            : await store.markFailed(fence, message, now);
      if (!ok) {
        sendJson(ctx.res, 404, null);
        return;
      }
      if (kind === 'errored' && job) notifier.notify(job.queue);
      sendEmpty(ctx.res, 204);
    });

  router.add(
    'POST',
    '/.executors/queue/:queue/markComplete',
    mark('complete'),
    '/.executors/queue/:queue/markComplete',
  );
  router.add(
    'POST',
    '/.executors/queue/:queue/markErrored',
    mark('errored'),
    '/.executors/queue/:queue/markErrored',
  );
  router.add(
    'POST',
    '/.executors/queue/:queue/markFailed',
    mark('failed'),
    '/.executors/queue/:queue/markFailed',
  );
}

export { Responded, wrap as wrapExecutorHandler };
