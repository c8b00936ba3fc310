/**
 * The user API's wire shapes (`/api/v1`): what the server sends, what the CLI and the dashboard
 * read. The server builds these values (server/user-api/job-view.ts); both clients import them.
 *
 * Object types, not interfaces: a type alias is assignable to `Record<string, unknown>`, which
 * loose readers of these values (the CLI's table printers) rely on.
 *
 * The dashboard bundles this module for the browser: it may import types only from modules that
 * touch no Node built-ins, and nothing here may use Node APIs.
 */
import type { ErrorDetail } from '../lib/errors.js';
import type { Telemetry } from './http.js';
import type { JobSpec } from './job-spec.js';

export const JOB_STATES = ['queued', 'processing', 'completed', 'errored', 'failed', 'canceled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** A submitted spec as users see it: secrets by name only, never their values. */
export type PublicSpec = Omit<JobSpec, 'secrets'> & { secrets?: string[] };

/** A job. Times are ISO 8601 strings; `executor` is the hostname of the attempt's executor. */
export type JobView = {
  id: number;
  queue: string;
  state: JobState;
  attempts: number;
  maxAttempts: number;
  numFailures: number;
  numResets: number;
  cancelRequested: boolean;
  failureMessage: string | null;
  priority: number;
  timeoutMs: number;
  repositoryName: string | null;
  commit: string | null;
  executor: string | null;
  createdAt: string;
  queuedAt: string;
  processAfter: string | null;
  startedAt: string | null;
  lastHeartbeatAt: string | null;
  finishedAt: string | null;
  spec: PublicSpec;
};

/**
 * What a user-API token may do, each including the one before: `read` sees jobs, logs, executors and
 * queues; `submit` also submits, cancels and retries; `admin` also manages tokens.
 */
export const TOKEN_SCOPES = ['read', 'submit', 'admin'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** True when a token of scope `has` may use a route that needs `needs`. */
export function scopeAllows(has: TokenScope, needs: TokenScope): boolean {
  return TOKEN_SCOPES.indexOf(has) >= TOKEN_SCOPES.indexOf(needs);
}

/** `GET /whoami`: who the request's credentials are (`bootstrap`, `local`, or a token's name). */
export type WhoamiView = { name: string; scope: TokenScope };

/** A stored API token as `GET /tokens` lists it: never its value, never its hash. */
export type ApiTokenView = {
  name: string;
  scope: TokenScope;
  state: 'active' | 'revoked' | 'expired';
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
};

export type ApiTokenListView = { tokens: ApiTokenView[] };

/** `POST /tokens`: the new token, its value shown this once. */
export type ApiTokenCreatedView = ApiTokenView & { token: string };

/**
 * A mirrored repository (`/api/v1/repositories`). `credential` names where the server reads the
 * secret (environment variable or file names), never a secret. Times are ISO 8601; `sizeBytes` is
 * the mirror's size on disk after its last successful fetch.
 */
export type RepositoryView = {
  name: string;
  url: string;
  credential: {
    username?: string;
    usernameEnv?: string;
    passwordEnv?: string;
    passwordFile?: string;
  } | null;
  source: 'api' | 'file';
  state: 'new' | 'syncing' | 'ready' | 'failed';
  createdAt: string;
  lastSyncAt: string | null;
  lastSyncDurationMs: number | null;
  lastError: string | null;
  sizeBytes: number | null;
  defaultBranch: string | null;
};

export type RepositoryListView = { repositories: RepositoryView[] };

/** `POST /repositories`. */
export type NewRepositoryBody = {
  name: string;
  url: string;
  credential?: { username?: string; usernameEnv?: string; passwordEnv?: string };
};

/**
 * One log entry of an attempt; `out` only where output is asked for (the logs route). A command
 * longer than the server shows (COMMAND_VIEW_CHARS of its JSON text) comes as its start, with
 * `commandTruncated: true`; `outFrom` is set when `out` starts inside the entry's output (a page
 * that continues a previous one).
 */
export type LogEntryView = {
  attempt: number;
  entryId: number;
  key: string;
  command: string[] | null;
  commandTruncated?: boolean;
  startTime: string;
  exitCode: number | null;
  durationMs: number | null;
  outLength: number;
  truncated: boolean;
  out?: string;
  outFrom?: number;
};

/** Characters of a command's JSON text the user API shows; longer commands are cut. */
export const COMMAND_VIEW_CHARS = 8192;

/** What a user did to a job (the audit trail). */
export const JOB_EVENT_ACTIONS = ['submitted', 'canceled', 'retried'] as const;
export type JobEventAction = (typeof JOB_EVENT_ACTIONS)[number];

/**
 * One line of a job's history: when (ISO 8601), who (the API token's name; `bootstrap` for the
 * server's EXECUTOR_SERVER_API_TOKEN, `local` for the tokenless loopback dashboard) and what.
 */
export type JobEventView = { at: string; actor: string; action: JobEventAction };

/**
 * `GET /jobs/:id?entriesAfter=&limit=`: the job with a page of its latest attempt's entries
 * (without output) and its history, oldest first. `nextEntriesAfter` is the `entriesAfter` of the
 * next page, null on the last.
 */
export type JobDetailView = JobView & {
  logEntries: LogEntryView[];
  nextEntriesAfter: number | null;
  events: JobEventView[];
};

/** Entries per job-view page: the default and the most a client may ask for. */
export const JOB_ENTRIES_PAGE = { default: 500, max: 1000 } as const;

/** `GET /jobs`: newest first; `nextBefore` is the `before` of the next page, null on the last. */
export type JobListView = {
  jobs: JobView[];
  total: number;
  nextBefore: number | null;
};

/** Where the next page of `GET /jobs/:id/logs` starts: after entry `entriesAfter`, at byte `outputFrom` of the next entry. */
export type LogsCursor = { entriesAfter: number; outputFrom: number };

/**
 * `GET /jobs/:id/logs?entriesAfter=&outputFrom=&limit=`: a page of one attempt's entries with their
 * output. A page holds at most `limit` entries and about LOG_PAGE_BYTES of output; an entry whose
 * output does not fit ends the page part-way, and `next` continues it. `next` is null on the last page.
 */
export type JobLogsView = {
  jobId: number;
  attempt: number;
  entries: LogEntryView[];
  next: LogsCursor | null;
};

/** Entries per logs page (default and most) and the output bytes one page carries. */
export const LOG_PAGE = { default: 100, max: 1000, bytes: 1024 * 1024 } as const;

/** An executor's version against the server's (protocol/version.ts `calculateCompatibility`). */
export type Compatibility = 'UP_TO_DATE' | 'OUTDATED' | 'VERSION_AHEAD';

/** An executor as last heard: its heartbeat's telemetry, and the server's judgement of it. */
export type ExecutorView = Telemetry & {
  name: string;
  hostname: string;
  queueName: string | null;
  queueNames: string[] | null;
  firstSeenAt: string;
  lastSeenAt: string;
  active: boolean;
  compatibility: Compatibility | null;
};

/**
 * An executor counts as active (`active`, the queues' pollers) when seen within three heartbeat
 * intervals (Sourcegraph: 3 x 5 s).
 */
export const ACTIVE_WITHIN_MS = 15_000;

/** The largest page of `GET /api/v1/executors?limit=`, and the dashboard's page. */
export const EXECUTOR_PAGE_MAX = 1000;
export const EXECUTOR_PAGE_SIZE = 100;

export type ExecutorListView = {
  /** Every executor row the server has, and those seen within the last 15 s. */
  total: number;
  active: number;
  /** With `?limit=`: the `after` of the next page, null on the last. Always null without a limit. */
  nextAfter: string | null;
  executors: ExecutorView[];
};

export type QueueView = {
  queue: string;
  depth: number;
  processing: number;
  /** Executors seen within the last 15 s that poll this queue. */
  pollers: number;
  oldestQueuedAt: string | null;
  oldestAgeSeconds: number | null;
};

export type QueueListView = {
  /** Every queue that has jobs queued or processing, or an active executor polling it, by name. */
  queues: QueueView[];
};

/** One sample of a queue's short history (`GET /queues/history`). */
export type QueueSample = {
  /** Sample time, ms since the epoch. */
  at: number;
  depth: number;
  processing: number;
  oldestAgeSeconds: number | null;
  /** Jobs dequeued since the previous sample. */
  started: number;
  /** Jobs their executor marked completed, errored or failed since the previous sample. */
  finished: number;
  /** Median of (startedAt - ready time) over the jobs started in the interval; null if none. */
  dispatchP50Ms: number | null;
};

/** One executor's series: metric name -> [time, value] points. Counters are stored as rates per second. */
export type ExecutorSeries = Record<string, Array<[number, number]>>;

export type QueueHistoryView = {
  intervalMs: number;
  queues: Record<string, QueueSample[]>;
};

export type ExecutorHistoryView = {
  intervalMs: number;
  executors: Record<string, ExecutorSeries>;
};

/** Every error response: a catalogue code (lib/errors.ts), a message, and per-field details. */
export type ErrorBody = {
  error: { code: string; message: string; details?: ErrorDetail[]; requestId: string };
};

/**
 * The events of `GET /jobs/:id/logs?follow=1`: `entry` (a new entry, or changed fields), `output`
 * (chunks of one entry's output, in order), then `end` with the final job, after which the server
 * closes the stream.
 */
export type LogStreamEvent =
  | { event: 'entry'; data: LogEntryView }
  | { event: 'output'; data: { attempt: number; entryId: number; data: string } }
  | { event: 'end'; data: JobView };

/** A comment line; the server sends it on an idle stream so proxies keep the connection open. */
export const SSE_KEEPALIVE = ': keep-alive\n\n';

export function encodeLogStreamEvent(e: LogStreamEvent): string {
  return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

/** One server-sent event as read: its name ("message" when unnamed) and its data lines joined. */
export type SseMessage = {
  event: string;
  data: string;
};

function parseSseBlock(block: string): SseMessage | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  return data.length > 0 ? { event, data: data.join('\n') } : undefined;
}

/**
 * Reads a server-sent-event stream, yielding each event with data; a trailing block without its
 * blank line is dropped. Leaving the loop early cancels the stream.
 */
export async function* readSseMessages(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      buf += decoder.decode(value, { stream: true });
      for (let cut = buf.indexOf('\n\n'); cut >= 0; cut = buf.indexOf('\n\n')) {
        const message = parseSseBlock(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
        if (message) yield message;
      }
    }
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}

/** The log follow's events, decoded; events of other names are skipped. */
export async function* readLogStreamEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<LogStreamEvent> {
  for await (const m of readSseMessages(body)) {
    const data: unknown = JSON.parse(m.data);
    if (m.event === 'entry' || m.event === 'output' || m.event === 'end') {
      yield { event: m.event, data } as LogStreamEvent;
    }
  }
}
