/**
 * How a request reaches its route: node:http's (`handle`: the URL, the router, 404 and 405) and
 * the heartbeat lane's (`answerLane`: a heartbeat already read, lane/lane.ts); both then go the same
 * way, with a request id, the request metrics, the memory guard, the route's handler and the
 * failure envelope.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../lib/logger.js';
import { CAPABILITIES_HEADER, SERVER_VERSION_HEADER } from '../protocol/capabilities.js';
import { executorVersion } from '../protocol/version.js';
import type { QuickHeartbeat } from './executor-api/heartbeat.js';
import { CAPABILITIES_VALUE } from './executor-api/routes.js';
import { answerFailure, type FailureForms } from './failure.js';
import {
  type BodyTimeouts,
  discardBody,
  type Handler,
  type RouteContext,
  type Router,
  sendJson,
  sendText,
} from './http.js';
import type { LaneAnswer } from './lane/lane.js';
import { MEMORY_RETRY_AFTER_S, type MemoryGuard } from './memory-guard.js';
import type { HttpMetrics } from './metrics.js';
import { sendError } from './user-api/wrap.js';

/** Routes outside both APIs (dashboard assets, /healthz, /metrics) answer failures as text. */
const PLAIN_FAILURES: FailureForms = {
  unavailableLog: 'request failed: store unavailable',
  failedLog: 'request failed',
  abortedLog: 'request body aborted by the client',
  unavailable: (ctx, e) => sendText(ctx.res, 503, `${e.message}\n`, { 'retry-after': '1' }),
  internal: (ctx) => sendText(ctx.res, 500, `internal error (request id ${ctx.requestId})`),
  afterHeaders: 'destroy',
};

/**
 * Routes that start new work, refused with 503 while the memory guard is over its limit (the
 * follow of a job's log is refused in its handler, where `follow=1` is known). Heartbeats, marks
 * and log writes of running jobs are not: they finish admitted work, which frees memory, and an
 * executor refused them would fail its job.
 */
const GUARDED_ROUTES: ReadonlySet<string> = new Set([
  'POST /api/v1/jobs',
  'POST /api/v1/jobs/:id/retry',
  'POST /.executors/queue/dequeue',
  'POST /.executors/queue/:queue/dequeue',
]);

/** The route `router` gives a POST to `path`; one that is not there is a bug of this file. */
function foundRoute(router: Router, path: string): { name: string; handler: Handler } {
  const m = router.match('POST', path);
  if (m.kind !== 'found') throw new Error(`no POST route for ${path}`);
  return m;
}

/** 503 (the executors' form or the user API's) with Retry-After while the memory guard refuses. */
function refuseOverMemory(ctx: RouteContext, executorRoute: boolean, refusal: string): void {
  ctx.req.resume();
  const retryAfter = { 'retry-after': String(MEMORY_RETRY_AFTER_S) };
  if (executorRoute) sendJson(ctx.res, 503, { error: refusal }, retryAfter);
  else {
    ctx.res.setHeader('retry-after', retryAfter['retry-after']);
    sendError(ctx, 'OVERLOADED', refusal);
  }
}

/** A heartbeat's answer when it reported no jobs, as sendJson writes it. */
const NO_IDS_TEXT = `${JSON.stringify({ knownIds: [], cancelIds: [] })}\n`;

export interface HandlerDeps {
  router: Router;
  /** The heartbeat route's answer to an idle executor's heartbeat, without its promises. */
  quickHeartbeat: QuickHeartbeat;
  logger: Logger;
  metrics: HttpMetrics;
  memory: MemoryGuard;
  /** Ends when the server closes (long-polls and log follows stop waiting). */
  closing: AbortSignal;
  timeouts: BodyTimeouts;
}

