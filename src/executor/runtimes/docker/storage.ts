/**
 * The size limit of a step container's own writable layer (`--storage-opt size=`, in the Engine API
 * HostConfig.StorageOpt). The workspace has its quota (workspace/disk-image.ts); without this, a
 * step can still fill the Docker daemon's disk by writing outside /data (/tmp, /root, ...).
 *
 * Docker accepts the option only from some storage drivers; those taken as able here:
 * - overlay2, only on an xfs backing file system mounted with project quotas (pquota). `docker info`
 *   shows the driver and the backing file system but not the mount option, so overlay2 on xfs is
 *   taken as able: a daemon whose xfs lacks pquota refuses the container with its own message
 *   ("--storage-opt is supported only for overlay over xfs with 'pquota' mount option"), which
 *   names the fix.
 * - btrfs, which runs only with its data root on a btrfs (its `docker info` names no backing file
 *   system). Each layer is a subvolume; the size becomes a limit of that subvolume's btrfs qgroup.
 *   The driver turns quotas on in the file system itself at the first container given the option
 *   (no `btrfs quota enable` beforehand). The limit counts the subvolume's referenced bytes, its
 *   image's files included, so a step can write a little less than the size; past it a write fails
 *   with EDQUOT ("Disk quota exceeded").
 *
 * Tested on real daemons in test/e2e/docker-storage-opt.test.ts: a private dockerd with btrfs on a
 * loop-mounted btrfs (required under CI), and one with overlay2 on a loop-mounted xfs with pquota
 * (skipped where the kernel lacks CONFIG_XFS_QUOTA) and without it.
 */
import type { DiskQuota } from '../../workspace/disk-image.js';

export interface DaemonStorageInfo {
  Driver?: string;
  DriverStatus?: [string, string][] | null;
}

/**
 * What the limit counts, as `docker inspect --size` reports it: `layer` (SizeRw) what the step wrote
 * into its own layer (overlay2's project quota covers its upper directory), `rootfs` (SizeRootFs)
 * its whole file system, image included (btrfs's qgroup covers every byte its subvolume references).
 */
export type LayerCount = 'layer' | 'rootfs';

export type WritableLayerLimit = { limited: true; counts: LayerCount } | { limited: false; why: string };

/** The limit a runtime gives each step's writable layer. */
export interface LayerLimit {
  counts: LayerCount;
  quota: DiskQuota;
}

export function writableLayerLimit(info: DaemonStorageInfo): WritableLayerLimit {
  const driver = info.Driver ?? 'unknown';
  const backing = info.DriverStatus?.find(([k]) => k === 'Backing Filesystem')?.[1] ?? 'unknown';
  if (driver === 'overlay2' && backing === 'xfs') return { limited: true, counts: 'layer' };
  if (driver === 'btrfs') return { limited: true, counts: 'rootfs' };
  return {
    limited: false,
    why: `the storage driver ${driver} on ${backing} does not support --storage-opt size (it needs overlay2 on xfs mounted with pquota, or btrfs), so a step can fill the Docker daemon's disk by writing outside its workspace`,
  };
}

/**
 * The `size` storage option for a quota: its number of bytes, not the text as configured. Docker
 * reads the text with its own rules (go-units RAMInBytes: every unit binary, so "20GB" would be
 * 20 GiB where the workspace image is 20e9 bytes, and "20  G" would be refused at every step's
 * create); a bare byte count means the same to both, so the layer gets exactly the workspace's size.
 */
export function storageOptSize(quota: DiskQuota): string {
  return String(quota.bytes);
}

/** `executor validate`'s line on the writable layer, for `quota` (undefined = none). */
export function writableLayerCheck(info: DaemonStorageInfo, quota: DiskQuota | undefined) {
  const name = 'container writable layer';
  if (quota === undefined) {
    return { name, ok: true, detail: 'not limited (EXECUTOR_JOB_DISK_SPACE=0)' };
  }
  const l = writableLayerLimit(info);
  return l.limited
    ? {
        name,
        ok: true,
        detail: `limited to ${quota.text} per step (--storage-opt size=${storageOptSize(quota)})`,
      }
    : { name, ok: true, detail: `NOT limited: ${l.why}` };
}

/** `docker inspect --size` of an exited step container. */
export interface ContainerSizes {
  SizeRw?: number;
  SizeRootFs?: number;
}

/**
 * Whether an exited step's writable layer is full: what its limit counts is within 2% of the quota
 * (at least 4 MiB). The sizes are the files' bytes; the limit also counts the file system's own
 * blocks for them (a few hundred bytes a file on btrfs: 2000 small files left 1 MiB of 64 MiB
 * unused), which the margin absorbs. A step that fails for another reason with its layer nearly full
 * is reported as full, which is then also true.
 */
export function layerIsFull(counts: LayerCount, sizes: ContainerSizes, quota: DiskQuota): boolean {
  const used = counts === 'rootfs' ? sizes.SizeRootFs : sizes.SizeRw;
  if (used === undefined) return false;
  return used >= quota.bytes - Math.max(4 * 1024 * 1024, quota.bytes / 50);
}

/** The reason added to a failed step's error when its writable layer is full. */
export function layerFullReason(quota: DiskQuota): string {
  return `the container's writable layer is full: each step gets ${quota.text} of disk outside its workspace (EXECUTOR_JOB_DISK_SPACE); raise it or make the step write less outside /data`;
}
