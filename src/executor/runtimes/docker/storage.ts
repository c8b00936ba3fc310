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
 */

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

/** `executor validate`'s line on the writable layer, for a quota of `size` (undefined = none). */
export function writableLayerCheck(info: DaemonStorageInfo, size: string | undefined) {
  const name = 'container writable layer';
  if (size === undefined) {
    return { name, ok: true, detail: 'not limited (EXECUTOR_JOB_DISK_SPACE=0)' };
  }
  const l = writableLayerLimit(info);
  return l.limited
    ? { name, ok: true, detail: `limited to ${size} per step (--storage-opt size=${size})` }
    : { name, ok: true, detail: `NOT limited: ${l.why}` };
}
