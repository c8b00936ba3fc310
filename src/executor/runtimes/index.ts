/**
 * Picks the runtime named by the configuration. Nothing is guessed: EXECUTOR_RUNTIME decides, and a
 * runtime this build cannot run is an error at startup, never a silent fallback to a weaker sandbox.
 */
import type { ExecutorConfig } from '../../config/executor.js';
import { parseSizeBytes } from '../../lib/duration.js';
import type { Logger } from '../../lib/logger.js';
import type { Job } from '../../protocol/job.js';
import type { FilesFetcher } from '../workspace/files.js';
import { createGitCache } from '../workspace/git-cache.js';
import type { LocalWorkspaceSettings } from './common.js';
import { createDockerRuntime } from './docker/docker-runtime.js';
import { createKubeClient, loadKubeConfig } from './kubernetes/kube-client.js';
import { createKubernetesRuntime } from './kubernetes/kubernetes-runtime.js';
import { createShellRuntime } from './shell/shell-runtime.js';
import type { Runtime } from './types.js';
import { createVmRuntime } from './vm/vm-runtime.js';

export interface RuntimeDeps {
  logger: Logger;
  /** Files of one job, with its credentials. */
  files: (job: Job) => FilesFetcher;
}

export class RuntimeUnavailableError extends Error {
  constructor(runtime: string, why: string) {
    super(`runtime ${runtime} is not available: ${why}`);
    this.name = 'RuntimeUnavailableError';
  }
}

/** Builds the configured runtime; its close() also stops the clone cache's background work. */
export function createRuntime(config: ExecutorConfig, deps: RuntimeDeps): Runtime {
  const common: LocalWorkspaceSettings = {
    executorName: config.executorName,
    workspaceRoot: config.workspaceRoot,
    keepWorkspaces: config.keepWorkspaces,
    frontendUrl: config.frontendUrl,
    frontendPassword: config.frontendPassword,
    // One cache per executor process: its per-repository lock spans every job slot.
    gitCache:
      config.gitCacheBytes > 0
        ? createGitCache({
            dir: config.gitCacheDir,
            maxBytes: config.gitCacheBytes,
            checkouts: config.gitCacheCheckouts,
            frontendUrl: config.frontendUrl,
          })
        : undefined,
  };
  const runtime = createConfiguredRuntime(config, deps, common);
  const cache = common.gitCache;
  if (cache) {
    const close = runtime.close?.bind(runtime);
    runtime.close = async () => {
      await cache.close();
      await close?.();
    };
  }
  return runtime;
}

function createConfiguredRuntime(
  config: ExecutorConfig,
  deps: RuntimeDeps,
  common: LocalWorkspaceSettings,
): Runtime {
  switch (config.runtime) {
    case 'docker':
    case 'gvisor':
      return createDockerRuntime({
        ...common,
        kind: config.runtime,
        // Per job: file downloads use each job's own token.
        files: deps.files,
        cpus: config.jobNumCpus,
        memory: config.jobMemory,
        pidsLimit: config.jobPidsLimit,
        network: config.jobNetwork === 'isolated' ? config.jobNetworkName : config.jobNetwork,
        networkHolders: config.jobNetwork === 'isolated' ? config.maximumNumJobs : 0,
        hostMountPath: config.dockerHostMountPath,
        additionalMounts: [...config.dockerAdditionalMounts],
        addHostGateway: config.dockerAddHostGateway,
        authConfig: config.dockerAuthConfig,
        diskQuota: config.jobDiskSpace.bytes > 0 ? config.jobDiskSpace : undefined,
        logger: deps.logger,
      });
    case 'shell':
      return createShellRuntime({ ...common, files: deps.files, logger: deps.logger });
    case 'kubernetes': {
      const k = config.kubernetes;
      return createKubernetesRuntime({
        ...common,
        // The kubeconfig is loaded on first use: createRuntime is synchronous.
        client: createKubeClient({ kubeConfig: () => loadKubeConfig(k.configPath), namespace: k.namespace }),
        settings: k,
        queueName: config.queueName,
        files: deps.files,
        logger: deps.logger,
      });
    }
    case 'vm': {
      const disk = config.jobDiskSpace.bytes > 0 ? config.jobDiskSpace : firecrackerDisk(config);
      return createVmRuntime({
        ...common,
        files: deps.files,
        ...config.vm,
        cpus: config.jobNumCpus,
        memory: config.jobMemory,
        disk,
        authConfig: config.dockerAuthConfig,
        network: vmNetwork(config),
        logger: deps.logger,
      });
    }
    default:
      // The configuration refuses runtimes this build does not have; this is the last line.
      throw new RuntimeUnavailableError(config.runtime, 'this build does not include it');
  }
}

/** The Docker network of the vm runtime's user-mode networking; undefined for none. */
function vmNetwork(config: ExecutorConfig): string | undefined {
  if (config.jobNetwork === 'isolated') return config.jobNetworkName;
  return config.jobNetwork === 'bridge' ? 'bridge' : undefined;
}

/** EXECUTOR_FIRECRACKER_DISK_SPACE as the vm runtime's workspace size (EXECUTOR_JOB_DISK_SPACE=0). */
function firecrackerDisk(config: ExecutorConfig): { text: string; bytes: number } {
  const text = config.firecrackerDiskSpace.trim();
  const bytes = parseSizeBytes(text) ?? 0;
  if (bytes <= 0) {
    throw new RuntimeUnavailableError(
      'vm',
      'a VM needs a workspace disk size: set EXECUTOR_JOB_DISK_SPACE (or EXECUTOR_FIRECRACKER_DISK_SPACE) above 0',
    );
  }
  return { text, bytes };
}
