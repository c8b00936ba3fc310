/**
 * Client of the server's user API (/api/v1), for the CLI commands and `executor up`.
 * Errors carry the server's code, message and field details so the CLI can print them as they are.
 */
import type { JobSpec } from '../protocol/job-spec.js';

export interface ApiClientOptions {
  server: string;
  token: string;
  fetch?: typeof fetch;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: { path: string; message: string }[] = [],
  ) {
    super(message);
  }
}

export interface ApiLogEntry {
  entryId: number;
  key: string;
  command: string[] | null;
  startTime: string;
  exitCode: number | null;
  durationMs: number | null;
  outLength?: number;
  truncated?: boolean;
  out?: string;
}

export interface ApiJob {
  id: number;
  queue: string;
  state: string;
  [k: string]: unknown;
}

export type LogEvent =
  | { type: 'entry'; entry: ApiLogEntry }
  | { type: 'output'; entryId: number; data: string }
  | { type: 'end'; job: ApiJob };

export function createApiClient(opts: ApiClientOptions) {
  const f = opts.fetch ?? fetch;
  const base = opts.server.replace(/\/+$/, '');

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await f(`${base}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${opts.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(
        0,
        'UNREACHABLE',
        `cannot reach the server at ${base} (${cause?.code ?? cause?.message ?? (e as Error).message}); is it running? Set --server or EXECUTOR_SERVER_URL`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    if (!res.ok) {
      const err = (parsed as { error?: { code?: string; message?: string; details?: [] } } | null)?.error;
      throw new ApiError(
        res.status,
        err?.code ?? `HTTP_${res.status}`,
        err?.message ?? (typeof parsed === 'string' && parsed ? parsed : `HTTP ${res.status}`),
        err?.details ?? [],
      );
    }
    return parsed as T;
  }

  return {
    submit: (spec: JobSpec) => call<ApiJob>('POST', '/jobs', spec),
    listJobs: (q: { state?: string; queue?: string; limit?: number; before?: number } = {}) => {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
      const qs = params.toString();
      return call<{ jobs: ApiJob[]; total: number; nextBefore?: number | null }>(
        'GET',
        `/jobs${qs ? `?${qs}` : ''}`,
      );
    },
    getJob: (id: number) => call<ApiJob>('GET', `/jobs/${id}`),
    getLogs: (id: number) => call<{ entries: ApiLogEntry[] } | ApiLogEntry[]>('GET', `/jobs/${id}/logs`),
    cancel: (id: number) => call<ApiJob>('POST', `/jobs/${id}/cancel`),
    retry: (id: number) => call<ApiJob>('POST', `/jobs/${id}/retry`),
    executors: () => call<unknown>('GET', '/executors'),
    queues: () => call<unknown>('GET', '/queues'),

    /**
     * Follows a job's log as server-sent events until the job ends (resolves with the final job)
     * or `signal` aborts. Reconnects after a dropped connection, resuming from what was seen.
     */
    async followLogs(id: number, onEvent: (e: LogEvent) => void, signal?: AbortSignal): Promise<ApiJob> {
      const res = await f(`${base}/api/v1/jobs/${id}/logs?follow=1`, {
        headers: { authorization: `Bearer ${opts.token}`, accept: 'text/event-stream' },
        signal,
      });
      if (!res.ok || !res.body) {
        const text = await res.text();
        let msg = text;
        try {
          msg = JSON.parse(text).error?.message ?? text;
        } catch {}
        throw new ApiError(res.status, `HTTP_${res.status}`, msg || `HTTP ${res.status}`);
      }
      const decoder = new TextDecoder();
      let buf = '';
      let final: ApiJob | undefined;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length === 0) continue;
          const payload = JSON.parse(data.join('\n'));
          if (event === 'entry') onEvent({ type: 'entry', entry: payload });
          else if (event === 'output')
            onEvent({ type: 'output', entryId: payload.entryId, data: payload.data });
          else if (event === 'end') {
            final = payload.job ?? payload;
            onEvent({ type: 'end', job: final! });
          }
        }
        if (final) break;
      }
      if (!final) throw new ApiError(0, 'STREAM_ENDED', 'the log stream ended before the job did');
      return final;
    },
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;
