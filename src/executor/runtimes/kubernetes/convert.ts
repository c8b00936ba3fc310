/**
 * Pure conversion of a job into Kubernetes objects (Sourcegraph `command/kubernetes.go`): the Job of
 * the single job pod, one Job per step in multi-pod mode, the job's Secret and PVC, names, labels,
 * the setup script and the classification of pod statuses. No I/O: every rule has a unit test.
 *
 * Differences from the reference, each on purpose:
 *   - pods run with a restricted security context by default (runAsNonRoot, no privilege
 *     escalation, every capability dropped, seccomp RuntimeDefault), no service account token and
 *     an optional runtimeClassName (e.g. gVisor);
 *   - nothing secret is in a pod spec: the job token, step env values and the job's files live in
 *     the job's Secret and reach the pod through secretKeyRef or a volume mounted only into
 *     `setup-workspace`;
 *   - names are valid DNS labels (lowercase, at most 63 characters, a hash suffix when cut) and
 *     include the queue of a multi-queue job, so two jobs with the same id in different queues and
 *     two attempts of one job never collide.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Job } from '../../../protocol/job.js';
import { ZERO_TIME } from '../../../protocol/job.js';
import { buildScript, SCRIPTS_DIR, scriptName } from '../../workspace/files.js';
import type { RunSpec } from '../types.js';

// ---- minimal Kubernetes object shapes (only the fields we write or read) ----

export type KubeObject = Record<string, unknown>;

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  resourceVersion?: string;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string; readOnly?: boolean }>;
  securityContext?: KubeObject;
}

export interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: KubeObject[];
  restartPolicy: 'Never';
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  affinity?: KubeObject;
  tolerations?: KubeObject[];
  imagePullSecrets?: Array<{ name: string }>;
  securityContext?: KubeObject;
  activeDeadlineSeconds?: number;
  runtimeClassName?: string;
  automountServiceAccountToken?: boolean;
  enableServiceLinks?: boolean;
}

export interface KubeJob {
  apiVersion: 'batch/v1';
  kind: 'Job';
  metadata: ObjectMeta;
  spec: {
    backoffLimit: number;
    template: { metadata: ObjectMeta; spec: PodSpec };
  };
}

export interface ContainerStateSet {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode: number; reason?: string; message?: string };
}

export interface ContainerStatus {
  name: string;
  image?: string;
  state?: ContainerStateSet;
}

export interface Pod {
  metadata: ObjectMeta;
  spec?: Partial<PodSpec>;
  status?: {
    phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
    reason?: string;
    message?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

// ---- settings (the KUBERNETES_* and EXECUTOR_KUBERNETES_* variables) ----

export interface KubernetesSettings {
  namespace: string;
  nodeName?: string;
  nodeSelector: Record<string, string>;
  nodeRequiredAffinityMatchExpressions: KubeObject[];
  nodeRequiredAffinityMatchFields: KubeObject[];
  podAffinity: KubeObject[];
  podAntiAffinity: KubeObject[];
  tolerations: KubeObject[];
  persistenceVolumeName: string;
  resourceLimitCpu?: string;
  resourceRequestCpu?: string;
  resourceLimitMemory?: string;
  resourceRequestMemory?: string;
  jobDeadlineSeconds: number;
  /** Only applied when > 0. */
  runAsUser: number;
  /** Only applied when > 0. */
  runAsGroup: number;
  /** Only applied when > 0. */
  fsGroup: number;
  runAsNonRoot: boolean;
  singleJobPod: boolean;
  jobVolumeType: 'emptyDir' | 'pvc';
  jobVolumeSize: string;
  additionalJobVolumes: KubeObject[];
  additionalJobVolumeMounts: Array<{ name: string; mountPath: string } & KubeObject>;
  singleJobStepImage: string;
  gitCaCert?: string;
  jobAnnotations: Record<string, string>;
  jobPodAnnotations: Record<string, string>;
  imagePullSecrets: string[];
  runtimeClassName?: string;
}

/** What identifies the executor and the job on every object, for teardown and the orphan janitor. */
export interface JobIdentity {
  executorName: string;
  hostname: string;
  job: Pick<Job, 'id' | 'queue' | 'attempt'>;
  /** EXECUTOR_QUEUE_NAME in single-queue mode; used when the job carries no queue. */
  queueName?: string;
}

// ---- names and labels ----

