/**
 * The HTTP core shared by the queue, files and auth-test clients (Sourcegraph
 * `apiclient/baseclient.go`): URL = base path joined with the client's prefix and the endpoint
 * (posix `path.join`, which cleans duplicate and trailing slashes), `Content-Type: application/json`
 * on every request, and two auth schemes:
 *
 * - general requests: `Authorization: token-executor <password>`;
 * - job requests: `Authorization: Bearer <job.token>` (or token-executor when the job has no token)
 *   plus `X-Sourcegraph-Job-ID` and `X-Sourcegraph-Executor-Name`.
 *
 * 200 and 204 are success; any other status becomes UnexpectedStatusError("unexpected status code N")
 * after the retry table (retry.ts) has had its say.
 */
import path from 'node:path';
import type { HttpRetryConfig } from '../../config/executor.js';
import type { Logger } from '../../lib/logger.js';
import { CertificateError, certificateErrorCode } from '../../lib/tls-trust.js';
import { backoffDelayMs, DEFAULT_HTTP_RETRY, decideForStatus, shouldRetryError } from './retry.js';

export class UnexpectedStatusError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly headers?: Headers,
  ) {
    super(`unexpected status code ${status}`);
    this.name = 'UnexpectedStatusError';
  }
}

export interface JobAuth {
  id: number;
  token: string;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

export interface RequestOptions {
  method: 'GET' | 'POST' | 'HEAD';
  /** Path below the client's prefix, e.g. `test_queue/dequeue`. */
  endpoint: string;
  /** JSON-encoded as given; omitted when undefined (fetch sends no body on GET/HEAD). */
  body?: unknown;
  /** A POST body already encoded (JSON unless `headers` name another content type), sent as is. */
  encodedBody?: Buffer;
  /** The URL's query string. */
  query?: Record<string, string>;
  /** Use job auth for this job. */
  job?: JobAuth;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Statuses returned to the caller rather than thrown (besides 200 and 204). */
  passStatuses?: readonly number[];
  /**
   * Timeout of one attempt when the retry config sets none (SRC_HTTP_CLI_INTERNAL_TIMEOUT = 0): a
   * connection that was cut without a reset (partition, peer frozen) must not hold a call forever.
   */
  attemptTimeoutMs?: number;
  /**
   * Time budget of the whole call, retries included: no attempt or backoff starts past it, and the
   * last attempt is cut at it (the call then fails with the last error, or a TimeoutError).
   */
  budgetMs?: number;
}

/** The answer of a `Transport`: what the clients read of a fetch Response. */
export interface TransportResponse {
  status: number;
  headers: Headers;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * What the clients use of fetch: the global fetch fits, and so does the executor's own pool for
 * ping, heartbeats and dequeues (control-transport.ts).
 */
export type Transport = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string | Buffer; signal?: AbortSignal },
) => Promise<TransportResponse>;

export interface BaseClientOptions {
  baseUrl: string;
  pathPrefix: string;
  password: string;
  executorName: string;
  retry?: HttpRetryConfig;
  fetch?: Transport;
  logger?: Logger;
  /** Injected for tests: waits between attempts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

export interface BaseClient {
  readonly executorName: string;
  url(endpoint: string): string;
  request(opts: RequestOptions): Promise<HttpResponse>;
}

const sleepAbortable = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Throws like Go's url.Parse when the base URL has no scheme (`parse ":foo": missing protocol scheme`). */
export function parseBaseUrl(text: string): URL {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(text) || text.startsWith(':')) {
    throw new Error(`parse ${JSON.stringify(text)}: missing protocol scheme`);
  }
  return new URL(text);
}

