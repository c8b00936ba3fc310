/**
 * The Store: everything the queue server keeps. One interface, two implementations (sqlite/ and
 * postgres/), one contract suite (test/store/contract.ts) that runs against both.
 *
 * Conventions
 * - All times are milliseconds since the epoch, passed in by the caller from the server's clock
 *   (`now`). The PostgreSQL twin may use the database clock instead where the interface says so;
 *   both must give the same answers under the contract suite's fake clock.
 * - Every write made on behalf of an executor carries the fence: job id, executor name and the
 *   attempt number its token was issued for. A write whose fence does not match the current row
 *   (state processing, same executor, same attempt) changes nothing and reports so.
 * - Methods are async so that the PostgreSQL twin fits; the SQLite one resolves synchronously.
 */
import type { JobSpec } from '../protocol/job-spec.js';
import type { ApiTokenRecord, NewApiToken } from './api-token-types.js';
import type { ExecutorReads, HeartbeatQueries } from './heartbeat-types.js';
import type { NewRepository, RepositoryRecord, RepositorySync } from './repository-types.js';

export type {
  ExecutorMetricsRow,
  ExecutorSeen,
  HeartbeatAnswer,
  HeartbeatWrite,
  NamePage,
  QueuePollers,
} from './heartbeat-types.js';

export type JobState = 'queued' | 'processing' | 'completed' | 'errored' | 'failed' | 'canceled';
export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'canceled'];

export interface JobRecord {
  id: number;
  queue: string;
  state: JobState;
  /** The submitted spec, secrets included. Never sent to users as is (see redactSpec). */
  spec: JobSpec;
  /** The spec's repository name, else ''. */
  repositoryName: string;
  /** Resolved commit sha when the spec names a repository, else ''. */
  commit: string;
  priority: number;
  maxAttempts: number;
  /** How many times the job was dequeued (the current attempt number while processing). */
  attempts: number;
  numFailures: number;
  numResets: number;
  cancel: boolean;
  workerHostname: string | null;
  failureMessage: string | null;
  timeoutMs: number;
  createdAt: number;
  queuedAt: number;
  /** Not dequeued before this time (retry backoff). */
  processAfter: number | null;
  startedAt: number | null;
  lastHeartbeatAt: number | null;
  finishedAt: number | null;
}

export interface NewJob {
  queue: string;
  spec: JobSpec;
  repositoryName: string;
  commit: string;
  priority: number;
  maxAttempts: number;
  timeoutMs: number;
}

/** The fence of one attempt: every executor write names it. */
export interface AttemptFence {
  jobId: number;
  executorName: string;
  attempt: number;
}

export interface TokenRecord extends AttemptFence {
  queue: string;
  repositoryName: string;
}

export interface LogEntryInput {
  key: string;
  command: string[] | null;
  startTime: string;
  exitCode?: number;
  durationMs?: number;
  /** Full output so far (Sourcegraph add/update semantics). */
  out?: string;
}

export interface LogEntryRecord {
  jobId: number;
  attempt: number;
  /** 1-based within the attempt. */
  entryId: number;
  key: string;
  command: string[] | null;
  startTime: string;
  exitCode: number | null;
  durationMs: number | null;
  /** Bytes of output stored (UTF-8). */
  outLength: number;
  /** True once the server's per-job cap cut this entry's output. */
  truncated: boolean;
  /** Present only when asked for (getLogEntries withOutput). */
  out?: string;
  /**
   * True when `command` is only the start of the stored command: read with `commandChars` and the
   * stored command's JSON text was longer (the last element may be cut, later ones are missing).
   */
  commandTruncated?: boolean;
}

