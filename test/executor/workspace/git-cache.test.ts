/**
 * The executor's clone cache with real git against a fake of the server's git route (real
 * `git http-backend`), counting the pack bytes that cross the network: a second job on the same
 * repository uses the cache, two slots clone at once through one update, eviction, corruption
 * recovery, shallow and sparse jobs keeping their semantics, and no token in the cache.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobContext } from '../../../src/executor/job-context.js';
import { createJobLogger } from '../../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../../src/executor/logs/redactor.js';
import {
  CHECKOUTS_DIR,
  cacheKey,
  createGitCache,
  type GitCache,
  verifyPack,
} from '../../../src/executor/workspace/git-cache.js';
import { prepareLocalWorkspace } from '../../../src/executor/workspace/prepare.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import type { Job } from '../../../src/protocol/job.js';
import { createFakeLogSink } from '../logs/fake-log-sink.js';
import { type FakeFrontend, startFakeFrontend } from './fake-frontend.js';

const REPO = 'github.com/acme/big';
const OTHER = 'github.com/acme/other';
const TOKEN = 'job-token-cache-0123456789abcdef';

let base: string;
let root: string;
let src: string;
let frontend: FakeFrontend;

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-C', cwd, ...args], { env: gitEnv, encoding: 'utf8' }).trim();

/** Commits a change in the source and pushes it to the served bare repository; returns the sha. */
async function commit(dir: string, bare: string, files: number, bytes: number): Promise<string> {
  for (let i = 0; i < files; i++) {
    await mkdir(path.join(dir, `d${i % 10}`), { recursive: true });
    // Random content: it does not compress, so pack sizes show what crossed the network.
    await writeFile(
      path.join(dir, `d${i % 10}`, `f${i}-${randomBytes(3).toString('hex')}.bin`),
      randomBytes(bytes),
    );
  }
  git(dir, 'add', '.');
  git(dir, 'commit', '-qm', `add ${files} files`);
  git(dir, 'push', '-q', bare, 'HEAD:refs/heads/main');
  return git(dir, 'rev-parse', 'HEAD');
}

async function makeRepo(name: string): Promise<{ dir: string; bare: string; head: string }> {
  const dir = path.join(base, 'src', name);
  const bare = path.join(base, 'repos', name);
  await mkdir(dir, { recursive: true });
  await mkdir(path.dirname(bare), { recursive: true });
  git(dir, 'init', '-q', '-b', 'main');
  execFileSync('git', ['init', '-q', '--bare', bare]);
  let head = '';
  for (let c = 0; c < 5; c++) head = await commit(dir, bare, 40, 4096);
  return { dir, bare, head };
}

let big: { dir: string; bare: string; head: string };

beforeAll(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'git-cache-test-'));
  root = path.join(base, 'workspaces');
  big = await makeRepo(REPO);
  src = big.dir;
  frontend = await startFakeFrontend(path.join(base, 'repos'));
}, 60_000);

afterAll(async () => {
  await frontend?.close();
  await rm(base, { recursive: true, force: true });
});

function job(over: Partial<Job> = {}): Job {
  return {
    version: 2,
    id: 9,
    token: TOKEN,
    repositoryName: REPO,
    repositoryDirectory: '',
    commit: big.head,
    fetchTags: false,
    shallowClone: false,
    sparseCheckout: [],
    files: {},
    dockerSteps: [],
    cliSteps: [],
    redactedValues: {},
    dockerAuthConfig: {},
    ...over,
  };
}

function context() {
  const sink = createFakeLogSink();
  const logger = createJobLogger({
    sink,
    redactor: createRedactor({}),
    maxOutputBytes: 1 << 20,
    syncIntervalMs: 50,
    logger: createMemoryLogger(),
  });
  const ctx: JobContext = { signal: new AbortController().signal, logger, executorName: 'exec-1' };
  const entries = async () => {
    await logger.flush();
    return [...sink.stored.values()];
  };
  return { sink, ctx, entries };
}

const opts = (gitCache: GitCache | undefined, workspaceRoot = root) => ({
  root: workspaceRoot,
  keepWorkspaces: false,
  frontendUrl: frontend.url,
  frontendPassword: 'executor-shared-password-cache',
  executorName: 'exec-1',
  files: { get: async () => Buffer.alloc(0) },
  gitCache,
});

