/**
 * Row shapes both schemas share and the one mapping of each to the Store's records. The twins'
 * columns have the same names and meanings; they differ only in how a driver hands over a JSON or
 * list column (SQLite: JSON text; PostgreSQL: the parsed value or array) and a boolean column
 * (SQLite: 0/1; PostgreSQL: a boolean). Times and counts are numbers in both (PostgreSQL's BIGINT
 * through the pool's type parser). Each twin binds the mappers to its `RowCodec` once, in its own
 * rows.ts.
 */
import { decodeCommandPrefix } from './command-prefix.js';
import type {
  ClaimOutcome,
  ClaimRecord,
  ExecutorHeartbeat,
  ExecutorRecord,
  ExecutorSummary,
  JobAction,
  JobEventRecord,
  JobRecord,
  JobState,
  LogEntryRecord,
  NewJob,
  QueueStats,
} from './types.js';

/** How one driver reads a JSON or list column (`J`) and a boolean column (`B`), and writes a list. */
export interface RowCodec<J, B> {
  json(v: J): unknown;
  bool(v: B): boolean;
  /** A list of strings as the driver binds it to a list column (executors.queue_names). */
  list(v: string[]): unknown;
}

export interface JobRow<J, B> {
  id: number;
  queue: string;
  state: JobState;
  spec: J;
  repository_name: string;
  commit_sha: string;
  priority: number;
  max_attempts: number;
  attempts: number;
  num_failures: number;
  num_resets: number;
  cancel: B;
  worker_hostname: string | null;
  failure_message: string | null;
  timeout_ms: number;
  created_at: number;
  queued_at: number;
  process_after: number | null;
  started_at: number | null;
  last_heartbeat_at: number | null;
  finished_at: number | null;
}

export interface LogEntryRow<J, B> {
  job_id: number;
  attempt: number;
  entry_id: number;
  key: string;
  command: J | null;
  start_time: string;
  exit_code: number | null;
  duration_ms: number | null;
  out_length: number;
  /** Bytes of key and command, counted against the per-attempt cap. */
  meta_bytes: number;
  truncated: B;
  /** The start of the command's JSON text, when read with a command limit it exceeds (command is then null). */
  command_prefix?: string | null;
}

/** Every column of `executors` but the metrics text (up to EXECUTOR_SERVER_MAX_EXECUTOR_METRICS a row). */
export const EXECUTOR_SUMMARY_COLUMNS = `name, hostname, queue_name, queue_names, os, architecture, docker_version,
  executor_version, git_version, ignite_version, src_cli_version, first_seen_at, last_seen_at`;

export interface ExecutorRow<J> {
  name: string;
  hostname: string;
  queue_name: string | null;
  queue_names: J | null;
  os: string;
  architecture: string;
  docker_version: string;
  executor_version: string;
  git_version: string;
  ignite_version: string;
  src_cli_version: string;
  first_seen_at: number;
  last_seen_at: number;
  metrics: string;
}

/** A `job_claims` row; the same in both schemas. */
export interface ClaimRow {
  job_id: number;
  attempt: number;
  executor_name: string;
  claimed_at: number;
  ended_at: number | null;
  outcome: ClaimOutcome | null;
}

/** The claim history's columns in record order; both twins select them, oldest claim first. */
export const CLAIM_COLUMNS = 'job_id, attempt, executor_name, claimed_at, ended_at, outcome';

export function toClaimRecord(r: ClaimRow): ClaimRecord {
  return {
    jobId: r.job_id,
    attempt: r.attempt,
    executorName: r.executor_name,
    claimedAt: r.claimed_at,
    endedAt: r.ended_at,
    outcome: r.outcome,
  };
}

/** A `job_events` row; the same in both schemas. */
export interface JobEventRow {
  job_id: number;
  at: number;
  actor: string;
  action: JobAction;
}

/** The audit trail's columns in record order; both twins select them, oldest event first. */
export const JOB_EVENT_COLUMNS = 'job_id, at, actor, action';

export function toJobEvent(r: JobEventRow): JobEventRecord {
  return { jobId: r.job_id, at: r.at, actor: r.actor, action: r.action };
}

/** A row of the queue-stats aggregate (both twins name its columns so). */
export interface QueueStatsRow {
  queue: string;
  queued: number;
  processing: number;
  oldest: number | null;
}

