/**
 * The Kubernetes runtime's settings (EXECUTOR_KUBERNETES_* and KUBERNETES_*), declared once: the
 * variables, and the KubernetesConfig the runtime reads. Names and defaults are Sourcegraph's.
 */
import { z } from 'zod';
import { compareQuantities, parseQuantity } from '../../lib/quantity.js';
import type { Catalogue, Values } from '../declare.js';
import type { Env } from '../load.js';
import { bool, int, json, keyValues, list, oneOf, quantity } from '../parsers.js';

export interface KubernetesConfig {
  /** Kubeconfig file; when missing, the in-cluster service account is used. */
  configPath?: string;
  namespace: string;
  nodeName?: string;
  nodeSelector: Record<string, string>;
  nodeRequiredAffinityMatchExpressions: Record<string, unknown>[];
  nodeRequiredAffinityMatchFields: Record<string, unknown>[];
  podAffinity: Record<string, unknown>[];
  podAntiAffinity: Record<string, unknown>[];
  tolerations: Record<string, unknown>[];
  persistenceVolumeName: string;
  resourceLimitCpu?: string;
  resourceRequestCpu?: string;
  resourceLimitMemory?: string;
  resourceRequestMemory?: string;
  jobDeadlineSeconds: number;
  keepJobs: boolean;
  /** Applied only when > 0. */
  runAsUser: number;
  /** Applied only when > 0. */
  runAsGroup: number;
  /** Applied only when > 0. */
  fsGroup: number;
  runAsNonRoot: boolean;
  singleJobPod: boolean;
  jobVolumeType: 'emptyDir' | 'pvc';
  jobVolumeSize: string;
  additionalJobVolumes: Record<string, unknown>[];
  additionalJobVolumeMounts: Array<{ name: string; mountPath: string } & Record<string, unknown>>;
  singleJobStepImage: string;
  gitCaCert?: string;
  jobAnnotations: Record<string, string>;
  jobPodAnnotations: Record<string, string>;
  imagePullSecrets: string[];
  runtimeClassName?: string;
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const isSubdomain = (s: string) => s.length <= 253 && SUBDOMAIN.test(s);
const isLabelValue = (s: string) => s.length <= 63 && LABEL_VALUE.test(s);
/** A label or annotation key: `[prefix/]name`, prefix a subdomain, name at most 63 characters. */
function isQualifiedName(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const name = key.slice(slash + 1);
  return (slash < 0 || isSubdomain(key.slice(0, slash))) && name !== '' && isLabelValue(name);
}

/** The name of an object the job pods refer to (a node, PVC, Secret, RuntimeClass). */
const objectName = () =>
  z.string().refine(isSubdomain, 'must be a Kubernetes object name (lowercase letters, digits, "-" and ".")');

const objectList = () => json(z.array(z.record(z.unknown())), 'must be a JSON array of objects');
const affinityTerms = () =>
  json(
    z.array(z.object({ topologyKey: z.string().min(1) }).passthrough()),
    'must be a JSON array of PodAffinityTerm, each with a topologyKey',
  );
const annotations = () =>
  json(z.record(z.string()), 'must be a JSON object of strings').refine(
    (m) => Object.keys(m).every(isQualifiedName),
    'keys must be annotation keys (`name` or `prefix/name`: letters, digits, "-", "_", ".")',
  );
const volumeMounts = () =>
  json(
    z.array(z.object({ name: z.string().min(1), mountPath: z.string().min(1) }).passthrough()),
    'must be a JSON array of VolumeMount, each with name and mountPath',
  );
const volumes = () =>
  json(
    z.array(z.object({ name: z.string().regex(LABEL).max(63) }).passthrough()),
    'must be a JSON array of Volume, each with a name that is a DNS label (lowercase letters, digits, "-")',
  );
const nodeSelector = () =>
  keyValues().refine(
    (m) => Object.entries(m).every(([k, v]) => isQualifiedName(k) && isLabelValue(v)),
    'keys must be label keys and values label values (letters, digits, "-", "_", ".", at most 63)',
  );

export const KUBERNETES_ENV = {
  EXECUTOR_KUBERNETES_CONFIG_PATH: {
    description:
      'Kubeconfig of the Kubernetes runtime. Default `~/.kube/config`; when that file is missing, the in-cluster service account is used. With EXECUTOR_RUNTIME unset, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT both set select `kubernetes`.',
    parse: z.string(),
  },
  EXECUTOR_KUBERNETES_NAMESPACE: {
    default: 'default',
    description: 'Namespace of job pods, Secrets and PVCs.',
    parse: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name'),
  },
  EXECUTOR_KUBERNETES_NODE_NAME: {
    description: 'Run job pods on this node (`nodeName`).',
    parse: objectName(),
  },
  EXECUTOR_KUBERNETES_NODE_SELECTOR: {
    description: 'Node selector of job pods, `k=v,k2=v2`.',
    parse: nodeSelector(),
  },
  EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_EXPRESSIONS: {
    description: 'JSON `NodeSelectorRequirement[]`: a required node affinity term of job pods.',
    parse: objectList(),
  },
  EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_FIELDS: {
    description: 'JSON `NodeSelectorRequirement[]` matched on node fields, in the same term.',
    parse: objectList(),
  },
  EXECUTOR_KUBERNETES_POD_AFFINITY: {
    description: 'JSON `PodAffinityTerm[]` (each with a `topologyKey`): required pod affinity of job pods.',
    parse: affinityTerms(),
  },
  EXECUTOR_KUBERNETES_POD_ANTI_AFFINITY: {
    description:
      'JSON `PodAffinityTerm[]` (each with a `topologyKey`): required pod anti-affinity of job pods.',
    parse: affinityTerms(),
  },
  EXECUTOR_KUBERNETES_NODE_TOLERATIONS: {
    description: 'JSON `Toleration[]` of job pods.',
    parse: objectList(),
  },
  EXECUTOR_KUBERNETES_PERSISTENCE_VOLUME_NAME: {
    default: 'sg-executor-pvc',
    description:
      'Multi-pod mode: the shared PVC, mounted in the executor pod at EXECUTOR_WORKSPACE_ROOT and in step pods at `/job`.',
    parse: objectName(),
  },
  EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: {
    description:
      'CPU limit of every job container, a Kubernetes quantity (`2`, `1.5`, `500m`). Default: none.',
    parse: quantity(),
  },
  EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: {
    description:
      "CPU request of every job container, a Kubernetes quantity. Default: the CPU limit when one is set (Kubernetes' rule), else none. May not exceed the limit.",
    parse: quantity(),
  },
  EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: {
    default: '12Gi',
    description: 'Memory limit of every job container, a Kubernetes quantity (`12Gi`, `512Mi`, `4G`).',
    parse: quantity(),
  },
  EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: {
    description:
      "Memory request of every job container, a Kubernetes quantity. Default: the memory limit (Kubernetes' rule), so setting only the limit lowers both. May not exceed the limit.",
    parse: quantity(),
  },
  EXECUTOR_KUBERNETES_RUNTIME_CLASS: {
    description: '`runtimeClassName` of job pods, e.g. `gvisor` for a gVisor RuntimeClass.',
    parse: objectName(),
  },
  KUBERNETES_JOB_DEADLINE: {
    default: '1200',
    description: 'Seconds a job pod may run (`activeDeadlineSeconds`); past it the job fails and says so.',
    parse: int({ min: 1 }),
  },
  KUBERNETES_KEEP_JOBS: {
    default: 'false',
    description: 'Keep Jobs, Secrets and PVCs after the job ends (for debugging).',
    parse: bool(),
  },
  KUBERNETES_RUN_AS_USER: {
    default: '-1',
    description: 'Pod `runAsUser`; applied only when > 0.',
    parse: int({ min: -1 }),
  },
  KUBERNETES_RUN_AS_GROUP: {
    default: '-1',
    description: 'Pod `runAsGroup`; applied only when > 0.',
    parse: int({ min: -1 }),
  },
  KUBERNETES_FS_GROUP: {
    default: '1000',
    description: 'Pod `fsGroup`; applied only when > 0.',
    parse: int({ min: -1 }),
  },
  KUBERNETES_RUN_AS_NON_ROOT: {
    default: 'true',
    description:
      'Pods and containers get `runAsNonRoot: true`: step images must name a non-root user, or set KUBERNETES_RUN_AS_USER.',
    parse: bool(),
  },
  KUBERNETES_SINGLE_JOB_POD: {
    default: 'true',
    description:
      'Run a whole job in one pod (setup, one init container per step, `main`). `false`: one Job per step on the shared PVC.',
    parse: bool(),
  },
  KUBERNETES_JOB_VOLUME_TYPE: {
    default: 'emptyDir',
    description: 'Single pod workspace: `emptyDir` (with a size limit) or `pvc` (one PVC per job).',
    parse: oneOf(['emptyDir', 'pvc'], 'must be emptyDir or pvc'),
  },
  KUBERNETES_JOB_VOLUME_SIZE: {
    default: '5Gi',
    description:
      'Size of the single pod workspace volume (emptyDir `sizeLimit` or PVC request), a Kubernetes quantity (`5Gi`, `5G`; not `5GB`).',
    parse: quantity(),
  },
  KUBERNETES_ADDITIONAL_JOB_VOLUMES: {
    description: 'JSON `Volume[]` added to job pods.',
    parse: volumes(),
  },
  KUBERNETES_ADDITIONAL_JOB_VOLUME_MOUNTS: {
    description: 'JSON `VolumeMount[]` added to every job container.',
    parse: volumeMounts(),
  },
  KUBERNETES_SINGLE_JOB_STEP_IMAGE: {
    default: 'sourcegraph/batcheshelper:insiders',
    description: 'Image of the `setup-workspace` and `main` containers; needs `sh` and `git`.',
    parse: z.string().min(1),
  },
  KUBERNETES_GIT_CA_CERT: {
    description: 'Path inside the pod of a CA bundle git trusts (`http.sslCAInfo`).',
    parse: z.string(),
  },
  KUBERNETES_JOB_ANNOTATIONS: {
    description: 'JSON object of annotations on job Jobs.',
    parse: annotations(),
  },
  KUBERNETES_JOB_POD_ANNOTATIONS: {
    description: 'JSON object of annotations on job pods.',
    parse: annotations(),
  },
  KUBERNETES_IMAGE_PULL_SECRETS: {
    description: 'Comma list of image pull Secret names for job pods.',
    parse: list().refine(
      (names) => names.every(isSubdomain),
      'must be Secret names (lowercase letters, digits, "-" and ".")',
    ),
  },
} as const satisfies Catalogue;

const RESOURCE_PAIRS = [
  ['EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU', 'EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU', 'CPU'],
  ['EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY', 'EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY', 'memory'],
] as const;

/**
 * A request above its limit: the API server refuses every pod with one, so it is refused at start.
 * `given` tells a default limit from one the user set, for the message.
 */
export function kubernetesProblems(
  v: Partial<Values<typeof KUBERNETES_ENV>>,
  given: ReadonlySet<string>,
): string[] {
  const problems: string[] = [];
  for (const [reqVar, limVar, what] of RESOURCE_PAIRS) {
    const req = v[reqVar];
    const lim = v[limVar];
    const r = req === undefined ? undefined : parseQuantity(req);
    const l = lim === undefined ? undefined : parseQuantity(lim);
    if (!r || !l || compareQuantities(r, l) <= 0) continue;
    const limit = `${limVar}=${lim}${given.has(limVar) ? '' : ' (the default)'}`;
    problems.push(
      `${reqVar}: the ${what} request ${req} exceeds the ${what} limit ${limit}; Kubernetes refuses a pod whose request is above its limit: raise the limit or lower the request (unset, the request equals the limit)`,
    );
  }
  return problems;
}

/** Shapes the parsed KUBERNETES_ENV values; the kubeconfig defaults to `$HOME/.kube/config`. */
export function kubernetesConfig(v: Values<typeof KUBERNETES_ENV>, env: Env): KubernetesConfig {
  return {
    configPath: v.EXECUTOR_KUBERNETES_CONFIG_PATH ?? (env.HOME ? `${env.HOME}/.kube/config` : undefined),
    namespace: v.EXECUTOR_KUBERNETES_NAMESPACE,
    nodeName: v.EXECUTOR_KUBERNETES_NODE_NAME,
    nodeSelector: v.EXECUTOR_KUBERNETES_NODE_SELECTOR ?? {},
    nodeRequiredAffinityMatchExpressions:
      v.EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_EXPRESSIONS ?? [],
    nodeRequiredAffinityMatchFields: v.EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_FIELDS ?? [],
    podAffinity: v.EXECUTOR_KUBERNETES_POD_AFFINITY ?? [],
    podAntiAffinity: v.EXECUTOR_KUBERNETES_POD_ANTI_AFFINITY ?? [],
    tolerations: v.EXECUTOR_KUBERNETES_NODE_TOLERATIONS ?? [],
    persistenceVolumeName: v.EXECUTOR_KUBERNETES_PERSISTENCE_VOLUME_NAME,
    resourceLimitCpu: v.EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU,
    resourceRequestCpu:
      v.EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU ?? v.EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU,
    resourceLimitMemory: v.EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY,
    resourceRequestMemory:
      v.EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY ?? v.EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY,
    jobDeadlineSeconds: v.KUBERNETES_JOB_DEADLINE,
    keepJobs: v.KUBERNETES_KEEP_JOBS,
    runAsUser: v.KUBERNETES_RUN_AS_USER,
    runAsGroup: v.KUBERNETES_RUN_AS_GROUP,
    fsGroup: v.KUBERNETES_FS_GROUP,
    runAsNonRoot: v.KUBERNETES_RUN_AS_NON_ROOT,
    singleJobPod: v.KUBERNETES_SINGLE_JOB_POD,
    jobVolumeType: v.KUBERNETES_JOB_VOLUME_TYPE,
    jobVolumeSize: v.KUBERNETES_JOB_VOLUME_SIZE,
    additionalJobVolumes: v.KUBERNETES_ADDITIONAL_JOB_VOLUMES ?? [],
    additionalJobVolumeMounts: v.KUBERNETES_ADDITIONAL_JOB_VOLUME_MOUNTS ?? [],
    singleJobStepImage: v.KUBERNETES_SINGLE_JOB_STEP_IMAGE,
    gitCaCert: v.KUBERNETES_GIT_CA_CERT,
    jobAnnotations: v.KUBERNETES_JOB_ANNOTATIONS ?? {},
    jobPodAnnotations: v.KUBERNETES_JOB_POD_ANNOTATIONS ?? {},
    imagePullSecrets: v.KUBERNETES_IMAGE_PULL_SECRETS ?? [],
    runtimeClassName: v.EXECUTOR_KUBERNETES_RUNTIME_CLASS,
  };
}
