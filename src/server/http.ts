/**
 * Small HTTP helpers shared by the route files: a tiny router, body reading with a size cap, and
 * response writers. Plain node:http, no framework.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`);
  }
}

/** Aborted by the client while the body was being read. */
export class BodyAbortedError extends Error {
  constructor() {
    super('request body aborted');
  }
}

/** A body that stopped arriving: silent for `idleMs`, or not complete within `deadlineMs`. */
export class BodyTimeoutError extends Error {
  constructor(
    readonly kind: 'idle' | 'deadline',
    readonly ms: number,
  ) {
    super(
      kind === 'idle'
        ? `no byte of the request body arrived for ${ms} ms`
        : `the request body did not arrive within ${ms} ms`,
    );
  }
}

/** How long a request body may take: in all, and between two chunks. */
export interface BodyTimeouts {
  deadlineMs: number;
  idleMs: number;
}

/** The server's limits on receiving a body (EXECUTOR_SERVER_REQUEST_TIMEOUT, ..._BODY_IDLE_TIMEOUT). */
export const bodyTimeouts = (c: { requestTimeoutMs: number; bodyIdleTimeoutMs: number }): BodyTimeouts => ({
  deadlineMs: c.requestTimeoutMs,
  idleMs: c.bodyIdleTimeoutMs,
});

/**
 * Calls `expire` when `req`'s body goes silent for `idleMs` or is not complete within
 * `deadlineMs`. One timer per body, re-armed lazily (a chunk only records its time). The caller
 * must consume the body (a 'data' listener or resume): an unread body never ends.
 */
export function watchBody(
  req: IncomingMessage,
  t: BodyTimeouts,
  expire: (e: BodyTimeoutError) => void,
): () => void {
  const start = Date.now();
  let last = start;
  let timer: NodeJS.Timeout | undefined;
  const onData = () => {
    last = Date.now();
  };
  const stop = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    req.off('data', onData);
    req.off('end', stop);
    req.off('close', stop);
  };
  const arm = () => {
    const now = Date.now();
    const idleLeft = last + t.idleMs - now;
    const deadlineLeft = start + t.deadlineMs - now;
    if (deadlineLeft <= 0 || idleLeft <= 0) {
      stop();
      expire(
        deadlineLeft <= 0
          ? new BodyTimeoutError('deadline', t.deadlineMs)
          : new BodyTimeoutError('idle', t.idleMs),
      );
      return;
    }
    timer = setTimeout(arm, Math.min(idleLeft, deadlineLeft));
    timer.unref();
  };
  req.on('data', onData);
  req.once('end', stop);
  req.once('close', stop);
  arm();
  return stop;
}

/**
 * Reads the whole body, refusing more than `limit` bytes. A declared Content-Length over the limit
 * is refused before anything is read. With `timeouts`, a body that goes silent or takes too long
 * is refused with BodyTimeoutError (the caller answers 408 and closes the connection).
 */
export function readBody(req: IncomingMessage, limit: number, timeouts?: BodyTimeouts): Promise<Buffer> {
  // The heartbeat lane's requests (lane/lane.ts) come with their body read.
  const lane = req as Partial<{ wholeBody: Buffer; bodyError: Error }>;
  if (lane.bodyError !== undefined) return Promise.reject(lane.bodyError);
  if (lane.wholeBody !== undefined)
    return lane.wholeBody.length > limit
      ? Promise.reject(new BodyTooLargeError(limit))
      : Promise.resolve(lane.wholeBody);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    if (timeouts) discardBody(req, timeouts);
    else req.resume();
    return Promise.reject(new BodyTooLargeError(limit));
  }
  const whole = Number.isFinite(declared) ? bodyAlreadyHere(req, declared) : undefined;
  if (whole !== undefined) return Promise.resolve(whole);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let unwatch = () => {};
    const finish = (err: Error | null, body?: Buffer) => {
      if (done) return;
      done = true;
      unwatch();
      if (err) reject(err);
      else resolve(body!);
    };
    if (timeouts) unwatch = watchBody(req, timeouts, (e) => finish(e));
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        if (timeouts) discardBody(req, timeouts);
        else req.resume();
        finish(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => finish(null, Buffer.concat(chunks)));
    req.on('aborted', () => finish(new BodyAbortedError()));
    req.on('error', (e) => finish(e));
  });
}

