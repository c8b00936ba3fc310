/**
 * EXECUTOR_JOB_DISK_SPACE at startup and in `executor validate`: whether the configured runtime
 * gives workspaces a disk quota, and whether this process can (disk-image.ts). The docker and
 * gvisor runtimes apply it (the vm runtime too, as the size of its workspace disks, with no mount on
 * this host: vm/workspace-disk.ts). The shell runtime does not: its steps run on this host as the
 * executor's user and can write anywhere that user can, so an image around the workspace would
 * confine nothing. Kubernetes jobs write into volumes of the cluster, not of this host.
 */
import type { CheckResult } from '../runtimes/types.js';
import { type DiskQuota, probeDiskImages } from './disk-image.js';

export interface DiskSettings {
  runtime: string;
  jobDiskSpace: DiskQuota;
  workspaceRoot: string;
}

/** The quota the runtime applies, or undefined when it applies none. */
export function appliedDiskQuota(config: DiskSettings): DiskQuota | undefined {
  const local = config.runtime === 'docker' || config.runtime === 'gvisor';
  return local && config.jobDiskSpace.bytes > 0 ? config.jobDiskSpace : undefined;
}

/**
 * Why the executor must not start: the quota applies and this process cannot mount images. Undefined
 * when it may start. It never runs jobs without the quota it was given.
 */
export async function diskQuotaProblem(config: DiskSettings): Promise<string | undefined> {
  const quota = appliedDiskQuota(config);
  return quota ? probeDiskImages(config.workspaceRoot, quota) : undefined;
}

/** `executor validate`'s line on the disk of jobs. */
export async function diskConfinement(config: DiskSettings): Promise<CheckResult> {
  const name = 'job disk';
  if (config.runtime === 'shell') {
    return {
      name,
      ok: true,
      detail: 'no quota: steps run on this host and can fill any of its file systems',
    };
  }
  if (config.runtime === 'vm') {
    const size = config.jobDiskSpace.bytes > 0 ? config.jobDiskSpace.text : 'EXECUTOR_FIRECRACKER_DISK_SPACE';
    return {
      name,
      ok: true,
      detail: `each job's workspace is an ext4 disk of ${size} attached to its steps' VMs; a step that fills it gets ENOSPC`,
    };
  }
  if (config.runtime !== 'docker' && config.runtime !== 'gvisor') {
    return {
      name,
      ok: true,
      detail: `EXECUTOR_JOB_DISK_SPACE does not apply to the ${config.runtime} runtime`,
    };
  }
  if (config.jobDiskSpace.bytes === 0) {
    return {
      name,
      ok: true,
      detail: `no quota (EXECUTOR_JOB_DISK_SPACE=0): a step can fill the file system of ${config.workspaceRoot}`,
    };
  }
  const problem = await diskQuotaProblem(config);
  return problem
    ? { name, ok: false, detail: `${problem}; the executor will not start` }
    : {
        name,
        ok: true,
        detail: `each workspace is a ${config.jobDiskSpace.text} ext4 image (sparse, loop-mounted) under ${config.workspaceRoot}`,
      };
}
