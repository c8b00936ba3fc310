/** Row shapes of the SQLite schema and their mapping to the Store's records. */
import type { ExecutorRecord, JobRecord, JobState, LogEntryRecord } from '../types.js';

export interface JobRow {
  id: number;
  queue: string;
  state: JobState;
  spec: string;
  repository_name: string;
  commit_sha: string;
  priority: number;
  max_attempts: number;
  attempts: number;
  num_failures: number;
  num_resets: number;
  cancel: number;
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

export function toJob(r: JobRow): JobRecord {
  return {
    id: r.id,
    queue: r.queue,
    state: r.state,
    spec: JSON.parse(r.spec),
    repositoryName: r.repository_name,
    commit: r.commit_sha,
    priority: r.priority,
    maxAttempts: r.max_attempts,
    attempts: r.attempts,
    numFailures: r.num_failures,
    numResets: r.num_resets,
    cancel: r.cancel === 1,
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

export interface LogEntryRow {
  job_id: number;
  attempt: number;
  entry_id: number;
  key: string;
  command: string | null;
  start_time: string;
  exit_code: number | null;
  duration_ms: number | null;
  out_length: number;
  truncated: number;
}

export function toLogEntry(r: LogEntryRow): LogEntryRecord {
  return {
    jobId: r.job_id,
    attempt: r.attempt,
    entryId: r.entry_id,
    key: r.key,
    command: r.command === null ? null : JSON.parse(r.command),
    startTime: r.start_time,
    exitCode: r.exit_code,
    durationMs: r.duration_ms,
    outLength: r.out_length,
    truncated: r.truncated === 1,
  };
}

export interface ExecutorRow {
  name: string;
  hostname: string;
  queue_name: string | null;
  queue_names: string | null;
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

export function toExecutor(r: ExecutorRow): ExecutorRecord {
  return {
    name: r.name,
    hostname: r.hostname,
    queueName: r.queue_name,
    queueNames: r.queue_names === null ? null : JSON.parse(r.queue_names),
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
