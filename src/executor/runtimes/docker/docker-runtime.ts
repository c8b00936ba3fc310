/**
 * The docker runtime (and gVisor: the same with `Runtime: runsc`). Steps run through the Engine API
 * (dockerode), never a `docker` process per step: create -> attach -> start -> wait -> inspect ->
 * remove. The container body comes from the pure convert.ts.
 *
 * Cancellation: the job's AbortSignal force-removes the running container at once (the daemon
 * SIGKILLs it), closes the step's log entry and rejects with the abort reason. teardown() removes
 * whatever this runner created and is safe to call any number of times, also after a failed setup.
 */
import os from 'node:os';
import type { Container } from 'dockerode';
import Dockerode from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { DockerAuthConfig, Job } from '../../../protocol/job.js';
import type { JobContext, LogEntryHandle } from '../../job-context.js';
import type { FilesFetcher } from '../../workspace/files.js';
import {
  DOCKER_STEP_PREFIX,
  type LocalWorkspaceSettings,
  prepareHostWorkspace,
  specsFromSteps,
} from '../common.js';
import type { CheckResult, Runner, RunSpec, Runtime, StepOutcome, Workspace } from '../types.js';
import { attachOutput } from './attach.js';
import {
  type ContainerInput,
  type ContainerSettings,
  clampCpus,
  dockerRunArgv,
  effectiveAuthConfig,
  memoryBytes,
  parseMountSpecs,
  toContainerCreateOptions,
} from './convert.js';
import { createDemuxer } from './demux.js';
import { forceRemove, imageExists, pullImage } from './engine.js';
import { classifyOom, daemonIsLocal, readOomKillCount, SIGKILL_EXIT } from './oom.js';
import { removeOrphanContainers } from './orphans.js';
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
  network: 'bridge' | 'none';
  hostMountPath?: string;
  /** EXECUTOR_DOCKER_ADDITIONAL_MOUNTS, split on `;`. */
  additionalMounts: string[];
  addHostGateway: boolean;
  /** EXECUTOR_DOCKER_AUTH_CONFIG; a job's own non-empty dockerAuthConfig wins. */
  authConfig?: DockerAuthConfig;
  logger: Logger;
}