export function createHandlers(deps: HandlerDeps): {
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  answerLane: LaneAnswer;
} {
  const { router, logger, metrics, memory, timeouts, quickHeartbeat } = deps;
  const serverVersion = executorVersion();
  // Request ids need to be unique, not secret: a random prefix per server and a counter, instead
  // of a call into the random generator per request.
  const requestIdPrefix = randomBytes(4).toString('hex');
  let requestCount = 0;
  const nextRequestId = () => {
    requestCount = (requestCount + 1) % 0x100000000;
    return requestIdPrefix + requestCount.toString(16).padStart(8, '0');
  };
  /** A matched request, from the memory guard on: node:http's and the heartbeat lane's. */
  const dispatch = (
    ctx: RouteContext,
    method: string,
    name: string,
    handler: Handler,
    executorRoute: boolean,
  ) => {
    const refusal = GUARDED_ROUTES.has(`${method} ${name}`) ? memory.refusal() : null;
    if (refusal) {
      refuseOverMemory(ctx, executorRoute, refusal);
      return;
    }
    Promise.resolve()
      .then(() => handler(ctx))
      .catch((e) => answerFailure(ctx, logger, PLAIN_FAILURES, e))
      .finally(() => {
        // A handler that answered without reading the body (a refused request) leaves it unread:
        // it is drained without being kept, so the connection can be reused, and cut if the
        // sender goes silent or takes too long.
        discardBody(ctx.req, timeouts);
      });
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const arrived = performance.now();
    const requestId = nextRequestId();
    res.setHeader('x-request-id', requestId);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://server');
    } catch {
      sendText(res, 400, 'bad request');
      return;
    }
    const method = req.method ?? 'GET';
    const match = router.match(method, url.pathname);
    const executorRoute = url.pathname.startsWith('/.executors/');
    const routeName = match.kind === 'none' ? 'unmatched' : match.name;
    res.on('finish', () =>
      metrics.observe(routeName, method, res.statusCode, (performance.now() - arrived) / 1000),
    );
    if (executorRoute) res.setHeader(CAPABILITIES_HEADER, CAPABILITIES_VALUE);
    const ctx: RouteContext = { req, res, url, params: {}, requestId, closing: deps.closing };
    if (match.kind === 'none') {
      discardBody(req, timeouts);
      if (url.pathname.startsWith('/api/')) sendError(ctx, 'NOT_FOUND', 'No such route.');
      else sendText(res, 404, '404 page not found\n');
      return;
    }
    if (match.kind === 'method') {
      discardBody(req, timeouts);
      const allow = match.allow.join(', ');
      if (url.pathname.startsWith('/api/')) {
        res.setHeader('allow', allow);
        sendError(ctx, 'METHOD_NOT_ALLOWED', `Use ${allow} on this route.`);
      } else sendText(res, 405, '405 method not allowed\n', { allow });
      return;
    }
    ctx.params = match.params;
    dispatch(ctx, method, match.name, match.handler, executorRoute);
  };

  // The heartbeat lane's requests (lane/lane.ts) go to the routes node:http's would match.
  const laneRoutes = {
    heartbeat: {
      multi: foundRoute(router, '/.executors/queue/heartbeat'),
      single: foundRoute(router, '/.executors/queue/q/heartbeat'),
    },
    dequeue: {
      multi: foundRoute(router, '/.executors/queue/dequeue'),
      single: foundRoute(router, '/.executors/queue/q/dequeue'),
    },
  };
  // The quick case's header lines after its request id: the ones, in the order, that the route's
  // answer has (here the request id and capabilities, envelope.ts the version, sendJson the rest).
  const quickLines =
    `${CAPABILITIES_HEADER}: ${CAPABILITIES_VALUE}\r\n${SERVER_VERSION_HEADER}: ${serverVersion}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(NO_IDS_TEXT)}\r\n`;
  const answerLane: LaneAnswer = (head, laneReq, laneRes) => {
    const arrived = performance.now();
    const { queue } = head;
    const route = queue === null ? laneRoutes[head.route].multi : laneRoutes[head.route].single;
    const req = laneReq as unknown as IncomingMessage;
    const res = laneRes as unknown as ServerResponse;
    const requestId = nextRequestId();
    if (
      head.route === 'heartbeat' &&
      queue !== null &&
      laneReq.bodyError === undefined &&
      quickHeartbeat(queue, req, laneReq.wholeBody)
    ) {
      laneRes.endWith(200, `x-request-id: ${requestId}\r\n${quickLines}`, NO_IDS_TEXT);
      metrics.observe(route.name, 'POST', 200, (performance.now() - arrived) / 1000);
      return;
    }
    res.setHeader('x-request-id', requestId);
    res.on('finish', () =>
      metrics.observe(route.name, 'POST', res.statusCode, (performance.now() - arrived) / 1000),
    );
    res.setHeader(CAPABILITIES_HEADER, CAPABILITIES_VALUE);
    let url: URL | undefined;
    const ctx: RouteContext = {
      req,
      res,
      // Read only when a failure is logged.
      get url() {
        url ??= new URL(laneReq.url, 'http://server');
        return url;
      },
      params: queue === null ? {} : { queue },
      requestId,
      closing: deps.closing,
    };
    dispatch(ctx, 'POST', route.name, route.handler, true);
  };

  return { handle, answerLane };
}