/** Which entries of one attempt getLogEntries returns, and how much of each. */
export interface LogEntriesQuery {
  /** Default: the latest attempt. */
  attempt?: number;
  /** Each entry's whole output (tests and audits; user-facing reads page it with readLogOutput). */
  withOutput?: boolean;
  /** Only entries with a larger entry id (a page cursor). */
  afterEntryId?: number;
  /** Only these entries (a follower re-reading the entries still open). */
  entryIds?: readonly number[];
  /** At most this many entries, in entry order. */
  limit?: number;
  /**
   * Commands whose JSON text is longer than this many characters come back shortened (decoded from
   * their first `commandChars` characters, `commandTruncated` set); the database cuts them, so a
   * huge command is never loaded into the server.
   */
  commandChars?: number;
}

/**
 * How a claimed attempt ended: a mark, the deadline sweep, or the resetter (requeued, or failed
 * after too many resets). Null while the attempt runs.
 */
export type ClaimOutcome =
  | 'completed'
  | 'errored'
  | 'failed'
  | 'deadline'
  | 'stalled-reset'
  | 'stalled-failed';

/** One dequeue of a job: the claim history both twins keep (table job_claims). */
export interface ClaimRecord {
  jobId: number;
  attempt: number;
  executorName: string;
  claimedAt: number;
  endedAt: number | null;
  outcome: ClaimOutcome | null;
}

export type AppendResult =
  | { ok: true; length: number }
  | { ok: false; reason: 'not-owner' }
  | { ok: false; reason: 'gap'; length: number };

export interface ExecutorRecord {
  name: string;
  hostname: string;
  queueName: string | null;
  queueNames: string[] | null;
  os: string;
  architecture: string;
  dockerVersion: string;
  executorVersion: string;
  gitVersion: string;
  igniteVersion: string;
  srcCliVersion: string;
  firstSeenAt: number;
  lastSeenAt: number;
  /** Prometheus text of the last heartbeat, '' when none. */
  metrics: string;
}

export type ExecutorHeartbeat = Omit<ExecutorRecord, 'firstSeenAt' | 'lastSeenAt'>;
/** An executor as listed: all but its metrics text. */
export type ExecutorSummary = Omit<ExecutorRecord, 'metrics'>;

export interface QueueStats {
  queue: string;
  queued: number;
  processing: number;
  /** queuedAt (or processAfter when later) of the oldest dequeueable job, or null. */
  oldestQueuedAt: number | null;
}

/** What a user did to a job, as the audit trail records it (table job_events). */
export type JobAction = 'submitted' | 'canceled' | 'retried';

/**
 * One line of a job's audit trail: who (the user-API actor: a token's name, `admin` for the
 * bootstrap API token, `local` for the tokenless loopback dashboard) did what, when. Never a token.
 */
export interface JobEventRecord {
  jobId: number;
  at: number;
  actor: string;
  action: JobAction;
}

export interface ListJobsQuery {
  state?: JobState;
  queue?: string;
  /** Page size (1..500). */
  limit: number;
  /** Return jobs with id < before (newest first). */
  before?: number;
}

export interface DequeueOptions {
  queue: string;
  executorName: string;
  now: number;
  /** SHA-256 of the job token to issue for this attempt (hex). */
  tokenHash: string;
  /**
   * Aging: a job's rank is queuedAt - priority * priorityStepMs, lowest first, so a job one
   * priority level lower waits at most priorityStepMs longer and nothing starves.
   */
  priorityStepMs: number;
}

export interface RetryPolicy {
  /** Backoff before the n-th retry: baseMs * 2^(n-1), capped at maxMs. */
  baseMs: number;
  maxMs: number;
}

export { API_TOKEN_TOUCH_MS, type ApiTokenRecord, type NewApiToken } from './api-token-types.js';

/** What one prune batch removed: jobs (or jobs whose output was dropped) and the bytes they held. */
export interface PruneResult {
  jobs: number;
  /** Output bytes deleted, plus the spec bytes of deleted jobs. */
  bytes: number;
}

/** The text that replaces an entry's output once log retention dropped it. */
export const PRUNED_OUTPUT_MARKER = '[output pruned: older than the log retention]\n';