/** Prepares a workspace for `j` and returns it with the pack bytes that crossed the network. */
async function clone(cache: GitCache | undefined, j: Job = job(), workspaceRoot = root) {
  const { ctx, entries, sink } = context();
  const before = frontend.uploadPackBytes;
  const ws = await prepareLocalWorkspace(j, ctx, opts(cache, workspaceRoot));
  return { ws, bytes: frontend.uploadPackBytes - before, entries, sink };
}

/** Every file under dir, as text (binary files included byte for byte as latin1). */
async function allText(dir: string): Promise<string> {
  const files = await readdir(dir, { recursive: true, withFileTypes: true });
  const parts: string[] = [];
  for (const f of files)
    if (f.isFile()) parts.push(await readFile(path.join(f.parentPath, f.name), 'latin1'));
  return parts.join('\n');
}

describe('clone cache', () => {
  it('keys entries by server URL and repository name', () => {
    expect(cacheKey('https://a.example.com', REPO)).not.toBe(cacheKey('https://b.example.com', REPO));
    expect(cacheKey('https://a.example.com/', REPO)).toBe(cacheKey('https://a.example.com', REPO));
    expect(cacheKey('https://a.example.com', REPO)).not.toBe(cacheKey('https://a.example.com', OTHER));
  });

  it('a second job on the same repository fetches only the new objects', async () => {
    const cacheDir = path.join(base, 'cache-warm');
    const cache = createGitCache({ dir: cacheDir, maxBytes: 1 << 30, frontendUrl: frontend.url });
    const cold = await clone(cache);
    expect(git(cold.ws.path, 'rev-parse', 'HEAD')).toBe(big.head);
    const keys = (await cold.entries()).map((e) => e.key);
    expect(keys.slice(0, 6)).toEqual([
      'setup.git.cache-update',
      'setup.git.init',
      'setup.git.add-remote',
      'setup.git.disable-gc',
      'setup.git.cache-copy',
      'setup.git.fetch',
    ]);
    for (const e of await cold.entries()) expect(e.exitCode, e.key).toBe(0);
    // The ref that marked the copied commit for the fetch is gone: no refs, as without a cache.
    expect(git(cold.ws.path, 'for-each-ref')).toBe('');
    await cold.ws.remove();

    // One new commit of 2 files; the history is 200 files.
    const next = await commit(src, big.bare, 2, 4096);
    const warm = await clone(cache, job({ commit: next }));
    expect(git(warm.ws.path, 'rev-parse', 'HEAD')).toBe(next);
    expect(git(warm.ws.path, 'ls-files').split('\n')).toHaveLength(202);
    expect(git(warm.ws.path, 'for-each-ref')).toBe('');
    expect(git(warm.ws.path, 'status', '--porcelain')).toBe('');
    expect(cold.bytes).toBeGreaterThan(200 * 4096);
    expect(warm.bytes).toBeLessThan(cold.bytes / 10);
    // The workspace stands alone: no alternates into the cache, and the cache can go.
    expect(existsSync(path.join(warm.ws.path, '.git', 'objects', 'info', 'alternates'))).toBe(false);
    await rm(cacheDir, { recursive: true, force: true });
    git(warm.ws.path, 'fsck', '--connectivity-only', '--no-progress');
    expect(git(warm.ws.path, 'log', '--oneline').split('\n')).toHaveLength(6);

    // No job token in the cache, nor in what the workspace got from it.
    await warm.ws.remove();
    const again = await clone(cache, job({ commit: next }));
    expect(await allText(cacheDir)).not.toContain(TOKEN);
    expect(await readFile(path.join(again.ws.path, '.git', 'config'), 'utf8')).not.toContain(TOKEN);
    expect(JSON.stringify(again.sink.calls)).not.toContain(TOKEN);
    await again.ws.remove();
  }, 120_000);

  it('two slots cloning the same repository at once share one update', async () => {
    const cache = createGitCache({
      dir: path.join(base, 'cache-race'),
      maxBytes: 1 << 30,
      frontendUrl: frontend.url,
    });
    const single = await clone(undefined);
    await single.ws.remove();
    const before = frontend.uploadPackBytes;
    const [a, b] = await Promise.all([clone(cache, job({ id: 11 })), clone(cache, job({ id: 12 }))]);
    for (const r of [a, b]) expect(git(r.ws.path, 'rev-parse', 'HEAD')).toBe(big.head);
    // The second updater waited and found the commit there: far less than two full clones.
    expect(frontend.uploadPackBytes - before).toBeLessThan(single.bytes * 1.5);
    expect(await cache.entries()).toHaveLength(1);
    await a.ws.remove();
    await b.ws.remove();
  }, 120_000);

  it('evicts the least recently used repository beyond the size cap, never a leased one', async () => {
    const other = await makeRepo(OTHER);
    const cacheDir = path.join(base, 'cache-evict');
    const cache = createGitCache({ dir: cacheDir, maxBytes: 1024, frontendUrl: frontend.url });
    const first = await clone(cache);
    // Over the cap, but it was leased during its own update: kept.
    expect((await cache.entries()).map((e) => e.key)).toEqual([cacheKey(frontend.url, REPO)]);
    const second = await clone(cache, job({ repositoryName: OTHER, commit: other.head }));
    expect(git(second.ws.path, 'rev-parse', 'HEAD')).toBe(other.head);
    expect((await cache.entries()).map((e) => e.key)).toEqual([cacheKey(frontend.url, OTHER)]);
    // The evicted repository's workspace is whole.
    git(first.ws.path, 'fsck', '--connectivity-only', '--no-progress');
    await first.ws.remove();
    await second.ws.remove();
  }, 120_000);

  it('detects a corrupt entry, clones anyway and rebuilds it', async () => {
    const cacheDir = path.join(base, 'cache-corrupt');
    const cache = createGitCache({ dir: cacheDir, maxBytes: 1 << 30, frontendUrl: frontend.url });
    await (await clone(cache)).ws.remove();
    const entry = path.join(cacheDir, `${cacheKey(frontend.url, REPO)}.git`);
    const packs = path.join(entry, 'objects', 'pack');
    for (const f of await readdir(packs))
      if (f.endsWith('.pack')) await writeFile(path.join(packs, f), 'garbage');
    const next = await commit(src, big.bare, 1, 100);
    const hurt = await clone(cache, job({ commit: next }));
    expect(git(hurt.ws.path, 'rev-parse', 'HEAD')).toBe(next);
    // Either the update failed on the damaged entry and rebuilt it before the copy (a thin pack
    // needed its bases), or the copy refused the damaged pack before git could read it.
    const copy = (await hurt.entries()).find((e) => e.key === 'setup.git.cache-copy');
    if (copy?.exitCode !== 0) expect(copy?.out).toMatch(/is (damaged|truncated); fetching everything/);
    git(hurt.ws.path, 'fsck', '--connectivity-only', '--no-progress');
    await hurt.ws.remove();
    // Rebuilt (by the damaged job's update, or by the next job): healthy, and it serves again.
    const after = await clone(cache, job({ commit: next }));
    execFileSync('git', ['--git-dir', entry, 'fsck', '--connectivity-only', '--no-progress']);
    await after.ws.remove();
    const served = await clone(cache, job({ commit: next }));
    expect(served.bytes).toBeLessThan(100 * 1024);
    await served.ws.remove();
    big.head = next;
  }, 120_000);

  it('verifies a pack against its checksum and its index before a workspace may read it', async () => {
    const packDir = path.join(big.bare, 'objects', 'pack');
    execFileSync('git', ['-C', big.bare, 'repack', '-a', '-d', '-q']);
    const pack = (await readdir(packDir)).find((f) => f.endsWith('.pack'))!;
    const packPath = path.join(packDir, pack);
    const idxPath = packPath.replace(/\.pack$/, '.idx');
    await verifyPack(packPath, idxPath);
    const copy = path.join(base, 'flipped.pack');
    const bytes = await readFile(packPath);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(copy, bytes);
    await expect(verifyPack(copy, idxPath)).rejects.toThrow(/damaged/);
    await writeFile(copy, bytes.subarray(0, bytes.length - 100));
    await expect(verifyPack(copy, idxPath)).rejects.toThrow(/damaged/);
  });

  it('shallow and sparse jobs keep their semantics, and do not build a cold cache', async () => {
    const cacheDir = path.join(base, 'cache-shallow');
    const cache = createGitCache({ dir: cacheDir, maxBytes: 1 << 30, frontendUrl: frontend.url });
    const coldShallow = await clone(cache, job({ shallowClone: true }));
    expect(git(coldShallow.ws.path, 'rev-parse', '--is-shallow-repository')).toBe('true');
    expect(await cache.entries()).toEqual([]);
    await coldShallow.ws.remove();

    await (await clone(cache)).ws.remove();
    const warmShallow = await clone(cache, job({ shallowClone: true }));
    expect(git(warmShallow.ws.path, 'rev-parse', '--is-shallow-repository')).toBe('true');
    expect(git(warmShallow.ws.path, 'rev-list', '--count', 'HEAD')).toBe('1');
    const copy = (await warmShallow.entries()).find((e) => e.key === 'setup.git.cache-fetch');
    expect(copy?.command).toContain('--depth=1');
    expect(copy?.exitCode).toBe(0);
    await warmShallow.ws.remove();

    const sparse = await clone(cache, job({ sparseCheckout: ['d1/'] }));
    const files = git(sparse.ws.path, 'ls-files', '-t').split('\n');
    expect(files.some((l) => l.includes('d1/'))).toBe(true);
    const checkedOut = await readdir(sparse.ws.path);
    expect(checkedOut).toContain('d1');
    expect(checkedOut).not.toContain('d2');
    await sparse.ws.remove();
  }, 120_000);
});

