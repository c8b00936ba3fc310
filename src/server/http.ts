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

/**
 * Reads the whole body, refusing more than `limit` bytes. A declared Content-Length over the limit
 * is refused before anything is read.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new BodyTooLargeError(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null, body?: Buffer) => {
      if (done) return;
      done = true;
      if (err) reject(err);
      else resolve(body!);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        req.resume();
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
  const body = Buffer.from(text, 'utf8');
  res.writeHead(status, {
    ...headers,
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': String(body.length),
  });
  res.end(body);
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
  const body = Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': String(body.length),
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
