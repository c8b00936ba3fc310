/**
 * Names, labels and Secret keys of the objects of one job, by one derivation scheme (deriveName):
 * every name is valid for its kind (a DNS-1123 label for containers and the job's base name, a
 * subdomain of at most 63 characters for step Jobs, a label value for labels) and distinct inputs
 * give distinct names, whatever the step keys, queue, executor name and job id. Names include the
 * queue of a multi-queue job and the attempt, so two jobs with the same id in different queues and
 * two attempts of one job never collide; steps with the same key get distinct names. Labels name
 * the executor, its host and the job, for teardown and the orphan janitor.
 */
import { createHash } from 'node:crypto';
import type { Job } from '../../../protocol/job.js';
import { KUBERNETES_STEP_PREFIX } from '../common.js';

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

/** Hex digits of the hash a changed or repeated name carries (40 bits). */
const HASH_LEN = 10;
/** How every hashed name ends; a name kept as given may not end like this. */
const HASH_SHAPED = new RegExp(`(^|-)[0-9a-f]{${HASH_LEN}}$`);
const LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Kubernetes' length limits: a label (and a label value) at most 63, a subdomain at most 253. */
export const MAX_LABEL = 63;
/** Room left in a base name for `-secrets`, `-pvc` and a multi-pod step Job's suffix. */
export const MAX_BASE = 46;

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, HASH_LEN);
}

interface NameRule {
  /** Whether `text` is valid as it is. */
  valid: RegExp;
  /** Characters that are replaced (runs of them by one `-`). */
  bad: RegExp;
  /** What a name may not start or end with. */
  edge: RegExp;
  lower: boolean;
  /** Dots allowed between alphanumerics (a subdomain). */
  dots: boolean;
  /** Separates the hashes of one kind of name from another's. */
  kind: string;
}

/**
 * The one name-derivation scheme: `text` itself when it is valid under `rule`, at most `max`
 * characters and not ending like a hash suffix; otherwise its sanitised head, `-` and a hash of
 * the raw text (and `salt`, which forces the hashed form). Injective: a name kept as given never
 * ends in `-<hash>`, a hashed one always does, and two hashed names differ by their hash.
 */
function deriveName(text: string, max: number, rule: NameRule, salt?: string): string {
  if (salt === undefined && text.length <= max && rule.valid.test(text) && !HASH_SHAPED.test(text)) {
    return text;
  }
  const suffix = shortHash(`${rule.kind}\n${salt ?? ''}\n${text}`);
  let s = rule.lower ? text.toLowerCase() : text;
  s = s.replace(rule.bad, '-');
  if (rule.dots) s = s.replace(/[.-]*\.[.-]*/g, '.'); // every dot between alphanumerics
  const head = s.slice(0, max - HASH_LEN - 1).replace(rule.edge, '');
  return head ? `${head}-${suffix}` : suffix;
}

const LABEL: NameRule = {
  valid: LABEL_RE,
  bad: /[^a-z0-9-]+/g,
  edge: /^[^a-z0-9]+|[^a-z0-9]+$/g,
  lower: true,
  dots: false,
  kind: 'label',
};
const SUBDOMAIN: NameRule = {
  valid: SUBDOMAIN_RE,
  bad: /[^a-z0-9.-]+/g,
  edge: /^[^a-z0-9]+|[^a-z0-9]+$/g,
  lower: true,
  dots: true,
  kind: 'subdomain',
};
const LABEL_VALUE: NameRule = {
  valid: LABEL_VALUE_RE,
  bad: /[^A-Za-z0-9_.-]+/g,
  edge: /^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g,
  lower: false,
  dots: false,
  kind: 'label-value',
};

/** A DNS-1123 label (lowercase alnum and `-`, alnum at both ends) of at most `max` characters. */
export function dnsLabel(text: string, max = MAX_LABEL, salt?: string): string {
  return deriveName(text, max, LABEL, salt);
}

