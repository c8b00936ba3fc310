/**
 * Executor configuration: environment (plus optional flag overrides) -> the EXECUTOR_ENV parsers ->
 * the rules between variables -> one deeply frozen ExecutorConfig with normalised units. Every
 * problem is reported at once, each naming its variable.
 */

import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { parseSizeBytes } from '../../lib/duration.js';
import { executorVersion } from '../../protocol/version.js';
import { deepFreeze, type Values } from '../declare.js';
import { type Env, loadSettings } from '../load.js';
import { readBool } from '../parsers.js';
import type { DockerAuthConfig } from './docker-parsers.js';
import { EXECUTOR_ENV, type ExecutorEnvName } from './executor-env.js';
import { type HttpRetryConfig, httpRetryConfig, httpRetryProblems } from './http-retry-config.js';
import { type JobNetworkConfig, jobNetworkConfig } from './job-network-config.js';
import { type KubernetesConfig, kubernetesConfig, kubernetesProblems } from './kubernetes-config.js';
import { FIRECRACKER_REFUSED, type RuntimeName } from './runtime.js';
import { type VmConfig, vmConfig } from './vm-config.js';

export interface ExecutorConfig extends JobNetworkConfig {
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
  /**
   * EXECUTOR_JOB_DISK_SPACE as given (e.g. `20G`) and in bytes: the size of each workspace's ext4
   * image (docker and gvisor). 0 bytes = no quota.
   */
  jobDiskSpace: { text: string; bytes: number };
  keepWorkspaces: boolean;
  /** Stop after this many successful dequeues; 0 = unlimited. */
  numTotalJobs: number;
  /** Stop dequeuing after this long; 0 = unlimited. */
  maxActiveTimeMs: number;
  cleanupTaskIntervalMs: number;
  dockerHostMountPath?: string;
  dockerAdditionalMounts: string[];
  dockerAddHostGateway: boolean;
  dockerAuthConfig?: DockerAuthConfig;
  /** EXECUTOR_DOCKER_REGISTRY_MIRROR_URL, split on `,`; empty when unset. */
  dockerRegistryMirrorUrls: string[];
  runtime: RuntimeName;
  jobPidsLimit: number;
  maxLogBytes: number;
  /** Free bytes required in the workspace root before a dequeue; 0 disables the check. */
  minFreeDiskBytes: number;
  metricsAddr?: { host: string; port: number };
  workspaceRoot: string;
  /** The clone cache's directory (EXECUTOR_GIT_CACHE_DIR, default `<workspaceRoot>/git-cache`). */
  gitCacheDir: string;
  /** EXECUTOR_GIT_CACHE_SIZE; 0 = no clone cache. */
  gitCacheBytes: number;
  /** EXECUTOR_GIT_CACHE_CHECKOUTS: prepared checkouts per repository; 0 = none. */
  gitCacheCheckouts: number;
  executorName: string;
  /** The version sent in dequeue and heartbeat requests (protocol/version.ts `executorVersion`). */
  reportedVersion: string;
  httpRetry: HttpRetryConfig;
  kubernetes: KubernetesConfig;
  vm: VmConfig;
}

export type LoadResult = { ok: true; config: ExecutorConfig } | { ok: false; problems: string[] };

/** Rules between variables, checked on the raw text so they are reported with the field problems. */
function crossProblems(
  raw: Record<ExecutorEnvName, string | undefined>,
  runtimeGiven: string | undefined,
): string[] {
  const problems: string[] = [];
  const single = raw.EXECUTOR_QUEUE_NAME;
  const multi = raw.EXECUTOR_QUEUE_NAMES;
  if (single === undefined && multi === undefined) {
    problems.push('EXECUTOR_QUEUE_NAME: neither EXECUTOR_QUEUE_NAME nor EXECUTOR_QUEUE_NAMES is set');
  } else if (single !== undefined && multi !== undefined) {
    problems.push('EXECUTOR_QUEUE_NAME: both EXECUTOR_QUEUE_NAME and EXECUTOR_QUEUE_NAMES are set; set one');
  }
  if (raw.EXECUTOR_FRONTEND_URL && URL.canParse(raw.EXECUTOR_FRONTEND_URL)) {
    const gateway = readBool(raw.EXECUTOR_DOCKER_ADD_HOST_GATEWAY);
    if (new URL(raw.EXECUTOR_FRONTEND_URL).hostname === 'host.docker.internal' && gateway !== true) {
      problems.push(
        'EXECUTOR_FRONTEND_URL: host.docker.internal requires EXECUTOR_DOCKER_ADD_HOST_GATEWAY=true',
      );
    }
  }
  // EXECUTOR_RUNTIME=firecracker is refused by its parser; the legacy switch is refused here.
  if (readBool(raw.EXECUTOR_USE_FIRECRACKER) === true) {
    if (runtimeGiven === undefined) {
      problems.push(`EXECUTOR_USE_FIRECRACKER: ${FIRECRACKER_REFUSED}`);
    } else if (runtimeGiven !== 'firecracker') {
      problems.push(
        `EXECUTOR_RUNTIME: is ${runtimeGiven} but EXECUTOR_USE_FIRECRACKER=true asks for firecracker; set one`,
      );
    }
  }
  return problems;
}

