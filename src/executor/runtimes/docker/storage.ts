/**
 * The size limit of a step container's own writable layer (`--storage-opt size=`, in the Engine API
 * HostConfig.StorageOpt). The workspace has its quota (workspace/disk-image.ts); without this, a
 * step can still fill the Docker daemon's disk by writing outside /data (/tmp, /root, ...).
 *
 * Docker accepts the option only from some storage drivers; with overlay2 only on an xfs backing
 * file system mounted with project quotas (pquota). `docker info` shows the driver and the backing
 * file system but not the mount option, so overlay2 on xfs is taken as able: a daemon whose xfs
 * lacks pquota refuses the container with its own message ("--storage-opt is supported only for
 * overlay over xfs with 'pquota' mount option"), which names the fix.
 *
 * Tested on a real daemon in test/e2e/docker-storage-opt.test.ts (a private dockerd on a loop-mounted
 * xfs with pquota).
 */
import type { DiskQuota } from '../../workspace/disk-image.js';

export interface DaemonStorageInfo {
  Driver?: string;
  DriverStatus?: [string, string][] | null;
}

export type WritableLayerLimit = { limited: true } | { limited: false; why: string };

export function writableLayerLimit(info: DaemonStorageInfo): WritableLayerLimit {
  const driver = info.Driver ?? 'unknown';
  const backing = info.DriverStatus?.find(([k]) => k === 'Backing Filesystem')?.[1] ?? 'unknown';
  if (driver === 'overlay2' && backing === 'xfs') return { limited: true };
  return {
    limited: false,
    why: `the storage driver ${driver} on ${backing} does not support --storage-opt size (it needs overlay2 on xfs mounted with pquota), so a step can fill the Docker daemon's disk by writing outside its workspace`,
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
