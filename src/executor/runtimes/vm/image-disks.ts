/**
 * The root disks of VM steps: an image's file system (from the local Docker daemon: `docker create`
 * then export) written into a raw ext4 image by `mkfs.ext4 -d`, once per image id, attached
 * read-only to every VM of that image. Cached in EXECUTOR_VM_IMAGE_CACHE_DIR as `<id>.ext4` with
 * `<id>.json` (the image's environment and its USER resolved against its own passwd and group files,
 * image-user.ts), under EXECUTOR_VM_IMAGE_CACHE_SIZE (counted in the host's
 * allocated blocks: the disks are sparse): when a new disk would pass the cap, the least recently used disks not in use by this process are deleted first.
 *
 * A disk is written under a temporary name and renamed into place, so a crash never leaves a
 * half-written disk under a cached name; conversions of the same image in one process are shared.
 */
import { spawn } from 'node:child_process';
import {
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import { commandOutput } from '../../command.js';
import { type ImageUserResult, resolveImageUser } from './image-user.js';

const DISK_SUFFIX = '.ext4';
const META_SUFFIX = '.json';
const TEMP_PREFIX = '.tmp-';
/** Free room in a root disk beyond its files: ext4 metadata, and a step may not write there anyway. */
const ROOT_DISK_SLACK_BYTES = 64 * 1024 * 1024;
const MKFS_TIMEOUT_MS = 10 * 60_000;
/** passwd and group files larger than this are not read (an image's are a few KiB). */
const MAX_ACCOUNT_FILE_BYTES = 4 * 1024 * 1024;

export interface RootDisk {
  /** Path of the raw ext4 image. */
  path: string;
  /** The image's `Config.Env`. */
  env: string[];
  /** The image's `Config.User`, resolved; `error` when Docker would refuse to start a container of it. */
  user: ImageUserResult;
  /** Call when the VM using it has ended. */
  release(): void;
}

export interface ImageDisks {
  /** The root disk of `image` (present in the local daemon), converted on first use. */
  acquire(image: string): Promise<RootDisk>;
}

export interface ImageDiskOptions {
  docker: Dockerode;
  cacheDir: string;
  /** EXECUTOR_VM_IMAGE_CACHE_SIZE in bytes. */
  capBytes: number;
}

interface Meta {
  image: string;
  env: string[];
  /** Absent in the metadata of disks converted before users were resolved: converted again. */
  user: ImageUserResult;
}

export function createImageDisks(opts: ImageDiskOptions): ImageDisks {
  const inUse = new Map<string, number>();
  const converting = new Map<string, Promise<Meta>>();

  async function convert(id: string, image: string): Promise<Meta> {
    const file = diskPath(opts.cacheDir, id);
    const metaFile = `${opts.cacheDir}/${id}${META_SUFFIX}`;
    try {
      const meta = JSON.parse(await readFile(metaFile, 'utf8')) as Meta;
      if (!meta.user) throw new Error('converted before users were resolved');
      await stat(file);
      const now = new Date();
      await utimes(file, now, now).catch(() => {});
      return meta;
    } catch {
      // not cached (or half removed): convert
    }
    await mkdir(opts.cacheDir, { recursive: true, mode: 0o700 });
    const info = await opts.docker.getImage(id).inspect();
    const env = info.Config?.Env ?? [];
    const userSpec = info.Config?.User ?? '';
    const tmp = await mkdtemp(path.join(opts.cacheDir, TEMP_PREFIX));
    try {
      const root = path.join(tmp, 'root');
      await mkdir(root);
      await exportInto(opts.docker, id, root);
      const user = resolveImageUser(
        userSpec,
        await readImageFile(root, 'etc/passwd'),
        await readImageFile(root, 'etc/group'),
      );
      const used = await duBytes(root);
      const size = roundUp(Math.ceil(used * 1.1) + ROOT_DISK_SLACK_BYTES, 1024 * 1024);
      // The disk is sparse: on the host it takes about its files' bytes, as the cached ones are
      // counted (their allocated blocks).
      await evict(opts.cacheDir, opts.capBytes - used, inUse);
      const img = path.join(tmp, 'disk.ext4');
      const fh = await open(img, 'wx', 0o600);
      await fh.truncate(size).finally(() => fh.close());
      try {
        await commandOutput(
          [
            'mkfs.ext4',
            '-q',
            '-F',
            '-m',
            '0',
            '-O',
            '^has_journal',
            '-E',
            'lazy_itable_init=1,nodiscard',
            '-d',
            root,
            img,
          ],
          MKFS_TIMEOUT_MS,
        );
      } catch (err) {
        const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
        throw new Error(`mkfs.ext4 -d failed for image ${image}: ${stderr || errorMessage(err)}`);
      }
      const meta: Meta = { image, env, user };
      await writeFile(metaFile, JSON.stringify(meta), { mode: 0o600 });
      await rename(img, file);
      return meta;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  return {
    async acquire(image: string): Promise<RootDisk> {
      const info = await opts.docker.getImage(image).inspect();
      const id = info.Id.replace(/^sha256:/, '');
      inUse.set(id, (inUse.get(id) ?? 0) + 1);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        const n = (inUse.get(id) ?? 1) - 1;
        if (n <= 0) inUse.delete(id);
        else inUse.set(id, n);
      };
      try {
        let p = converting.get(id);
        if (!p) {
          p = convert(id, image).finally(() => converting.delete(id));
          converting.set(id, p);
        }
        const meta = await p;
        return { path: diskPath(opts.cacheDir, id), env: meta.env, user: meta.user, release };
      } catch (err) {
        release();
        throw err;
      }
    },
  };
}

function diskPath(dir: string, id: string): string {
  return path.join(dir, `${id}${DISK_SUFFIX}`);
}

/**
 * `rel` resolved inside the exported image as a chroot would resolve it: symbolic links followed,
 * absolute ones from the image's root, `..` never above it. Undefined when a component is absent
 * or the links loop. The image's content is untrusted: no link may lead to this host's files.
 */
async function resolveInImage(root: string, rel: string): Promise<string | undefined> {
  const pending = rel.split('/').filter((s) => s !== '' && s !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const seg = pending.shift() as string;
    if (seg === '..') {
      done.pop();
      continue;
    }
    const at = path.join(root, ...done, seg);
    const st = await lstat(at).catch(() => undefined);
    if (!st) return undefined;
    if (st.isSymbolicLink()) {
      // 40: the kernel's limit of links followed in one lookup.
      if (++links > 40) return undefined;
      const target = await readlink(at);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter((s) => s !== '' && s !== '.'));
      continue;
    }
    done.push(seg);
  }
  return path.join(root, ...done);
}

/** A regular file of the exported image (resolveInImage), '' when absent or not a small file. */
async function readImageFile(root: string, rel: string): Promise<string> {
  const file = await resolveInImage(root, rel);
  const st = file ? await lstat(file).catch(() => undefined) : undefined;
  if (!file || !st?.isFile() || st.size > MAX_ACCOUNT_FILE_BYTES) return '';
  return readFile(file, 'utf8');
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** `docker create` + export, unpacked by tar into `root` (as root, owners kept). */
async function exportInto(docker: Dockerode, image: string, root: string): Promise<void> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['/bin/true'],
    Labels: { 'executor.vm-export': '1' },
  });
  try {
    const stream = (await container.export()) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      const tar = spawn('tar', ['-x', '-C', root, '--numeric-owner', '-f', '-'], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let stderr = '';
      tar.stderr.on('data', (b: Buffer) => {
        if (stderr.length < 4096) stderr += b.toString('utf8');
      });
      tar.once('error', reject);
      tar.once('close', (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`tar -x of image ${image} failed: ${stderr.trim() || `exit ${code}`}`)),
      );
      stream.once('error', (err: Error) => {
        tar.kill('SIGKILL');
        reject(err);
      });
      stream.pipe(tar.stdin);
    });
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

