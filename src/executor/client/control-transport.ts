/**
 * The executor's connections for ping, heartbeats and dequeues: a keep-alive pool of their own
 * (node:http or node:https), apart from the global fetch's that carries a job's logs, marks and
 * files.
 *
 * Why apart: the server answers heartbeats and dequeues without node:http (its heartbeat lane) on
 * connections that carry nothing else, and a connection that carried a log write is node:http's
 * for the rest of its life. With one pool, an executor's heartbeats rode whichever connection its
 * last job's logs had used, and were answered the dearer way from its first job on
 * (docs/protocol.md, "The heartbeat lane").
 *
 * It does what the clients use of fetch (base-client.ts `Transport`): method, headers, a string or
 * Buffer body, an abort signal; the answer's status, headers and body. Failures look like fetch's:
 * a refused or reset connection rejects with `TypeError('fetch failed')` and the socket's error
 * (with its `code`) as the cause, so retries, certificate advice and logs read them as before; an
 * abort rejects with the signal's reason, also while the body is read. Keep-alive follows the
 * server's `Keep-Alive: timeout=N` hint (a connection is let go a second before the server would
 * close it), as fetch does; without a hint it is kept for up to 90 s, as Go's default HTTP transport
 * keeps one.
 */
import http from 'node:http';
import https from 'node:https';
import type { Transport, TransportResponse } from './base-client.js';

/**
 * How long an idle connection is kept when the server sends no shorter keep-alive hint: Go's
 * `http.DefaultTransport` keeps one as long; well above the 5 s between heartbeats.
 */
export const CONTROL_IDLE_MAX_MS = 90_000;

export interface ControlTransport {
  readonly fetch: Transport;
  /** Closes its connections (the executor calls it once stopped); a later request opens new ones. */
  close(): void;
}

export function createControlTransport(): ControlTransport {
  const options = { keepAlive: true, timeout: CONTROL_IDLE_MAX_MS };
  const agents = { 'http:': new http.Agent(options), 'https:': new https.Agent(options) };

  const transportFetch: Transport = (url, init) =>
    new Promise<TransportResponse>((resolve, reject) => {
      const target = new URL(url);
      const agent =
        target.protocol === 'http:' || target.protocol === 'https:' ? agents[target.protocol] : undefined;
      if (!agent) {
        reject(new TypeError('fetch failed', { cause: new Error(`unknown scheme ${target.protocol}`) }));
        return;
      }
      const signal = init.signal;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const headers: Record<string, string> = { ...init.headers };
      const body = init.body ?? undefined;
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      const send = target.protocol === 'https:' ? https.request : http.request;
      let settled = false;
      let bodyDone: ((buf: Buffer) => void) | undefined;
      let bodyFailed: ((e: unknown) => void) | undefined;
      const bodyRead = new Promise<Buffer>((res, rej) => {
        bodyDone = res;
        bodyFailed = rej;
      });
      // Read by arrayBuffer() when the caller wants it; a failure nobody reads is not unhandled.
      bodyRead.catch(() => {});
      const stop = () => signal?.removeEventListener('abort', onAbort);
      /** Before the answer: the request fails; after it: the body's reading does. */
      const fail = (e: unknown) => {
        stop();
        if (!settled) {
          settled = true;
          reject(e);
        } else bodyFailed!(e);
      };
      const req = send(target, { method: init.method, headers, agent }, (res) => {
        settled = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          stop();
          bodyDone!(Buffer.concat(chunks));
        });
        res.on('error', (e) => fail(new TypeError('terminated', { cause: e })));
        res.on('close', () => {
          if (!res.complete) fail(new TypeError('terminated', { cause: new Error('connection closed') }));
        });
        const answer = new Headers();
        const raw = res.rawHeaders;
        for (let i = 0; i + 1 < raw.length; i += 2) answer.append(raw[i]!, raw[i + 1]!);
        resolve({
          status: res.statusCode ?? 0,
          headers: answer,
          arrayBuffer: async () => {
            const buf = await bodyRead;
            return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
          },
        });
      });
      function onAbort() {
        fail(signal!.reason);
        req.destroy();
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => fail(new TypeError('fetch failed', { cause: e })));
      req.end(body);
    });

  return {
    fetch: transportFetch,
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
