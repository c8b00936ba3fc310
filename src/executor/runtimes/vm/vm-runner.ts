/**
 * One job's runner in the vm runtime: setup pulls the steps' images into the local Docker daemon
 * and converts each into its root disk (image-disks.ts); run() boots one microVM per step with that
 * root disk and the job's workspace disk (boot.ts), runs the step as the image's user, streams the
 * step's stdout and stderr apart into its log entry (redacted there, as with docker) and returns
 * the guest's exit code.
 *
 * With a network (EXECUTOR_JOB_NETWORK isolated or bridge) setup also starts the job's holder
 * container (network.ts), in whose network namespace every step's QEMU runs.
 *
 * Cancellation: the job's AbortSignal kills the running VM at once (SIGKILL of QEMU), closes the
 * step's log entry and rejects with the abort reason. teardown() releases the root disks and
 * removes the holder; it is idempotent and safe after a failed setup.
 */
import os from 'node:os';
import type Dockerode from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import { type DockerAuthConfig, type Job, recordUid } from '../../../protocol/job.js';
import type { JobContext } from '../../job-context.js';
import { SKIP_FILE } from '../common.js';
import { effectiveAuthConfig } from '../docker/convert.js';
import { imageExists, pullImage } from '../docker/engine.js';
import type { Runner, RunSpec, StepOutcome } from '../types.js';
import { bootStep } from './boot.js';
import { stepDescription, stepEnv, type VmSettings, vmName, vmRunArgv } from './convert.js';
import type { ImageDisks, RootDisk } from './image-disks.js';
import { createVmNetwork, type VmNetwork } from './network.js';
import { takeFileFromDisk, type VmWorkspace } from './workspace-disk.js';

export interface VmRunnerDeps {
  docker: Dockerode;
  images: ImageDisks;
  settings: VmSettings;
  executorName: string;
  /**
   * The Docker network whose holder container the VMs' user-mode network runs in (network.ts);
   * undefined: no network device.
   */
  network?: string;
  authConfig?: DockerAuthConfig;
  log: Logger;
}

export function createVmRunner(deps: VmRunnerDeps, job: Job, ws: VmWorkspace, ctx: JobContext): Runner {
  const { signal } = ctx;
  const disks = new Map<string, RootDisk>();
  let net: VmNetwork | undefined;
  const auth = effectiveAuthConfig(job, deps.authConfig);
  const uid = recordUid(job);

  return {
    async setup() {
      const images = [...new Set(job.dockerSteps.map((s) => s.image))];
      for (const image of images) {
        if (signal.aborted) throw signal.reason;
        if (!(await imageExists(deps.docker, image))) {
          deps.log.info('pulling image', { image });
          await pullImage(deps.docker, image, auth, signal);
        }
        if (signal.aborted) throw signal.reason;
        disks.set(image, await deps.images.acquire(image));
      }
      if (deps.network && images[0]) {
        net = await createVmNetwork(deps.docker, {
          network: deps.network,
          image: images[0],
          executorName: deps.executorName,
          hostname: os.hostname(),
          pid: process.pid,
          jobUid: uid,
        });
      }
    },

    async run(spec: RunSpec): Promise<StepOutcome> {
      if (signal.aborted) throw signal.reason;
      const root = disks.get(spec.image);
      if (!root) throw new Error(`no root disk for image ${spec.image}: setup() did not run`);
      const resolved = root.user;
      const user = 'error' in resolved ? undefined : resolved;
      const entry = ctx.logger.entry(spec.key, vmRunArgv(spec, deps.settings, user));
      try {
        // Docker refuses to start a container whose image names a user its passwd file lacks.
        if ('error' in resolved) throw new Error(`image ${spec.image}: ${resolved.error}`);
        const env = stepEnv(root.env, spec.env, resolved.home);
        const r = await bootStep({
          settings: deps.settings,
          runDir: `${ws.runDir}/step-${spec.stepIndex}`,
          name: vmName(deps.executorName, uid, spec.stepIndex),
          rootDisk: root.path,
          workspaceDisk: ws.disk,
          netns: net?.netns,
          describe: (mark) => stepDescription(spec, env, mark, resolved, net?.resolvers),
          write: (stream, chunk) => entry.write(stream, chunk),
          signal,
        });
        ws.lastFree = r.disk;
        if (spec.key.endsWith('.pre')) await takeFileFromDisk(ws, SKIP_FILE);
        entry.close(r.exitCode);
        return { exitCode: r.exitCode };
      } catch (err) {
        if (signal.aborted) {
          entry.writeRaw(`step cancelled: ${errorMessage(signal.reason)}\n`);
          entry.close(-1);
          throw signal.reason;
        }
        entry.writeRaw(`error: ${errorMessage(err)}\n`);
        entry.close(-1);
        throw err;
      }
    },

    async teardown() {
      for (const d of disks.values()) d.release();
      disks.clear();
      const holder = net;
      net = undefined;
      await holder?.remove();
    },
  };
}
