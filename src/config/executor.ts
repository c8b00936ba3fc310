/**
 * Executor configuration: environment (plus optional flag overrides) -> zod -> one frozen object with
 * normalised units. Every variable is declared once in EXECUTOR_ENV, with its default and a
 * description; the docs table is generated from the same declarations (`renderExecutorEnvDocs`).
 *
 * Names and defaults follow Sourcegraph's executor (`cmd/executor/internal/config/config.go`), except
 * that nothing is guessed: the runtime is `docker` unless EXECUTOR_RUNTIME or
 * EXECUTOR_USE_FIRECRACKER says otherwise, and queue names are free-form.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { z } from 'zod';
import { parseDurationMs, parseSizeBytes } from '../lib/duration.js';

export type RuntimeName = 'docker' | 'gvisor' | 'shell' | 'kubernetes' | 'firecracker';
export const RUNTIME_NAMES: readonly RuntimeName[] = [
  'docker',
  'gvisor',
  'shell',
  'kubernetes',
  'firecracker',
];

export interface HttpRetryConfig {
  /** Total attempts per request (the first one included). */
  maxAttempts: number;
  delayBaseMs: number;
  delayMaxMs: number;
  /** A Retry-After longer than this is not waited for: the response is returned as it is. */
  retryAfterMaxMs: number;
  /** Per-attempt timeout; 0 = none (Sourcegraph's default). */
  timeoutMs: number;
}

/** The Kubernetes runtime's settings (KUBERNETES_* and EXECUTOR_KUBERNETES_*). */
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

export interface ExecutorConfig {
  frontendUrl: string;
  frontendPassword: string;
  /** Single-queue mode: the queue. Undefined in multi-queue mode. */
  queueName?: string;
  /** Multi-queue mode: the queues, sorted. Empty in single-queue mode. */
  queueNames: string[];
  pollIntervalMs: number;
  maximumNumJobs: number;
  maximumRuntimePerJobMs: number;
  jobNumCpus: number;
  /** As given (docker syntax, e.g. `12G`); sent as `memory` on dequeue. `0` = no bound. */
  jobMemory: string;
  /** As given (e.g. `20G`); sent as `diskSpace` on dequeue. */
  firecrackerDiskSpace: string;
  keepWorkspaces: boolean;
  /** Stop after this many successful dequeues; 0 = unlimited. */
  numTotalJobs: number;
  /** Stop dequeuing after this long; 0 = unlimited. */
  maxActiveTimeMs: number;
  cleanupTaskIntervalMs: number;
  dockerHostMountPath?: string;
  dockerAdditionalMounts: string[];
  dockerAddHostGateway: boolean;
  dockerAuthConfig?: { auths?: Record<string, { auth: string }> };
  /** EXECUTOR_DOCKER_REGISTRY_MIRROR_URL, split on `,`; empty when unset. */
  dockerRegistryMirrorUrls: string[];
  runtime: RuntimeName;
  jobPidsLimit: number;
  jobNetwork: 'bridge' | 'none';
  maxLogBytes: number;
  /** Free bytes required in the workspace root before a dequeue; 0 disables the check. */
  minFreeDiskBytes: number;
  metricsAddr?: { host: string; port: number };
  workspaceRoot: string;
  executorName: string;
  httpRetry: HttpRetryConfig;
  kubernetes: KubernetesConfig;
}

export type LoadResult = { ok: true; config: ExecutorConfig } | { ok: false; problems: string[] };

type Env = Record<string, string | undefined>;

interface VarDecl {
  /** Default as the user would write it, or undefined when the variable is optional/required. */
  default?: string;
  required?: boolean;
  description: string;
  /** Deprecated alias read when the variable itself is unset. */
  alias?: string;
}