/** A DNS-1123 subdomain (dot-separated labels) of at most `max` characters. */
export function dnsSubdomain(text: string, max = MAX_LABEL, salt?: string): string {
  return deriveName(text, max, SUBDOMAIN, salt);
}

/** A label value: at most 63 of `[A-Za-z0-9_.-]`, alnum at both ends. */
export function labelValue(text: string): string {
  return deriveName(text, MAX_LABEL, LABEL_VALUE);
}

/**
 * `sg-executor-job-<queue>-<jobID>` (plus `-a<attempt>` from the second attempt on): the single
 * pod's Job, and the stem of the Secret, the PVC and the multi-pod step Jobs. The raw text is
 * injective (read from the end: the attempt `a<n>`, then the id, digits or `n<digits>`, then the
 * queue) and has no dot once derived, so a step Job's `<base>-step.kubernetes.…` never equals
 * another job's base.
 */
export function jobBaseName(id: JobIdentity): string {
  const queue = id.job.queue ?? id.queueName ?? '';
  const attempt = id.job.attempt && id.job.attempt > 1 ? `-a${id.job.attempt}` : '';
  // `n5` for -5: a `-` would let queue `q-` and id 5 meet queue `q` and id -5.
  const jobId = id.job.id < 0 ? `n${-id.job.id}` : String(id.job.id);
  return dnsLabel(`sg-executor-job-${queue}-${jobId}${attempt}`, MAX_BASE);
}

export const secretName = (base: string) => `${base}-secrets`;
export const pvcName = (base: string) => `${base}-pvc`;

/**
 * One name per step, distinct: `name(key)` unless an earlier step (or a reserved name) has it,
 * then `name(key, salt)` with a salt naming the step's index, which forces a hashed form.
 */
function distinctNames(
  keys: readonly string[],
  name: (key: string, salt?: string) => string,
  reserved: readonly string[] = [],
): string[] {
  const taken = new Set(reserved);
  return keys.map((key, i) => {
    let n = name(key);
    for (let round = 0; taken.has(n); round++) n = name(key, `${i}:${round}`);
    taken.add(n);
    return n;
  });
}

/**
 * Multi-pod: the Job of each step, `<base>-<step key>` keeping the key's dots when they are valid
 * (`…-42-step.kubernetes.build`), a DNS subdomain of at most 63 characters (the Job name is also
 * the `job-name` label value of its pods), distinct across the job's steps.
 */
export function stepJobNames(base: string, stepKeys: readonly string[]): string[] {
  return distinctNames(stepKeys, (key, salt) => dnsSubdomain(`${base}-${key}`, MAX_LABEL, salt));
}

const CONTAINER_PREFIX = `${KUBERNETES_STEP_PREFIX.replaceAll('.', '-')}-`;

/**
 * Container names of a job's steps: `step-kubernetes-<key>` for a key that is a DNS label
 * (`step.kubernetes.build` -> `step-kubernetes-build`), the key's sanitised head and a hash
 * otherwise; distinct across the steps and from `reserved` (the pod's other containers).
 */
export function stepContainerNames(stepKeys: readonly string[], reserved: readonly string[] = []): string[] {
  const prefix = `${KUBERNETES_STEP_PREFIX}.`;
  return distinctNames(
    stepKeys,
    (key, salt) =>
      key.startsWith(prefix)
        ? `${CONTAINER_PREFIX}${dnsLabel(key.slice(prefix.length), MAX_LABEL - CONTAINER_PREFIX.length, salt)}`
        : dnsLabel(`-${key}`, MAX_LABEL, salt), // never `step-kubernetes-…` as given
    reserved,
  );
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
  return `file-${createHash('sha256').update(rel).digest('hex').slice(0, 32)}`;
}

export function envKey(stepIndex: number, envIndex: number): string {
  return `env-${stepIndex}-${envIndex}`;
}
