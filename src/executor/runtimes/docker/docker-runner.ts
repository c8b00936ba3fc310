/**
 * One job's runner in the docker runtime: create -> attach -> start -> wait -> inspect -> remove per
 * step, through the Engine API. The container body comes from the pure convert.ts. On the isolated
 * network the job takes a network holder in setup() and every step joins its network namespace;
 * teardown() gives the holder back, which removes it (network-holders.ts).
 *
 * Cancellation: the job's AbortSignal force-removes the running container at once (the daemon
 * SIGKILLs it), closes the step's log entry and rejects with the abort reason. teardown() removes
 * whatever this runner created and is safe to call any number of times, also after a failed setup.
 */
import type Dockerode from 'dockerode';
import type { Container } from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { DockerAuthConfig, Job } from '../../../protocol/job.js';
import type { JobContext, LogEntryHandle } from '../../job-context.js';
import type { Runner, RunSpec, StepOutcome, Workspace } from '../types.js';
import { attachOutput } from './attach.js';
import {
  type ContainerInput,
  type ContainerSettings,
  dockerRunArgv,
  effectiveAuthConfig,
  toContainerCreateOptions,
} from './convert.js';
import { createDemuxer } from './demux.js';
import { forceRemove, imageExists, pullImage } from './engine.js';
import type { Holder, HolderLease, NetworkHolders } from './network-holders.js';
import { classifyOom, readOomKillCount, SIGKILL_EXIT } from './oom.js';
import { type ContainerSizes, type LayerLimit, layerFullReason, layerIsFull } from './storage.js';

/** After the container exits, how long the attach stream may take to deliver its last bytes. */
const OUTPUT_DRAIN_MS = 5_000;

/** What the runtime shares with each of its runners. */
export interface DockerRunnerDeps {
  docker: Dockerode;
  /** Shared and live: the runtime may lower `cpus` to the daemon's CPU count before a setup. */
  settings: ContainerSettings;
  /** EXECUTOR_DOCKER_AUTH_CONFIG; a job's own non-empty dockerAuthConfig wins. */
  authConfig?: DockerAuthConfig;
  log: Logger;
  memoryLimited: boolean;
  /** Read the host's OOM kill count around each step (a local daemon and a memory limit; oom.ts). */
  countHostOomKills: boolean;
  fitToDaemon(): Promise<void>;
  /** The isolated network's holders; absent: steps attach to `settings.network` themselves. */
  holders?: NetworkHolders;
  /** Live, like `settings`: fitToDaemon sets `limit` when each step's writable layer is limited. */
  layer: { limit?: LayerLimit };
}

/**
 * With a limited writable layer: whether a step that failed did so with its layer full (storage.ts
 * layerIsFull), asked before its container is removed. `docker inspect --size` walks the layer (on
 * btrfs the whole file system) for the sizes, so only failed steps are asked; a failure to answer
 * is no reason.
 */
async function layerFullOf(container: Container, limit: LayerLimit): Promise<string | undefined> {
  // The Engine API's `size` query; dockerode's types leave it and the sizes out.
  const opts: Dockerode.ContainerInspectOptions & { size: boolean } = { size: true };
  try {
    const sizes = (await container.inspect(opts)) as ContainerSizes;
    return layerIsFull(limit.counts, sizes, limit.quota) ? layerFullReason(limit.quota) : undefined;
  } catch {
    return undefined;
  }
}

export function createDockerRunner(deps: DockerRunnerDeps, job: Job, ws: Workspace, ctx: JobContext): Runner {
  const { docker, settings, log, countHostOomKills, memoryLimited } = deps;
  const created = new Set<string>();
  const auth = effectiveAuthConfig(job, deps.authConfig);
  const { signal } = ctx;
  let lease: HolderLease | undefined;
  let holder: Holder | undefined;

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
    const limit = deps.layer.limit;
    const layerFull =
      exitCode !== 0 && !verdict.oomKilled && !signal.aborted && limit
        ? await layerFullOf(container, limit)
        : undefined;
    return { exitCode, oomKilled: verdict.oomKilled, layerFull } satisfies StepOutcome;
  }

  return {
    async setup() {
      await deps.fitToDaemon();
      // Taken first: a holder still starting finishes while the images are checked and pulled.
      if (deps.holders && job.dockerSteps.length > 0) lease ??= deps.holders.take();
      const images = [...new Set(job.dockerSteps.map((s) => s.image))];
      for (const image of images) {
        if (signal.aborted) throw signal.reason;
        if (await imageExists(docker, image)) continue;
        log.info('pulling image', { image });
        await pullImage(docker, image, auth, signal);
      }
      if (lease) holder = await lease;
    },

    async run(spec: RunSpec): Promise<StepOutcome> {
      if (signal.aborted) throw signal.reason;
      const input: ContainerInput = { spec, job, workspacePath: ws.path, settings, holder: holder?.id };
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
          entry.writeRaw(`container was killed: out of memory (limit ${settings.memory.trim() || 'none'})\n`);
        }
        if (outcome.layerFull) entry.writeRaw(`${outcome.layerFull}\n`);
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
      // After the steps: nothing of this job is left in the holder's namespace.
      if (lease) deps.holders?.giveBack(lease);
      lease = undefined;
      holder = undefined;
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    },
  };
}
