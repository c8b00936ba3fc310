/**
 * `markComplete`, `markErrored`, `markFailed`: the end of an attempt, fenced to it; 404 `null` when
 * the store does not know the job or attempt (upstream's answer). markComplete on the Bearer path
 * first tries a quick path that checks token, executor and fence in the completing statement.
 */
import { markCompleteRequestSchema, markErroredRequestSchema } from '../../protocol/http.js';
import type { RouteDeps } from '../deps.js';
import { type RouteContext, type Router, sendEmpty, sendJson } from '../http.js';
import { logWritten } from '../log-notifier.js';
import { hashJobToken } from './auth.js';
import { bodyOf, decode, wrapExecutorHandler as wrap } from './envelope.js';
import { fenceFor, refuseIfLimited, requireJob } from './guards.js';
import { secretsOf } from './logs.js';
import { maskSecrets } from './mask-secrets.js';

/**
 * The largest body the quick path reads before the token is checked. A markComplete body is
 * `{"jobId":N,"executorName":"..."}`, well under it; anything bigger (or without a declared
 * Content-Length) takes the full path, which authenticates before it reads. So an unauthenticated
 * request holds at most this much, and only for the body timeouts.
 */
const QUICK_BODY_LIMIT = 1024;

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
  const declared = Number(ctx.req.headers['content-length']);
  if (!(declared >= 0 && declared <= QUICK_BODY_LIMIT)) return false;
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
  logWritten(deps, body.data.jobId);
  return true;
}

/**
 * An errored attempt may have put its job back in the queue, ready now or after the retry backoff:
 * parked long-polls are woken now or when it becomes due. (One read, on this rare path only.)
 */
async function announceRequeue(deps: RouteDeps, jobId: number): Promise<void> {
  const after = await deps.store.getJob(jobId);
  if (after?.state !== 'queued') return;
  if (after.processAfter !== null && after.processAfter > deps.clock.now()) {
    deps.notifier.dueAt(after.queue, after.processAfter);
  } else deps.notifier.notify(after.queue);
}

export function registerMarkRoutes(router: Router, deps: RouteDeps): void {
  const { store, config, clock } = deps;

  const mark = (kind: 'complete' | 'errored' | 'failed') =>
    wrap(deps, async (ctx) => {
      // The quick path checks a token too, so a peer over the failure limit is refused first.
      refuseIfLimited(ctx, deps);
      if (kind === 'complete' && (await completeByToken(ctx, deps))) return;
      const caller = await requireJob(ctx, deps, { kind: 'queue', queue: ctx.params.queue! });
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
      if (kind === 'errored' && job) await announceRequeue(deps, job.id);
      sendEmpty(ctx.res, 204);
      // The job's followers send their last output and `end` now, not at their next timer.
      logWritten(deps, fence.jobId);
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