export const LABELS = {
  name: 'executor.name',
  host: 'executor.host',
  job: 'executor.job',
  attempt: 'executor.attempt',
} as const;
/** Set by the Job controller on every pod of a Job. */
export const JOB_NAME_LABEL = 'job-name';
export const JOB_MOUNT_PATH = '/job';
export const INPUT_MOUNT_PATH = '/job-input';
export const DATA_VOLUME = 'job-data';
export const INPUT_VOLUME = 'job-input';
export const MULTI_POD_VOLUME = 'sg-executor-job-volume';
export const SETUP_CONTAINER = 'setup-workspace';
export const MAIN_CONTAINER = 'main';
export const TOKEN_KEY = 'TOKEN';
export const NEXT_INDEX_SCRIPT = 'nextIndex.sh';
export const SKIP_FILE = 'skip.json';
/** A Secret's data may not exceed 1 MiB (etcd object limit); leave room for metadata. */
export const SECRET_MAX_BYTES = 1024 * 1024 - 16 * 1024;

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

/** `step.kubernetes.<key or i>`. */
export function stepKey(job: Pick<Job, 'dockerSteps'>, i: number): string {
  return `step.kubernetes.${job.dockerSteps[i]?.key || i}`;
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

// ---- shell ----

/** Single-quotes for sh: `'` becomes `'"'"'`. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/**
 * Prints `skip` when `$1` (skip.json) names a next step and `$2` is not that step. Reaching the
 * named step removes the file, so later steps run again (the handler's skip-until-key rule).
 * POSIX sh and sed only: it runs in every step image.
 */
export const NEXT_INDEX_SH = `#!/bin/sh
f="$1"; key="$2"
[ -f "$f" ] || exit 0
next=$(sed -n 's/.*"nextStep"[[:space:]]*:[[:space:]]*"\\([^"]*\\)".*/\\1/p' "$f" | head -n 1)
[ -n "$next" ] || { rm -f "$f"; exit 0; }
if [ "$key" = "step.kubernetes.$next" ]; then rm -f "$f"; else echo skip; fi
`;

// ---- job input: files, scripts and secrets ----

export interface InputFile {
  /** Path relative to the workspace. */
  rel: string;
  content: Buffer;
  /** RFC 3339, or undefined. */
  modifiedAt?: string;
}

/** Rejects absolute paths and `..` segments: job files stay inside the workspace. */
export function confinedPath(rel: string): string {
  const norm = path.posix.normalize(rel.replaceAll('\\', '/'));
  if (rel === '' || path.posix.isAbsolute(norm) || norm === '..' || norm.startsWith('../')) {
    throw new Error(`refusing to write outside of working directory: ${rel}`);
  }
  return norm;
}

/** Secret key of a job file: a hash of its path (paths are not valid keys). */
export function fileKey(rel: string): string {
  return `file-${shortHash(rel, 32)}`;
}

export function envKey(stepIndex: number, envIndex: number): string {
  return `env-${stepIndex}-${envIndex}`;
}

/**
 * Everything the pod needs from the job, resolved on the executor: job files (downloaded
 * already), one script per step, and nextIndex.sh. Scripts are in the Secret too: commands may
 * carry secrets.
 */
export function inputFiles(job: Job, resolved: ReadonlyMap<string, Buffer>): InputFile[] {
  const out: InputFile[] = [];
  for (const [rel, f] of Object.entries(job.files)) {
    const content = f.content && f.content.length > 0 ? f.content : resolved.get(rel);
    if (content === undefined && f.bucket) throw new Error(`job file ${rel} was not downloaded`);
    out.push({
      rel: confinedPath(rel),
      content: content ?? Buffer.alloc(0),
      modifiedAt: f.modifiedAt && f.modifiedAt !== ZERO_TIME ? f.modifiedAt : undefined,
    });
  }
  job.dockerSteps.forEach((step, i) => {
    out.push({
      rel: `${SCRIPTS_DIR}/${scriptName(job, i)}`,
      content: Buffer.from(buildScript(step.commands)),
    });
  });
  out.push({ rel: NEXT_INDEX_SCRIPT, content: Buffer.from(NEXT_INDEX_SH) });
  return out;
}

/** `touch -d` syntax of busybox and GNU: `YYYY-MM-DD hh:mm:ss` in UTC. */
export function touchTime(rfc3339: string): string | undefined {
  const t = new Date(rfc3339);
  if (Number.isNaN(t.getTime())) return undefined;
  return t.toISOString().slice(0, 19).replace('T', ' ');
}

/** The job's Secret: token, step env values and input files. Throws when it exceeds 1 MiB. */
export function buildSecret(
  job: Job,
  base: string,
  id: JobIdentity,
  files: readonly InputFile[],
  namespace: string,
): KubeObject {
  const data: Record<string, string> = { [TOKEN_KEY]: Buffer.from(job.token).toString('base64') };
  job.dockerSteps.forEach((step, i) => {
    step.env.forEach((kv, j) => {
      const eq = kv.indexOf('=');
      data[envKey(i, j)] = Buffer.from(eq < 0 ? '' : kv.slice(eq + 1)).toString('base64');
    });
  });
  for (const f of files) data[fileKey(f.rel)] = f.content.toString('base64');
  const size = Object.entries(data).reduce((n, [k, v]) => n + k.length + (v.length * 3) / 4, 0);
  if (size > SECRET_MAX_BYTES) {
    throw new Error(
      `the job's files, scripts and env take ${Math.ceil(size)} bytes, more than the ${SECRET_MAX_BYTES} a Kubernetes Secret can hold; use KUBERNETES_SINGLE_JOB_POD=false (files are written to the shared volume) or smaller files`,
    );
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: secretName(base), namespace, labels: objectLabels(id) },
    data,
  };
}

