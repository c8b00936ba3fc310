/**
 * The executor's clone cache (EXECUTOR_GIT_CACHE_DIR): one bare repository per (server URL,
 * repository name), filled and updated through the job's own auth proxy, so that a job's clone
 * copies what the cache has from the local disk and only new objects cross the network.
 *
 * Contracts
 * - Keyed by SHA-256 of the server URL and the repository name: two servers never share an entry,
 *   and only repositories this executor was handed jobs for are cached.
 * - One updater per entry at a time across the executor's job slots (an in-process lock per key);
 *   readers (a workspace's fetch from the entry) take a lease that keeps eviction away.
 * - No credential ever lands in an entry: it is fetched from the proxy's loopback URL, given on the
 *   command line and never stored as a remote; the proxy adds the job token to each request.
 * - A workspace copies objects out of the entry (its pack files for a full clone, a local fetch with
 *   the job's depth or filter otherwise), never links to it: after the clone
 *   the workspace does not depend on the cache, and a job cannot change what another job reads.
 * - A first fetch goes to a temporary directory renamed into place when complete. A failed update
 *   runs `git fsck --connectivity-only` on the entry, a failed copy also checks every pack against
 *   its checksum and index (fsck trusts the indexes); a corrupt entry is deleted and built again
 *   (at once for an update, by the next job for a copy).
 * - After each update the least recently used entries beyond EXECUTOR_GIT_CACHE_SIZE are deleted
 *   (never one that is leased), with their prepared checkouts, whose bytes count with the entry's.
 * - Prepared checkouts (prepared-checkouts.ts, EXECUTOR_GIT_CACHE_CHECKOUTS): a full clone is
 *   followed by the background build of a checkout at its commit, which the next full clone of the
 *   repository takes instead of checking out every file; the entry is leased while it is built.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, constants as fsConstants } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { diskUsage } from '../../lib/disk-usage.js';
import { hostEnv, runCommand } from '../command.js';
import type { JobContext } from '../job-context.js';
import { createPreparedCheckouts } from './prepared-checkouts.js';

const pexec = promisify(execFile);

/** Commits each entry keeps a ref for (older ones are dropped; their objects stay until evicted). */
const KEEP_REFS = 32;

export interface GitCacheOptions {
  dir: string;
  /** Total bytes of all entries before least recently used ones are evicted. */
  maxBytes: number;
  /** The server URL entries are keyed by. */
  frontendUrl: string;
  /** Prepared checkouts kept per repository (EXECUTOR_GIT_CACHE_CHECKOUTS); 0 or absent: none. */
  checkouts?: number;
}

/** Where the prepared checkouts live, under the cache's directory. */
export const CHECKOUTS_DIR = 'checkouts';

export interface CacheLease {
  /** The entry's git directory, to fetch from. */
  gitDir: string;
  /**
   * Copies the entry's packs (and their indexes) into `objectsDir/pack`: plain file copies, no
   * packing, so a full clone gets the cache's history at disk speed. Resolves with the bytes copied.
   */
  copyPacks(objectsDir: string): Promise<number>;
  /** Reports that copying from the entry failed: it is checked and deleted when corrupt. */
  copyFailed(): Promise<void>;
  /**
   * Moves a prepared checkout of the repository onto `dest` (an empty directory); resolves with the
   * commit it is checked out at, undefined when there is none to take here.
   */
  takeCheckout(dest: string): Promise<string | undefined>;
  /** After a full clone at `commit`: prepares a checkout of it for a later job, in the background. */
  prepareCheckout(commit: string): void;
  release(): void;
}

export interface LeaseRequest {
  repositoryName: string;
  commit: string;
  remoteUrl: string;
  coldOk: boolean;
  ctx: JobContext;
}

