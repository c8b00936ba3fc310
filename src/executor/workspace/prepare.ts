/**
 * Prepares a local workspace for runtimes that run steps on this host (docker, gvisor, shell):
 * `<root>/workspace-<jobId>-<random>`, an owner file next to it for the janitor, the clone (when
 * the job names a repository), then files and step scripts.
 *
 * The owner file sits NEXT TO the workspace (`<dir>.owner.json`), not inside it: the job can write
 * anywhere in its workspace, so nothing the janitor trusts may live there. It is there, whole,
 * before the directory is made (written beside under a temporary name, then renamed), so that an
 * executor killed at any point leaves no workspace the janitor cannot attribute: a directory
 * without its owner file once stayed for an hour (janitor.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import type { Job } from '../../protocol/job.js';
import { recordUid } from '../../protocol/job.js';
import type { JobContext } from '../job-context.js';
import type { Workspace } from '../runtimes/types.js';
import { chownTree } from './chown-tree.js';
import { cloneRepository } from './clone.js';
import { type DiskImages, diskFullReason, diskIsFull, releaseDiskImage } from './disk-image.js';
import { type FilesFetcher, writeWorkspaceFiles } from './files.js';
import type { GitCache } from './git-cache.js';

export interface PrepareWorkspaceOptions {
  /** Parent directory of workspaces (created when missing). */
  root: string;
  keepWorkspaces: boolean;
  frontendUrl: string;
  frontendPassword: string;
  executorName: string;
  files: FilesFetcher;
  /**
   * Host ids of a step's root under Docker user-namespace remapping: the finished workspace is
   * given to them before any step runs (see chown-tree.ts). Undefined = left to the executor's user.
   */
  stepRoot?: { uid: number; gid: number };
  /** EXECUTOR_JOB_DISK_SPACE: the workspace is an image of its quota mounted on its directory. */
  disk?: DiskImages;
  /** The executor's clone cache (EXECUTOR_GIT_CACHE_DIR). */
  gitCache?: GitCache;
}

export interface WorkspaceOwner {
  executorName: string;
  hostname: string;
  pid: number;
  jobUid: string;
  /** RFC 3339. */
  createdAt: string;
  /** Set when the workspace was kept on purpose (EXECUTOR_KEEP_WORKSPACES); the janitor skips it. */
  preserved?: boolean;
}

export const OWNER_SUFFIX = '.owner.json';
export const WORKSPACE_PREFIX = 'workspace-';
/** An owner file being written, before it is renamed beside its workspace (the janitor ages them out). */
export const OWNER_STAGING_PREFIX = '.owner-staging-';

export async function prepareLocalWorkspace(
  job: Job,
  ctx: JobContext,
  opts: PrepareWorkspaceOptions,
): Promise<Workspace> {
  await mkdir(opts.root, { recursive: true });
  const dir = path.join(opts.root, `${WORKSPACE_PREFIX}${job.id}-${randomBytes(6).toString('hex')}`);
  const ownerPath = `${dir}${OWNER_SUFFIX}`;
  const quota = opts.disk?.quota;
  const diskFull = quota
    ? async () => ((await diskIsFull(dir, quota)) ? diskFullReason(quota) : undefined)
    : undefined;
  const owner: WorkspaceOwner = {
    executorName: opts.executorName,
    hostname: os.hostname(),
    pid: process.pid,
    jobUid: recordUid(job),
    createdAt: new Date().toISOString(),
  };

  const staged = path.join(opts.root, `${OWNER_STAGING_PREFIX}${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(staged, JSON.stringify(owner), { mode: 0o600, flag: 'wx' });
    await rename(staged, ownerPath);
    await mkdir(dir, { mode: 0o700 });
    await opts.disk?.mount(dir);
    let scriptNames: string[];
    try {
      if (job.repositoryName) {
        await cloneRepository(job, ctx, {
          workspacePath: dir,
          frontendUrl: opts.frontendUrl,
          frontendPassword: opts.frontendPassword,
          executorName: opts.executorName,
          cache: opts.gitCache,
          // A workspace that is a disk image of its own is another file system.
          preparedCheckouts: !opts.disk,
        });
      }
      scriptNames = await writeWorkspaceFiles(job, dir, ctx.logger, opts.files);
    } catch (err) {
      const full = await diskFull?.().catch(() => undefined);
      throw full ? new Error(`${errorMessage(err)} (${full})`) : err;
    }
    if (opts.stepRoot) {
      const { uid, gid } = opts.stepRoot;
      await chownTree(dir, uid, gid).catch((err: unknown) => {
        throw new Error(
          `cannot give the workspace to uid ${uid}:${gid}, root of the steps under the Docker daemon's user-namespace remapping (${errorMessage(err)}); run the executor as root`,
        );
      });
    }

    let removed: Promise<void> | undefined;
    const remove = (): Promise<void> => {
      removed ??= (async () => {
        const handle = ctx.logger.entry('teardown.fs', null);
        try {
          if (opts.keepWorkspaces) {
            handle.writeRaw(`Preserving workspace (${dir}) as per config`);
            await writeFile(ownerPath, JSON.stringify({ ...owner, preserved: true }), { mode: 0o600 }).catch(
              () => {},
            );
            return;
          }
          handle.writeRaw(`Removing ${dir}\n`);
          try {
            if (quota) await releaseDiskImage(dir);
            await rm(dir, { recursive: true, force: true });
            await rm(ownerPath, { force: true });
          } catch (err) {
            handle.writeRaw(`Operation failed: ${errorMessage(err)}\n`);
          }
        } finally {
          // Workspace cleanup never fails the job (Sourcegraph finalizes this entry with 0).
          handle.close(0);
        }
      })();
      return removed;
    };
    return { path: dir, scriptNames, remove, diskFull };
  } catch (err) {
    if (quota) await releaseDiskImage(dir).catch(() => {});
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    await rm(ownerPath, { force: true }).catch(() => {});
    await rm(staged, { force: true }).catch(() => {});
    throw err;
  }
}
