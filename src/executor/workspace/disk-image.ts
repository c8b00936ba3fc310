/**
 * The disk quota of a workspace (EXECUTOR_JOB_DISK_SPACE): a sparse ext4 image `<dir>.disk.img`
 * next to the workspace directory, loop-mounted on it for the job. A step that fills it gets ENOSPC;
 * the host's file system holds only the blocks the job wrote (the image is sparse, never
 * preallocated), at most the quota.
 *
 * Order, relied on by the janitor (janitor.ts): the directory and its owner file exist before the
 * image is made, and the image is removed before the directory. So an image whose directory is gone
 * was left by a crash between the two removals and belongs to no job.
 *
 * The mount lives in the host's mount namespace, where the Docker daemon sees it through the bind
 * mount of the workspace; it outlives a killed executor until the janitor unmounts it.
 */
import { chmod, mkdir, mkdtemp, open, rm, rmdir, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import { commandOutput } from '../command.js';

export const IMAGE_SUFFIX = '.disk.img';
/** Scratch directories of the startup probe and of the template under the workspace root. */
export const SCRATCH_PREFIXES = ['.disk-probe-', '.disk-template-'] as const;

/** EXECUTOR_JOB_DISK_SPACE: as written (for messages) and in bytes. */
export interface DiskQuota {
  text: string;
  bytes: number;
}

const TIMEOUT_MS = 60_000;

/**
 * No reserved blocks (the job gets the whole size), no journal (the image is scratch space thrown
 * away after the job or after a crash, so a journal would only write metadata twice), and no
 * zeroing of inode tables or discard at mkfs time: with them mkfs writes in proportion to the size.
 * Measured on a 20G image: about 20 ms and 4.4 MiB of the host's disk.
 */
const MKFS_ARGS = ['-q', '-F', '-m', '0', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard'];
/**
 * noinit_itable: the kernel would otherwise zero the lazily initialised inode tables in the
 * background after mounting (ext4lazyinit), writing about 1/64 of the size into the image for
 * nothing. nodev,nosuid: a device node or set-uid file a step makes in its workspace gives nothing
 * on the host.
 */
const MOUNT_OPTIONS = 'loop,noinit_itable,nodev,nosuid';

export function imagePathOf(dir: string): string {
  return `${dir}${IMAGE_SUFFIX}`;
}

/**
 * Makes `<dir>.disk.img` of quota.bytes with mkfs.ext4 and mounts it on the empty directory `dir`
 * (mountImage). On failure nothing is left mounted; the image may remain for the caller's cleanup
 * (releaseDiskImage).
 */
export async function mountDiskImage(dir: string, quota: DiskQuota): Promise<void> {
  const image = imagePathOf(dir);
  const fh = await open(image, 'wx', 0o600);
  try {
    await fh.truncate(quota.bytes);
  } finally {
    await fh.close();
  }
  await run(['mkfs.ext4', ...MKFS_ARGS, image]);
  await mountImage(image, dir);
}

/**
 * Mounts `image` on the empty directory `dir`, which then looks as before: empty (lost+found
 * removed: a clone wants an empty directory, and nothing fscks these images) and mode 0700.
 */
async function mountImage(image: string, dir: string): Promise<void> {
  await run(['mount', '-t', 'ext4', '-o', MOUNT_OPTIONS, image, dir]);
  try {
    await rmdir(path.join(dir, 'lost+found'));
    await chmod(dir, 0o700);
  } catch (err) {
    await run(['umount', dir]).catch(() => {});
    throw err;
  }
}

/** The images of one quota, made from a template: `mount(dir)` as mountDiskImage does. */
export interface DiskImages {
  readonly quota: DiskQuota;
  mount(dir: string): Promise<void>;
}

/** The written ranges of a fresh file system, at their offsets in the image. */
type Template = { offset: number; data: Buffer }[];

/**
 * A template larger than this (mkfs's metadata grows with the size: 4.4 MiB for 20G) is not kept in
 * memory; each image is then made by mkfs.
 */
const MAX_TEMPLATE_BYTES = 64 * 1024 * 1024;

/**
 * Images of `quota` made by writing the ranges mkfs.ext4 wrote into a template, once per process,
 * into a new sparse file: one process fewer per job (mkfs costs 20 ms on an idle machine, and more
 * than 80 ms on a loaded one, mostly starting the process). Every image gets the same file system
 * UUID, which ext4 does not mind. The template is made under `scratchDir` (the workspace root) on
 * first use and deleted at once; a failure falls back to mkfs for that image and tries again next time.
 */
export function createDiskImages(quota: DiskQuota, scratchDir: string): DiskImages {
  let template: Promise<Template | undefined> | undefined;
  return {
    quota,
    async mount(dir: string): Promise<void> {
      template ??= makeTemplate(quota, scratchDir).catch(() => {
        template = undefined;
        return undefined;
      });
      const t = await template;
      if (!t) return mountDiskImage(dir, quota);
      const image = imagePathOf(dir);
      const fh = await open(image, 'wx', 0o600);
      try {
        await fh.truncate(quota.bytes);
        for (const r of t) await fh.write(r.data, 0, r.data.length, r.offset);
      } finally {
        await fh.close();
      }
      await mountImage(image, dir);
    },
  };
}

async function makeTemplate(quota: DiskQuota, scratchDir: string): Promise<Template | undefined> {
  await mkdir(scratchDir, { recursive: true });
  const dir = await mkdtemp(path.join(scratchDir, SCRATCH_PREFIXES[1]));
  const image = path.join(dir, 'template.img');
  try {
    const fh = await open(image, 'wx', 0o600);
    await fh.truncate(quota.bytes).finally(() => fh.close());
    await run(['mkfs.ext4', ...MKFS_ARGS, image]);
    // -s: flush first, so that no range is still a delayed allocation without a place.
    const ranges = parseFilefrag(await run(['filefrag', '-s', '-e', image]));
    if (!ranges || ranges.reduce((n, r) => n + r.length, 0) > MAX_TEMPLATE_BYTES) return undefined;
    const src = await open(image, 'r');
    try {
      const t: Template = [];
      for (const r of ranges) {
        const data = Buffer.alloc(r.length);
        await src.read(data, 0, r.length, r.offset);
        t.push({ offset: r.offset, data });
      }
      return t;
    } finally {
      await src.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The extents of `filefrag -e` as byte ranges, or undefined when the output is not understood.
 * `File size of X is N (B blocks of S bytes)`, then one line per extent:
 * `   0:        0..    1028:    6597632..   6598660:   1029:   ...`.
 */
export function parseFilefrag(out: string): { offset: number; length: number }[] | undefined {
  const bs = /blocks of (\d+) bytes/.exec(out)?.[1];
  if (!bs) return undefined;
  const ranges: { offset: number; length: number }[] = [];
  for (const m of out.matchAll(/^\s*\d+:\s*(\d+)\.\.\s*(\d+):/gm)) {
    const first = Number(m[1]);
    const last = Number(m[2]);
    ranges.push({ offset: first * Number(bs), length: (last - first + 1) * Number(bs) });
  }
  return ranges.length > 0 ? ranges : undefined;
}

/** True when `dir` is the root of a mount (its device differs from its parent's). */
export async function isMountPoint(dir: string): Promise<boolean> {
  const [a, b] = await Promise.all([stat(dir).catch(() => undefined), stat(path.dirname(dir))]);
  return a !== undefined && a.dev !== b.dev;
}

/**
 * Unmounts `dir` when an image is mounted there and deletes `<dir>.disk.img`; idempotent. A busy
 * mount (a process still has a file open in it) is detached lazily: the loop device and the image's
 * blocks are freed when the last user goes. `detachLoops` also detaches loop devices still backed by
 * the image (left by a crash between attaching and mounting), for the janitor.
 */
export async function releaseDiskImage(dir: string, opts: { detachLoops?: boolean } = {}): Promise<void> {
  const image = imagePathOf(dir);
  if (await isMountPoint(dir)) {
    try {
      await run(['umount', dir]);
    } catch {
      await run(['umount', '-l', dir]);
    }
  }
  if (opts.detachLoops) await detachLoopsOf(image);
  await rm(image, { force: true });
}

async function detachLoopsOf(image: string): Promise<void> {
  let out: string;
  try {
    out = await run(['losetup', '-j', image]);
  } catch {
    return;
  }
  for (const line of out.split('\n')) {
    const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
    if (dev) await run(['losetup', '-d', dev]).catch(() => {});
  }
}

/**
 * Whether the workspace's file system is full, read after a step's processes have ended (so no
 * write is still under way): free space below 1% of the quota (at least 1 MiB), or no free inode.
 * A write that hits ENOSPC leaves next to nothing free (short writes fill the last blocks first), so
 * the margin only absorbs what ext4 keeps back for its metadata; a step that fails for another reason
 * on a nearly full disk is reported as full, which is then also true.
 */
export async function diskIsFull(dir: string, quota: DiskQuota): Promise<boolean> {
  const s = await statfs(dir);
  const margin = Math.max(1024 * 1024, quota.bytes / 100);
  return Number(s.bavail) * Number(s.bsize) < margin || Number(s.ffree) === 0;
}

/** The reason added to a failed step's error when its workspace is full. */
export function diskFullReason(quota: DiskQuota): string {
  return `the workspace is full: jobs get ${quota.text} of disk (EXECUTOR_JOB_DISK_SPACE); raise it or make the job write less`;
}

/**
 * Proves that this process can give workspaces a quota under `root`: makes, mounts, unmounts and
 * deletes a 16 MiB image there. Resolves undefined when it can, else why not and what to do.
 */
export async function probeDiskImages(root: string, quota: DiskQuota): Promise<string | undefined> {
  let dir: string | undefined;
  try {
    await mkdir(root, { recursive: true });
    // Not named like a workspace: the janitor never looks at it.
    dir = await mkdtemp(path.join(root, SCRATCH_PREFIXES[0]));
    await mountDiskImage(dir, { text: '16M', bytes: 16 * 1024 * 1024 });
    return undefined;
  } catch (err) {
    return (
      `EXECUTOR_JOB_DISK_SPACE=${quota.text} gives each workspace a loop-mounted ext4 image, but this process cannot make one in ${root} (${errorMessage(err)}). ` +
      'It needs mkfs.ext4, a loop device and the privilege to mount (root, or CAP_SYS_ADMIN). Run the executor as root, or set EXECUTOR_JOB_DISK_SPACE=0 to run jobs without a disk quota (a step can then fill that file system)'
    );
  } finally {
    if (dir) {
      await releaseDiskImage(dir).catch(() => {});
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  }
}

async function run(argv: string[]): Promise<string> {
  try {
    return await commandOutput(argv, TIMEOUT_MS);
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(`${argv[0]} failed: ${stderr || errorMessage(err)}`);
  }
}