export function buildPvc(base: string, id: JobIdentity, s: KubernetesSettings): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: pvcName(base), namespace: s.namespace, labels: objectLabels(id) },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: s.jobVolumeSize } } },
  };
}

/** The git sequence of the setup container (reference §4.4.2), then copies of the input files. */
export function setupScript(
  job: Job,
  files: readonly InputFile[],
  o: { frontendUrl: string; executorName: string; gitCaCert?: string },
): string {
  const lines = ['set -e'];
  if (job.repositoryName) {
    const dir = shQuote(job.repositoryDirectory ? confinedPath(job.repositoryDirectory) : '.');
    const remote = `${o.frontendUrl.replace(/\/+$/, '')}/.executors/git/${job.repositoryName}`;
    const commit = shQuote(job.commit);
    lines.push(`mkdir -p ${dir}`, `git -C ${dir} init`);
    if (o.gitCaCert) lines.push(`git -C ${dir} config --local http.sslCAInfo ${shQuote(o.gitCaCert)}`);
    lines.push(
      `git -C ${dir} remote add origin ${shQuote(remote)}`,
      `git -C ${dir} config --local gc.auto 0`,
    );
    const headers = [
      // The token is expanded by the shell from the env (secretKeyRef); it is never in the spec.
      `-c http.extraHeader="Authorization: Bearer $TOKEN"`,
      `-c http.extraHeader=${shQuote(`X-Sourcegraph-Job-ID: ${job.id}`)}`,
      `-c http.extraHeader=${shQuote(`X-Sourcegraph-Executor-Name: ${o.executorName}`)}`,
    ].join(' ');
    lines.push(
      `git -C ${dir} ${headers} -c protocol.version=2 fetch --progress --no-recurse-submodules --no-tags --depth=1 origin ${commit}`,
      `git -C ${dir} checkout --progress --force ${commit}`,
    );
  }
  lines.push(`mkdir -p ${SCRIPTS_DIR}`);
  for (const f of files) {
    const dest = shQuote(f.rel);
    const dir = path.posix.dirname(f.rel);
    if (dir !== '.') lines.push(`mkdir -p ${shQuote(dir)}`);
    lines.push(`cp ${INPUT_MOUNT_PATH}/${fileKey(f.rel)} ${dest}`, `chmod 0777 ${dest}`);
    const t = f.modifiedAt ? touchTime(f.modifiedAt) : undefined;
    if (t) lines.push(`TZ=UTC touch -m -d ${shQuote(t)} ${dest}`);
  }
  return `${lines.join('\n')}\n`;
}

// ---- pod pieces ----

const DROP_ALL = { drop: ['ALL'] };
const SECCOMP = { type: 'RuntimeDefault' };

export function containerSecurityContext(s: KubernetesSettings): KubeObject {
  return {
    allowPrivilegeEscalation: false,
    capabilities: DROP_ALL,
    seccompProfile: SECCOMP,
    ...(s.runAsNonRoot ? { runAsNonRoot: true } : {}),
  };
}

