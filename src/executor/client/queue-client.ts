/**
 * Client of `/.executors/queue` (Sourcegraph `apiclient/queue/client.go`): ping, dequeue,
 * heartbeat, the three marks and the log entry routes. Bodies are exactly the Go client's.
 *
 * Capabilities: the `X-Executor-Capabilities` header of ping and heartbeat responses says which of
 * our extensions the server has (long-poll dequeue, log-append). A Sourcegraph server never sends
 * it, and then this client behaves like a stock executor: no long-poll header, full-snapshot log
 * updates.
 */

import type { HttpRetryConfig } from '../../config/executor.js';
import type { Logger } from '../../lib/logger.js';
import {
  CAPABILITIES_HEADER,
  CAPABILITY,
  LONG_POLL_HEADER,
  MAX_LONG_POLL_MS,
  parseCapabilities,
} from '../../protocol/capabilities.js';
import { decodeHeartbeatResponse, type Telemetry } from '../../protocol/http.js';
import { decodeJob, type Job } from '../../protocol/job.js';
import { parseJobIds } from '../../protocol/job-id.js';
import { LogRefusedError, type LogSink as QueueLogSink, type WireLogEntry } from '../logs/types.js';
import type { RedMetrics } from '../metrics.js';
import {
  type BaseClient,
  createBaseClient,
  type HttpResponse,
  type RequestOptions,
  type Transport,
  UnexpectedStatusError,
} from './base-client.js';
import { jsonWithBytesField } from './json-bytes.js';

export interface QueueClientOptions {
  frontendUrl: string;
  password: string;
  executorName: string;
  /** Single-queue mode. */
  queueName?: string;
  /** Multi-queue mode (sent sorted). */
  queueNames?: readonly string[];
  /** Sent as `version` on dequeue. */
  version: string;
  resources?: { numCPUs?: number; memory?: string; diskSpace?: string };
  /** Gathered once at startup; sent in every heartbeat. */
  telemetry: () => Telemetry;
  /** Prometheus text, gathered on every heartbeat. */
  prometheusMetrics?: () => string;
  /** How long to ask a long-poll-capable server to hold an empty dequeue. 0 = never ask. */
  longPollMs?: number;
  retry?: HttpRetryConfig;
  /** Logs, marks (and everything when `controlFetch` is not given). */
  fetch?: Transport;
  /**
   * Ping, heartbeats and dequeues, on connections that carry nothing else: the server answers
   * those in its heartbeat lane (control-transport.ts says why). Defaults to `fetch`.
   */
  controlFetch?: Transport;
  logger?: Logger;
  metrics?: RedMetrics;
}

/**
 * Timeout of one attempt of every call but dequeue, when SRC_HTTP_CLI_INTERNAL_TIMEOUT is 0: well
 * under the server's stall window (25 s by default), so a call on a connection that went silent is
 * retried on a fresh one instead of waiting for the kernel to notice.
 */
export const CALL_ATTEMPT_TIMEOUT_MS = 10_000;
/** A long-poll dequeue may take its wait plus this before it is presumed lost. */
export const LONG_POLL_MARGIN_MS = 10_000;

export interface HeartbeatResult {
  knownIds: string[];
  cancelIds: string[];
}

export interface QueueClient {
  readonly executorName: string;
  /** Capabilities the server advertised on its latest ping or heartbeat response. */
  capabilities(): ReadonlySet<string>;
  ping(signal?: AbortSignal): Promise<void>;
  /** The next job, or null when there is none (204). */
  dequeue(signal?: AbortSignal): Promise<Job | null>;
  /** `budgetMs` bounds the call, retries included (the heartbeat loop passes its interval). */
  heartbeat(runningUids: readonly string[], opts?: { budgetMs?: number }): Promise<HeartbeatResult>;
  markComplete(job: Job): Promise<void>;
  markErrored(job: Job, errorMessage: string): Promise<void>;
  markFailed(job: Job, errorMessage: string): Promise<void>;
  logSink(job: Job): QueueLogSink;
}

const emptyTelemetry: Telemetry = {
  os: '',
  architecture: '',
  dockerVersion: '',
  executorVersion: '',
  gitVersion: '',
  igniteVersion: '',
  srcCliVersion: '',
};

/** The dequeue body: `queues` first in the multi-queue form, resources only when set. */
function dequeueBody(
  queueNames: string[] | undefined,
  executorName: string,
  version: string,
  r: QueueClientOptions['resources'] = {},
): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (queueNames) body.queues = queueNames;
  body.executorName = executorName;
  body.version = version;
  if (r.numCPUs) body.numCPUs = r.numCPUs;
  if (r.memory) body.memory = r.memory;
  if (r.diskSpace) body.diskSpace = r.diskSpace;
  return body;
}

/** Metrics text above this is left out of the heartbeat (the server's default cap). */
export const MAX_SENT_METRICS_BYTES = 256 * 1024;