export function createBaseClient(opts: BaseClientOptions): BaseClient {
  const base = parseBaseUrl(opts.baseUrl);
  const retry = opts.retry ?? DEFAULT_HTTP_RETRY;
  const doFetch: Transport = opts.fetch ?? fetch;
  const sleep = opts.sleep ?? sleepAbortable;

  const url = (endpoint: string, query?: Record<string, string>) => {
    const u = new URL(base.href);
    u.pathname = path.posix.join(base.pathname || '/', opts.pathPrefix, endpoint);
    u.search = query ? new URLSearchParams(query).toString() : '';
    u.hash = '';
    return u.href;
  };

  async function request(r: RequestOptions): Promise<HttpResponse> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...r.headers };
    if (r.job) {
      headers.authorization = r.job.token ? `Bearer ${r.job.token}` : `token-executor ${opts.password}`;
      headers['x-sourcegraph-job-id'] = String(r.job.id);
      headers['x-sourcegraph-executor-name'] = opts.executorName;
    } else {
      headers.authorization = `token-executor ${opts.password}`;
    }
    const body =
      r.method !== 'POST'
        ? undefined
        : (r.encodedBody ?? (r.body === undefined ? undefined : JSON.stringify(r.body)));
    const target = url(r.endpoint, r.query);
    const deadline = r.budgetMs !== undefined ? Date.now() + r.budgetMs : Number.POSITIVE_INFINITY;
    const left = () => deadline - Date.now();
    /** Whether waiting `ms` and trying again still fits the budget. */
    const fits = (ms: number) => left() - ms > 0;
    for (let attempt = 1; ; attempt++) {
      const perAttempt = retry.timeoutMs > 0 ? retry.timeoutMs : (r.attemptTimeoutMs ?? 0);
      const timeoutMs = Math.min(perAttempt > 0 ? perAttempt : Number.POSITIVE_INFINITY, left());
      // One controller and one timer per attempt, cleared when it ends: AbortSignal.timeout plus
      // AbortSignal.any made two signals and a GC-tracked timer per request, a measurable part of
      // a dequeue + mark cycle.
      const attemptAbort = Number.isFinite(timeoutMs) || r.signal ? new AbortController() : undefined;
      let timedOutNow = false;
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(
            () => {
              timedOutNow = true;
              attemptAbort!.abort(
                new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
              );
            },
            Math.max(1, timeoutMs),
          )
        : undefined;
      const onCallerAbort = () => attemptAbort!.abort(r.signal!.reason);
      if (r.signal?.aborted) onCallerAbort();
      else r.signal?.addEventListener('abort', onCallerAbort, { once: true });
      let res: TransportResponse;
      let buf: Buffer;
      try {
        res = await doFetch(target, { method: r.method, headers, body, signal: attemptAbort?.signal });
        // The caller's abort cuts the wait for an answer, not the reading of one that has begun: a
        // dequeue answered while the executor starts draining carries a job the server has already
        // claimed, and dropping it would leave that job to the resetter. The attempt timeout still
        // bounds the read.
        r.signal?.removeEventListener('abort', onCallerAbort);
        buf = Buffer.from(await res.arrayBuffer());
      } catch (e) {
        if (r.signal?.aborted) throw r.signal.reason ?? e;
        // An attempt cut by attemptTimeoutMs is retried like any transport error (within the
        // budget); one cut by SRC_HTTP_CLI_INTERNAL_TIMEOUT is not, as before.
        const timedOut = timedOutNow && retry.timeoutMs <= 0;
        const delay = backoffDelayMs(attempt, retry, opts.random);
        const certificate = certificateErrorCode(e);
        if (certificate) throw new CertificateError(target, certificate, e);
        if (attempt >= retry.maxAttempts || (!timedOut && !shouldRetryError(e, attempt)) || !fits(delay))
          throw e;
        opts.logger?.debug('http request failed; retrying', { url: target, attempt, error: e });
        await sleep(delay, r.signal);
        continue;
      } finally {
        clearTimeout(timer);
        r.signal?.removeEventListener('abort', onCallerAbort);
      }
      if (res.status === 200 || res.status === 204 || r.passStatuses?.includes(res.status)) {
        return { status: res.status, headers: res.headers, body: buf };
      }
      const d = decideForStatus(res.status, res.headers.get('retry-after'), attempt, retry, opts.random);
      if (!d.retry) {
        const text = buf.toString('utf8').slice(0, 2000);
        opts.logger?.debug('unexpected status', { url: target, status: res.status, body: text });
        throw new UnexpectedStatusError(res.status, text, res.headers);
      }
      if (!fits(d.delayMs)) throw new UnexpectedStatusError(res.status, buf.toString('utf8').slice(0, 2000));
      opts.logger?.debug('http request got a retryable status; retrying', {
        url: target,
        status: res.status,
        attempt,
      });
      await sleep(d.delayMs, r.signal);
    }
  }

  return { executorName: opts.executorName, url, request };
}