export function podSecurityContext(s: KubernetesSettings): KubeObject {
  return {
    ...(s.runAsNonRoot ? { runAsNonRoot: true } : {}),
    ...(s.runAsUser > 0 ? { runAsUser: s.runAsUser } : {}),
    ...(s.runAsGroup > 0 ? { runAsGroup: s.runAsGroup } : {}),
    ...(s.fsGroup > 0 ? { fsGroup: s.fsGroup } : {}),
    seccompProfile: SECCOMP,
  };
}

export function resources(s: KubernetesSettings): NonNullable<Container['resources']> {
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  if (s.resourceLimitMemory) limits.memory = s.resourceLimitMemory;
  if (s.resourceLimitCpu) limits.cpu = s.resourceLimitCpu;
  if (s.resourceRequestMemory) requests.memory = s.resourceRequestMemory;
  if (s.resourceRequestCpu) requests.cpu = s.resourceRequestCpu;
  return { limits, requests };
}

/**
 * Node affinity from the match expressions/fields (one required term), and pod (anti-)affinity
 * from their JSON terms. Unlike the reference, no empty pod (anti-)affinity term is added.
 */
export function affinity(s: KubernetesSettings): KubeObject | undefined {
  const out: KubeObject = {};
  const exprs = s.nodeRequiredAffinityMatchExpressions;
  const fields = s.nodeRequiredAffinityMatchFields;
  if (exprs.length > 0 || fields.length > 0) {
    out.nodeAffinity = {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          {
            ...(exprs.length ? { matchExpressions: exprs } : {}),
            ...(fields.length ? { matchFields: fields } : {}),
          },
        ],
      },
    };
  }
  if (s.podAffinity.length > 0)
    out.podAffinity = { requiredDuringSchedulingIgnoredDuringExecution: s.podAffinity };
  if (s.podAntiAffinity.length > 0) {
    out.podAntiAffinity = { requiredDuringSchedulingIgnoredDuringExecution: s.podAntiAffinity };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function podCommon(s: KubernetesSettings): Omit<PodSpec, 'containers'> {
  const aff = affinity(s);
  return {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: podSecurityContext(s),
    activeDeadlineSeconds: s.jobDeadlineSeconds,
    ...(s.nodeName ? { nodeName: s.nodeName } : {}),
    ...(Object.keys(s.nodeSelector).length ? { nodeSelector: { ...s.nodeSelector } } : {}),
    ...(aff ? { affinity: aff } : {}),
    ...(s.tolerations.length ? { tolerations: s.tolerations } : {}),
    ...(s.imagePullSecrets.length ? { imagePullSecrets: s.imagePullSecrets.map((name) => ({ name })) } : {}),
    ...(s.runtimeClassName ? { runtimeClassName: s.runtimeClassName } : {}),
  };
}

function wrapJob(name: string, id: JobIdentity, s: KubernetesSettings, pod: PodSpec): KubeJob {
  const labels = objectLabels(id);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace: s.namespace,
      labels,
      ...(Object.keys(s.jobAnnotations).length ? { annotations: { ...s.jobAnnotations } } : {}),
    },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: {
          labels: { ...labels },
          ...(Object.keys(s.jobPodAnnotations).length ? { annotations: { ...s.jobPodAnnotations } } : {}),
        },
        spec: pod,
      },
    },
  };
}

/** Step env: names in the spec, values by secretKeyRef into the job's Secret. */
function stepEnv(stepIndex: number, env: readonly string[], secret: string): EnvVar[] {
  return env.map((kv, j) => {
    const eq = kv.indexOf('=');
    return {
      name: eq < 0 ? kv : kv.slice(0, eq),
      valueFrom: { secretKeyRef: { name: secret, key: envKey(stepIndex, j) } },
    };
  });
}

/** Which log entry each container writes to: key and command (null for setup.workspace and main). */
export type ContainerKeys = Record<string, { key: string; command: string[] | null }>;

export interface BuiltJob {
  job: KubeJob;
  containers: ContainerKeys;
}

export interface SinglePodInput {
  job: Job;
  id: JobIdentity;
  settings: KubernetesSettings;
  frontendUrl: string;
  /** From inputFiles(). */
  files: readonly InputFile[];
}