/**
 * Loads and validates the executor configuration. Flag overrides are keyed by variable name. The
 * returned config is frozen (deeply).
 */
export function loadExecutorConfig(
  env: Env = process.env,
  flags: Partial<Record<ExecutorEnvName, string>> = {},
): LoadResult {
  const loaded = loadSettings(
    EXECUTOR_ENV,
    { env, flags },
    { requiredMessage: 'is required (no value supplied)' },
  );
  const runtimeGiven = loaded.given.has('EXECUTOR_RUNTIME') ? loaded.raw.EXECUTOR_RUNTIME : undefined;
  const problems = [
    ...loaded.problems,
    ...crossProblems(loaded.raw, runtimeGiven),
    ...httpRetryProblems(loaded.values),
    ...kubernetesProblems(loaded.values, loaded.given),
  ];
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: deepFreeze(executorConfig(loaded.values, env, runtimeGiven !== undefined)) };
}

function executorConfig(v: Values<typeof EXECUTOR_ENV>, env: Env, runtimeGiven: boolean): ExecutorConfig {
  // Sourcegraph's IsKubernetes(): inside a cluster, with no runtime named, the runtime is kubernetes.
  const inCluster = Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT);
  return {
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
    jobDiskSpace: {
      text: v.EXECUTOR_JOB_DISK_SPACE.trim(),
      bytes: parseSizeBytes(v.EXECUTOR_JOB_DISK_SPACE) ?? 0,
    },
    keepWorkspaces: v.EXECUTOR_KEEP_WORKSPACES,
    numTotalJobs: v.EXECUTOR_NUM_TOTAL_JOBS,
    maxActiveTimeMs: v.EXECUTOR_MAX_ACTIVE_TIME,
    cleanupTaskIntervalMs: v.EXECUTOR_CLEANUP_TASK_INTERVAL,
    dockerHostMountPath: v.EXECUTOR_DOCKER_HOST_MOUNT_PATH,
    dockerAdditionalMounts: v.EXECUTOR_DOCKER_ADDITIONAL_MOUNTS ?? [],
    dockerAddHostGateway: v.EXECUTOR_DOCKER_ADD_HOST_GATEWAY,
    dockerAuthConfig: v.EXECUTOR_DOCKER_AUTH_CONFIG,
    dockerRegistryMirrorUrls: v.EXECUTOR_DOCKER_REGISTRY_MIRROR_URL ?? [],
    runtime: !runtimeGiven && inCluster ? 'kubernetes' : v.EXECUTOR_RUNTIME,
    jobPidsLimit: v.EXECUTOR_JOB_PIDS_LIMIT,
    ...jobNetworkConfig(v),
    maxLogBytes: v.EXECUTOR_MAX_LOG_BYTES,
    minFreeDiskBytes: v.EXECUTOR_MIN_FREE_DISK,
    metricsAddr: v.EXECUTOR_METRICS_ADDR,
    workspaceRoot: v.EXECUTOR_WORKSPACE_ROOT ?? os.tmpdir(),
    gitCacheDir: v.EXECUTOR_GIT_CACHE_DIR ?? path.join(v.EXECUTOR_WORKSPACE_ROOT ?? os.tmpdir(), 'git-cache'),
    gitCacheBytes: v.EXECUTOR_GIT_CACHE_SIZE,
    gitCacheCheckouts: v.EXECUTOR_GIT_CACHE_CHECKOUTS,
    executorName: v.EXECUTOR_NAME ?? defaultExecutorName(env),
    reportedVersion: executorVersion(v.EXECUTOR_REPORTED_VERSION),
    httpRetry: httpRetryConfig(v),
    kubernetes: kubernetesConfig(v, env),
    vm: vmConfig(v),
  };
}

/** `<hostname>-<uuid>`, regenerated on every start (Sourcegraph `hostname.Get() + "-" + uuid`). */
export function defaultExecutorName(env: Env = process.env): string {
  return `${env.HOSTNAME || os.hostname()}-${randomUUID()}`;
}