export type {
  NewRepository,
  RepositoryCredential,
  RepositoryRecord,
  RepositorySource,
  RepositoryState,
  RepositorySync,
} from './repository-types.js';

export interface Store extends HeartbeatQueries, ExecutorReads {
  /** Applies numbered migrations; idempotent. */
  migrate(): Promise<void>;
  /**
   * Versions this build knows that the database has not applied yet (empty once migrate() ran here
   * or on another replica); rejects, as any query would, when the database is down. /readyz reads it.
   */
  pendingMigrations(): Promise<number[]>;
  close(): Promise<void>;
  /** One round trip to the database (the health check); rejects, as any query would, when it is down. */
  ping(): Promise<void>;

  /**
   * Inserts a queued job. With `actor`, its `submitted` event is written in the same statement or
   * transaction, so a job never exists without it (and nothing is added before the enqueue wake-up).
   */
  enqueue(job: NewJob, now: number, actor?: string): Promise<JobRecord>;
  getJob(id: number): Promise<JobRecord | null>;
  listJobs(q: ListJobsQuery): Promise<{ jobs: JobRecord[]; total: number }>;

  /**
   * Claims the best dequeueable job of one queue (queued with processAfter <= now, or errored and
   * due), sets it processing for this executor, increments attempts, stores the token hash for the
   * new attempt (replacing any older token of the job). Null when nothing is ready. Exactly one
   * caller wins each attempt, whatever the concurrency.
   */
  dequeue(opts: DequeueOptions): Promise<{ job: JobRecord; attempt: number } | null>;
  /** Number of dequeueable jobs per queue, for multi-queue selection. */
  readyCounts(queues: string[], now: number): Promise<Map<string, number>>;

  /**
   * What job-route authentication reads, in one store round trip: the token with that hash (null
   * when unknown, or when its attempt ended) and whether `executorName` is a registered executor (its row, with the metrics text of its last
   * heartbeat, is not read).
   */
  lookupTokenFor(
    tokenHash: string,
    executorName: string,
  ): Promise<{ token: TokenRecord | null; executorKnown: boolean }>;

  // heartbeat, recordHeartbeats, touchExecutors: HeartbeatQueries (heartbeat-types.ts).

  /**
   * Appends a log entry to the current attempt; returns its 1-based id, or null if fenced out.
   * `maxOutputBytes` caps the attempt's keys, commands and output together; an entry whose key
   * and command do not fit in what is left, or beyond `maxEntries`, is refused with AppError
   * PAYLOAD_TOO_LARGE (nothing stored).
   */
  addLogEntry(
    fence: AttemptFence,
    entry: LogEntryInput,
    maxOutputBytes: number,
    maxEntries?: number,
  ): Promise<number | null>;
  /**
   * Replaces entry fields; `out` is the full output so far, and only the new suffix is stored
   * (output already stored is never rewritten). False if fenced out or the entry does not exist.
   * A key and command that grow beyond what is left of the cap are refused like addLogEntry's.
   */
  updateLogEntry(
    fence: AttemptFence,
    entryId: number,
    entry: LogEntryInput,
    maxOutputBytes: number,
  ): Promise<boolean>;
  /** Extension: append `out` (text or UTF-8) at byte `offset`; idempotent for chunks already stored. */
  appendLogOutput(
    fence: AttemptFence,
    entryId: number,
    offset: number,
    out: string | Buffer,
    fields: { exitCode?: number; durationMs?: number },
    maxOutputBytes: number,
  ): Promise<AppendResult>;
  /** Entries of an attempt (default: the latest) in entry order, as `opts` selects them. */
  getLogEntries(jobId: number, opts?: LogEntriesQuery): Promise<LogEntryRecord[]>;
  /**
   * Output of one entry from byte offset `from`, at most `maxBytes` bytes (default: all), cut on a
   * UTF-8 character boundary so that the byte length of the result is where the next read starts.
   * The database cuts the chunks, so a read costs what it returns, not what the entry holds.
   */
  readLogOutput(
    jobId: number,
    attempt: number,
    entryId: number,
    from: number,
    maxBytes?: number,
  ): Promise<string>;