/** Single job pod: setup-workspace, one init container per step, then `main`. */
export function buildSingleJob(input: SinglePodInput): BuiltJob {
  const { job, id, settings: s, files } = input;
  const base = jobBaseName(id);
  const secret = secretName(base);
  const mounts = [{ name: DATA_VOLUME, mountPath: JOB_MOUNT_PATH }, ...s.additionalJobVolumeMounts];
  const common = {
    imagePullPolicy: 'IfNotPresent',
    resources: resources(s),
    securityContext: containerSecurityContext(s),
  };
  const containers: ContainerKeys = {
    [SETUP_CONTAINER]: { key: 'setup.workspace', command: null },
    [MAIN_CONTAINER]: { key: MAIN_CONTAINER, command: null },
  };

  const setup: Container = {
    name: SETUP_CONTAINER,
    image: s.singleJobStepImage,
    ...common,
    command: [
      'sh',
      '-c',
      setupScript(job, files, {
        frontendUrl: input.frontendUrl,
        executorName: id.executorName,
        gitCaCert: s.gitCaCert,
      }),
    ],
    workingDir: JOB_MOUNT_PATH,
    env: [{ name: TOKEN_KEY, valueFrom: { secretKeyRef: { name: secret, key: TOKEN_KEY } } }],
    volumeMounts: [...mounts, { name: INPUT_VOLUME, mountPath: INPUT_MOUNT_PATH, readOnly: true }],
  };

  const steps: Container[] = job.dockerSteps.map((step, i) => {
    const key = stepKey(job, i);
    let name = stepContainerName(key);
    if (containers[name]) name = dnsLabel(`${name}-${i}`);
    const script = `${JOB_MOUNT_PATH}/${SCRIPTS_DIR}/${scriptName(job, i)}`;
    const run = `if [ "$(/bin/sh ${JOB_MOUNT_PATH}/${NEXT_INDEX_SCRIPT} ${JOB_MOUNT_PATH}/${SKIP_FILE} ${shQuote(key)})" != "skip" ]; then /bin/sh ${script}; fi`;
    containers[name] = { key, command: ['/bin/sh', script] };
    return {
      name,
      image: step.image,
      ...common,
      command: ['/bin/sh', '-c', run],
      workingDir: path.posix.join(JOB_MOUNT_PATH, step.dir ? confinedPath(step.dir) : '.'),
      env: [...stepEnv(i, step.env, secret), { name: 'EXECUTOR_ADD_SAFE', value: 'false' }],
      volumeMounts: mounts,
    };
  });

  const main: Container = {
    name: MAIN_CONTAINER,
    image: s.singleJobStepImage,
    ...common,
    command: ['sh', '-c', "echo 'complete'"],
    workingDir: JOB_MOUNT_PATH,
    volumeMounts: mounts,
  };

  const dataVolume =
    s.jobVolumeType === 'pvc'
      ? { name: DATA_VOLUME, persistentVolumeClaim: { claimName: pvcName(base) } }
      : { name: DATA_VOLUME, emptyDir: { sizeLimit: s.jobVolumeSize } };
  const inputVolume = {
    name: INPUT_VOLUME,
    secret: {
      secretName: secret,
      defaultMode: 0o400,
      // Only the files: the token stays out of the filesystem.
      items: files.map((f) => ({ key: fileKey(f.rel), path: fileKey(f.rel) })),
    },
  };

  const pod: PodSpec = {
    ...podCommon(s),
    initContainers: [setup, ...steps],
    containers: [main],
    volumes: [dataVolume, inputVolume, ...s.additionalJobVolumes],
  };
  return { job: wrapJob(base, id, s, pod), containers };
}

export interface StepPodInput {
  spec: RunSpec;
  id: JobIdentity;
  settings: KubernetesSettings;
  /** Workspace directory relative to the shared volume's root (`workspace-42-abc`). */
  workspaceSubPath: string;
}

/** Multi-pod: one Job per step on the shared PVC, mounted at /job with the workspace as subPath. */
export function buildStepJob(input: StepPodInput): BuiltJob {
  const { spec, id, settings: s } = input;
  const base = jobBaseName(id);
  const name = stepJobName(base, spec.key);
  const containerName = stepContainerName(spec.key);
  const script = `${JOB_MOUNT_PATH}/${spec.scriptPath}`;
  const container: Container = {
    name: containerName,
    image: spec.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['/bin/sh', script],
    workingDir: path.posix.join(JOB_MOUNT_PATH, spec.dir ? confinedPath(spec.dir) : '.'),
    env: stepEnv(spec.stepIndex, spec.env, secretName(base)),
    resources: resources(s),
    securityContext: containerSecurityContext(s),
    volumeMounts: [
      { name: MULTI_POD_VOLUME, mountPath: JOB_MOUNT_PATH, subPath: input.workspaceSubPath },
      ...s.additionalJobVolumeMounts,
    ],
  };
  const pod: PodSpec = {
    ...podCommon(s),
    containers: [container],
    volumes: [
      { name: MULTI_POD_VOLUME, persistentVolumeClaim: { claimName: s.persistenceVolumeName } },
      ...s.additionalJobVolumes,
    ],
  };
  return {
    job: wrapJob(name, id, s, pod),
    containers: { [containerName]: { key: spec.key, command: ['/bin/sh', script] } },
  };
}

