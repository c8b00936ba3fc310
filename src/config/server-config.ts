/** The queue server's configuration as the server reads it (server.ts parses it from flags and env). */

export interface ServerConfig {
  listenHost: string;
  listenPort: number;
  dataDir: string;
  reposDir: string;
  /** Store location: a PostgreSQL URL, or the SQLite file URL `sqlite:<dataDir>/executor.db`. */
  databaseUrl: string;
  /** Absolute path of the default SQLite database file. */
  sqlitePath: string;
  executorsAccessToken: string;
  apiToken: string;
  stalledAfterMs: number;
  maxResets: number;
  resetIntervalMs: number;
  deadlineIntervalMs: number;
  executorJanitorIntervalMs: number;
  executorMaxAgeMs: number;
  retryBackoffBaseMs: number;
  retryBackoffMaxMs: number;
  defaultJobTimeoutMs: number;
  defaultMaxAttempts: number;
  maxLogBytesPerJob: number;
  priorityStepMs: number;
  sourcegraphVersion: string;
  queueWeights: Readonly<Record<string, number>>;
  /** Files bigger than this are not inlined in the dequeued Job but served by /.executors/files. */
  fileInlineLimitBytes: number;
  executorBodyLimitBytes: number;
  apiBodyLimitBytes: number;
  /** Longest time to receive a request (headers, then its body once read); responses are not limited. */
  requestTimeoutMs: number;
  /** Longest silence while a request body is being received (408 and the connection closed). */
  bodyIdleTimeoutMs: number;
  /** How long an idle connection stays open (Node's keepAliveTimeout). */
  keepAliveTimeoutMs: number;
  /** EXECUTOR_SERVER_HEARTBEAT_LANE: heartbeats and dequeues read by the lane (server/lane/lane.ts), not node:http. */
  heartbeatLane: boolean;
  /** Log entries one job attempt may add. */
  maxLogEntriesPerJob: number;
  /** Largest `command` of one log entry (its strings' UTF-8 bytes). */
  maxLogCommandBytes: number;
  /** Largest metrics text one executor may push with a heartbeat (dropped beyond). */
  maxExecutorMetricsBytes: number;
  /** Bearer token /metrics requires; '' leaves it open. */
  metricsToken: string;
  /** Dashboard: loopback peers may use the user API without a token when listening on loopback. */
  dashboardLoopbackOpen: boolean;
  /** Concurrent `?follow=1` streams of one job (429 beyond). */
  maxFollowersPerJob: number;
  /** Concurrent `?follow=1` streams of this server (503 beyond). */
  maxFollowers: number;
  /** Resident set size above which new work is refused with 503; 0 disables the guard. */
  memoryLimitBytes: number;
  /** Failed authentications from one peer (or token name) within the window before 429s. */
  authFailureLimit: number;
  authFailureWindowMs: number;
  /** Terminal jobs finished longer ago than this are deleted; 0 keeps every job. */
  jobRetentionMs: number;
  /** Output of terminal jobs finished longer ago than this is dropped (the job stays); 0 keeps it. */
  logRetentionMs: number;
  pruneIntervalMs: number;
  /** PEM certificate chain and key files: both set, the server speaks HTTPS only; both '' for HTTP. */
  tlsCertFile: string;
  tlsKeyFile: string;
  /** YAML file of repositories to register and mirror at start (name, url, credential); '' = none. */
  repositoriesFile: string;
  /** How often each mirrored repository is fetched (jittered by up to a tenth either way). */
  repoSyncIntervalMs: number;
  /** Longest a single fetch of a mirror may take. */
  repoFetchTimeoutMs: number;
  /** Largest mirror on disk; a fetch that grows it beyond fails. 0 = no limit. */
  repoMaxSizeBytes: number;
  /** Accept file://, local paths (and git's ext:: never) as repository URLs. */
  allowLocalRepositories: boolean;
  /** V8's old-generation growth step in percent (`--heap-growing-percent`); 0 = V8's own. */
  heapGrowingPercent: number;
}
