/**
 * One bare mirror on disk: `<reposDir>/<name>.git`, where `git http-backend` and submit's commit
 * resolution find it, so mirrors and repositories placed by hand share one layout.
 *
 * - A new mirror is fetched into a temporary directory under `<reposDir>/.executor-tmp/` and renamed
 *   into place only when complete: a failed first fetch leaves nothing behind.
 * - An update fetches branches and tags (`+refs/heads/*`, `+refs/tags/*`, pruned) into the mirror.
 *   git writes objects before it moves refs, so a fetch cut short (a restart) leaves the mirror at
 *   its previous refs, still usable; the lock files it leaves are removed before the next fetch,
 *   which completes the work.
 * - The remote's default branch (`ls-remote --symref`) becomes the mirror's HEAD when asked for
 *   (registration and periodic syncs; not the fetch at submit, which only needs objects).
 * The caller runs at most one fetch per mirror at a time (index.ts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { diskUsage } from '../../lib/disk-usage.js';
import { MirrorError, runGitRemote } from './git-remote.js';

export const TMP_DIR = '.executor-tmp';

export interface FetchOptions {
  reposDir: string;
  name: string;
  url: string;
  /** protocol.allow and credential pairs (git-remote.ts). */
  config: [string, string][];
  secrets: string[];
  timeoutMs: number;
  /** 0 = no limit. */
  maxSizeBytes: number;
  updateHead: boolean;
  signal?: AbortSignal;
}

export interface FetchResult {
  sizeBytes: number;
  /** The remote's default branch when asked for and known, else undefined. */
  defaultBranch?: string;
}

export const mirrorPath = (reposDir: string, name: string): string => path.join(reposDir, `${name}.git`);

/** Lock files a killed git leaves (refs, packed-refs, HEAD, config, shallow). */
async function removeStaleLocks(gitDir: string): Promise<void> {
  const entries = await readdir(gitDir, { withFileTypes: true, recursive: true });
  for (const e of entries) {
    if (e.isFile() && e.name.endsWith('.lock') && !e.parentPath.includes(`${path.sep}objects`)) {
      await rm(path.join(e.parentPath, e.name), { force: true });
    }
  }
}

const git = (o: FetchOptions, args: string[]) =>
  runGitRemote({ args, config: o.config, secrets: o.secrets, timeoutMs: o.timeoutMs, signal: o.signal });

async function fetchInto(gitDir: string, o: FetchOptions): Promise<FetchResult> {
  let defaultBranch: string | undefined;
  if (o.updateHead) {
    const out = await git(o, ['ls-remote', '--symref', '--', o.url, 'HEAD']);
    defaultBranch = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(out)?.[1];
  }
  await git(o, [
    '--git-dir',
    gitDir,
    '-c',
    'gc.autoDetach=false',
    'fetch',
    '--quiet',
    '--prune',
    '--no-write-fetch-head',
    '--',
    o.url,
    '+refs/heads/*:refs/heads/*',
    '+refs/tags/*:refs/tags/*',
  ]);
  if (defaultBranch !== undefined) {
    await git(o, ['--git-dir', gitDir, 'symbolic-ref', 'HEAD', `refs/heads/${defaultBranch}`]);
  }
  const sizeBytes = await diskUsage(gitDir);
  if (o.maxSizeBytes > 0 && sizeBytes > o.maxSizeBytes) {
    throw new MirrorError(
      'too-large',
      `the repository takes ${sizeBytes} bytes on disk, more than EXECUTOR_SERVER_REPO_MAX_SIZE (${o.maxSizeBytes})`,
    );
  }
  return { sizeBytes, defaultBranch };
}

/** Creates or updates the mirror of `o.name`; throws MirrorError. */
export async function fetchMirror(o: FetchOptions): Promise<FetchResult> {
  const gitDir = mirrorPath(o.reposDir, o.name);
  if (existsSync(gitDir)) {
    await removeStaleLocks(gitDir);
    return fetchInto(gitDir, o);
  }
  const tmpRoot = path.join(o.reposDir, TMP_DIR);
  await mkdir(tmpRoot, { recursive: true });
  const tmp = path.join(tmpRoot, `${o.name.replace(/\//g, '--')}-${randomBytes(4).toString('hex')}.git`);
  try {
    await git(o, ['init', '--quiet', '--bare', tmp]);
    const result = await fetchInto(tmp, o);
    await mkdir(path.dirname(gitDir), { recursive: true });
    await rename(tmp, gitDir);
    return result;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Removes temporary directories of first fetches a previous run did not finish. */
export async function cleanTemporary(reposDir: string): Promise<void> {
  await rm(path.join(reposDir, TMP_DIR), { recursive: true, force: true });
}

/** Deletes the mirror of `name` (only the `<name>.git` directory the server made). */
export async function removeMirror(reposDir: string, name: string): Promise<void> {
  await rm(mirrorPath(reposDir, name), { recursive: true, force: true });
}
