/**
 * The workspace of a VM job: prepared on this host as for docker (clone, files, step scripts in
 * `<dir>`), then written by `mkfs.ext4 -d` into `<dir>.disk.img`, a sparse ext4 image of the job's
 * disk size that each step's VM mounts at /data in turn. The host directory is then emptied: the
 * disk is the workspace from there on, and nothing on the host mounts it (no loop device, no
 * privilege beyond writing files). `<dir>/.vm/` holds the VMs' sockets, pid files and consoles.
 *
 * The disk is named like a docker workspace's image (disk-image.ts), so the workspace janitor
 * removes what a crash leaves; the VM janitor (orphans.ts) first kills VMs still running.
 */
import { open, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../../lib/errors.js';
import { commandOutput } from '../../command.js';
import { type DiskQuota, diskFullReason, imagePathOf } from '../../workspace/disk-image.js';
import type { Workspace } from '../types.js';
import type { GuestDiskFree } from './convert.js';

export const RUN_DIR = '.vm';
/**
 * No journal: the guest syncs after each step and the VM is then killed, so metadata must be in
 * place, not in a journal only the next mount would replay; the host reads the disk between steps
 * (debugfs, takeFileFromDisk). No reserved blocks: the job gets the whole size.
 */
const MKFS_ARGS = ['-q', '-F', '-m', '0', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard'];
const TIMEOUT_MS = 10 * 60_000;

export interface VmWorkspace extends Workspace {
  /** The workspace disk. */
  readonly disk: string;
  /** Directory of the VMs' sockets and pid files. */
  readonly runDir: string;
  /** The file system's free space after the last step, as its guest reported it. */
  lastFree?: GuestDiskFree;
}

/**
 * Whether a disk with this much free is full: below 1% of the quota (at least 1 MiB) or no free
 * inode, the rule of docker workspaces (disk-image.ts diskIsFull).
 */
export function guestDiskIsFull(free: GuestDiskFree, quota: DiskQuota): boolean {
  const margin = Math.max(1024 * 1024, quota.bytes / 100);
  return free.freeBytes < margin || free.freeInodes === 0;
}

/** Turns a prepared host workspace into a VM workspace of `quota`. On failure removes the disk. */
export async function toVmWorkspace(host: Workspace, quota: DiskQuota): Promise<VmWorkspace> {
  const dir = host.path;
  const disk = imagePathOf(dir);
  try {
    const fh = await open(disk, 'wx', 0o600);
    await fh.truncate(quota.bytes).finally(() => fh.close());
    try {
      await commandOutput(['mkfs.ext4', ...MKFS_ARGS, '-d', dir, disk], TIMEOUT_MS);
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
      const full = /No space|Could not allocate/i.test(stderr) ? ` (${diskFullReason(quota)})` : '';
      throw new Error(
        `cannot make the workspace disk: mkfs.ext4 -d failed: ${stderr || errorMessage(err)}${full}`,
      );
    }
    for (const name of await readdir(dir)) await rm(path.join(dir, name), { recursive: true, force: true });
  } catch (err) {
    await rm(disk, { force: true });
    throw err;
  }
  const ws: VmWorkspace = {
    path: dir,
    scriptNames: host.scriptNames,
    disk,
    runDir: path.join(dir, RUN_DIR),
    async remove() {
      // The disk first: the janitor reads a disk without its directory as a crash's leftover.
      await rm(disk, { force: true });
      await host.remove();
    },
    async diskFull() {
      return ws.lastFree && guestDiskIsFull(ws.lastFree, quota) ? diskFullReason(quota) : undefined;
    },
  };
  return ws;
}

/**
 * Copies `name` (at the workspace's root) out of the disk into the host directory and deletes it
 * from the disk, as the handler expects of `skip.json` after a `.pre` step. Nothing when absent.
 * Only while no VM has the disk open.
 */
export async function takeFileFromDisk(ws: VmWorkspace, name: string): Promise<void> {
  const target = path.join(ws.path, name);
  await commandOutput(['debugfs', '-R', `dump -p /${name} ${target}`, ws.disk], TIMEOUT_MS).catch(() => '');
  const exists = await open(target, 'r').then(
    async (fh) => {
      const st = await fh.stat();
      await fh.close();
      return st.size > 0;
    },
    () => false,
  );
  if (!exists) {
    await rm(target, { force: true });
    return;
  }
  await commandOutput(['debugfs', '-w', '-R', `rm /${name}`, ws.disk], TIMEOUT_MS).catch(() => '');
}