async function duBytes(dir: string): Promise<number> {
  const out = await commandOutput(['du', '-s', '-B1', '--apparent-size', dir], MKFS_TIMEOUT_MS);
  return Number(out.split(/\s/)[0]) || 0;
}

/**
 * Deletes least recently used disks (by mtime, touched on each use) until the cache's disks take at
 * most `budget` bytes; disks in `inUse` are kept.
 */
async function evict(dir: string, budget: number, inUse: ReadonlyMap<string, number>): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const disks: { id: string; size: number; mtimeMs: number }[] = [];
  for (const name of names) {
    if (!name.endsWith(DISK_SUFFIX)) continue;
    const st = await stat(path.join(dir, name)).catch(() => undefined);
    if (st)
      disks.push({ id: name.slice(0, -DISK_SUFFIX.length), size: st.blocks * 512, mtimeMs: st.mtimeMs });
  }
  let total = disks.reduce((n, d) => n + d.size, 0);
  disks.sort((a, b) => a.mtimeMs - b.mtimeMs);
  for (const d of disks) {
    if (total <= budget) break;
    if (inUse.has(d.id)) continue;
    await rm(path.join(dir, `${d.id}${DISK_SUFFIX}`), { force: true });
    await rm(path.join(dir, `${d.id}${META_SUFFIX}`), { force: true });
    total -= d.size;
  }
}
