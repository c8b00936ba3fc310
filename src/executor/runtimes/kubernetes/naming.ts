/**
 * Names, labels and Secret keys of the objects of one job. Names are valid DNS labels (lowercase, at
 * most 63 characters, a hash suffix when cut) and include the queue of a multi-queue job and the
 * attempt, so two jobs with the same id in different queues and two attempts of one job never
 * collide. Labels name the executor, its host and the job, for teardown and the orphan janitor.
 */
import { createHash } from 'node:crypto';
import type { Job } from '../../../protocol/job.js';

/** What identifies the executor and the job on every object, for teardown and the orphan janitor. */
export interface JobIdentity {
  executorName: string;
  hostname: string;
  job: Pick<Job, 'id' | 'queue' | 'attempt'>;
  /** EXECUTOR_QUEUE_NAME in single-queue mode; used when the job carries no queue. */
  queueName?: string;
}

export const LABELS = {
  name: 'executor.name',
  host: 'executor.host',
  job: 'executor.job',
  attempt: 'executor.attempt',
} as const;
/** Set by the Job controller on every pod of a Job. */
export const JOB_NAME_LABEL = 'job-name';
/** Key of the job token in the job's Secret, and the name of the env var that carries it. */
export const TOKEN_KEY = 'TOKEN';

function shortHash(s: string, n = 8): string {
  return createHash('sha256').update(s).digest('hex').slice(0, n);
}

/**
 * A DNS-1123 label (lowercase alnum and `-`, alnum at both ends, at most `max` characters; dots
 * allowed with `allowDots`). Text that had to be cut or changed gets a hash of the original, so
 * distinct inputs stay distinct.
 */
export function dnsLabel(text: string, max = 63, allowDots = false): string {
  const bad = allowDots ? /[^a-z0-9.-]+/g : /[^a-z0-9-]+/g;
  let s = text.toLowerCase().replace(bad, '-');
  s = s.replace(/^[^a-z0-9]+/, '').replace(/[^a-z0-9]+$/, '');
  if (s === text && s.length <= max && s.length > 0) return s;
  const suffix = shortHash(text);
  const head = s.slice(0, max - suffix.length - 1).replace(/[^a-z0-9]+$/, '');
  return head ? `${head}-${suffix}` : suffix;
}

/** A label value: at most 63 of `[A-Za-z0-9_.-]`, alnum at both ends (a hash when cut). */
export function labelValue(text: string): string {
  let s = text.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (s === text && s.length <= 63) return s;
  const suffix = shortHash(text);
  s = s.slice(0, 63 - suffix.length - 1).replace(/[^A-Za-z0-9]+$/, '');
  return s ? `${s}-${suffix}` : suffix;
}

/**
 * `sg-executor-job-<queue>-<jobID>` (plus `-a<attempt>` from the second attempt on): the single
 * pod's Job, and the stem of the Secret, the PVC and the multi-pod step Jobs.
 */
export function jobBaseName(id: JobIdentity): string {
  const queue = id.job.queue ?? id.queueName ?? '';
  const attempt = id.job.attempt && id.job.attempt > 1 ? `-a${id.job.attempt}` : '';
  // Leave room for `-secrets` and a step suffix.
  return dnsLabel(`sg-executor-job-${queue}-${id.job.id}${attempt}`, 46);
}

export const secretName = (base: string) => `${base}-secrets`;
export const pvcName = (base: string) => `${base}-pvc`;

/** Multi-pod: `<base>-<step key>`, key with dots (e.g. `…-42-step.kubernetes.build`). */
export function stepJobName(base: string, stepKey: string): string {
  return dnsLabel(`${base}-${stepKey}`, 63, true);
}

/** Container name of a step: the key with `.` -> `-` (`step-kubernetes-build`). */
export function stepContainerName(stepKey: string): string {
  return dnsLabel(stepKey.replaceAll('.', '-'));
}

export function objectLabels(id: JobIdentity): Record<string, string> {
  const uid = id.job.queue ? `${id.job.id}-${id.job.queue}` : String(id.job.id);
  return {
    [LABELS.name]: labelValue(id.executorName),
    [LABELS.host]: labelValue(id.hostname),
    [LABELS.job]: labelValue(uid),
    ...(id.job.attempt ? { [LABELS.attempt]: String(id.job.attempt) } : {}),
  };
}

/** Label selector of everything one executor host created. */
export function hostSelector(hostname: string): string {
  return `${LABELS.host}=${labelValue(hostname)}`;
}

/** Secret key of a job file: a hash of its path (paths are not valid keys). */
export function fileKey(rel: string): string {
  return `file-${shortHash(rel, 32)}`;
}

export function envKey(stepIndex: number, envIndex: number): string {
  return `env-${stepIndex}-${envIndex}`;
}
