/**
 * `POST /.executors/queue/dequeue` (multi-queue, weighted pick among ready queues) and
 * `POST /.executors/queue/:queue/dequeue`: claim a job for the executor, with a fresh job token,
 * answered as a v1 or v2 payload by the executor's version; 204 when nothing is ready. With the
 * long-poll extension the request waits for an enqueue, up to the time the executor asked for.
 */
import type { z } from 'zod';
import { errorMessage } from '../../lib/errors.js';
import { LONG_POLL_HEADER, MAX_LONG_POLL_MS } from '../../protocol/capabilities.js';
import { dequeueRequestSchema } from '../../protocol/http.js';
import { encodeJob } from '../../protocol/job.js';
import { supportsV2Payload } from '../../protocol/version.js';
import type { RouteDeps } from '../deps.js';
import { type Router, sendEmpty, sendJson } from '../http.js';
import { newJobToken } from './auth.js';
import { buildJob } from './build-job.js';
import { createDecodeCache } from './decode-cache.js';
import { decode, HandlerError, wrapExecutorHandler as wrap } from './envelope.js';
import { requireExecutor } from './guards.js';

/** The reason of a wait whose client went away: one object, not a DOMException per abort. */
const CLIENT_GONE = new Error('the client went away');

export function pickWeighted(
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

export function registerDequeueRoutes(router: Router, deps: RouteDeps): void {
  const { store, config, clock, logger, notifier } = deps;
  // An idle executor sends the same body at every long-poll: decoded once (the handler reads it
  // and changes nothing of it).
  const decoded = createDecodeCache<z.output<typeof dequeueRequestSchema>>();

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
      return { payload: encodeJob(job, v2 ? 2 : 1), queue };
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
      const body = await decode(ctx, deps, dequeueRequestSchema, undefined, decoded);
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
      // an abort signal and a listener per request are a measurable part of a dequeue.
      let gone: AbortController | undefined;
      const clientGone = () => gone?.signal.aborted === true || ctx.req.socket.destroyed;
      // The queue whose event woke this request: its job is this request's to claim or pass on.
      let wokenBy: string | null = null;
      for (;;) {
        // Nobody would receive a job claimed now; the event that woke it goes to the next waiter.
        if (clientGone()) {
          if (wokenBy !== null) notifier.notify(wokenBy);
          return;
        }
        // A parked poll costs the store nothing: while every queue asked for was last seen empty
        // and no event has touched it since, there is nothing to claim.
        const skip = holdMs > 0 && wokenBy === null && notifier.knownEmpty(queues);
        const epoch = notifier.epoch(queues);
        const claimed = skip ? null : await tryDequeue(queues, multi, body.executorName, v2);
        if (!claimed && !skip) notifier.markEmpty(queues, epoch);
        // A multi-queue pick may have taken another queue's job: the waking one is still there.
        if (claimed && wokenBy !== null && claimed.queue !== wokenBy) notifier.notify(wokenBy);
        wokenBy = null;
        const payload = claimed?.payload;
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
        if (!gone) {
          // The client going away ends the wait without claiming a job nobody would receive.
          // Only when it went away: an answered wait closes too, and an abort without a reason
          // builds a DOMException (a few percent of an idle fleet's server CPU, at every re-park).
          const controller = new AbortController();
          ctx.res.once('close', () => {
            if (!ctx.res.writableFinished) controller.abort(CLIENT_GONE);
          });
          gone = controller;
        }
        // Woken by an event (an enqueue here or on another replica, a job becoming due, the
        // notifier's safety re-check), not by a timer of its own. The server closing releases
        // every waiter (notifier.close), so the wait needs no signal of ctx.closing: a signal
        // combined with it (AbortSignal.any) was one more signal per parked request, held by
        // the server's own until collected.
        wokenBy = await notifier.wait(queues, remaining, gone.signal);
        if (gone.signal.aborted) {
          if (wokenBy !== null) notifier.notify(wokenBy);
          return;
        }
        if (wokenBy === null) break;
      }
      sendEmpty(ctx.res, 204);
    });

  router.add('POST', '/.executors/queue/dequeue', dequeue(true), '/.executors/queue/dequeue');
  router.add('POST', '/.executors/queue/:queue/dequeue', dequeue(false), '/.executors/queue/:queue/dequeue');
}