export interface GitCache {
  /**
   * Brings the entry of `repositoryName` up to date with `commit` through `remoteUrl` (the job's
   * proxy) and leases it; undefined when the cache cannot serve this job (then the job clones as
   * without a cache). `coldOk` false: a missing entry is not built (shallow and sparse jobs, which
   * need far less than a full history).
   */
  lease(req: LeaseRequest): Promise<CacheLease | undefined>;
  /** Entry directories and sizes (tests, diagnostics). */
  entries(): Promise<{ key: string; bytes: number; lastUsedMs: number }[]>;
  /** Resolves once no prepared checkout is being built (tests, benchmarks). */
  idle(): Promise<void>;
  /** Ready prepared checkouts by entry key (tests, diagnostics). */
  preparedCheckouts(): Promise<Map<string, { commit: string; bytes: number }[]>>;
  /** Stops preparing checkouts (the executor stops): a build running is killed and removed. */
  close(): Promise<void>;
}

export const cacheKey = (frontendUrl: string, repositoryName: string): string =>
  createHash('sha256')
    .update(`${frontendUrl.replace(/\/+$/, '')}\0${repositoryName}`)
    .digest('hex')
    .slice(0, 32);

async function git(args: string[]): Promise<string> {
  const { stdout } = await pexec('git', args, {
    env: hostEnv({ GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' }),
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/**
 * Checks a pack against its own checksum (the SHA-1 of its content, in its last 20 bytes) and
 * against its index (which records that checksum 40 bytes from its end): a truncated, damaged or
 * mismatched pack throws. One sequential read of the pack (about 0.3 s per 100 MiB).
 */
export async function verifyPack(packPath: string, idxPath: string): Promise<void> {
  const size = (await stat(packPath)).size;
  if (size < 32) throw new Error(`${path.basename(packPath)} is truncated`);
  const hash = createHash('sha1');
  let trailer = Buffer.alloc(0);
  let read = 0;
  for await (const chunk of createReadStream(packPath, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    const end = read + b.length;
    if (end <= size - 20) hash.update(b);
    else {
      const cut = Math.max(0, size - 20 - read);
      hash.update(b.subarray(0, cut));
      trailer = Buffer.concat([trailer, b.subarray(cut)]);
    }
    read = end;
  }
  const idx = await readFile(idxPath);
  if (read !== size || !hash.digest().equals(trailer))
    throw new Error(`${path.basename(packPath)} is damaged`);
  if (idx.length < 40 || !idx.subarray(idx.length - 40, idx.length - 20).equals(trailer)) {
    throw new Error(`${path.basename(idxPath)} does not belong to its pack`);
  }
}

/** Whether the entry is a repository whose objects are all connected. */
async function healthy(gitDir: string): Promise<boolean> {
  try {
    await git(['--git-dir', gitDir, 'fsck', '--connectivity-only', '--no-progress']);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether every pack of the entry matches its checksum and its index. `fsck --connectivity-only`
 * trusts the indexes, so a pack damaged behind an intact index passes it: a failed copy checks both.
 */
async function packsIntact(gitDir: string): Promise<boolean> {
  const dir = path.join(gitDir, 'objects', 'pack');
  try {
    for (const f of await readdir(dir)) {
      if (!f.endsWith('.pack')) continue;
      const pack = path.join(dir, f);
      await verifyPack(pack, pack.replace(/\.pack$/, '.idx'));
    }
    return true;
  } catch {
    return false;
  }
}

async function createEntry(dir: string, key: string): Promise<string> {
  const tmp = path.join(dir, `.tmp-${key}-${randomBytes(4).toString('hex')}.git`);
  await git(['init', '--quiet', '--bare', tmp]);
  for (const [k, v] of [
    ['gc.auto', '0'],
    ['uploadpack.allowAnySHA1InWant', 'true'],
    ['uploadpack.allowFilter', 'true'],
    // Everything fetched arrives as a pack (never loose objects), so copyPacks copies it all.
    ['fetch.unpackLimit', '1'],
    ['transfer.unpackLimit', '1'],
  ] as const) {
    await git(['--git-dir', tmp, 'config', k, v]);
  }
  return tmp;
}

async function pruneRefs(gitDir: string): Promise<void> {
  const refs = (
    await git([
      '--git-dir',
      gitDir,
      'for-each-ref',
      '--sort=-committerdate',
      '--format=%(refname)',
      'refs/cache/',
    ])
  )
    .split('\n')
    .filter(Boolean);
  for (const ref of refs.slice(KEEP_REFS)) await git(['--git-dir', gitDir, 'update-ref', '-d', ref]);
}

async function listEntries(dir: string): Promise<{ key: string; bytes: number; lastUsedMs: number }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: { key: string; bytes: number; lastUsedMs: number }[] = [];
  for (const n of names) {
    const m = /^([0-9a-f]{32})\.git$/.exec(n);
    if (!m) continue;
    const key = m[1]!;
    const used = await stat(path.join(dir, `${key}.used`)).catch(() => undefined);
    out.push({
      key,
      bytes: await diskUsage(path.join(dir, `${key}.git`)).catch(() => 0),
      lastUsedMs: used?.mtimeMs ?? 0,
    });
  }
  return out;
}

/** Copies the packs of `gitDir` into `objectsDir/pack` (see CacheLease.copyPacks). */
export async function copyPacks(gitDir: string, objectsDir: string): Promise<number> {
  const from = path.join(gitDir, 'objects', 'pack');
  const to = path.join(objectsDir, 'pack');
  await mkdir(to, { recursive: true });
  const names = (await readdir(from)).filter((f) => /^pack-[0-9a-f]+\.pack$/.test(f));
  let bytes = 0;
  for (const pack of names) {
    const idx = pack.replace(/\.pack$/, '.idx');
    const tmpPack = path.join(to, `tmp_${pack}`);
    const tmpIdx = path.join(to, `tmp_${idx}`);
    try {
      await copyFile(path.join(from, pack), tmpPack, fsConstants.COPYFILE_FICLONE);
      await copyFile(path.join(from, idx), tmpIdx, fsConstants.COPYFILE_FICLONE);
      // What the workspace got is checked before git may read it: a damaged pack fails here.
      await verifyPack(tmpPack, tmpIdx);
      // The index last: git ignores a pack until its index exists.
      await rename(tmpPack, path.join(to, pack));
      await rename(tmpIdx, path.join(to, idx));
    } finally {
      await rm(tmpPack, { force: true });
      await rm(tmpIdx, { force: true });
    }
    bytes += (await stat(path.join(to, pack))).size;
  }
  return bytes;
}

/** Fetches `commit` into gitDir through the proxy, logged as the job's `setup.git.cache-update`. */
async function fetchInto(gitDir: string, req: LeaseRequest): Promise<boolean> {
  const res = await runCommand({
    key: 'setup.git.cache-update',
    argv: [
      'git',
      '--git-dir',
      gitDir,
      '-c',
      'protocol.version=2',
      '-c',
      'fetch.unpackLimit=1',
      'fetch',
      '--no-tags',
      '--no-recurse-submodules',
      '--no-write-fetch-head',
      req.remoteUrl,
      `+${req.commit}:refs/cache/${req.commit}`,
    ],
    env: hostEnv({ GIT_TERMINAL_PROMPT: '0', GIT_LFS_SKIP_SMUDGE: '1' }),
    logger: req.ctx.logger,
    signal: req.ctx.signal,
  });
  return res.exitCode === 0;
}

export function createGitCache(opts: GitCacheOptions): GitCache {
  const locks = new Map<string, Promise<void>>();
  const leases = new Map<string, number>();
  const entryDir = (key: string) => path.join(opts.dir, `${key}.git`);
  const maxCheckouts = opts.checkouts ?? 0;
  const checkouts = createPreparedCheckouts(path.join(opts.dir, CHECKOUTS_DIR), maxCheckouts);

  const hold = (key: string): (() => void) => {
    leases.set(key, (leases.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (leases.get(key) ?? 1) - 1;
      if (n <= 0) leases.delete(key);
      else leases.set(key, n);
    };
  };

  /** Runs fn with the key's lock held (FIFO per key). */
  async function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = locks.get(key) ?? Promise.resolve();
    let unlock!: () => void;
    const mine = new Promise<void>((r) => {
      unlock = r;
    });
    const chained = before.then(() => mine);
    locks.set(key, chained);
    await before;
    try {
      return await fn();
    } finally {
      unlock();
      if (locks.get(key) === chained) locks.delete(key);
    }
  }

  /** Packs beyond which an entry is repacked into one (each update adds one). */
  const MAX_PACKS = 24;

  /** Repacks an entry with many packs, when no job is copying from it (a copy reads the packs). */
  async function consolidate(key: string, gitDir: string): Promise<void> {
    if ((leases.get(key) ?? 0) > 0) return;
    const packs = (await readdir(path.join(gitDir, 'objects', 'pack'))).filter((f) => f.endsWith('.pack'));
    if (packs.length > MAX_PACKS) await git(['--git-dir', gitDir, 'repack', '-a', '-d', '-q']);
  }

  async function update(key: string, req: LeaseRequest): Promise<boolean> {
    const dir = entryDir(key);
    const exists = existsSync(dir);
    if (!exists && !req.coldOk) return false;
    if (exists) {
      if (await fetchInto(dir, req)) {
        await pruneRefs(dir).catch(() => {});
        await consolidate(key, dir).catch(() => {});
        return true;
      }
      if (req.ctx.signal.aborted || (await healthy(dir))) return false;
      // Corrupt (a half-written pack, lost objects): built again below.
      await rm(dir, { recursive: true, force: true });
      if (!req.coldOk) return false;
    }
    const tmp = await createEntry(opts.dir, key);
    try {
      if (!(await fetchInto(tmp, req))) return false;
      await rename(tmp, dir);
      return true;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  async function touch(key: string): Promise<void> {
    const marker = path.join(opts.dir, `${key}.used`);
    const now = new Date();
    await utimes(marker, now, now).catch(() => writeFile(marker, ''));
  }

  /** Deletes least recently used entries, not leased, until the total fits. */
  async function evict(): Promise<void> {
    const prepared = maxCheckouts > 0 ? await checkouts.list() : new Map<string, { bytes: number }[]>();
    const all = (await listEntries(opts.dir))
      .map((e) => ({ ...e, bytes: e.bytes + (prepared.get(e.key) ?? []).reduce((s, c) => s + c.bytes, 0) }))
      .sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    let total = all.reduce((s, e) => s + e.bytes, 0);
    for (const e of all) {
      if (total <= opts.maxBytes) return;
      if ((leases.get(e.key) ?? 0) > 0 || locks.has(e.key)) continue;
      await checkouts.drop(e.key);
      await rm(entryDir(e.key), { recursive: true, force: true });
      await rm(path.join(opts.dir, `${e.key}.used`), { force: true });
      total -= e.bytes;
    }
  }

  return {
    async lease(req) {
      const key = cacheKey(opts.frontendUrl, req.repositoryName);
      await mkdir(opts.dir, { recursive: true });
      const release = await withLock(key, async () => {
        if (!(await update(key, req).catch(() => false))) return undefined;
        await touch(key);
        // Taken under the lock: eviction skips a locked entry, then a leased one.
        return hold(key);
      });
      if (!release) return undefined;
      await evict().catch(() => {});
      const gitDir = entryDir(key);
      return {
        gitDir,
        copyPacks: (objectsDir) => copyPacks(gitDir, objectsDir),
        async copyFailed() {
          await withLock(key, async () => {
            if (existsSync(gitDir) && !((await packsIntact(gitDir)) && (await healthy(gitDir))))
              await rm(gitDir, { recursive: true, force: true });
          });
        },
        takeCheckout: (dest) => (maxCheckouts > 0 ? checkouts.take(key, dest) : Promise.resolve(undefined)),
        prepareCheckout(commit) {
          if (maxCheckouts <= 0) return;
          checkouts.prepare({
            key,
            repositoryName: req.repositoryName,
            commit,
            copyPacks: (objectsDir) => copyPacks(gitDir, objectsDir),
            done: hold(key),
          });
        },
        release,
      };
    },
    entries: () => listEntries(opts.dir),
    idle: () => checkouts.idle(),
    preparedCheckouts: () => checkouts.list(),
    close: () => checkouts.close(),
  };
}
