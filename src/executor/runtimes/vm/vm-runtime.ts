/**
 * The vm runtime (EXECUTOR_RUNTIME=vm): every step runs in its own QEMU microVM with its own guest
 * kernel, booted from the step's image (converted into a read-only root disk, image-disks.ts) with
 * the job's workspace disk (workspace-disk.ts) at /data. KVM where a guest kernel boots with it (host.ts kvmWorks); otherwise
 * software emulation (TCG), only with EXECUTOR_VM_ALLOW_EMULATION=true. Log keys are the docker
 * runtime's (`step.docker.<key>`), so a Sourcegraph instance sees the same entries. Under
 * EXECUTOR_JOB_NETWORK isolated or bridge VMs get user-mode networking through a holder container
 * on that Docker network (network.ts); under none they have no network device.
 */
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import type { Logger } from '../../../lib/logger.js';
import type { DockerAuthConfig, Job } from '../../../protocol/job.js';
import { commandOutput } from '../../command.js';
import type { JobContext } from '../../job-context.js';
import type { DiskQuota } from '../../workspace/disk-image.js';
import type { FilesFetcher } from '../../workspace/files.js';
import {
  DOCKER_STEP_PREFIX,
  type LocalWorkspaceSettings,
  prepareHostWorkspace,
  specsFromSteps,
} from '../common.js';
import { removeOrphanContainers } from '../docker/orphans.js';
import type { CheckResult, Runner, RunSpec, Runtime } from '../types.js';
import { NSENTER } from './boot.js';
import { memoryMiB, type VmSettings } from './convert.js';
import {
  EMULATION_WARNING,
  guestInitSha256,
  hostTscKhz,
  kvmWorks,
  qemuVersion,
  readAssets,
  staleAssets,
} from './host.js';
import { createImageDisks } from './image-disks.js';
import { removeOrphanVms } from './orphans.js';
import { createVmRunner } from './vm-runner.js';
import { toVmWorkspace, type VmWorkspace } from './workspace-disk.js';

export interface VmRuntimeOptions extends LocalWorkspaceSettings {
  files: (job: Job) => FilesFetcher;
  /** Injectable; default `new Dockerode()`: images come from the local Docker daemon. */
  docker?: Dockerode;
  qemu: string;
  assetsDir: string;
  allowEmulation: boolean;
  imageCacheDir: string;
  imageCacheBytes: number;
  /** vCPUs per step (0 -> 1). */
  cpus: number;
  /** EXECUTOR_JOB_MEMORY ("0" -> DEFAULT_VM_MEMORY_MIB). */
  memory: string;
  /** Size of each job's workspace disk. */
  disk: DiskQuota;
  authConfig?: DockerAuthConfig;
  /**
   * The Docker network of the VMs' user-mode networking (EXECUTOR_JOB_NETWORK_NAME for isolated,
   * `bridge`; network.ts); undefined (EXECUTOR_JOB_NETWORK=none): VMs have no network device.
   */
  network?: string;
  /** Injectable for tests: whether KVM is usable. */
  kvm?: () => Promise<{ ok: boolean; why?: string }>;
  logger: Logger;
}

/** Whether KVM works: probed once per runtime (a guest kernel booted with it, host.ts), then kept. */
function kvmCheck(opts: VmRuntimeOptions): () => Promise<{ ok: boolean; why?: string }> {
  if (opts.kvm) return opts.kvm;
  let verdict: Promise<{ ok: boolean; why?: string }> | undefined;
  return () => (verdict ??= kvmWorks(opts.qemu, path.join(opts.assetsDir, 'vmlinuz')));
}