/** Every environment variable the executor reads, documented once. */
export const EXECUTOR_ENV = {
  EXECUTOR_FRONTEND_URL: {
    required: true,
    description:
      'URL of the queue server or Sourcegraph instance, `scheme://host[:port][/path]`. A host of `host.docker.internal` needs EXECUTOR_DOCKER_ADD_HOST_GATEWAY=true.',
  },
  EXECUTOR_FRONTEND_PASSWORD: {
    required: true,
    description:
      'The shared executor secret (`executors.accessToken` in Sourcegraph). Sent as `token-executor <password>`; redacted from job logs as `SECRET_REMOVED`.',
  },
  EXECUTOR_QUEUE_NAME: {
    description:
      'The queue to take jobs from (single-queue mode). Exactly one of this and EXECUTOR_QUEUE_NAMES.',
  },
  EXECUTOR_QUEUE_NAMES: {
    description:
      'Comma-separated queues to take jobs from (multi-queue mode, `/.executors/queue/dequeue`). Names are free-form.',
  },
  EXECUTOR_QUEUE_POLL_INTERVAL: {
    default: '1s',
    description:
      'Wait between dequeues when the queue is empty (Go duration). With a server that advertises long-poll, an empty dequeue is held open instead.',
  },
  EXECUTOR_MAXIMUM_NUM_JOBS: { default: '1', description: 'Jobs run concurrently (handler slots).' },
  EXECUTOR_MAXIMUM_RUNTIME_PER_JOB: {
    default: '30m',
    description: 'A job still running after this long is aborted and marked errored.',
  },
  EXECUTOR_JOB_NUM_CPUS: {
    default: '4',
    alias: 'EXECUTOR_FIRECRACKER_NUM_CPUS',
    description: 'CPUs per job (container limit; sent on dequeue as `numCPUs`). `0` = no limit.',
  },
  EXECUTOR_JOB_MEMORY: {
    default: '12G',
    alias: 'EXECUTOR_FIRECRACKER_MEMORY',
    description: 'Memory per job (container limit; sent on dequeue as `memory`). `0` = no limit.',
  },
  EXECUTOR_FIRECRACKER_DISK_SPACE: {
    default: '20G',
    description: 'Disk per job for Firecracker VMs; sent on dequeue as `diskSpace` in every mode.',
  },
  EXECUTOR_KEEP_WORKSPACES: {
    default: 'false',
    description: 'Keep job workspaces after the job ends (for debugging).',
  },
  EXECUTOR_NUM_TOTAL_JOBS: {
    default: '0',
    description: 'Exit after this many jobs have been dequeued and finished. `0` = unlimited.',
  },
  EXECUTOR_MAX_ACTIVE_TIME: {
    default: '0',
    description: 'Stop dequeuing after this long, finish running jobs and exit. `0` = unlimited.',
  },
  EXECUTOR_CLEANUP_TASK_INTERVAL: {
    default: '1m',
    description: 'Period of the janitor that removes containers and workspaces of jobs no longer running.',
  },
  EXECUTOR_DOCKER_HOST_MOUNT_PATH: {
    description:
      'Docker-in-Docker: the host path under which the workspace root is visible to the Docker daemon.',
  },
  EXECUTOR_DOCKER_ADDITIONAL_MOUNTS: {
    description:
      '`;`-separated docker mount specs added to every step, e.g. `type=bind,source=/foo,target=/bar`.',
  },
  EXECUTOR_DOCKER_ADD_HOST_GATEWAY: {
    default: 'false',
    description: 'Add `host.docker.internal:host-gateway` to step containers.',
  },
  EXECUTOR_DOCKER_AUTH_CONFIG: {
    description:
      'Docker registry credentials as JSON `{"auths":{"<registry>":{"auth":"<base64>"}}}`. A job\'s own dockerAuthConfig wins when it has entries.',
  },
  EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: {
    description:
      'Comma-separated registry mirror URLs (`http(s)://host[:port]`) for Docker Hub images. Written as `registry-mirrors` into the Docker daemon configuration the executor controls (`executor install`); `executor validate` reports whether the daemon in use has them.',
  },
  EXECUTOR_USE_FIRECRACKER: {
    default: 'false',
    description:
      'Legacy switch: `true` selects the firecracker runtime (same as EXECUTOR_RUNTIME=firecracker).',
  },
  EXECUTOR_RUNTIME: {
    default: 'docker',
    description:
      'Sandbox for job steps: `docker`, `gvisor` (docker with runsc), `shell` (NO isolation, development only), `kubernetes` or `firecracker`. Never guessed.',
  },
  EXECUTOR_JOB_PIDS_LIMIT: { default: '1024', description: 'Maximum processes per step container.' },
  EXECUTOR_JOB_NETWORK: {
    default: 'bridge',
    description: 'Network of step containers: `bridge` or `none`.',
  },
  EXECUTOR_MAX_LOG_BYTES: {
    default: '16MiB',
    description: 'Output kept per job (head and tail, with a truncation marker). Sizes like `16MiB`, `512K`.',
  },
  EXECUTOR_MIN_FREE_DISK: {
    default: '1GiB',
    description:
      'Free space required in the workspace root before a job is dequeued; below it the executor waits and says why. `0` disables the check.',
  },
  EXECUTOR_METRICS_ADDR: {
    description:
      'Serve Prometheus metrics on `host:port` at `/metrics` (metrics are always sent in heartbeats).',
  },
  EXECUTOR_WORKSPACE_ROOT: {
    description: 'Directory where job workspaces are created. Default: the OS temporary directory (TMPDIR).',
  },
  EXECUTOR_NAME: {
    description:
      'Executor name sent to the server. Default: `<hostname>-<uuid>`, new on every start (as Sourcegraph does).',
  },
  EXECUTOR_KUBERNETES_CONFIG_PATH: {
    description:
      'Kubeconfig of the Kubernetes runtime. Default `~/.kube/config`; when that file is missing, the in-cluster service account is used. With EXECUTOR_RUNTIME unset, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT both set select `kubernetes`.',
  },
  EXECUTOR_KUBERNETES_NAMESPACE: {
    default: 'default',
    description: 'Namespace of job pods, Secrets and PVCs.',
  },
  EXECUTOR_KUBERNETES_NODE_NAME: { description: 'Run job pods on this node (`nodeName`).' },
  EXECUTOR_KUBERNETES_NODE_SELECTOR: { description: 'Node selector of job pods, `k=v,k2=v2`.' },
  EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_EXPRESSIONS: {
    description: 'JSON `NodeSelectorRequirement[]`: a required node affinity term of job pods.',
  },
  EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_FIELDS: {
    description: 'JSON `NodeSelectorRequirement[]` matched on node fields, in the same term.',
  },
  EXECUTOR_KUBERNETES_POD_AFFINITY: {
    description: 'JSON `PodAffinityTerm[]` (each with a `topologyKey`): required pod affinity of job pods.',
  },
  EXECUTOR_KUBERNETES_POD_ANTI_AFFINITY: {
    description:
      'JSON `PodAffinityTerm[]` (each with a `topologyKey`): required pod anti-affinity of job pods.',
  },
  EXECUTOR_KUBERNETES_NODE_TOLERATIONS: { description: 'JSON `Toleration[]` of job pods.' },
  EXECUTOR_KUBERNETES_PERSISTENCE_VOLUME_NAME: {
    default: 'sg-executor-pvc',
    description:
      'Multi-pod mode: the shared PVC, mounted in the executor pod at EXECUTOR_WORKSPACE_ROOT and in step pods at `/job`.',
  },
  EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: { description: 'CPU limit of every job container (e.g. `2`).' },
  EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: { description: 'CPU request of every job container.' },
  EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: {
    default: '12Gi',
    description: 'Memory limit of every job container.',
  },
  EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: {
    default: '12Gi',
    description: 'Memory request of every job container.',
  },
  EXECUTOR_KUBERNETES_RUNTIME_CLASS: {
    description: '`runtimeClassName` of job pods, e.g. `gvisor` for a gVisor RuntimeClass.',
  },
  KUBERNETES_JOB_DEADLINE: {
    default: '1200',
    description: 'Seconds a job pod may run (`activeDeadlineSeconds`); past it the job fails and says so.',
  },
  KUBERNETES_KEEP_JOBS: {
    default: 'false',
    description: 'Keep Jobs, Secrets and PVCs after the job ends (for debugging).',
  },
  KUBERNETES_RUN_AS_USER: { default: '-1', description: 'Pod `runAsUser`; applied only when > 0.' },
  KUBERNETES_RUN_AS_GROUP: { default: '-1', description: 'Pod `runAsGroup`; applied only when > 0.' },
  KUBERNETES_FS_GROUP: { default: '1000', description: 'Pod `fsGroup`; applied only when > 0.' },
  KUBERNETES_RUN_AS_NON_ROOT: {
    default: 'true',
    description:
      'Pods and containers get `runAsNonRoot: true`: step images must name a non-root user, or set KUBERNETES_RUN_AS_USER.',
  },
  KUBERNETES_SINGLE_JOB_POD: {
    default: 'true',
    description:
      'Run a whole job in one pod (setup, one init container per step, `main`). `false`: one Job per step on the shared PVC.',
  },
  KUBERNETES_JOB_VOLUME_TYPE: {
    default: 'emptyDir',
    description: 'Single pod workspace: `emptyDir` (with a size limit) or `pvc` (one PVC per job).',
  },
  KUBERNETES_JOB_VOLUME_SIZE: { default: '5Gi', description: 'Size of the single pod workspace volume.' },
  KUBERNETES_ADDITIONAL_JOB_VOLUMES: { description: 'JSON `Volume[]` added to job pods.' },
  KUBERNETES_ADDITIONAL_JOB_VOLUME_MOUNTS: {
    description: 'JSON `VolumeMount[]` added to every job container.',
  },
  KUBERNETES_SINGLE_JOB_STEP_IMAGE: {
    default: 'sourcegraph/batcheshelper:insiders',
    description: 'Image of the `setup-workspace` and `main` containers; needs `sh` and `git`.',
  },
  KUBERNETES_GIT_CA_CERT: {
    description: 'Path inside the pod of a CA bundle git trusts (`http.sslCAInfo`).',
  },
  KUBERNETES_JOB_ANNOTATIONS: { description: 'JSON object of annotations on job Jobs.' },
  KUBERNETES_JOB_POD_ANNOTATIONS: { description: 'JSON object of annotations on job pods.' },
  KUBERNETES_IMAGE_PULL_SECRETS: { description: 'Comma list of image pull Secret names for job pods.' },
  SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: {
    default: '20',
    description: 'Attempts per HTTP request on transport errors, 429 and 5xx other than 501.',
  },
  SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE: {
    default: '50ms',
    description: 'Base of the full-jitter exponential backoff between HTTP attempts.',
  },
  SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX: { default: '1s', description: 'Upper bound of the backoff.' },
  SRC_HTTP_CLI_INTERNAL_RETRY_AFTER_MAX_DURATION: {
    default: '3s',
    description: 'A response with a longer Retry-After is not retried.',
  },
  SRC_HTTP_CLI_INTERNAL_TIMEOUT: {
    default: '0',
    description: 'Timeout of one HTTP attempt. `0` = none.',
  },
} as const satisfies Record<string, VarDecl>;