  /** Each mark ends the attempt and deletes its token. False when fenced out. */
  markComplete(fence: AttemptFence, now: number): Promise<boolean>;
  /**
   * markComplete authorised by a job token, in one step: the token must exist with `tokenHash`,
   * name this job, queue and executor, the executor must be registered, and the job must be
   * processing by that executor at the token's attempt. Returns the fence that was completed, or
   * null when any of it does not hold (nothing is changed then, and the caller finds out why on the
   * slower path: lookupTokenFor, then markComplete).
   */
  markCompleteByToken(
    t: { tokenHash: string; jobId: number; executorName: string; queue: string },
    now: number,
  ): Promise<AttemptFence | null>;
  /**
   * Errored: when cancel is set -> canceled; else numFailures + 1, and if attempts < maxAttempts the
   * job goes back to queued with processAfter = now + backoff, otherwise failed.
   */
  markErrored(fence: AttemptFence, message: string, now: number, retry: RetryPolicy): Promise<boolean>;
  /** Failed (or canceled when the cancel flag is set); never retried. */
  markFailed(fence: AttemptFence, message: string, now: number): Promise<boolean>;

  /**
   * Requeues processing jobs whose lastHeartbeatAt < now - stalledAfterMs (numResets + 1, token
   * deleted), or fails them once numResets >= maxResets. Returns the ids touched.
   */
  resetStalled(
    now: number,
    stalledAfterMs: number,
    maxResets: number,
  ): Promise<{ reset: number[]; failed: number[] }>;
  /**
   * Ends processing jobs whose startedAt + timeoutMs < now as errored (retried as markErrored
   * would) with a message naming the timeout; tokens deleted. Returns the ids touched.
   */
  expireDeadlines(now: number, retry: RetryPolicy): Promise<number[]>;

  /**
   * Queued/errored -> canceled at once; processing -> cancel flag set. Null if no such job. With
   * `actor`, a `canceled` event is written with the change, and only when something changed.
   */
  cancelJob(id: number, now: number, actor?: string): Promise<JobRecord | null>;
  /**
   * A job in failed, errored or canceled goes back to queued with a fresh attempt budget. With
   * `actor`, a `retried` event is written with the change, and only when the job was requeued.
   */
  retryJob(id: number, now: number, actor?: string): Promise<JobRecord | null>;

  /** Appends an event to a job's audit trail (false when there is no such job). */
  addJobEvent(e: JobEventRecord): Promise<boolean>;
  /** A job's audit trail, oldest first. Events go when the job row is deleted. */
  listJobEvents(jobId: number): Promise<JobEventRecord[]>;

  upsertExecutor(hb: ExecutorHeartbeat, now: number): Promise<void>;
  getExecutor(name: string): Promise<ExecutorRecord | null>;
  // listExecutors, countExecutors, queuePollers, recentExecutorMetrics: ExecutorReads (heartbeat-types.ts).
  deleteExecutorsSeenBefore(cutoff: number): Promise<number>;

  queueStats(now: number): Promise<QueueStats[]>;

  /**
   * The claim history of a job, oldest first: one record per dequeue, written by the claiming
   * statement or transaction and closed with its outcome by whatever ended the attempt, in the same
   * statement or transaction. A fenced-out write closes nothing. A user retry starts attempt numbers
   * again, so (jobId, attempt) repeats only after one. Records go when the job row is deleted.
   */
  claimHistory(jobId: number): Promise<ClaimRecord[]>;