export function createVmRuntime(opts: VmRuntimeOptions): Runtime<VmWorkspace> {
  const docker = opts.docker ?? new Dockerode();
  const log = opts.logger.child({ runtime: 'vm' });
  const images = createImageDisks({ docker, cacheDir: opts.imageCacheDir, capBytes: opts.imageCacheBytes });
  const checkKvm = kvmCheck(opts);

  let settings: Promise<VmSettings> | undefined;
  /** The VM settings, with the KVM verdict read once; rejects when the runtime must refuse. */
  function vmSettings(): Promise<VmSettings> {
    settings ??= (async () => {
      const problem = await startupProblem(opts, checkKvm);
      if (problem) throw new Error(problem);
      const kvm = (await checkKvm()).ok;
      if (!kvm) log.warn(EMULATION_WARNING);
      const stale = staleAssets(await readAssets(opts.assetsDir), await guestInitSha256(), opts.assetsDir);
      if (stale) log.warn(stale);
      return {
        qemu: opts.qemu,
        assetsDir: opts.assetsDir,
        kvm,
        cpus: Math.max(1, opts.cpus),
        memoryMiB: memoryMiB(opts.memory),
        tscKhz: kvm ? undefined : await hostTscKhz(),
      };
    })().catch((err: unknown) => {
      settings = undefined;
      throw err;
    });
    return settings;
  }

  return {
    name: 'vm',
    stepKeyPrefix: DOCKER_STEP_PREFIX,

    async startupProblem(): Promise<string | undefined> {
      try {
        await vmSettings();
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },

    async validate(): Promise<CheckResult[]> {
      const checks: CheckResult[] = [];
      try {
        checks.push({ name: 'qemu', ok: true, detail: await qemuVersion(opts.qemu) });
      } catch (err) {
        checks.push({
          name: 'qemu',
          ok: false,
          detail: `${opts.qemu} does not run: ${(err as Error).message}`,
        });
      }
      const kvm = await checkKvm();
      checks.push(
        kvm.ok
          ? { name: 'kvm', ok: true, detail: 'a guest boots with KVM: VMs run with hardware virtualisation' }
          : opts.allowEmulation
            ? {
                name: 'kvm',
                ok: true,
                detail: `${kvm.why}; EMULATED VMs (EXECUTOR_VM_ALLOW_EMULATION=true): tests and trials only`,
              }
            : {
                name: 'kvm',
                ok: false,
                detail: `${kvm.why}; the executor will not start (EXECUTOR_VM_ALLOW_EMULATION=true allows emulation)`,
              },
      );
      try {
        const a = await readAssets(opts.assetsDir);
        const stale = staleAssets(a, await guestInitSha256(), opts.assetsDir);
        checks.push(
          stale
            ? { name: 'vm assets', ok: false, detail: stale }
            : {
                name: 'vm assets',
                ok: true,
                detail: `${opts.assetsDir}: kernel ${a.kernelVersion ?? 'of unknown version (no assets.json)'}`,
              },
        );
      } catch (err) {
        checks.push({ name: 'vm assets', ok: false, detail: (err as Error).message });
      }
      try {
        const v = await docker.version();
        checks.push({ name: 'docker daemon (images)', ok: true, detail: `version ${v.Version}` });
      } catch (err) {
        checks.push({
          name: 'docker daemon (images)',
          ok: false,
          detail: `the vm runtime takes step images from the local Docker daemon, which does not answer: ${(err as Error).message}`,
        });
      }
      return checks;
    },

    async version(): Promise<string> {
      return qemuVersion(opts.qemu).catch(() => '');
    },

    async prepareWorkspace(job: Job, ctx: JobContext): Promise<VmWorkspace> {
      await vmSettings();
      const host = await prepareHostWorkspace(job, ctx, opts, opts.files(job));
      try {
        return await toVmWorkspace(host, opts.disk);
      } catch (err) {
        await host.remove().catch(() => {});
        throw err;
      }
    },

    async newRunner(job: Job, ws: VmWorkspace, ctx: JobContext): Promise<Runner> {
      return createVmRunner(
        {
          docker,
          images,
          settings: await vmSettings(),
          executorName: opts.executorName,
          network: opts.network,
          authConfig: opts.authConfig,
          log,
        },
        job,
        ws,
        ctx,
      );
    },

    specs(job: Job, ws: VmWorkspace): RunSpec[] {
      return specsFromSteps(job, ws, DOCKER_STEP_PREFIX);
    },

    async cleanupOrphans(activeJobUids: ReadonlySet<string>): Promise<string[]> {
      const vms = await removeOrphanVms(opts.workspaceRoot, activeJobUids, opts.executorName);
      // The network holders of jobs gone (labelled as step containers are), also those of a run
      // with another EXECUTOR_JOB_NETWORK.
      const holders = await removeOrphanContainers(activeJobUids, {
        docker,
        executorName: opts.executorName,
        hostname: os.hostname(),
        log,
      });
      return [...vms, ...holders];
    },
  };
}

/** Why the runtime cannot run jobs here, or undefined. */
async function startupProblem(
  opts: VmRuntimeOptions,
  checkKvm: () => Promise<{ ok: boolean; why?: string }>,
): Promise<string | undefined> {
  try {
    await qemuVersion(opts.qemu);
  } catch {
    return `EXECUTOR_RUNTIME=vm needs QEMU: ${opts.qemu} does not run (apt-get install qemu-system-x86, or set EXECUTOR_VM_QEMU)`;
  }
  try {
    await readAssets(opts.assetsDir);
  } catch (err) {
    return (err as Error).message;
  }
  if (opts.network) {
    try {
      await commandOutput([NSENTER, '--version'], 10_000);
    } catch {
      return `EXECUTOR_RUNTIME=vm with EXECUTOR_JOB_NETWORK=${opts.network === 'bridge' ? 'bridge' : 'isolated'} needs nsenter (util-linux) to start QEMU in the job network; install util-linux, or set EXECUTOR_JOB_NETWORK=none`;
    }
  }
  const kvm = await checkKvm();
  if (!kvm.ok && !opts.allowEmulation) {
    return `EXECUTOR_RUNTIME=vm needs KVM: ${kvm.why}. Run on bare metal or a VM with nested virtualisation; EXECUTOR_VM_ALLOW_EMULATION=true runs emulated VMs instead (far too slow for real work: tests and trials only)`;
  }
  return undefined;
}