export type ExecutorEnvName = keyof typeof EXECUTOR_ENV;

// ---- value parsers (each adds a zod issue naming the variable on failure) ----

const GO_BOOL: Record<string, boolean> = {
  '1': true,
  t: true,
  T: true,
  true: true,
  TRUE: true,
  True: true,
  '0': false,
  f: false,
  F: false,
  false: false,
  FALSE: false,
  False: false,
};

const bool = z.string().transform((s, ctx) => {
  const v = GO_BOOL[s.trim()];
  if (v === undefined) {
    ctx.addIssue({ code: 'custom', message: `must be true or false, got ${JSON.stringify(s)}` });
    return z.NEVER;
  }
  return v;
});

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().transform((s, ctx) => {
    const t = s.trim();
    const n = /^-?\d+$/.test(t) ? Number(t) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({
        code: 'custom',
        message: `must be an integer${max < Number.MAX_SAFE_INTEGER ? ` from ${min} to ${max}` : ` >= ${min}`}, got ${JSON.stringify(s)}`,
      });
      return z.NEVER;
    }
    return n;
  });

const duration = z.string().transform((s, ctx) => {
  const ms = parseDurationMs(s);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `must be a duration such as "1s", "30m" or "0", got ${JSON.stringify(s)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const positiveDuration = duration.refine((ms) => ms > 0, { message: 'must be longer than 0' });

const size = z.string().transform((s, ctx) => {
  const b = parseSizeBytes(s);
  if (b === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `must be a size such as "16MiB", "1G" or "0", got ${JSON.stringify(s)}`,
    });
    return z.NEVER;
  }
  return b;
});

/** Docker memory syntax; kept as text because it is sent to the server as written. */
const sizeText = z.string().refine((s) => parseSizeBytes(s) !== undefined, {
  message: 'must be a size such as "12G" or "512M" ("0" = no limit)',
});

const queueNameText = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'queue names are letters, digits, "_", "." or "-"');

const frontendUrl = z.string().transform((s, ctx) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `must be a URL with a scheme and host, got ${JSON.stringify(s)}`,
    });
    return z.NEVER;
  }
  if (!/^https?:$/.test(u.protocol) || u.host === '') {
    ctx.addIssue({ code: 'custom', message: `must be an http(s) URL with a host, got ${JSON.stringify(s)}` });
    return z.NEVER;
  }
  return s;
});

/**
 * Checks one registry mirror URL as dockerd does (`registry.ValidateMirror`): http or https, a host,
 * no path, query or fragment. Returns the URL normalised to `scheme://host[:port]`, or a problem.
 */
export function checkRegistryMirrorUrl(
  s: string,
): { ok: true; url: string } | { ok: false; problem: string } {
  let u: URL;
  try {
    u = new URL(s.trim());
  } catch {
    return { ok: false, problem: `${JSON.stringify(s)} is not a URL (want http(s)://host[:port])` };
  }
  if (!/^https?:$/.test(u.protocol) || u.host === '') {
    return { ok: false, problem: `${JSON.stringify(s)} must be an http(s) URL with a host` };
  }
  if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.hash !== '') {
    return {
      ok: false,
      problem: `${JSON.stringify(s)} must have no path, query or fragment (dockerd rejects them)`,
    };
  }
  return { ok: true, url: `${u.protocol}//${u.host}` };
}

const registryMirrorUrls = z.string().transform((s, ctx) => {
  const urls: string[] = [];
  for (const part of s.split(',')) {
    if (part.trim() === '') continue;
    const r = checkRegistryMirrorUrl(part);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.problem });
      return z.NEVER;
    }
    if (!urls.includes(r.url)) urls.push(r.url);
  }
  return urls;
});