/**
 * The heartbeat body, in the field order Sourcegraph's executor sends: the multi-queue form (job ids
 * grouped by queue, `queueNames`) when `queueNames` is given, else V2 with integer job ids. Throws
 * (and nothing is sent) on a running id the form cannot carry.
 */
function heartbeatBody(
  queueNames: string[] | undefined,
  executorName: string,
  ids: string[],
  telemetry: Telemetry,
  gathered: string,
): Record<string, unknown> {
  // A server keeps at most its EXECUTOR_SERVER_MAX_EXECUTOR_METRICS (256 KiB by default) and refuses
  // a heartbeat far above it: metrics beyond what any server keeps are not sent at all.
  const prometheusMetrics = Buffer.byteLength(gathered, 'utf8') > MAX_SENT_METRICS_BYTES ? '' : gathered;
  if (queueNames) {
    const body: Record<string, unknown> = { version: '', executorName };
    if (ids.length > 0) body.jobIdsByQueue = parseJobIds(ids); // throws JobIdsParseError: nothing sent
    body.queueNames = queueNames;
    return Object.assign(body, telemetry, { prometheusMetrics });
  }
  const jobIds = ids.map((id) => {
    if (!/^\d+$/.test(id)) throw new Error(`heartbeat: job id ${JSON.stringify(id)} is not an integer`);
    return Number(id);
  });
  return {
    version: 'V2',
    executorName,
    jobIds: jobIds.length > 0 ? jobIds : null,
    ...telemetry,
    prometheusMetrics,
  };
}

export function createQueueClient(opts: QueueClientOptions): QueueClient {
  const baseOn = (fetch: Transport | undefined): BaseClient =>
    createBaseClient({
      baseUrl: opts.frontendUrl,
      pathPrefix: '/.executors/queue',
      password: opts.password,
      executorName: opts.executorName,
      retry: opts.retry,
      fetch,
      logger: opts.logger,
    });
  const base = baseOn(opts.fetch);
  const control = opts.controlFetch ? baseOn(opts.controlFetch) : base;
  const request: BaseClient['request'] = (r) =>
    base.request({ attemptTimeoutMs: CALL_ATTEMPT_TIMEOUT_MS, ...r });
  const controlRequest: BaseClient['request'] = (r) =>
    control.request({ attemptTimeoutMs: CALL_ATTEMPT_TIMEOUT_MS, ...r });
  const multi = !opts.queueName;
  const queueNames = [...(opts.queueNames ?? [])].sort();
  if (multi && queueNames.length === 0)
    throw new Error('queue client: a queue name or queue names are required');
  let caps: ReadonlySet<string> = new Set();

  const observe = <T>(op: string, fn: () => Promise<T>) =>
    opts.metrics ? opts.metrics.observe(op, fn) : fn();
  const logWrite = (op: string, r: Parameters<BaseClient['request']>[0]) =>
    boundedLogWrite(() => observe(op, () => request(r)));
  const noteCaps = (res: HttpResponse) => {
    caps = parseCapabilities(res.headers.get(CAPABILITIES_HEADER));
  };
  /** The queue of a job's routes: the job's own (multi-queue dequeue) or the configured one. */
  const jobQueue = (job: Job) => {
    const q = job.queue || opts.queueName;
    if (!q) throw new Error(`job ${job.id} has no queue and no EXECUTOR_QUEUE_NAME is configured`);
    return q;
  };
  const jobAuth = (job: Job) => ({ id: job.id, token: job.token });
  const heartbeatEndpoint = multi ? 'heartbeat' : `${opts.queueName}/heartbeat`;

  async function mark(op: string, route: string, job: Job, errorMessage?: string) {
    const body: Record<string, unknown> = { executorName: opts.executorName, jobId: job.id };
    if (errorMessage !== undefined) body.errorMessage = errorMessage;
    await observe(op, () =>
      request({ method: 'POST', endpoint: `${jobQueue(job)}/${route}`, body, job: jobAuth(job) }),
    );
  }

  return {
    executorName: opts.executorName,
    capabilities: () => caps,

    async ping(signal) {
      const body: Record<string, unknown> = { version: '', executorName: opts.executorName };
      if (multi) body.queueNames = queueNames;
      Object.assign(body, emptyTelemetry, { prometheusMetrics: '' });
      const res = await controlRequest({ method: 'POST', endpoint: heartbeatEndpoint, body, signal });
      noteCaps(res);
    },

    async dequeue(signal) {
      const body = dequeueBody(
        multi ? queueNames : undefined,
        opts.executorName,
        opts.version,
        opts.resources,
      );
      const headers: Record<string, string> = {};
      let attemptTimeoutMs = CALL_ATTEMPT_TIMEOUT_MS;
      if ((opts.longPollMs ?? 0) > 0 && caps.has(CAPABILITY.longPoll)) {
        const waitMs = Math.min(opts.longPollMs!, MAX_LONG_POLL_MS);
        headers[LONG_POLL_HEADER] = String(waitMs);
        attemptTimeoutMs = waitMs + LONG_POLL_MARGIN_MS;
      }
      const res = await observe('Dequeue', () =>
        control.request({
          method: 'POST',
          endpoint: multi ? 'dequeue' : `${opts.queueName}/dequeue`,
          body,
          headers,
          signal,
          attemptTimeoutMs,
        }),
      );
      if (res.status === 204) return null;
      return decodeJob(JSON.parse(res.body.toString('utf8')));
    },

    async heartbeat(runningUids, hbOpts) {
      const body = heartbeatBody(
        multi ? queueNames : undefined,
        opts.executorName,
        [...runningUids].sort(),
        { ...emptyTelemetry, ...opts.telemetry() },
        opts.prometheusMetrics?.() ?? '',
      );
      const res = await observe('Heartbeat', () =>
        controlRequest({ method: 'POST', endpoint: heartbeatEndpoint, body, budgetMs: hbOpts?.budgetMs }),
      );
      noteCaps(res);
      if (res.status === 204 || res.body.length === 0) return { knownIds: [], cancelIds: [] };
      return decodeHeartbeatResponse(JSON.parse(res.body.toString('utf8')));
    },

    markComplete: (job) => mark('MarkComplete', 'markComplete', job),
    markErrored: (job, msg) => mark('MarkErrored', 'markErrored', job, msg),
    markFailed: (job, msg) => mark('MarkFailed', 'markFailed', job, msg),

    logSink(job) {
      const common = () => ({ executorName: opts.executorName, jobId: job.id });
      const sink: QueueLogSink = {
        async add(entry) {
          const res = await logWrite('AddExecutionLogEntry', {
            method: 'POST',
            endpoint: `${jobQueue(job)}/addExecutionLogEntry`,
            body: { ...common(), ...entryBody(entry) },
            job: jobAuth(job),
          });
          const id = JSON.parse(res.body.toString('utf8')) as unknown;
          if (typeof id !== 'number' || !Number.isInteger(id)) {
            throw new Error(
              `addExecutionLogEntry: expected an integer entry id, got ${res.body.toString('utf8').slice(0, 100)}`,
            );
          }
          return id;
        },
        async update(entryId, entry) {
          await logWrite('UpdateExecutionLogEntry', {
            method: 'POST',
            endpoint: `${jobQueue(job)}/updateExecutionLogEntry`,
            body: { ...common(), entryId, ...entryBody(entry) },
            job: jobAuth(job),
          });
        },
      };
      if (caps.has(CAPABILITY.logAppend)) {
        const asBytes = caps.has(CAPABILITY.logAppendBytes);
        sink.append = async (entryId, offset, out, fields) => {
          const body: Record<string, string | number> = { ...common(), entryId, offset };
          if (fields.exitCode !== undefined) body.exitCode = fields.exitCode;
          if (fields.durationMs !== undefined) body.durationMs = fields.durationMs;
          const call = appendRequest(`${jobQueue(job)}/appendExecutionLogEntry`, body, out, asBytes);
          await observe('AppendExecutionLogEntry', () => request({ ...call, job: jobAuth(job) }));
        };
      }
      return sink;
    },
  };
}

