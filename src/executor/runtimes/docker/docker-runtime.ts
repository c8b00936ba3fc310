/**
 * The docker runtime (and gVisor: the same with `Runtime: runsc`). Steps run through the Engine API
 * (dockerode), never a `docker` process per step; each job's runner is in docker-runner.ts. This
 * file holds what the runtime shares between jobs: the daemon, the container settings (with the CPU
 * limit fitted to the daemon once), validation, and the janitor of orphaned containers.
 */
import os from 'node:os';
import Dockerode from 'dockerode';
import type { Logger } from '../../../lib/logger.js';
import type { DockerAuthConfig, Job } from '../../../protocol/job.js';
import type { JobContext } from '../../job-context.js';
import { createDiskImages, type DiskQuota } from '../../workspace/disk-image.js';
import type { FilesFetcher } from '../../workspace/files.js';
import {
  DOCKER_STEP_PREFIX,
  type LocalWorkspaceSettings,
  prepareHostWorkspace,
  specsFromSteps,
} from '../common.js';
import type { CheckResult, Runner, RunSpec, Runtime, Workspace } from '../types.js';
import {
  type ContainerSettings,
  clampCpus,
  holderCreateOptions,
  memoryBytes,
  parseMountSpecs,
} from './convert.js';
import { createDockerRunner, type DockerRunnerDeps } from './docker-runner.js';
import { createNetworkHolders, type NetworkHolders } from './network-holders.js';
import { daemonIsLocal } from './oom.js';
import { removeOrphanContainers } from './orphans.js';
import { type DaemonStorageInfo, type LayerLimit, storageOptSize, writableLayerLimit } from './storage.js';
import { detectUsernsRemap, type RemappedRoot } from './userns.js';
import { validateDocker } from './validate.js';

export interface DockerRuntimeOptions extends LocalWorkspaceSettings {
  kind: 'docker' | 'gvisor';
  /** Injectable; default `new Dockerode()` (DOCKER_HOST honoured). */
  docker?: Dockerode;
  /**
   * Job files. A function is called once per job, so each job's fetcher carries that job's
   * credentials and several workspaces can be prepared at once.
   */
  files: FilesFetcher | ((job: Job) => FilesFetcher);
  /** CPUs per step; 0 = no limit. */
  cpus: number;
  /** Memory per step ("12G"); "0" or "" = no limit. */
  memory: string;
  pidsLimit: number;
  /** Docker NetworkMode: `bridge`, `none`, or the isolated network's name (EXECUTOR_JOB_NETWORK_NAME). */
  network: string;
  /**
   * On the isolated network: the number of job slots, one idle network holder kept for each, whose
   * namespace a job's steps join (network-holders.ts). 0 or absent: steps attach to `network`.
   */
  networkHolders?: number;
  hostMountPath?: string;
  /** EXECUTOR_DOCKER_ADDITIONAL_MOUNTS, split on `;`. */
  additionalMounts: string[];
  addHostGateway: boolean;
  /**
   * EXECUTOR_JOB_DISK_SPACE when not 0: each workspace is an image of that size (disk-image.ts),
   * and each step's writable layer gets the same size where the storage driver can (storage.ts).
   */
  diskQuota?: DiskQuota;
  /** EXECUTOR_DOCKER_AUTH_CONFIG; a job's own non-empty dockerAuthConfig wins. */
  authConfig?: DockerAuthConfig;
  logger: Logger;
}

/** The isolated network's holders (network-holders.ts), when the runtime keeps any. */
function holdersFor(
  slots: number,
  docker: Dockerode,
  settings: ContainerSettings,
  log: Logger,
): NetworkHolders | undefined {
  if (slots <= 0) return undefined;
  return createNetworkHolders({
    docker,
    slots,
    // `settings` is live: a holder is made with what the runtime has fitted to the daemon.
    createOptions: (token, image, entrypoint) => holderCreateOptions(settings, token, image, entrypoint),
    log,
  });
}

/**
 * Limits each step's writable layer to the disk quota where the daemon's storage driver can
 * (storage.ts): the containers' size option in `settings`, what the limit counts in `layer` (for a
 * failed step's reason); says once when it cannot.
 */
function fitLayerLimit(
  info: DaemonStorageInfo,
  quota: DiskQuota,
  settings: ContainerSettings,
  layer: { limit?: LayerLimit },
  log: Logger,
): void {
  const l = writableLayerLimit(info);
  if (!l.limited) {
    log.warn(`step containers' writable layers are not limited: ${l.why}`);
    return;
  }
  settings.storageSize = storageOptSize(quota);
  layer.limit = { counts: l.counts, quota };
}