const dockerAuthConfig = z.string().transform((s, ctx) => {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `is not valid JSON: ${(e as Error).message}` });
    return z.NEVER;
  }
  const r = z
    .object({ auths: z.record(z.object({ auth: z.string() }).passthrough()).optional() })
    .passthrough()
    .safeParse(v);
  if (!r.success) {
    ctx.addIssue({ code: 'custom', message: 'must look like {"auths":{"<registry>":{"auth":"<base64>"}}}' });
    return z.NEVER;
  }
  return r.data as { auths?: Record<string, { auth: string }> };
});

const mounts = z.string().transform((s, ctx) => {
  const list = s
    .split(';')
    .map((m) => m.trim())
    .filter(Boolean);
  for (const m of list) {
    const fields = m.split(',').map((f) => f.split('=')[0]!.trim());
    if (!fields.some((f) => ['target', 'dst', 'destination'].includes(f))) {
      ctx.addIssue({ code: 'custom', message: `mount ${JSON.stringify(m)} has no target` });
    } else if (fields.filter((f) => ['target', 'dst', 'destination'].includes(f)).length > 1) {
      ctx.addIssue({ code: 'custom', message: `mount ${JSON.stringify(m)}: incorrect separator (use ";")` });
    }
  }
  return list;
});

const hostPort = z.string().transform((s, ctx) => {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port < 0 || port > 65535) {
    ctx.addIssue({
      code: 'custom',
      message: `must be host:port (e.g. "0.0.0.0:9090" or ":9090"), got ${JSON.stringify(s)}`,
    });
    return z.NEVER;
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
});

