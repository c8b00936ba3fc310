/**
 * Pure conversion of a job into Kubernetes objects (Sourcegraph `command/kubernetes.go`): the Job of
 * the single job pod, one Job per step in multi-pod mode, and the job's Secret and PVC, from the
 * KUBERNETES_* and EXECUTOR_KUBERNETES_* configuration. Names and labels are in naming.ts, the
 * setup script in setup-script.ts, the reading of pod statuses in pod-status.ts. No I/O: every rule
 * has a unit test.
 *
 * Differences from the reference, each on purpose:
 *   - pods run with a restricted security context by default (runAsNonRoot, no privilege
 *     escalation, every capability dropped, seccomp RuntimeDefault), no service account token and
 *     an optional runtimeClassName (e.g. gVisor);
 *   - nothing secret is in a pod spec: the job token, step env values and the job's files live in
 *     the job's Secret and reach the pod through secretKeyRef or a volume mounted only into
 *     `setup-workspace`;
 *   - names are valid for their kind and distinct for any step keys (naming.ts: a hash suffix
 *     when a key had to be changed or repeats) and include the queue of a multi-queue job, so two
 *     jobs with the same id in different queues and two attempts of one job never collide.
 */
import path from 'node:path';
import type { KubernetesConfig } from '../../../config/executor.js';
import type { Job } from '../../../protocol/job.js';
import { SCRIPTS_DIR, scriptName } from '../../workspace/files.js';
import { KUBERNETES_STEP_PREFIX, SKIP_FILE, stepKey } from '../common.js';
import type { RunSpec } from '../types.js';
import type { Container, EnvVar, KubeJob, KubeObject, PodSpec } from './kube-types.js';
import {
  envKey,
  fileKey,
  type JobIdentity,
  jobBaseName,
  objectLabels,
  pvcName,
  secretName,
  stepContainerNames,
  stepJobNames,
  TOKEN_KEY,
} from './naming.js';
import {
  confinedPath,
  INPUT_MOUNT_PATH,
  type InputFile,
  NEXT_INDEX_SCRIPT,
  setupScript,
  shQuote,
} from './setup-script.js';

export const JOB_MOUNT_PATH = '/job';
export const DATA_VOLUME = 'job-data';
export const INPUT_VOLUME = 'job-input';
export const MULTI_POD_VOLUME = 'sg-executor-job-volume';
export const SETUP_CONTAINER = 'setup-workspace';
export const MAIN_CONTAINER = 'main';
/** A Secret's data may not exceed 1 MiB (etcd object limit); leave room for metadata. */
export const SECRET_MAX_BYTES = 1024 * 1024 - 16 * 1024;

/** What every Kubernetes version accepts as an env name since 1.30: printable ASCII but `=`. */
const ENV_NAME = /^[\x20-\x3c\x3e-\x7e]+$/;

/**
 * The name of a step's `NAME=value` env entry. A name the API server refuses throws, saying which;
 * buildSecret reads every name, so the job fails before anything is created, not as a 422 later.
 */
function envName(stepIndex: number, kv: string): string {
  const eq = kv.indexOf('=');
  const name = eq < 0 ? kv : kv.slice(0, eq);
  if (!ENV_NAME.test(name)) {
    throw new Error(
      `docker step ${stepIndex}: env name ${JSON.stringify(name)} is not valid in Kubernetes: a name is printable ASCII other than "=", not empty (clusters before 1.30 also require only letters, digits, "_", "-" and ".", not starting with a digit)`,
    );
  }
  return name;
}

/**
 * The job's Secret: token, step env values and input files. Throws when it exceeds 1 MiB or a step
 * env name is one Kubernetes refuses (the first object created, so nothing is left half made).
 */
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
      envName(i, kv);
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

export function buildPvc(base: string, id: JobIdentity, s: KubernetesConfig): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: pvcName(base), namespace: s.namespace, labels: objectLabels(id) },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: s.jobVolumeSize } } },
  };
}

// ---- pod pieces ----

const DROP_ALL = { drop: ['ALL'] };
const SECCOMP = { type: 'RuntimeDefault' };

export function containerSecurityContext(s: KubernetesConfig): KubeObject {
  return {
    allowPrivilegeEscalation: false,
    capabilities: DROP_ALL,
    seccompProfile: SECCOMP,
    ...(s.runAsNonRoot ? { runAsNonRoot: true } : {}),
  };
}

export function podSecurityContext(s: KubernetesConfig): KubeObject {
  return {
    ...(s.runAsNonRoot ? { runAsNonRoot: true } : {}),
    ...(s.runAsUser > 0 ? { runAsUser: s.runAsUser } : {}),
    ...(s.runAsGroup > 0 ? { runAsGroup: s.runAsGroup } : {}),
    ...(s.fsGroup > 0 ? { fsGroup: s.fsGroup } : {}),
    seccompProfile: SECCOMP,
  };
}

export function resources(s: KubernetesConfig): NonNullable<Container['resources']> {
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
export function affinity(s: KubernetesConfig): KubeObject | undefined {
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

function podCommon(s: KubernetesConfig): Omit<PodSpec, 'containers'> {
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

function wrapJob(name: string, id: JobIdentity, s: KubernetesConfig, pod: PodSpec): KubeJob {
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
    return {
      name: envName(stepIndex, kv),
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
  settings: KubernetesConfig;
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

  const keys = jobStepKeys(job);
  const names = stepContainerNames(keys, [SETUP_CONTAINER, MAIN_CONTAINER]);
  const steps: Container[] = job.dockerSteps.map((step, i) => {
    const key = keys[i]!;
    const name = names[i]!;
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

/** The log key of each of a job's steps, in order: `step.kubernetes.<key or index>`. */
export function jobStepKeys(job: Pick<Job, 'dockerSteps'>): string[] {
  return job.dockerSteps.map((step, i) => stepKey(KUBERNETES_STEP_PREFIX, step.key, i));
}

export interface StepPodInput {
  spec: RunSpec;
  /** jobStepKeys() of the job: names are made distinct across its steps. */
  stepKeys: readonly string[];
  id: JobIdentity;
  settings: KubernetesConfig;
  /** Workspace directory relative to the shared volume's root (`workspace-42-abc`). */
  workspaceSubPath: string;
}

/** Multi-pod: one Job per step on the shared PVC, mounted at /job with the workspace as subPath. */
export function buildStepJob(input: StepPodInput): BuiltJob {
  const { spec, id, settings: s } = input;
  const base = jobBaseName(id);
  if (input.stepKeys[spec.stepIndex] !== spec.key) {
    throw new Error(`step ${spec.stepIndex} has key ${spec.key}, not one of the job's step keys`);
  }
  const name = stepJobNames(base, input.stepKeys)[spec.stepIndex]!;
  const containerName = stepContainerNames(input.stepKeys)[spec.stepIndex]!;
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
