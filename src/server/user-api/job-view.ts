/**
 * What users see of a job. Secrets appear as names only (`secrets: ["NAME"]`); their values are
 * never part of a user-API response, and failure messages and log output are masked once more.
 */
import type { JobSpec } from '../../protocol/job-spec.js';
import type { JobEventView, JobView, LogEntryView, PublicSpec } from '../../protocol/user-api.js';
import type { JobEventRecord, JobRecord, LogEntryRecord } from '../../store/types.js';
import { maskSecrets } from '../executor-api/mask-secrets.js';

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export function publicSpec(spec: JobSpec): PublicSpec {
  const { secrets, ...rest } = spec;
  return secrets ? { ...rest, secrets: Object.keys(secrets) } : rest;
}

export function secretValues(job: JobRecord): string[] {
  return Object.values(job.spec.secrets ?? {});
}

export function jobView(job: JobRecord): JobView {
  return {
    id: job.id,
    queue: job.queue,
    state: job.state,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    numFailures: job.numFailures,
    numResets: job.numResets,
    cancelRequested: job.cancel,
    failureMessage: job.failureMessage === null ? null : maskSecrets(job.failureMessage, secretValues(job)),
    priority: job.priority,
    timeoutMs: job.timeoutMs,
    repositoryName: job.repositoryName || null,
    commit: job.commit || null,
    executor: job.workerHostname,
    createdAt: iso(job.createdAt),
    queuedAt: iso(job.queuedAt),
    processAfter: isoOrNull(job.processAfter),
    startedAt: isoOrNull(job.startedAt),
    lastHeartbeatAt: isoOrNull(job.lastHeartbeatAt),
    finishedAt: isoOrNull(job.finishedAt),
    spec: publicSpec(job.spec),
  };
}

export function logEntryView(e: LogEntryRecord, secrets: string[]): LogEntryView {
  return {
    attempt: e.attempt,
    entryId: e.entryId,
    key: e.key,
    command: e.command ? e.command.map((c) => maskSecrets(c, secrets)) : null,
    ...(e.commandTruncated ? { commandTruncated: true } : {}),
    startTime: e.startTime,
    exitCode: e.exitCode,
    durationMs: e.durationMs,
    outLength: e.outLength,
    truncated: e.truncated,
    ...(e.out !== undefined ? { out: maskSecrets(e.out, secrets) } : {}),
  };
}

export function jobEventView(e: JobEventRecord): JobEventView {
  return { at: iso(e.at), actor: e.actor, action: e.action };
}