  /**
   * Stores a new user-API token. Names are unique: a name held by an active token answers null;
   * a revoked or expired token of that name (expiresAt <= now) is replaced by the new one.
   */
  createApiToken(t: NewApiToken, now: number): Promise<ApiTokenRecord | null>;
  /** Every stored token, revoked and expired ones included, by name. */
  listApiTokens(): Promise<ApiTokenRecord[]>;
  /** Sets revokedAt (kept if already set); null when there is no token of that name. */
  revokeApiToken(name: string, now: number): Promise<ApiTokenRecord | null>;
  /**
   * The token with this hash, revoked and expired ones included (the caller refuses them), or null.
   * Sets lastUsedAt = now on a live token whose lastUsedAt is unset or older than
   * API_TOKEN_TOUCH_MS, so a busy token costs one write a minute, not one per request.
   */
  findApiTokenByHash(tokenHash: string, now: number): Promise<ApiTokenRecord | null>;

  /**
   * Retention: deletes at most `limit` jobs in a terminal state (completed, failed, canceled) whose
   * finishedAt is before `finishedBefore`, oldest first, with their tokens, claims, events, log
   * entries and output (their files live in the spec). A queued, processing or errored job is never
   * deleted, whatever its age. `finishedBefore` is a time, compared as given (retention is hours).
   * One bounded statement or transaction per call: the caller loops while a full batch came back.
   */
  pruneFinishedJobs(finishedBefore: number, limit: number): Promise<PruneResult>;
  /**
   * Log retention: for at most `limit` terminal jobs finished before `finishedBefore` whose output
   * was not dropped yet, deletes every entry's output and leaves PRUNED_OUTPUT_MARKER in its place
   * (entries with no output stay empty); keys, commands, exit codes and the job row stay.
   */
  pruneLogOutput(finishedBefore: number, limit: number): Promise<PruneResult>;
  /**
   * Gives freed space back to the file system where the database does not do it by itself: SQLite
   * returns up to `maxPages` free pages (incremental vacuum) and answers how many it returned;
   * PostgreSQL answers 0 (autovacuum reuses the space; see docs/operating.md).
   */
  reclaimSpace(maxPages: number): Promise<number>;
  /**
   * Registers a mirrored repository. An existing row of that name is left as it is and returned
   * with `created: false` (the caller compares its URL), unless `replace` is set, which overwrites
   * its URL, credential and source (the repositories file is authoritative for its entries).
   */
  addRepository(
    r: NewRepository,
    now: number,
    opts?: { replace?: boolean },
  ): Promise<{ repository: RepositoryRecord; created: boolean }>;
  getRepository(name: string): Promise<RepositoryRecord | null>;
  /** Every registered repository, by name. */
  listRepositories(): Promise<RepositoryRecord[]>;
  /** Deletes the registration; false when there was none. */
  removeRepository(name: string): Promise<boolean>;
  /** Records the state and outcome of a sync; null when the repository is not registered. */
  recordRepositorySync(name: string, sync: RepositorySync): Promise<RepositoryRecord | null>;

  /**
   * Optional: calls `cb(queue)` when a job of `queue` becomes queued (enqueue, retry, stalled reset),
   * so long-polling dequeues can wake at once. SQLite: in-process; PostgreSQL: LISTEN/NOTIFY on
   * channel `executor_jobs`, so replicas hear each other. Returns the unsubscribe function. A wake-up
   * is a hint, never a claim: the woken caller still dequeues.
   */
  onEnqueue?(cb: (queue: string) => void): () => void;

  /**
   * Optional, for stores shared by server replicas (PostgreSQL): `announceLogWrite(jobId)` tells the
   * other replicas that a job's log or state changed (best effort) while any of them follows logs
   * (`followLogs()` until its release; settles once the others can tell, or on failure);
   * `onLogWrite` hears the others' announcements (the server wakes its own followers in-process).
   * A wake-up is a hint: the follower reads the store.
   */
  announceLogWrite?(jobId: number): void;
  onLogWrite?(cb: (jobId: number) => void): () => void;
  followLogs?(): Promise<() => void>;
}

/** Backoff before the n-th retry (n >= 1). */
export function retryDelayMs(policy: RetryPolicy, n: number): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, n - 1));
}
