/**
 * Client of the server's user API (/api/v1), for the CLI commands and `executor up`.
 * Errors carry the server's code, message and field details so the CLI can print them as they are.
 */
import { certificateErrorCode, certificateProblemMessage } from '../lib/tls-trust.js';
import type { JobSpec } from '../protocol/job-spec.js';
import {
  type ApiTokenCreatedView,
  type ApiTokenListView,
  type ApiTokenView,
  type ErrorBody,
  type ExecutorListView,
  type JobDetailView,
  type JobListView,
  type JobLogsView,
  type JobView,
  type LogEntryView,
  type NewRepositoryBody,
  type QueueListView,
  type RepositoryListView,
  type RepositoryView,
  readLogStreamEvents,
  type WhoamiView,
} from '../protocol/user-api.js';

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

/** What the CLI's printers need of a log entry (a LogEntryView has it all). */
export type ApiLogEntry = Pick<
  LogEntryView,
  'entryId' | 'key' | 'command' | 'startTime' | 'exitCode' | 'durationMs'
> &
  Partial<Pick<LogEntryView, 'outLength' | 'truncated' | 'out'>>;

/** What the CLI's printers need of a job (a JobView has it all); other fields are read loosely. */
export type ApiJob = Pick<JobView, 'id' | 'queue' | 'state'> & Partial<JobView> & { [k: string]: unknown };

/** The follow's events as `executor logs --follow --json` prints them, one JSON object a line. */
export type LogEvent =
  | { type: 'entry'; entry: LogEntryView }
  | { type: 'output'; entryId: number; data: string }
  | { type: 'end'; job: JobView };

/** `org/app` as a path: each segment encoded, slashes kept. */
const repoPath = (name: string) => name.split('/').map(encodeURIComponent).join('/');

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
      const certificate = certificateErrorCode(e);
      if (certificate)
        throw new ApiError(0, 'UNREACHABLE', certificateProblemMessage(`${base}/`, certificate));
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
      const err = (parsed as Partial<ErrorBody> | null)?.error;
      const message = err?.message ?? (typeof parsed === 'string' && parsed ? parsed : `HTTP ${res.status}`);
      throw new ApiError(
        res.status,
        err?.code ?? `HTTP_${res.status}`,
        // Which server refused the token matters most when several are around (up, a team server).
        res.status === 401 ? `the server at ${base} rejected the API token: ${message}` : message,
        err?.details ?? [],
      );
    }
    return parsed as T;
  }

  return {
    submit: (spec: JobSpec) => call<JobView>('POST', '/jobs', spec),
    listJobs: (q: { state?: string; queue?: string; limit?: number; before?: number } = {}) => {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
      const qs = params.toString();
      return call<JobListView>('GET', `/jobs${qs ? `?${qs}` : ''}`);
    },
    /** The job with all its latest attempt's entries, read page by page. */
    async getJob(id: number): Promise<JobDetailView> {
      const job = await call<JobDetailView>('GET', `/jobs/${id}`);
      for (let after = job.nextEntriesAfter; after !== null; ) {
        const page = await call<JobDetailView>('GET', `/jobs/${id}?entriesAfter=${after}`);
        job.logEntries.push(...page.logEntries);
        after = page.nextEntriesAfter;
      }
      job.nextEntriesAfter = null;
      return job;
    },
    /** The latest attempt's whole log, read page by page (an entry split across pages is joined). */
    async getLogs(id: number): Promise<JobLogsView> {
      const logs = await call<JobLogsView>('GET', `/jobs/${id}/logs`);
      for (let next = logs.next; next !== null; ) {
        const page = await call<JobLogsView>(
          'GET',
          `/jobs/${id}/logs?attempt=${logs.attempt}&entriesAfter=${next.entriesAfter}&outputFrom=${next.outputFrom}`,
        );
        for (const e of page.entries) {
          const last = logs.entries[logs.entries.length - 1];
          if (last && last.entryId === e.entryId) last.out = (last.out ?? '') + (e.out ?? '');
          else logs.entries.push(e);
        }
        next = page.next;
      }
      logs.next = null;
      return logs;
    },
    cancel: (id: number) => call<JobView>('POST', `/jobs/${id}/cancel`),
    retry: (id: number) => call<JobView>('POST', `/jobs/${id}/retry`),
    /** Every executor, or with `limit` a page of them by name after `after`. */
    executors: (q: { limit?: number; after?: string } = {}) => {
      const params = new URLSearchParams();
      if (q.limit !== undefined) params.set('limit', String(q.limit));
      if (q.after !== undefined) params.set('after', q.after);
      const qs = params.toString();
      return call<ExecutorListView>('GET', `/executors${qs ? `?${qs}` : ''}`);
    },
    queues: () => call<QueueListView>('GET', '/queues'),
    whoami: () => call<WhoamiView>('GET', '/whoami'),
    createToken: (t: { name: string; scope: string; expires?: string }) =>
      call<ApiTokenCreatedView>('POST', '/tokens', t),
    listTokens: () => call<ApiTokenListView>('GET', '/tokens'),
    revokeToken: (name: string) => call<ApiTokenView>('DELETE', `/tokens/${encodeURIComponent(name)}`),
    addRepository: (r: NewRepositoryBody) => call<RepositoryView>('POST', '/repositories', r),
    listRepositories: () => call<RepositoryListView>('GET', '/repositories'),
    // A repository name's slashes are part of the path (the route takes the rest of it).
    getRepository: (name: string) => call<RepositoryView>('GET', `/repositories/${repoPath(name)}`),
    syncRepository: (name: string) => call<RepositoryView>('POST', `/repositories/${repoPath(name)}/sync`),
    removeRepository: (name: string) => call<null>('DELETE', `/repositories/${repoPath(name)}`),

    /**
     * Follows a job's log as server-sent events until the job ends (resolves with the final job)
     * or `signal` aborts. A stream that closes before the `end` event rejects with STREAM_ENDED;
     * the caller decides whether to follow again.
     */
    async followLogs(id: number, onEvent: (e: LogEvent) => void, signal?: AbortSignal): Promise<JobView> {
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
      for await (const e of readLogStreamEvents(res.body)) {
        if (e.event === 'entry') onEvent({ type: 'entry', entry: e.data });
        else if (e.event === 'output')
          onEvent({ type: 'output', entryId: e.data.entryId, data: e.data.data });
        else {
          onEvent({ type: 'end', job: e.data });
          return e.data;
        }
      }
      throw new ApiError(0, 'STREAM_ENDED', 'the log stream ended before the job did');
    },
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;
