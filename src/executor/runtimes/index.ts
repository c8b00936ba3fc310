/**
 * Picks the runtime named by the configuration. Nothing is guessed: EXECUTOR_RUNTIME (or
 * EXECUTOR_USE_FIRECRACKER=true) decides, and a runtime this build cannot run is an error at
 * startup, never a silent fallback to a weaker sandbox.
 */
import type { ExecutorConfig } from '../../config/executor.js';
import type { Logger } from '../../lib/logger.js';
import type { Job } from '../../protocol/job.js';
import type { FilesFetcher } from '../workspace/files.js';
import { createDockerRuntime } from './docker/docker-runtime.js';
import { createFirecrackerRuntime } from './firecracker/firecracker-runtime.js';
import { createShellRuntime } from './shell/shell-runtime.js';
import type { Runtime } from './types.js';

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

/**
 * Builds the configured runtime. The docker runtime takes one FilesFetcher for all jobs, but file
 * downloads need each job's own token, so its prepareWorkspace is wrapped to bind the job's fetcher
 * (withJobFiles), which serialises workspace preparation across jobs.
 */
export function createRuntime(config: ExecutorConfig, deps: RuntimeDeps): Runtime {
  const common = {
    executorName: config.executorName,
    workspaceRoot: config.workspaceRoot,
    keepWorkspaces: config.keepWorkspaces,
    frontendUrl: config.frontendUrl,
    frontendPassword: config.frontendPassword,
  };
  switch (config.runtime) {
    case 'docker':
    case 'gvisor': {
      // One runtime serves every job; the files fetcher must use the credentials of the job whose
      // workspace is being prepared, so prepareWorkspace is wrapped to bind it.
      let current: FilesFetcher | undefined;
      const files: FilesFetcher = {
        get: (bucket, key) => {
          if (!current) throw new Error('files requested outside of workspace preparation');
          return current.get(bucket, key);
        },
      };
      const rt = createDockerRuntime({
        ...common,
        kind: config.runtime,
        files,
        cpus: config.jobNumCpus,
        memory: config.jobMemory,
        pidsLimit: config.jobPidsLimit,
        network: config.jobNetwork,
        hostMountPath: config.dockerHostMountPath,
        additionalMounts: [...config.dockerAdditionalMounts],
        addHostGateway: config.dockerAddHostGateway,
        authConfig: config.dockerAuthConfig,
        logger: deps.logger,
      });
      return withJobFiles(rt, deps.files, (f) => {
        current = f;
      });
    }
    case 'shell':
      return createShellRuntime({ ...common, files: deps.files, logger: deps.logger });
    case 'firecracker':
      return createFirecrackerRuntime();
    case 'kubernetes':
      throw new RuntimeUnavailableError(
        'kubernetes',
        'not available in this build yet; use docker or gvisor',
      );
  }
}

/**
 * Binds the job's files fetcher around prepareWorkspace. Concurrent preparations are serialised
 * per call through a chain so each sees its own job's credentials.
 */
function withJobFiles(
  rt: Runtime,
  filesFor: (job: Job) => FilesFetcher,
  bind: (f: FilesFetcher | undefined) => void,
): Runtime {
  let chain: Promise<unknown> = Promise.resolve();
  return {
    ...rt,
    name: rt.name,
    stepKeyPrefix: rt.stepKeyPrefix,
    validate: () => rt.validate(),
    version: () => rt.version(),
    newRunner: (job, ws, ctx) => rt.newRunner(job, ws, ctx),
    specs: (job, ws) => rt.specs(job, ws),
    cleanupOrphans: (active) => rt.cleanupOrphans(active),
    prepareWorkspace(job, ctx) {
      const run = chain.then(async () => {
        bind(filesFor(job));
        try {
          return await rt.prepareWorkspace(job, ctx);
        } finally {
          bind(undefined);
        }
      });
      chain = run.catch(() => undefined);
      return run;
    },
  };
}