export function createDockerRuntime(opts: DockerRuntimeOptions): Runtime {
  const docker = opts.docker ?? new Dockerode();
  const hostname = os.hostname();
  const mounts = parseMountSpecs(opts.additionalMounts);
  const log = opts.logger.child({ runtime: opts.kind });
  const settings: ContainerSettings = {
    kind: opts.kind,
    executorName: opts.executorName,
    hostname,
    pid: process.pid,
    cpus: opts.cpus,
    memory: opts.memory,
    pidsLimit: opts.pidsLimit,
    network: opts.network,
    hostMountPath: opts.hostMountPath,
    mounts,
    addHostGateway: opts.addHostGateway,
  };

  const disk = opts.diskQuota ? createDiskImages(opts.diskQuota, opts.workspaceRoot) : undefined;
  const memoryLimited = memoryBytes(opts.memory) !== undefined;
  /** The host's OOM count tells only about containers on this host's kernel (see oom.ts). */
  const countHostOomKills = memoryLimited && daemonIsLocal(docker);

  /** Live, like `settings`: set by fitToDaemon when each step's writable layer is limited. */
  const layer: { limit?: LayerLimit } = {};

  let daemonFit: Promise<void> | undefined;
  /**
   * Reads `docker info` once and fits the step settings to the daemon: lowers the step CPU limit to
   * the daemon's CPU count (Docker refuses a NanoCpus above it, which would fail every step; warns
   * once), and limits each step's writable layer to the disk quota where the storage driver can
   * (storage.ts; says once when it cannot). A failed `docker info` is retried by the next job (the
   * create will report the daemon anyway).
   */
  function fitToDaemon(): Promise<void> {
    daemonFit ??= (async () => {
      if (opts.cpus <= 0 && !opts.diskQuota) return;
      let info: { NCPU?: number } & DaemonStorageInfo;
      try {
        info = await docker.info();
      } catch (err) {
        daemonFit = undefined;
        log.warn('cannot read the Docker host CPU count and storage driver; steps left as configured', {
          err,
        });
        return;
      }
      if (opts.diskQuota) fitLayerLimit(info, opts.diskQuota, settings, layer, log);
      if (opts.cpus <= 0) return;
      const r = clampCpus(opts.cpus, info.NCPU);
      if (r.clamped) {
        settings.cpus = r.cpus;
        // Expected on a small host with the default of 4 CPUs: one info line, not a warning.
        log.info(
          `steps get ${r.cpus} CPUs, the Docker host's count (EXECUTOR_JOB_NUM_CPUS is ${opts.cpus})`,
          {
            requested: opts.cpus,
            hostCpus: info.NCPU,
            using: r.cpus,
          },
        );
      }
    })();
    return daemonFit;
  }

  let remap: Promise<RemappedRoot | undefined> | undefined;
  /**
   * The host ids of a step's root when the daemon remaps user namespaces, asked once (a daemon's
   * remapping changes only with a restart, which also empties its image store). A failed
   * `docker info` fails this job's preparation and is asked again by the next job.
   */
  function stepRoot(): Promise<RemappedRoot | undefined> {
    remap ??= detectUsernsRemap(docker).then(
      (r) => {
        if (!r.remapped) return undefined;
        log.info('the Docker daemon remaps user namespaces; workspaces are given to the root of steps', {
          uid: r.root.uid,
          gid: r.root.gid,
        });
        return r.root;
      },
      (err: unknown) => {
        remap = undefined;
        throw err;
      },
    );
    return remap;
  }

  const holders = holdersFor(opts.networkHolders ?? 0, docker, settings, log);
  const runnerDeps: DockerRunnerDeps = {
    docker,
    settings,
    authConfig: opts.authConfig,
    log,
    countHostOomKills,
    memoryLimited,
    fitToDaemon,
    holders,
    layer,
  };

  return {
    name: opts.kind,
    stepKeyPrefix: DOCKER_STEP_PREFIX,

    validate(): Promise<CheckResult[]> {
      return validateDocker(docker, opts.kind, opts.diskQuota);
    },

    async version(): Promise<string> {
      const v = await docker.version();
      return v.Version;
    },

    async prepareWorkspace(job: Job, ctx: JobContext): Promise<Workspace> {
      return prepareHostWorkspace(
        job,
        ctx,
        opts,
        typeof opts.files === 'function' ? opts.files(job) : opts.files,
        { stepRoot: await stepRoot(), disk },
      );
    },

    async newRunner(job: Job, ws: Workspace, ctx: JobContext): Promise<Runner> {
      return createDockerRunner(runnerDeps, job, ws, ctx);
    },

    specs(job: Job, ws: Workspace): RunSpec[] {
      return specsFromSteps(job, ws, DOCKER_STEP_PREFIX);
    },

    cleanupOrphans(activeJobUids: ReadonlySet<string>): Promise<string[]> {
      return removeOrphanContainers(activeJobUids, {
        docker,
        executorName: opts.executorName,
        hostname,
        log,
        holders,
      });
    },

    async close(): Promise<void> {
      await holders?.close();
    },
  };
}