/** JSON of a given shape; `what` names it in the message (e.g. "an array of objects"). */
const jsonOf = <T extends z.ZodTypeAny>(shape: T, what: string) =>
  z.string().transform((s, ctx): z.infer<T> => {
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `is not valid JSON: ${(e as Error).message}` });
      return z.NEVER;
    }
    const r = shape.safeParse(v);
    if (!r.success) {
      ctx.addIssue({ code: 'custom', message: `must be ${what}` });
      return z.NEVER;
    }
    return r.data;
  });

const objectList = jsonOf(z.array(z.record(z.unknown())), 'a JSON array of objects');
const affinityTerms = jsonOf(
  z.array(z.object({ topologyKey: z.string().min(1) }).passthrough()),
  'a JSON array of PodAffinityTerm, each with a topologyKey',
);
const stringMap = jsonOf(z.record(z.string()), 'a JSON object of strings');
const volumeMounts = jsonOf(
  z.array(z.object({ name: z.string().min(1), mountPath: z.string().min(1) }).passthrough()),
  'a JSON array of VolumeMount, each with name and mountPath',
);
const keyValueList = z.string().transform((s, ctx) => {
  const out: Record<string, string> = {};
  for (const item of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0) {
      ctx.addIssue({ code: 'custom', message: `item ${JSON.stringify(item)} must be k=v` });
      continue;
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
});
const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

const FIELDS = {
  EXECUTOR_FRONTEND_URL: frontendUrl,
  EXECUTOR_FRONTEND_PASSWORD: z.string().min(1, 'must not be empty'),
  EXECUTOR_QUEUE_NAME: queueNameText.optional(),
  EXECUTOR_QUEUE_NAMES: z
    .string()
    .transform((s) => s.split(','))
    .pipe(z.array(queueNameText).min(1))
    .optional(),
  EXECUTOR_QUEUE_POLL_INTERVAL: positiveDuration,
  EXECUTOR_MAXIMUM_NUM_JOBS: int(1, 1000),
  EXECUTOR_MAXIMUM_RUNTIME_PER_JOB: positiveDuration,
  EXECUTOR_JOB_NUM_CPUS: int(0, 1_000_000),
  EXECUTOR_JOB_MEMORY: sizeText,
  EXECUTOR_FIRECRACKER_DISK_SPACE: sizeText,
  EXECUTOR_KEEP_WORKSPACES: bool,
  EXECUTOR_NUM_TOTAL_JOBS: int(0),
  EXECUTOR_MAX_ACTIVE_TIME: duration,
  EXECUTOR_CLEANUP_TASK_INTERVAL: positiveDuration,
  EXECUTOR_DOCKER_HOST_MOUNT_PATH: z
    .string()
    .refine((p) => p.startsWith('/'), { message: 'must be an absolute path' })
    .optional(),
  EXECUTOR_DOCKER_ADDITIONAL_MOUNTS: mounts.optional(),
  EXECUTOR_DOCKER_ADD_HOST_GATEWAY: bool,
  EXECUTOR_DOCKER_AUTH_CONFIG: dockerAuthConfig.optional(),
  EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: registryMirrorUrls.optional(),
  EXECUTOR_USE_FIRECRACKER: bool,
  EXECUTOR_RUNTIME: z.enum(RUNTIME_NAMES as [RuntimeName, ...RuntimeName[]], {
    errorMap: () => ({ message: `must be one of ${RUNTIME_NAMES.join(', ')}` }),
  }),
  EXECUTOR_JOB_PIDS_LIMIT: int(1, 4_194_304),
  EXECUTOR_JOB_NETWORK: z.enum(['bridge', 'none'], {
    errorMap: () => ({ message: 'must be bridge or none' }),
  }),
  EXECUTOR_MAX_LOG_BYTES: size.refine((b) => b >= 4096, { message: 'must be at least 4KiB' }),
  EXECUTOR_MIN_FREE_DISK: size,
  EXECUTOR_METRICS_ADDR: hostPort.optional(),
  EXECUTOR_WORKSPACE_ROOT: z
    .string()
    .refine((p) => p.startsWith('/'), { message: 'must be an absolute path' })
    .optional(),
  EXECUTOR_NAME: z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/, 'must be 1-255 printable characters without spaces')
    .optional(),
  EXECUTOR_KUBERNETES_CONFIG_PATH: z.string().optional(),
  EXECUTOR_KUBERNETES_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name'),
  EXECUTOR_KUBERNETES_NODE_NAME: z.string().optional(),
  EXECUTOR_KUBERNETES_NODE_SELECTOR: keyValueList.optional(),
  EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_EXPRESSIONS: objectList.optional(),
  EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_FIELDS: objectList.optional(),
  EXECUTOR_KUBERNETES_POD_AFFINITY: affinityTerms.optional(),
  EXECUTOR_KUBERNETES_POD_ANTI_AFFINITY: affinityTerms.optional(),
  EXECUTOR_KUBERNETES_NODE_TOLERATIONS: objectList.optional(),
  EXECUTOR_KUBERNETES_PERSISTENCE_VOLUME_NAME: z.string().min(1),
  EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: z.string().optional(),
  EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: z.string().optional(),
  EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: z.string().optional(),
  EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: z.string().optional(),
  EXECUTOR_KUBERNETES_RUNTIME_CLASS: z.string().optional(),
  KUBERNETES_JOB_DEADLINE: int(1),
  KUBERNETES_KEEP_JOBS: bool,
  KUBERNETES_RUN_AS_USER: int(-1),
  KUBERNETES_RUN_AS_GROUP: int(-1),
  KUBERNETES_FS_GROUP: int(-1),
  KUBERNETES_RUN_AS_NON_ROOT: bool,
  KUBERNETES_SINGLE_JOB_POD: bool,
  KUBERNETES_JOB_VOLUME_TYPE: z.enum(['emptyDir', 'pvc'], {
    errorMap: () => ({ message: 'must be emptyDir or pvc' }),
  }),
  KUBERNETES_JOB_VOLUME_SIZE: z.string().min(1),
  KUBERNETES_ADDITIONAL_JOB_VOLUMES: objectList.optional(),
  KUBERNETES_ADDITIONAL_JOB_VOLUME_MOUNTS: volumeMounts.optional(),
  KUBERNETES_SINGLE_JOB_STEP_IMAGE: z.string().min(1),
  KUBERNETES_GIT_CA_CERT: z.string().optional(),
  KUBERNETES_JOB_ANNOTATIONS: stringMap.optional(),
  KUBERNETES_JOB_POD_ANNOTATIONS: stringMap.optional(),
  KUBERNETES_IMAGE_PULL_SECRETS: commaList.optional(),
  SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: int(1, 1000),
  SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE: duration,
  SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX: duration,
  SRC_HTTP_CLI_INTERNAL_RETRY_AFTER_MAX_DURATION: duration,
  SRC_HTTP_CLI_INTERNAL_TIMEOUT: duration,
} satisfies Record<ExecutorEnvName, z.ZodTypeAny>;

