/**
 * Queue server configuration: flags and environment variables -> each setting's parser (every
 * problem reported together, naming flag and variable) -> a frozen ServerConfig with normalised
 * units (milliseconds, bytes).
 *
 * Each setting is declared once in SERVER_ENV (flag, variable, default, parser, meaning); the
 * server table of docs/configuration.md is rendered from it. A flag wins over its variable.
 */

import path from 'node:path';
import { z } from 'zod';
import { SOURCEGRAPH_PROTOCOL_VERSION } from '../protocol/version.js';
import type { Catalogue, Setting, Values } from './declare.js';
import { type Env, loadSettings } from './load.js';
import { oneOf } from './parsers.js';
import { renderFlagTable } from './render-docs.js';
import type { ServerConfig } from './server-config.js';
import {
  AT_LEAST_1KI,
  AT_LEAST_1S,
  AT_LEAST_100MS,
  count,
  duration,
  listen,
  size,
  token,
  weights,
} from './server-parsers.js';

export type { ServerConfig } from './server-config.js';

export class ServerConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid server configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ServerConfigError';
  }
}

/** Every server setting, keyed by its environment variable. Flags are `--<flag> VALUE`. */
export const SERVER_ENV = {
  EXECUTOR_SERVER_LISTEN: {
    flag: 'listen',
    default: '127.0.0.1:3080',
    description: 'HOST:PORT to listen on',
    parse: listen(),
  },
  EXECUTOR_SERVER_DATA: {
    flag: 'data',
    default: './.executor-data',
    description: 'data directory (holds executor.db)',
    parse: z.string().min(1),
  },
  EXECUTOR_SERVER_REPOS: {
    flag: 'repos',
    description:
      'directory of git repositories served to executors (default: repos inside the data directory)',
    parse: z.string().min(1),
  },
  DATABASE_URL: {
    flag: 'database-url',
    description:
      'PostgreSQL URL (postgres://...); default: the SQLite file executor.db in the data directory',
    parse: z.string().min(1),
  },
  EXECUTORS_ACCESS_TOKEN: {
    flag: 'executors-access-token',
    required: true,
    description: 'shared secret executors authenticate with (token-executor), at least 20 characters',
    parse: token(),
  },
  EXECUTOR_SERVER_API_TOKEN: {
    flag: 'api-token',
    required: true,
    description:
      'bootstrap bearer token of the user API (/api/v1), scope admin, at least 20 characters; scoped tokens are made with `executor tokens create`',
    parse: token(),
  },
  EXECUTOR_SERVER_STALLED_AFTER: {
    flag: 'stalled-after',
    default: '25s',
    description: 'a processing job unheard of for this long is requeued',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_MAX_RESETS: {
    flag: 'max-resets',
    default: '3',
    description: 'stalled resets before a job fails',
    parse: count(z.number().min(0).max(1000)),
  },
  EXECUTOR_SERVER_RESET_INTERVAL: {
    flag: 'reset-interval',
    default: '5s',
    description: 'how often the stalled-job resetter runs',
    parse: duration(AT_LEAST_100MS),
  },
  EXECUTOR_SERVER_DEADLINE_INTERVAL: {
    flag: 'deadline-interval',
    default: '5s',
    description: 'how often job deadlines are enforced',
    parse: duration(AT_LEAST_100MS),
  },
  EXECUTOR_SERVER_EXECUTOR_JANITOR_INTERVAL: {
    flag: 'executor-janitor-interval',
    default: '30m',
    description: 'how often records of gone executors are deleted',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_EXECUTOR_MAX_AGE: {
    flag: 'executor-max-age',
    default: '168h',
    description: 'executors unseen for this long are forgotten',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_RETRY_BACKOFF_BASE: {
    flag: 'retry-backoff-base',
    default: '10s',
    description: 'delay before the first retry of an errored job (doubles each retry)',
    parse: duration(),
  },
  EXECUTOR_SERVER_RETRY_BACKOFF_MAX: {
    flag: 'retry-backoff-max',
    default: '10m',
    description: 'longest retry delay',
    parse: duration(),
  },
  EXECUTOR_SERVER_DEFAULT_JOB_TIMEOUT: {
    flag: 'default-job-timeout',
    default: '30m',
    description: 'deadline of a job whose spec has no timeout',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_DEFAULT_MAX_ATTEMPTS: {
    flag: 'default-max-attempts',
    default: '1',
    description: 'attempts of a job whose spec has no maxAttempts (1 = no retries, as Sourcegraph)',
    parse: count(z.number().min(1).max(100)),
  },
  EXECUTOR_SERVER_MAX_LOG_BYTES: {
    flag: 'max-log-bytes',
    default: '64Mi',
    description:
      'log output stored per job attempt; beyond it a marker is stored and the rest dropped (the executor keeps head and tail within its own cap)',
    parse: size(AT_LEAST_1KI),
  },
  EXECUTOR_SERVER_PRIORITY_STEP: {
    flag: 'priority-step',
    default: '60s',
    description: 'queue time one priority level is worth',
    parse: duration(),
  },
  EXECUTOR_SERVER_SOURCEGRAPH_VERSION: {
    flag: 'sourcegraph-version',
    default: SOURCEGRAPH_PROTOCOL_VERSION,
    description:
      'version stock Sourcegraph executors are compared with (default: the Sourcegraph release whose protocol this server implements)',
    parse: z.string().min(1),
  },
  EXECUTOR_SERVER_QUEUE_WEIGHTS: {
    flag: 'queue-weights',
    default: '',
    description: 'multi-queue dequeue weights, e.g. "batches=4,codeintel=1" (default weight 1)',
    parse: weights(),
  },
  EXECUTOR_SERVER_FILE_INLINE_LIMIT: {
    flag: 'file-inline-limit',
    default: '1Mi',
    description: 'job files larger than this are fetched from /.executors/files instead of inlined',
    parse: size(z.number().min(0)),
  },
  EXECUTOR_SERVER_EXECUTOR_BODY_LIMIT: {
    flag: 'executor-body-limit',
    default: '10Mi',
    description: 'largest request body on /.executors routes (413 beyond)',
    parse: size(AT_LEAST_1KI),
  },
  EXECUTOR_SERVER_API_BODY_LIMIT: {
    flag: 'api-body-limit',
    default: '8Mi',
    description: 'largest request body on /api/v1 routes (413 beyond)',
    parse: size(AT_LEAST_1KI),
  },
  EXECUTOR_SERVER_REQUEST_TIMEOUT: {
    flag: 'request-timeout',
    default: '2m',
    description:
      'longest time to receive a request: its headers, then its body once the server reads it (408 and the connection closed beyond); long-polls and log follows, which send nothing after their headers, are not cut',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_BODY_IDLE_TIMEOUT: {
    flag: 'body-idle-timeout',
    default: '15s',
    description:
      'longest silence while a request body is being received (408 and the connection closed beyond)',
    parse: duration(AT_LEAST_100MS),
  },
  EXECUTOR_SERVER_KEEP_ALIVE_TIMEOUT: {
    flag: 'keep-alive-timeout',
    default: '65s',
    description:
      "how long an idle connection is kept open for the client's next request; above the executors' 5 s heartbeat interval, an executor keeps its connections, so each of them holds one or two for its life (file descriptors: docs/operating.md); below it, each heartbeat opens a new connection",
    parse: duration(AT_LEAST_100MS),
  },
  EXECUTOR_SERVER_HEARTBEAT_LANE: {
    flag: 'heartbeat-lane',
    default: 'true',
    description:
      "answer heartbeats and dequeues without node:http on connections that have carried nothing else (HTTP and HTTPS; a connection is node:http's from its first other request on): at 10,000 idle executors about half the CPU (docs/benchmarks.md); false gives every connection to node:http",
    parse: oneOf(['true', 'false'], 'must be true or false').transform((v) => v === 'true'),
  },
  EXECUTOR_SERVER_MAX_LOG_ENTRIES: {
    flag: 'max-log-entries',
    default: '1000',
    description: 'log entries one job attempt may add (413 beyond; the executor stops adding and says so)',
    parse: count(z.number().min(1).max(1_000_000)),
  },
  EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES: {
    flag: 'max-log-command-bytes',
    default: '64Ki',
    description:
      "largest command of one log entry, its strings' bytes (413 beyond; the executor shortens longer commands with a marker)",
    parse: size(AT_LEAST_1KI),
  },
  EXECUTOR_SERVER_MAX_EXECUTOR_METRICS: {
    flag: 'max-executor-metrics',
    default: '256Ki',
    description:
      'largest metrics text an executor may push with a heartbeat; a larger one is dropped (with a warning) and the heartbeat still succeeds',
    parse: size(z.number().min(0)),
  },
  EXECUTOR_SERVER_METRICS_TOKEN: {
    flag: 'metrics-token',
    description:
      'when set, GET /metrics requires "Authorization: Bearer <token>" (at least 20 characters); unset, /metrics is open',
    parse: token(),
  },
  EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN: {
    flag: 'dashboard-loopback-open',
    default: 'false',
    description:
      'when listening on loopback, the dashboard opens without the API token for loopback peers that came through no proxy (true or false; `executor up` turns it on)',
    parse: oneOf(['true', 'false'], 'must be true or false').transform((v) => v === 'true'),
  },
  EXECUTOR_SERVER_MAX_FOLLOWERS_PER_JOB: {
    flag: 'max-followers-per-job',
    default: '20',
    description:
      'concurrent log followers (`GET /api/v1/jobs/:id/logs?follow=1`) of one job; beyond it 429 TOO_MANY_FOLLOWERS',
    parse: count(z.number().min(1).max(100_000)),
  },
  EXECUTOR_SERVER_MAX_FOLLOWERS: {
    flag: 'max-followers',
    default: '200',
    description: 'concurrent log followers of this server, all jobs together; beyond it 503 OVERLOADED',
    parse: count(z.number().min(1).max(1_000_000)),
  },
  EXECUTOR_SERVER_MEMORY_LIMIT: {
    flag: 'memory-limit',
    default: '1536Mi',
    description:
      'resident memory (RSS) above which the server refuses new work (submissions, dequeues, new log entries, new followers) with 503 and Retry-After, and /healthz answers 503; 0 disables',
    parse: size(z.number().min(0)),
  },
  EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: {
    flag: 'auth-failure-limit',
    default: '10',
    description:
      'failed authentications (a wrong API token or shared executor token) a peer address may make within the window; further requests from it, on either API, get 429 with Retry-After, without their token being checked, until the window passes',
    parse: count(z.number().min(1).max(1_000_000)),
  },
  EXECUTOR_SERVER_AUTH_FAILURE_WINDOW: {
    flag: 'auth-failure-window',
    default: '1m',
    description: 'the window of EXECUTOR_SERVER_AUTH_FAILURE_LIMIT, counted from the first failure',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_JOB_RETENTION: {
    flag: 'job-retention',
    default: '720h',
    description:
      'jobs in a terminal state (completed, failed, canceled) that finished longer ago than this are deleted with their attempts, tokens, log entries and files; queued and running jobs never are; 0 keeps every job',
    parse: duration(),
  },
  EXECUTOR_SERVER_LOG_RETENTION: {
    flag: 'log-retention',
    description:
      'log output of terminal jobs that finished longer ago than this is dropped earlier than the job (its entries then say the output was pruned); default: the job retention; 0 keeps output as long as the job',
    parse: duration(),
  },
  EXECUTOR_SERVER_HEAP_GROWING_PERCENT: {
    flag: 'heap-growing-percent',
    default: '0',
    description:
      "how far V8 lets the server's heap grow between full collections, in percent (V8's --heap-growing-percent); lower trades CPU for memory (at 10,000 idle executors, 20 gave 334 to 367 MiB RSS at 38 to 44 % of a core, against 437 to 473 MiB at 37 to 38 %: docs/operating.md); 0 leaves it to V8",
    parse: count(z.number().min(0).max(400)),
  },
  EXECUTOR_SERVER_PRUNE_INTERVAL: {
    flag: 'prune-interval',
    default: '10m',
    description: 'how often the pruner applies the retention (in batches; seconds are fine for tests)',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_TLS_CERT: {
    flag: 'tls-cert',
    description:
      'PEM file of the server certificate (chain); with EXECUTOR_SERVER_TLS_KEY the server serves HTTPS only. Both files are read again on SIGHUP, without dropping connections',
    parse: z.string().min(1),
  },
  EXECUTOR_SERVER_TLS_KEY: {
    flag: 'tls-key',
    description: 'PEM file of the private key of EXECUTOR_SERVER_TLS_CERT',
    parse: z.string().min(1),
  },
  EXECUTOR_SERVER_REPOSITORIES: {
    flag: 'repositories',
    description:
      'YAML file listing repositories to register and mirror at start, each with name, url and optional credential (usernameEnv, passwordEnv, passwordFile, username); see docs/operating.md',
    parse: z.string().min(1),
  },
  EXECUTOR_SERVER_REPO_SYNC_INTERVAL: {
    flag: 'repo-sync-interval',
    default: '10m',
    description:
      'how often each registered repository is fetched from its URL (jittered by up to a tenth either way); a submit at a commit the mirror lacks fetches at once',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_REPO_FETCH_TIMEOUT: {
    flag: 'repo-fetch-timeout',
    default: '10m',
    description: 'longest a single fetch of a mirrored repository may take before it is stopped and fails',
    parse: duration(AT_LEAST_1S),
  },
  EXECUTOR_SERVER_REPO_MAX_SIZE: {
    flag: 'repo-max-size',
    default: '0',
    description:
      'largest mirror on disk (e.g. 5Gi); a repository whose fetch grows beyond it fails (a new one is not registered); 0 = no limit',
    parse: size(z.number().min(0)),
  },
  EXECUTOR_SERVER_ALLOW_LOCAL_REPOSITORIES: {
    flag: 'allow-local-repositories',
    default: 'false',
    description:
      "accept file:// URLs and local paths as repository URLs (true or false; off by default, since they read the server's own disk); git's ext:: transport is always refused",
    parse: oneOf(['true', 'false'], 'must be true or false').transform((v) => v === 'true'),
  },
} as const satisfies Catalogue;

export interface ServerSetting extends Setting {
  readonly env: string;
  readonly flag: string;
}

/** SERVER_ENV as a list, each with its variable name: what `executor server --help` shows. */
export const SERVER_SETTINGS: readonly ServerSetting[] = Object.entries(SERVER_ENV).map(
  ([env, s]): ServerSetting => ({ env, ...s }),
);

/** The docs table of every server setting (docs/configuration.md, "Server"). */
export const renderServerSettingsDocs = (): string => renderFlagTable(SERVER_ENV);

export interface ServerConfigSources {
  env?: Env;
  /** Commander option values, keyed by camel-cased flag name (`stalledAfter`), or by the flag itself. */
  flags?: Record<string, unknown>;
  /** Resolves relative directories (default process.cwd()). */
  cwd?: string;
}

/** Builds the server configuration; throws ServerConfigError listing every problem. */
export function loadServerConfig(sources: ServerConfigSources = {}): ServerConfig {
  const env = sources.env ?? process.env;
  const loaded = loadSettings(SERVER_ENV, { env, flags: sources.flags }, { requiredMessage: 'is required' });
  const { problems, values: v } = loaded;
  const base = v.EXECUTOR_SERVER_RETRY_BACKOFF_BASE;
  const max = v.EXECUTOR_SERVER_RETRY_BACKOFF_MAX;
  if (base !== undefined && max !== undefined && max < base) {
    problems.push(
      '--retry-backoff-max / EXECUTOR_SERVER_RETRY_BACKOFF_MAX: must not be below the retry backoff base',
    );
  }
  if ((v.EXECUTOR_SERVER_TLS_CERT === undefined) !== (v.EXECUTOR_SERVER_TLS_KEY === undefined)) {
    problems.push(
      '--tls-cert / EXECUTOR_SERVER_TLS_CERT and --tls-key / EXECUTOR_SERVER_TLS_KEY: set both, or neither',
    );
  }
  if (problems.length > 0) throw new ServerConfigError(problems);
  return Object.freeze(serverConfig(v, sources.cwd ?? process.cwd()));
}

function serverConfig(v: Values<typeof SERVER_ENV>, cwd: string): ServerConfig {
  const dataDir = path.resolve(cwd, v.EXECUTOR_SERVER_DATA);
  const sqlitePath = path.join(dataDir, 'executor.db');
  return {
    listenHost: v.EXECUTOR_SERVER_LISTEN.host,
    listenPort: v.EXECUTOR_SERVER_LISTEN.port,
    dataDir,
    reposDir: v.EXECUTOR_SERVER_REPOS
      ? path.resolve(cwd, v.EXECUTOR_SERVER_REPOS)
      : path.join(dataDir, 'repos'),
    databaseUrl: v.DATABASE_URL ?? `sqlite:${sqlitePath}`,
    sqlitePath,
    executorsAccessToken: v.EXECUTORS_ACCESS_TOKEN,
    apiToken: v.EXECUTOR_SERVER_API_TOKEN,
    stalledAfterMs: v.EXECUTOR_SERVER_STALLED_AFTER,
    maxResets: v.EXECUTOR_SERVER_MAX_RESETS,
    resetIntervalMs: v.EXECUTOR_SERVER_RESET_INTERVAL,
    deadlineIntervalMs: v.EXECUTOR_SERVER_DEADLINE_INTERVAL,
    executorJanitorIntervalMs: v.EXECUTOR_SERVER_EXECUTOR_JANITOR_INTERVAL,
    executorMaxAgeMs: v.EXECUTOR_SERVER_EXECUTOR_MAX_AGE,
    retryBackoffBaseMs: v.EXECUTOR_SERVER_RETRY_BACKOFF_BASE,
    retryBackoffMaxMs: v.EXECUTOR_SERVER_RETRY_BACKOFF_MAX,
    defaultJobTimeoutMs: v.EXECUTOR_SERVER_DEFAULT_JOB_TIMEOUT,
    defaultMaxAttempts: v.EXECUTOR_SERVER_DEFAULT_MAX_ATTEMPTS,
    maxLogBytesPerJob: v.EXECUTOR_SERVER_MAX_LOG_BYTES,
    priorityStepMs: v.EXECUTOR_SERVER_PRIORITY_STEP,
    sourcegraphVersion: v.EXECUTOR_SERVER_SOURCEGRAPH_VERSION,
    queueWeights: Object.freeze({ ...v.EXECUTOR_SERVER_QUEUE_WEIGHTS }),
    fileInlineLimitBytes: v.EXECUTOR_SERVER_FILE_INLINE_LIMIT,
    executorBodyLimitBytes: v.EXECUTOR_SERVER_EXECUTOR_BODY_LIMIT,
    apiBodyLimitBytes: v.EXECUTOR_SERVER_API_BODY_LIMIT,
    requestTimeoutMs: v.EXECUTOR_SERVER_REQUEST_TIMEOUT,
    bodyIdleTimeoutMs: v.EXECUTOR_SERVER_BODY_IDLE_TIMEOUT,
    keepAliveTimeoutMs: v.EXECUTOR_SERVER_KEEP_ALIVE_TIMEOUT,
    heartbeatLane: v.EXECUTOR_SERVER_HEARTBEAT_LANE,
    maxLogEntriesPerJob: v.EXECUTOR_SERVER_MAX_LOG_ENTRIES,
    maxLogCommandBytes: v.EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES,
    maxExecutorMetricsBytes: v.EXECUTOR_SERVER_MAX_EXECUTOR_METRICS,
    metricsToken: v.EXECUTOR_SERVER_METRICS_TOKEN ?? '',
    dashboardLoopbackOpen: v.EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN,
    maxFollowersPerJob: v.EXECUTOR_SERVER_MAX_FOLLOWERS_PER_JOB,
    maxFollowers: v.EXECUTOR_SERVER_MAX_FOLLOWERS,
    memoryLimitBytes: v.EXECUTOR_SERVER_MEMORY_LIMIT,
    authFailureLimit: v.EXECUTOR_SERVER_AUTH_FAILURE_LIMIT,
    authFailureWindowMs: v.EXECUTOR_SERVER_AUTH_FAILURE_WINDOW,
    jobRetentionMs: v.EXECUTOR_SERVER_JOB_RETENTION,
    logRetentionMs: v.EXECUTOR_SERVER_LOG_RETENTION ?? v.EXECUTOR_SERVER_JOB_RETENTION,
    pruneIntervalMs: v.EXECUTOR_SERVER_PRUNE_INTERVAL,
    tlsCertFile: v.EXECUTOR_SERVER_TLS_CERT ? path.resolve(cwd, v.EXECUTOR_SERVER_TLS_CERT) : '',
    tlsKeyFile: v.EXECUTOR_SERVER_TLS_KEY ? path.resolve(cwd, v.EXECUTOR_SERVER_TLS_KEY) : '',
    repositoriesFile: v.EXECUTOR_SERVER_REPOSITORIES ? path.resolve(cwd, v.EXECUTOR_SERVER_REPOSITORIES) : '',
    repoSyncIntervalMs: v.EXECUTOR_SERVER_REPO_SYNC_INTERVAL,
    repoFetchTimeoutMs: v.EXECUTOR_SERVER_REPO_FETCH_TIMEOUT,
    repoMaxSizeBytes: v.EXECUTOR_SERVER_REPO_MAX_SIZE,
    allowLocalRepositories: v.EXECUTOR_SERVER_ALLOW_LOCAL_REPOSITORIES,
    heapGrowingPercent: v.EXECUTOR_SERVER_HEAP_GROWING_PERCENT,
  };
}