describe('prepared checkouts (EXECUTOR_GIT_CACHE_CHECKOUTS)', () => {
  /** A cache that prepares one checkout per repository (the executor's default). */
  const preparing = (cacheDir: string, maxBytes = 1 << 30) =>
    createGitCache({ dir: cacheDir, maxBytes, frontendUrl: frontend.url, checkouts: 1 });

  /** The one ready checkout's directory under the cache. */
  async function preparedDir(cacheDir: string): Promise<string> {
    const dirs = (await readdir(path.join(cacheDir, CHECKOUTS_DIR))).filter((n) =>
      /^[0-9a-f]{32}-[0-9a-f]{12}$/.test(n),
    );
    expect(dirs).toHaveLength(1);
    return path.join(cacheDir, CHECKOUTS_DIR, dirs[0]!);
  }

  it('a later full clone moves one into its workspace and writes only the files that changed', async () => {
    const cacheDir = path.join(base, 'cache-prepared');
    const cache = preparing(cacheDir);
    const key = cacheKey(frontend.url, REPO);
    const first = await clone(cache);
    expect((await first.entries()).map((e) => e.key)).not.toContain('setup.git.cache-checkout');
    await first.ws.remove();
    await cache.idle();
    expect((await cache.preparedCheckouts()).get(key)?.map((c) => c.commit)).toEqual([big.head]);

    // A file the next commit does not touch: the same inode in the next workspace means not rewritten.
    const prepared = await preparedDir(cacheDir);
    const unchanged = git(prepared, 'ls-files').split('\n')[0]!;
    const inode = (await stat(path.join(prepared, unchanged))).ino;

    const next = await commit(src, big.bare, 2, 4096);
    const plain = await clone(undefined, job({ commit: next }));
    const warm = await clone(cache, job({ commit: next }));
    const entries = await warm.entries();
    expect(entries.map((e) => e.key).filter((k) => k.startsWith('setup.git.'))).toEqual([
      'setup.git.cache-update',
      'setup.git.cache-checkout',
      'setup.git.fetch',
      'setup.git.checkout',
    ]);
    for (const e of entries) expect(e.exitCode, e.key).toBe(0);
    expect(entries.find((e) => e.key === 'setup.git.cache-checkout')?.out).toContain(big.head);
    expect(existsSync(prepared)).toBe(false);

    // The workspace is what a clone without the cache leaves: commit, files, refs and configuration.
    expect(git(warm.ws.path, 'rev-parse', 'HEAD')).toBe(next);
    expect(git(warm.ws.path, 'status', '--porcelain', '--ignored')).toBe('');
    expect(git(warm.ws.path, 'ls-files')).toBe(git(plain.ws.path, 'ls-files'));
    expect(git(warm.ws.path, 'for-each-ref')).toBe('');
    expect(git(warm.ws.path, 'config', '--local', '--list')).toBe(
      git(plain.ws.path, 'config', '--local', '--list'),
    );
    expect(statSync(warm.ws.path).mode).toBe(statSync(plain.ws.path).mode);
    expect((await stat(path.join(warm.ws.path, unchanged))).ino).toBe(inode);
    expect(warm.bytes).toBeLessThan(plain.bytes / 10);
    git(warm.ws.path, 'fsck', '--connectivity-only', '--no-progress');

    // The next one is prepared at the commit just cloned; no token anywhere in the cache.
    await cache.idle();
    expect((await cache.preparedCheckouts()).get(key)?.map((c) => c.commit)).toEqual([next]);
    expect(await allText(cacheDir)).not.toContain(TOKEN);
    await warm.ws.remove();
    await plain.ws.remove();
    big.head = next;
  }, 120_000);

  it('stays for later when the workspace is on another file system; leftovers of a dead process are removed', async () => {
    const shm = '/dev/shm';
    const otherFs = existsSync(shm) && statSync(shm).dev !== statSync(os.tmpdir()).dev;
    if (!otherFs) {
      console.log(`skipped: needs ${shm} on another file system than ${os.tmpdir()}`);
      return;
    }
    const cacheDir = path.join(base, 'cache-exdev');
    const cache = preparing(cacheDir);
    await (await clone(cache)).ws.remove();
    await cache.idle();
    const prepared = await preparedDir(cacheDir);
    const shmRoot = await mkdtemp(path.join(shm, 'git-cache-test-'));
    try {
      const elsewhere = await clone(cache, job(), shmRoot);
      const keys = (await elsewhere.entries()).map((e) => e.key);
      expect(keys).not.toContain('setup.git.cache-checkout');
      expect(keys).toContain('setup.git.cache-copy');
      expect(git(elsewhere.ws.path, 'rev-parse', 'HEAD')).toBe(big.head);
      expect(existsSync(prepared)).toBe(true);
      await elsewhere.ws.remove();
    } finally {
      await rm(shmRoot, { recursive: true, force: true });
    }

    // A half-built checkout and one without its metadata, as a killed executor leaves them.
    const dir = path.join(cacheDir, CHECKOUTS_DIR);
    await mkdir(path.join(dir, `.tmp-${cacheKey(frontend.url, REPO)}-0123456789ab`));
    await mkdir(path.join(dir, `${cacheKey(frontend.url, REPO)}-ba9876543210`));
    const restarted = preparing(cacheDir);
    const taken = await clone(restarted);
    expect((await taken.entries()).map((e) => e.key)).toContain('setup.git.cache-checkout');
    await restarted.idle();
    const left = await readdir(dir);
    expect(left.filter((n) => n.startsWith('.tmp-') || n.includes('-ba9876543210'))).toEqual([]);
    // The one built after the taken one, and its metadata.
    expect(left).toHaveLength(2);
    await taken.ws.remove();
  }, 120_000);

  it('close() stops the builds: the one running leaves nothing half-built, none starts after', async () => {
    const cacheDir = path.join(base, 'cache-prepared-close');
    const cache = preparing(cacheDir);
    await (await clone(cache)).ws.remove();
    await cache.close();
    const left = await readdir(path.join(cacheDir, CHECKOUTS_DIR)).catch(() => [] as string[]);
    expect(left.filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    await rm(path.join(cacheDir, CHECKOUTS_DIR), { recursive: true, force: true });
    const after = await clone(cache);
    await cache.idle();
    expect(await cache.preparedCheckouts()).toEqual(new Map());
    await after.ws.remove();
  }, 120_000);

  it("eviction takes an entry's prepared checkouts with it, and counts their bytes", async () => {
    const third = await makeRepo('github.com/acme/third');
    const cacheDir = path.join(base, 'cache-prepared-evict');
    const cache = preparing(cacheDir, 1024);
    await (await clone(cache)).ws.remove();
    await cache.idle();
    const bigKey = cacheKey(frontend.url, REPO);
    const prepared = (await cache.preparedCheckouts()).get(bigKey);
    expect(prepared).toHaveLength(1);
    // A checkout holds every file: more bytes than the history's packs of incompressible files.
    expect(prepared![0]!.bytes).toBeGreaterThan(200 * 4096);
    const second = await clone(cache, job({ repositoryName: 'github.com/acme/third', commit: third.head }));
    expect((await cache.entries()).map((e) => e.key)).toEqual([
      cacheKey(frontend.url, 'github.com/acme/third'),
    ]);
    expect((await cache.preparedCheckouts()).has(bigKey)).toBe(false);
    await second.ws.remove();
    await cache.idle();
  }, 120_000);
});