/** After the container exits, how long the attach stream may take to deliver its last bytes. */
const OUTPUT_DRAIN_MS = 5_000;

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

  const memoryLimited = memoryBytes(opts.memory) !== undefined;
  /** The host's OOM count tells only about containers on this host's kernel (see oom.ts). */
  const countHostOomKills = memoryLimited && daemonIsLocal(docker);

  let cpuCheck: Promise<void> | undefined;
  /**
   * Reads the daemon's CPU count once and lowers the step CPU limit to it: Docker refuses a
   * NanoCpus above the host's CPUs, which would fail every step. Warns once when it lowers it.
   * A failed `docker info` is retried by the next job (the create will report the daemon anyway).
   */
  function fitCpusToDaemon(): Promise<void> {
    cpuCheck ??= (async () => {
      if (opts.cpus <= 0) return;
      let ncpu: number | undefined;
      try {
        ncpu = ((await docker.info()) as { NCPU?: number }).NCPU;
      } catch (err) {
        cpuCheck = undefined;
        log.warn('cannot read the Docker host CPU count; CPU limit left as configured', { err });
        return;
      }
      const r = clampCpus(opts.cpus, ncpu);
      if (r.clamped) {
        settings.cpus = r.cpus;
        log.warn('EXECUTOR_JOB_NUM_CPUS exceeds the Docker host CPU count; limiting steps to the host', {
          requested: opts.cpus,
          hostCpus: ncpu,
          using: r.cpus,
        });
      }
    })();
    return cpuCheck;
  }

  const imagePresent = (image: string) => imageExists(docker, image);
  const pull = (image: string, auth: DockerAuthConfig | undefined, signal: AbortSignal) =>
    pullImage(docker, image, auth, signal);

  function newRunner(job: Job, ws: Workspace, ctx: JobContext): Runner {
    const created = new Set<string>();
    const auth = effectiveAuthConfig(job, opts.authConfig);
    const { signal } = ctx;

    /** Create, attach, start, wait, inspect. The id is published through `onCreated` at once. */
    async function execute(input: ContainerInput, entry: LogEntryHandle, onCreated: (c: Container) => void) {
      const container = await docker.createContainer(toContainerCreateOptions(input));
      created.add(container.id);
      onCreated(container);
      if (signal.aborted) {
        // Aborted while the create was in flight: run() has already returned.
        await forceRemove(docker, container.id).catch(() => {});
        created.delete(container.id);
        throw signal.reason;
      }
      const { ended } = await attachOutput(
        docker,
        container.id,
        createDemuxer((name, bytes) => entry.write(name, bytes)),
      );
      const oomKillsBefore = countHostOomKills ? await readOomKillCount() : undefined;
      await container.start();
      const waited = (await container.wait()) as { StatusCode?: number };
      let drainTimer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise<void>((r) => (drainTimer = setTimeout(r, OUTPUT_DRAIN_MS)))]);
      clearTimeout(drainTimer);
      const info = await container.inspect();
      const exitCode = info.State?.ExitCode ?? waited.StatusCode ?? -1;
      const oomKillsAfter =
        oomKillsBefore !== undefined && exitCode === SIGKILL_EXIT ? await readOomKillCount() : undefined;
      const verdict = classifyOom({
        exitCode,
        dockerOomKilled: info.State?.OOMKilled === true,
        memoryLimited,
        killedByUs: signal.aborted,
        hostOomKills: oomKillsAfter === undefined ? undefined : oomKillsAfter - oomKillsBefore!,
      });
      if (verdict.source === 'kernel-count') {
        log.info('step was killed for memory; Docker did not flag it, the kernel counted it', {
          id: container.id,
        });
      }
      return { exitCode, oomKilled: verdict.oomKilled } satisfies StepOutcome;
    }

    return {
      async setup() {
        await fitCpusToDaemon();
        const images = [...new Set(job.dockerSteps.map((s) => s.image))];
        for (const image of images) {
          if (signal.aborted) throw signal.reason;
          if (await imagePresent(image)) continue;
          log.info('pulling image', { image });
          await pull(image, auth, signal);
        }
      },

      async run(spec: RunSpec): Promise<StepOutcome> {
        if (signal.aborted) throw signal.reason;
        const input: ContainerInput = { spec, job, workspacePath: ws.path, settings };
        const entry = ctx.logger.entry(spec.key, dockerRunArgv(input));
        let closed = false;
        const close = (code: number) => {
          if (closed) return;
          closed = true;
          entry.close(code);
        };
        let containerId: string | undefined;
        let onAbort = () => {};
        const aborted = new Promise<never>((_, reject) => {
          onAbort = () => {
            // Kill at once; do not wait for execute() to notice.
            if (containerId) void forceRemove(docker, containerId).catch(() => {});
            reject(signal.reason);
          };
          signal.addEventListener('abort', onAbort, { once: true });
        });
        aborted.catch(() => {});
        const work = execute(input, entry, (c) => {
          containerId = c.id;
        });
        work.catch(() => {});
        try {
          const outcome = await Promise.race([work, aborted]);
          if (outcome.oomKilled) {
            entry.writeRaw(`container was killed: out of memory (limit ${opts.memory.trim() || 'none'})\n`);
          }
          close(outcome.exitCode);
          return outcome;
        } catch (err) {
          if (signal.aborted) {
            entry.writeRaw(`step cancelled: ${errorMessage(signal.reason)}\n`);
            close(-1);
            throw signal.reason;
          }
          entry.writeRaw(`error: ${errorMessage(err)}\n`);
          close(-1);
          throw err;
        } finally {
          signal.removeEventListener('abort', onAbort);
          if (containerId) {
            try {
              await forceRemove(docker, containerId);
              created.delete(containerId);
            } catch (err) {
              log.warn('cannot remove step container; teardown will retry', { id: containerId, err });
            }
          }
        }
      },

      async teardown() {
        const ids = [...created];
        const results = await Promise.allSettled(ids.map((id) => forceRemove(docker, id)));
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') created.delete(ids[i]!);
          else log.warn('cannot remove container', { id: ids[i], err: r.reason });
        });
        const failed = results.find((r) => r.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
      },
    };
  }

  return {
    name: opts.kind,
    stepKeyPrefix: DOCKER_STEP_PREFIX,

    validate(): Promise<CheckResult[]> {
      return validateDocker(docker, opts.kind);
    },

    async version(): Promise<string> {
      const v = await docker.version();
      return v.Version;
    },

    prepareWorkspace(job: Job, ctx: JobContext): Promise<Workspace> {
      return prepareHostWorkspace(
        job,
        ctx,
        opts,
        typeof opts.files === 'function' ? opts.files(job) : opts.files,
      );
    },

    async newRunner(job: Job, ws: Workspace, ctx: JobContext): Promise<Runner> {
      return newRunner(job, ws, ctx);
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
      });
    },
  };
}