/** Requests whose declared body was read whole by `bodyAlreadyHere`: nothing is left to discard. */
const readWhole = new WeakSet<IncomingMessage>();

/**
 * The body of a request whose declared length is all here before its handler ran (a heartbeat's
 * few hundred bytes come in the packet of its head): read at once, with no timer or listeners.
 * Undefined when it is not all here, or is already being read.
 */
function bodyAlreadyHere(req: IncomingMessage, declared: number): Buffer | undefined {
  if (req.readableFlowing !== null || req.readableEnded || req.readableLength !== declared) return undefined;
  const chunks: Buffer[] = [];
  for (let chunk: Buffer | null = req.read(); chunk !== null; chunk = req.read()) chunks.push(chunk);
  readWhole.add(req);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** Requests whose body is being discarded (one watch each, however many paths discard it). */
const discarding = new WeakSet<IncomingMessage>();

/**
 * Throws away the rest of a body nobody will read (a refused or answered request), holding none
 * of it; a sender that goes silent or takes too long has its connection cut, so a refused client
 * cannot keep a connection by trickling bytes.
 */
export function discardBody(req: IncomingMessage, timeouts: BodyTimeouts): void {
  if (req.complete || req.destroyed || discarding.has(req) || readWhole.has(req)) return;
  discarding.add(req);
  watchBody(req, timeouts, () => req.socket?.destroy());
  req.resume();
}

/**
 * Answers a body that timed out: 408 with `text`, and the connection closed once it is written
 * (the rest of the body, if it ever comes, is not waited for).
 */
export function sendBodyTimeout(res: ServerResponse, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendText(res, 408, text, { connection: 'close' });
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, {
    ...headers,
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  // A string, not a Buffer: node:http sends the head and a string body as one write.
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { ...headers, 'content-length': '0' });
  res.end();
}

export type Params = Record<string, string>;

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Params;
  requestId: string;
  /** Ends when the server closes (long-polls and log follows stop waiting). */
  closing: AbortSignal;
}

export type Handler = (ctx: RouteContext) => Promise<void> | void;

interface Route {
  method: string;
  name: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

export type MatchResult =
  | { kind: 'found'; name: string; handler: Handler; params: Params }
  | { kind: 'method'; name: string; allow: string[] }
  | { kind: 'none' };

/**
 * Patterns are paths with `:name` segments and an optional trailing `*name` that captures the
 * rest (slashes included). Parameters are percent-decoded; a segment that decodes to a slash or
 * fails to decode does not match.
 */
export function createRouter() {
  const routes: Route[] = [];
  const add = (methods: string | string[], path: string, handler: Handler, name = path) => {
    const keys: string[] = [];
    const source = path
      .split('/')
      .map((seg) => {
        if (seg.startsWith(':')) {
          keys.push(seg.slice(1));
          return '([^/]+)';
        }
        if (seg.startsWith('*')) {
          keys.push(seg.slice(1));
          return '(.+)';
        }
        return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('/');
    const pattern = new RegExp(`^${source}$`);
    for (const method of Array.isArray(methods) ? methods : [methods]) {
      routes.push({ method, name, pattern, keys, handler });
    }
  };
  const match = (method: string, pathname: string): MatchResult => {
    const allow: string[] = [];
    let name = '';
    for (const r of routes) {
      const m = r.pattern.exec(pathname);
      if (!m) continue;
      const params: Params = {};
      let ok = true;
      r.keys.forEach((k, i) => {
        try {
          params[k] = decodeURIComponent(m[i + 1]!);
        } catch {
          ok = false;
        }
      });
      if (!ok) continue;
      if (r.method === method) {
        return { kind: 'found', name: r.name, handler: r.handler, params };
      }
      allow.push(r.method);
      name = r.name;
    }
    return allow.length > 0 ? { kind: 'method', name, allow: [...new Set(allow)] } : { kind: 'none' };
  };
  return { add, match };
}

export type Router = ReturnType<typeof createRouter>;
