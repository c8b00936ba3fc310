/**
 * The checks every /.executors handler starts with, answering the refusal itself (and throwing
 * Responded) when one fails: the shared executor token on queue routes, the job token (or the shared
 * token with job headers) on job routes, and the fence a job write is held to.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import type { AttemptFence, JobRecord } from '../../store/types.js';
import { peerOf } from '../auth-limiter.js';
import type { RouteDeps } from '../deps.js';
import { type RouteContext, sendEmpty, sendText } from '../http.js';
import {
  type AuthFailure,
  checkExecutorToken,
  checkJobRequest,
  type JobCaller,
  type JobScope,
} from './auth.js';
import { Responded } from './envelope.js';

/** Answers an authentication failure with upstream's status and text (no body when the text is empty). */
function refuse(ctx: RouteContext, failure: AuthFailure): never {
  if (failure.text === '') sendEmpty(ctx.res, failure.status);
  else sendText(ctx.res, failure.status, `${failure.text}\n`);
  throw new Responded();
}

/**
 * 429 with Retry-After, before any token is looked at, while the peer is over the failure limit
 * (auth-limiter.ts). The text is ours: upstream has no such refusal, and executors retry 429.
 */
export function refuseIfLimited(ctx: RouteContext, deps: RouteDeps): void {
  const wait = deps.authLimiter.blocked({ peer: peerOf(ctx.req) });
  if (wait === null) return;
  deps.authRefusals.count('executor', 'rate_limited');
  sendText(ctx.res, 429, `too many failed authentication attempts from this address; retry in ${wait}s\n`, {
    'retry-after': String(wait),
  });
  throw new Responded();
}

/**
 * Counts a refusal; a wrong shared executor token (401 or 403 on the token-executor scheme) also
 * counts against the peer. Job tokens do not: they are 160 random bits, which no rate of guessing
 * reaches, while an honest executor still sends the token of an attempt that was just reset or
 * canceled, and must not lock its own host out by doing so.
 */
function recordFailure(ctx: RouteContext, deps: RouteDeps, failure: AuthFailure): void {
  if (failure.status !== 401 && failure.status !== 403) return;
  deps.authRefusals.count('executor', 'unauthenticated');
  const scheme = (ctx.req.headers.authorization ?? '').split(' ')[0];
  if (scheme !== 'Bearer') deps.authLimiter.failed({ peer: peerOf(ctx.req) });
}

/**
 * The Authorization header last accepted on each connection. An executor sends the same one with
 * every heartbeat on a kept-alive connection: a request that repeats it byte for byte (compared in
 * constant time; only a length that differs takes the full check) is not digested again. A proxy
 * that carries several clients on one connection learns nothing from it either: a header is
 * accepted here only if it is the one that was accepted before.
 */
const acceptedOn = new WeakMap<Socket, { header: Buffer; expected: string }>();

function acceptedBefore(req: RouteContext['req'], expected: string): boolean {
  const header = req.headers.authorization;
  const known = acceptedOn.get(req.socket);
  if (header === undefined || known === undefined || known.expected !== expected) return false;
  if (Buffer.byteLength(header) !== known.header.length) return false;
  return timingSafeEqual(Buffer.from(header), known.header);
}

/**
 * True when requireExecutor would let `req` through at once: its peer is not over the failure
 * limit and it repeats the header already accepted on its connection.
 */
export function executorAcceptedAgain(req: RouteContext['req'], deps: RouteDeps): boolean {
  const expected = deps.config.executorsAccessToken;
  return (
    expected !== '' &&
    deps.authLimiter.blocked({ peer: peerOf(req) }) === null &&
    acceptedBefore(req, expected)
  );
}

export function requireExecutor(ctx: RouteContext, deps: RouteDeps): void {
  refuseIfLimited(ctx, deps);
  const expected = deps.config.executorsAccessToken;
  if (expected !== '' && acceptedBefore(ctx.req, expected)) return;
  const failure = checkExecutorToken(ctx.req, expected);
  if (failure) {
    recordFailure(ctx, deps, failure);
    refuse(ctx, failure);
  }
  const header = ctx.req.headers.authorization;
  if (header !== undefined) acceptedOn.set(ctx.req.socket, { header: Buffer.from(header), expected });
}

/** The caller of a job route for `scope` (a queue's job writes, a repository, job files). */
export async function requireJob(ctx: RouteContext, deps: RouteDeps, scope: JobScope): Promise<JobCaller> {
  refuseIfLimited(ctx, deps);
  const r = await checkJobRequest(ctx.req, scope, {
    store: deps.store,
    executorsAccessToken: deps.config.executorsAccessToken,
  });
  if (!r.ok) {
    recordFailure(ctx, deps, r.failure);
    refuse(ctx, r.failure);
  }
  return r.caller;
}

/**
 * The fence of a job write. On the Bearer path the token names the attempt and the body must agree
 * with the token and headers (403 otherwise). On the shared-token path upstream trusts the body; we
 * fence on the job's current attempt and still refuse a body that contradicts the headers.
 */
export async function fenceFor(
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