export function toQueueStats(r: QueueStatsRow): QueueStats {
  return { queue: r.queue, queued: r.queued, processing: r.processing, oldestQueuedAt: r.oldest };
}

/**
 * The executor upsert's conflict clause, the same in both schemas: every column but first_seen_at
 * is replaced, so an executor keeps the time it was first seen.
 */
export const EXECUTOR_ON_CONFLICT = `ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, queue_name = excluded.queue_name,
           queue_names = excluded.queue_names, os = excluded.os, architecture = excluded.architecture,
           docker_version = excluded.docker_version, executor_version = excluded.executor_version,
           git_version = excluded.git_version, ignite_version = excluded.ignite_version,
           src_cli_version = excluded.src_cli_version, last_seen_at = excluded.last_seen_at,
           metrics = excluded.metrics`;

/**
 * The values of the jobs columns an enqueue writes first, in this order: queue, spec (JSON text),
 * repository_name, commit_sha, priority, max_attempts, timeout_ms.
 */
export function jobValues(job: NewJob): unknown[] {
  return [
    job.queue,
    JSON.stringify(job.spec),
    job.repositoryName,
    job.commit,
    job.priority,
    job.maxAttempts,
    job.timeoutMs,
  ];
}

/** The record mappers of one driver, and the executor values it binds. */
export function createRowMappers<J, B>(c: RowCodec<J, B>) {
  /** An executor row read without its metrics text (EXECUTOR_SUMMARY_COLUMNS). */
  const toExecutorSummary = (r: Omit<ExecutorRow<J>, 'metrics'>): ExecutorSummary => {
    return {
      name: r.name,
      hostname: r.hostname,
      queueName: r.queue_name,
      queueNames: r.queue_names === null ? null : (c.json(r.queue_names) as string[]),
      os: r.os,
      architecture: r.architecture,
      dockerVersion: r.docker_version,
      executorVersion: r.executor_version,
      gitVersion: r.git_version,
      igniteVersion: r.ignite_version,
      srcCliVersion: r.src_cli_version,
      firstSeenAt: r.first_seen_at,
      lastSeenAt: r.last_seen_at,
    };
  };
  return {
    toJob(r: JobRow<J, B>): JobRecord {
      return {
        id: r.id,
        queue: r.queue,
        state: r.state,
        spec: c.json(r.spec) as JobRecord['spec'],
        repositoryName: r.repository_name,
        commit: r.commit_sha,
        priority: r.priority,
        maxAttempts: r.max_attempts,
        attempts: r.attempts,
        numFailures: r.num_failures,
        numResets: r.num_resets,
        cancel: c.bool(r.cancel),
        workerHostname: r.worker_hostname,
        failureMessage: r.failure_message,
        timeoutMs: r.timeout_ms,
        createdAt: r.created_at,
        queuedAt: r.queued_at,
        processAfter: r.process_after,
        startedAt: r.started_at,
        lastHeartbeatAt: r.last_heartbeat_at,
        finishedAt: r.finished_at,
      };
    },

    toLogEntry(r: LogEntryRow<J, B>): LogEntryRecord {
      return {
        jobId: r.job_id,
        attempt: r.attempt,
        entryId: r.entry_id,
        key: r.key,
        command:
          typeof r.command_prefix === 'string'
            ? decodeCommandPrefix(r.command_prefix)
            : r.command === null
              ? null
              : (c.json(r.command) as string[]),
        startTime: r.start_time,
        exitCode: r.exit_code,
        durationMs: r.duration_ms,
        outLength: r.out_length,
        truncated: c.bool(r.truncated),
        ...(typeof r.command_prefix === 'string' ? { commandTruncated: true } : {}),
      };
    },

    toExecutor(r: ExecutorRow<J>): ExecutorRecord {
      return { ...toExecutorSummary(r), metrics: r.metrics };
    },

    toExecutorSummary,

    /**
     * The values of the executors columns an upsert writes first, in column order: name, hostname,
     * queue_name, queue_names, os, architecture, docker_version, executor_version, git_version,
     * ignite_version, src_cli_version.
     */
    executorValues(hb: ExecutorHeartbeat): unknown[] {
      return [
        hb.name,
        hb.hostname,
        hb.queueName,
        hb.queueNames === null ? null : c.list(hb.queueNames),
        hb.os,
        hb.architecture,
        hb.dockerVersion,
        hb.executorVersion,
        hb.gitVersion,
        hb.igniteVersion,
        hb.srcCliVersion,
      ];
    },
  };
}