const schema = z.object(FIELDS);

/** Reads the raw values: flag overrides, then the variable, then its alias, then the default. */
function rawValues(
  env: Env,
  flags: Partial<Record<ExecutorEnvName, string>>,
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, decl] of Object.entries(EXECUTOR_ENV) as [ExecutorEnvName, VarDecl][]) {
    const pick = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
    out[name] =
      pick(flags[name]) ??
      pick(env[name]) ??
      (decl.alias ? pick(env[decl.alias]) : undefined) ??
      decl.default;
  }
  return out;
}

/**
 * Loads and validates the executor configuration. Reports every problem at once, each naming the
 * variable. The returned config is frozen (deeply).
 */
export function loadExecutorConfig(
  env: Env = process.env,
  flags: Partial<Record<ExecutorEnvName, string>> = {},
): LoadResult {
  const raw = rawValues(env, flags);
  const problems: string[] = [];
  for (const [name, decl] of Object.entries(EXECUTOR_ENV) as [ExecutorEnvName, VarDecl][]) {
    if (decl.required && raw[name] === undefined) problems.push(`${name}: is required (no value supplied)`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0]);
      if (raw[name] === undefined && issue.code === 'invalid_type') continue; // reported as required
      problems.push(`${name}: ${issue.message}`);
    }
  }
  const v = parsed.success ? parsed.data : undefined;

  // Cross-field rules, checked on the raw text so they are reported together with field problems.
  const single = raw.EXECUTOR_QUEUE_NAME;
  const multi = raw.EXECUTOR_QUEUE_NAMES;
  if (single === undefined && multi === undefined) {
    problems.push('EXECUTOR_QUEUE_NAME: neither EXECUTOR_QUEUE_NAME nor EXECUTOR_QUEUE_NAMES is set');
  } else if (single !== undefined && multi !== undefined) {
    problems.push('EXECUTOR_QUEUE_NAME: both EXECUTOR_QUEUE_NAME and EXECUTOR_QUEUE_NAMES are set; set one');
  }
  if (raw.EXECUTOR_FRONTEND_URL) {
    try {
      const u = new URL(raw.EXECUTOR_FRONTEND_URL);
      const gw = GO_BOOL[(raw.EXECUTOR_DOCKER_ADD_HOST_GATEWAY ?? '').trim()];
      if (u.hostname === 'host.docker.internal' && gw !== true) {
        problems.push(
          'EXECUTOR_FRONTEND_URL: host.docker.internal requires EXECUTOR_DOCKER_ADD_HOST_GATEWAY=true',
        );
      }
    } catch {
      // reported by the field parser
    }
  }
  const useFc = GO_BOOL[(raw.EXECUTOR_USE_FIRECRACKER ?? '').trim()] === true;
  const runtimeExplicit = flags.EXECUTOR_RUNTIME || env.EXECUTOR_RUNTIME;
  if (useFc && runtimeExplicit && runtimeExplicit !== 'firecracker') {
    problems.push(
      `EXECUTOR_RUNTIME: is ${runtimeExplicit} but EXECUTOR_USE_FIRECRACKER=true asks for firecracker; set one`,
    );
  }
  if (v && v.SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX < v.SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE) {
    problems.push(
      'SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX: must not be shorter than SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE',
    );
  }

  if (problems.length > 0 || !v) return { ok: false, problems };

  // Sourcegraph's IsKubernetes(): inside a cluster, with no runtime named, the runtime is kubernetes.
  const inCluster = Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT);
  const kubeConfigPath =
    v.EXECUTOR_KUBERNETES_CONFIG_PATH ?? (env.HOME ? `${env.HOME}/.kube/config` : undefined);

  const config: ExecutorConfig = {
    frontendUrl: v.EXECUTOR_FRONTEND_URL,
    frontendPassword: v.EXECUTOR_FRONTEND_PASSWORD,
    queueName: v.EXECUTOR_QUEUE_NAME,
    queueNames: v.EXECUTOR_QUEUE_NAMES ? [...new Set(v.EXECUTOR_QUEUE_NAMES)].sort() : [],
    pollIntervalMs: v.EXECUTOR_QUEUE_POLL_INTERVAL,
    maximumNumJobs: v.EXECUTOR_MAXIMUM_NUM_JOBS,
    maximumRuntimePerJobMs: v.EXECUTOR_MAXIMUM_RUNTIME_PER_JOB,
    jobNumCpus: v.EXECUTOR_JOB_NUM_CPUS,
    jobMemory: v.EXECUTOR_JOB_MEMORY,
    firecrackerDiskSpace: v.EXECUTOR_FIRECRACKER_DISK_SPACE,
    keepWorkspaces: v.EXECUTOR_KEEP_WORKSPACES,
    numTotalJobs: v.EXECUTOR_NUM_TOTAL_JOBS,
    maxActiveTimeMs: v.EXECUTOR_MAX_ACTIVE_TIME,
    cleanupTaskIntervalMs: v.EXECUTOR_CLEANUP_TASK_INTERVAL,
    dockerHostMountPath: v.EXECUTOR_DOCKER_HOST_MOUNT_PATH,
    dockerAdditionalMounts: v.EXECUTOR_DOCKER_ADDITIONAL_MOUNTS ?? [],
    dockerAddHostGateway: v.EXECUTOR_DOCKER_ADD_HOST_GATEWAY,
    dockerAuthConfig: v.EXECUTOR_DOCKER_AUTH_CONFIG,
    dockerRegistryMirrorUrls: v.EXECUTOR_DOCKER_REGISTRY_MIRROR_URL ?? [],
    runtime: useFc
      ? 'firecracker'
      : runtimeExplicit
        ? v.EXECUTOR_RUNTIME
        : inCluster
          ? 'kubernetes'
          : v.EXECUTOR_RUNTIME,
    jobPidsLimit: v.EXECUTOR_JOB_PIDS_LIMIT,
    jobNetwork: v.EXECUTOR_JOB_NETWORK,
    maxLogBytes: v.EXECUTOR_MAX_LOG_BYTES,
    minFreeDiskBytes: v.EXECUTOR_MIN_FREE_DISK,
    metricsAddr: v.EXECUTOR_METRICS_ADDR,
    workspaceRoot: v.EXECUTOR_WORKSPACE_ROOT ?? os.tmpdir(),
    executorName: v.EXECUTOR_NAME ?? defaultExecutorName(env),
    httpRetry: {
      maxAttempts: v.SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS,
      delayBaseMs: v.SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE,
      delayMaxMs: v.SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX,
      retryAfterMaxMs: v.SRC_HTTP_CLI_INTERNAL_RETRY_AFTER_MAX_DURATION,
      timeoutMs: v.SRC_HTTP_CLI_INTERNAL_TIMEOUT,
    },
    kubernetes: {
      configPath: kubeConfigPath,
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
      resourceRequestCpu: v.EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU,
      resourceLimitMemory: v.EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY,
      resourceRequestMemory: v.EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY,
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
    },
  };
  return { ok: true, config: deepFreeze(config) };
}

/** `<hostname>-<uuid>`, regenerated on every start (Sourcegraph `hostname.Get() + "-" + uuid`). */
export function defaultExecutorName(env: Env = process.env): string {
  return `${env.HOSTNAME || os.hostname()}-${randomUUID()}`;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** The docs table of every executor variable, generated from EXECUTOR_ENV. */
export function renderExecutorEnvDocs(): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const rows = (Object.entries(EXECUTOR_ENV) as [ExecutorEnvName, VarDecl][]).map(([name, d]) => {
    const def = d.required ? '**required**' : d.default !== undefined ? `\`${d.default}\`` : '';
    const alias = d.alias ? ` (alias: \`${d.alias}\`)` : '';
    return `| \`${name}\`${alias} | ${def} | ${esc(d.description)} |`;
  });
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

/** One-line-per-variable summary for `executor run --help`. */
export function renderExecutorEnvHelp(): string {
  return (Object.entries(EXECUTOR_ENV) as [ExecutorEnvName, VarDecl][])
    .map(([name, d]) => {
      const def = d.required ? ' (required)' : d.default !== undefined ? ` (default ${d.default})` : '';
      return `  ${name}${def}`;
    })
    .join('\n');
}
