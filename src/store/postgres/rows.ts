/**
 * Row shapes of the PostgreSQL schema and their mapping to the Store's records. BIGINT columns arrive
 * as numbers (the pool's type parser; every value is a millisecond time or a count far below 2^53),
 * JSON as parsed values, arrays as arrays, BYTEA as Buffers.
 */
import type { JobSpec } from '../../protocol/job-spec.js';
import type { ExecutorRecord, JobRecord, JobState, LogEntryRecord } from '../types.js';

export interface PgJobRow {
  id: number;
  queue: string;
  state: JobState;
  spec: JobSpec;
  repository_name: string;
  commit_sha: string;
  priority: number;
  max_attempts: number;
  attempts: number;
  num_failures: number;
  num_resets: number;
  cancel: boolean;
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

export function toJob(r: PgJobRow): JobRecord {
  return {
    id: r.id,
    queue: r.queue,
    state: r.state,
    spec: r.spec,
    repositoryName: r.repository_name,
    commit: r.commit_sha,
    priority: r.priority,
    maxAttempts: r.max_attempts,
    attempts: r.attempts,
    numFailures: r.num_failures,
    numResets: r.num_resets,
    cancel: r.cancel,
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
}

export interface PgLogEntryRow {
  job_id: number;
  attempt: number;
  entry_id: number;
  key: string;
  command: string[] | null;
  start_time: string;
  exit_code: number | null;
  duration_ms: number | null;
  out_length: number;
  truncated: boolean;
}

export function toLogEntry(r: PgLogEntryRow): LogEntryRecord {
  return {
    jobId: r.job_id,
    attempt: r.attempt,
    entryId: r.entry_id,
    key: r.key,
    command: r.command,
    startTime: r.start_time,
    exitCode: r.exit_code,
    durationMs: r.duration_ms,
    outLength: r.out_length,
    truncated: r.truncated,
  };
}

export interface PgExecutorRow {
  name: string;
  hostname: string;
  queue_name: string | null;
  queue_names: string[] | null;
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

export function toExecutor(r: PgExecutorRow): ExecutorRecord {
  return {
    name: r.name,
    hostname: r.hostname,
    queueName: r.queue_name,
    queueNames: r.queue_names,
    os: r.os,
    architecture: r.architecture,
    dockerVersion: r.docker_version,
    executorVersion: r.executor_version,
    gitVersion: r.git_version,
    igniteVersion: r.ignite_version,
    srcCliVersion: r.src_cli_version,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    metrics: r.metrics,
  };
}