// ---- pod status classification ----

/** Container waiting reasons that will not resolve by waiting. */
export const FATAL_WAITING_REASONS: Record<string, string> = {
  ErrImagePull: 'image pull failed',
  ImagePullBackOff: 'image pull failed',
  InvalidImageName: 'invalid image name',
  ErrImageNeverPull: 'image not present and pull policy is Never',
  CreateContainerConfigError: 'container configuration error',
  CreateContainerError: 'container could not be created',
};

export type PodVerdict =
  | { kind: 'running' }
  | { kind: 'succeeded' }
  /** A container ended with a non-zero exit code (the job's own failure). */
  | { kind: 'step-failed'; container: string; exitCode: number }
  /** The pod cannot or will not finish: image pull, unschedulable, evicted, deadline, deleted. */
  | { kind: 'infra-failed'; reason: string; message: string };

function statuses(pod: Pod): ContainerStatus[] {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
}

/**
 * What a pod's status means for the job. Checked in this order: eviction and deadline (pod-level
 * ends), a container that ended non-zero (the step's exit code wins over the phase), a fatal
 * waiting reason, unschedulable, deletion before the end, then the phase.
 */
export function classifyPod(pod: Pod, deadlineSeconds: number): PodVerdict {
  const st = pod.status ?? {};
  // Pod-level ends first: an evicted or deadline-killed pod also shows containers killed non-zero.
  if (st.reason === 'Evicted') {
    return {
      kind: 'infra-failed',
      reason: 'Evicted',
      message: `pod was evicted${st.message ? `: ${st.message}` : ''}`,
    };
  }
  if (st.reason === 'DeadlineExceeded') {
    return {
      kind: 'infra-failed',
      reason: 'DeadlineExceeded',
      message: `pod exceeded its deadline of ${deadlineSeconds}s (KUBERNETES_JOB_DEADLINE)`,
    };
  }
  for (const c of statuses(pod)) {
    const t = c.state?.terminated;
    if (t && t.exitCode !== 0) return { kind: 'step-failed', container: c.name, exitCode: t.exitCode };
  }
  for (const c of statuses(pod)) {
    const w = c.state?.waiting;
    const what = w?.reason ? FATAL_WAITING_REASONS[w.reason] : undefined;
    if (what) {
      return {
        kind: 'infra-failed',
        reason: w!.reason!,
        message: `${what} for container ${c.name}${c.image ? ` (image ${c.image})` : ''}: ${w!.reason}${w!.message ? `: ${w!.message}` : ''}`,
      };
    }
  }
  const sched = st.conditions?.find((c) => c.type === 'PodScheduled');
  if (sched && sched.status === 'False' && sched.reason === 'Unschedulable') {
    return {
      kind: 'infra-failed',
      reason: 'Unschedulable',
      message: `pod could not be scheduled${sched.message ? `: ${sched.message}` : ''}`,
    };
  }
  if (st.phase === 'Succeeded') return { kind: 'succeeded' };
  if (st.phase === 'Failed') {
    return {
      kind: 'infra-failed',
      reason: st.reason ?? 'Failed',
      message: `pod failed${st.message ? `: ${st.message}` : ''}`,
    };
  }
  if (st.phase === 'Pending' && pod.metadata.deletionTimestamp) {
    return {
      kind: 'infra-failed',
      reason: 'Deleted',
      message: 'deleted by scheduler: pod could not be scheduled',
    };
  }
  return { kind: 'running' };
}

/** Containers that have started (running or terminated), in pod order, with their exit code. */
export function startedContainers(pod: Pod): Array<{ name: string; exitCode?: number }> {
  const out: Array<{ name: string; exitCode?: number }> = [];
  for (const c of statuses(pod)) {
    if (c.state?.terminated) out.push({ name: c.name, exitCode: c.state.terminated.exitCode });
    else if (c.state?.running) out.push({ name: c.name });
  }
  return out;
}