/**
 * An append's request, encoded now: `out` is the logger's to reuse once the sink returns its
 * promise (LogSink.append). With log-append-bytes the output is the body as it is, the fields go
 * in the query string; else they are one JSON body.
 */
function appendRequest(
  endpoint: string,
  fields: Record<string, string | number>,
  out: Buffer,
  asBytes: boolean,
): RequestOptions {
  if (!asBytes) return { method: 'POST', endpoint, encodedBody: jsonWithBytesField(fields, 'out', out) };
  return {
    method: 'POST',
    endpoint,
    query: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])),
    headers: { 'content-type': 'application/octet-stream' },
    encodedBody: Buffer.from(out),
  };
}

/**
 * A log write the server refuses over one of its bounds (413: entries per job, the job's log cap,
 * a command's size) is not a failure of the job: it becomes LogRefusedError, which the job
 * logger handles (it shortens the command, or stops adding entries and says so).
 */
async function boundedLogWrite<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UnexpectedStatusError && e.status === 413) {
      const text = e.body.trim();
      const command = /log entry command is \d+ bytes, more than (\d+) bytes/.exec(text);
      throw new LogRefusedError(text, command ? Number(command[1]) : undefined);
    }
    throw e;
  }
}

/**
 * The ExecutionLogEntry fields with Go's omitempty rules: exitCode and durationMs are pointers there
 * (so 0 is sent once set), out is a string (so "" is left out).
 */
function entryBody(e: WireLogEntry): Record<string, unknown> {
  const b: Record<string, unknown> = { key: e.key, command: e.command, startTime: e.startTime };
  if (e.exitCode !== undefined) b.exitCode = e.exitCode;
  if (e.out) b.out = e.out;
  if (e.durationMs !== undefined) b.durationMs = e.durationMs;
  return b;
}
