/**
 * Finds and removes workspaces that a crashed or restarted executor left behind.
 *
 * A workspace `<root>/workspace-<jobId>-<random>` is an orphan when its owner file
 * (`<dir>.owner.json`, see prepare.ts) names this host and either
 *   - its executor is `selfName` and its jobUid is not among this executor's active jobs, or
 *   - the process that created it is no longer alive;
 * or when it has no owner file and is older than ORPHAN_WITHOUT_OWNER_AGE_MS (prepare.ts writes the
 * owner file before it makes the directory, so one without is an earlier version's, which wrote it
 * just after and may still be starting, or not an executor's at all: its host is not known).
 * Workspaces of other hosts (a shared root) and workspaces kept on purpose are never touched.
 *
 * An owner file without its directory is left by an executor killed between writing it and making
 * the directory (prepare.ts writes it first), or between removing the two: it goes when it names
 * this host and its process is gone. An owner file still being written (`.owner-staging-*`) goes
 * once older than ORPHAN_WITHOUT_OWNER_AGE_MS.
 *
 * An orphan's disk image (disk-image.ts) is unmounted and deleted before its directory. An image
 * `workspace-*.disk.img` whose directory is gone is always an orphan: a job's image is made after its
 * directory and deleted before it, so only a crash between those two deletions leaves one.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../../lib/clock.js';
import { systemClock } from '../../lib/clock.js';
import { IMAGE_SUFFIX, releaseDiskImage, SCRATCH_PREFIXES } from './disk-image.js';
import { OWNER_STAGING_PREFIX, OWNER_SUFFIX, WORKSPACE_PREFIX, type WorkspaceOwner } from './prepare.js';

export const ORPHAN_WITHOUT_OWNER_AGE_MS = 60 * 60 * 1000;

export interface JanitorOptions {
  clock?: Clock;
  /** Liveness probe for a pid; default: process.kill(pid, 0). */
  isAlive?: (pid: number) => boolean;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(file: string): Promise<WorkspaceOwner | 'missing' | 'invalid'> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'invalid';
  }
  try {
    const o = JSON.parse(text) as WorkspaceOwner;
    if (typeof o.hostname !== 'string' || typeof o.executorName !== 'string') return 'invalid';
    return o;
  } catch {
    return 'invalid';
  }
}

export async function findOrphanWorkspaces(
  root: string,
  activeJobUids: ReadonlySet<string>,
  selfName: string,
  opts: JanitorOptions = {},
): Promise<string[]> {
  const clock = opts.clock ?? systemClock;
  const isAlive = opts.isAlive ?? pidAlive;
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const host = os.hostname();
  const orphans: string[] = [];
  for (const name of names) {
    if (!name.startsWith(WORKSPACE_PREFIX) || name.endsWith(OWNER_SUFFIX) || name.endsWith(IMAGE_SUFFIX))
      continue;
    const dir = path.join(root, name);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const owner = await readOwner(`${dir}${OWNER_SUFFIX}`);
    if (owner === 'missing') {
      if (clock.now() - st.mtimeMs > ORPHAN_WITHOUT_OWNER_AGE_MS) orphans.push(dir);
      continue;
    }
    if (owner === 'invalid' || owner.hostname !== host || owner.preserved) continue;
    const mine = owner.executorName === selfName && !activeJobUids.has(owner.jobUid);
    const creatorGone = typeof owner.pid === 'number' && !isAlive(owner.pid);
    if (mine || creatorGone) orphans.push(dir);
  }
  return orphans;
}

/** Removes what findOrphanWorkspaces returns (directory and owner file); returns the removed dirs. */
export async function removeOrphanWorkspaces(
  root: string,
  activeJobUids: ReadonlySet<string>,
  selfName: string,
  opts: JanitorOptions = {},
): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of await findOrphanWorkspaces(root, activeJobUids, selfName, opts)) {
    try {
      await releaseDiskImage(dir, { detachLoops: true });
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}${OWNER_SUFFIX}`, { force: true });
      removed.push(dir);
    } catch {
      // Left for the next round; the caller logs what was removed.
    }
  }
  for (const file of await findStrayOwners(root, opts.isAlive ?? pidAlive)) {
    try {
      await rm(file, { force: true });
      removed.push(file);
    } catch {
      // Left for the next round.
    }
  }
  for (const dir of await findStaleScratch(root, opts.clock ?? systemClock)) {
    try {
      await releaseDiskImage(dir, { detachLoops: true });
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // Left for the next round.
    }
  }
  for (const image of await findStrayImages(root)) {
    try {
      await releaseDiskImage(image.slice(0, -IMAGE_SUFFIX.length), { detachLoops: true });
      removed.push(image);
    } catch {
      // Left for the next round.
    }
  }
  return removed;
}

/** Owner files of this host whose workspace directory is gone and whose process is gone too. */
export async function findStrayOwners(root: string, isAlive: (pid: number) => boolean): Promise<string[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const host = os.hostname();
  const stray: string[] = [];
  for (const name of names) {
    if (!name.startsWith(WORKSPACE_PREFIX) || !name.endsWith(OWNER_SUFFIX)) continue;
    const file = path.join(root, name);
    if (await stat(file.slice(0, -OWNER_SUFFIX.length)).catch(() => undefined)) continue;
    const owner = await readOwner(file);
    if (typeof owner !== 'object' || owner.hostname !== host || owner.preserved) continue;
    if (typeof owner.pid === 'number' && !isAlive(owner.pid)) stray.push(file);
  }
  return stray;
}

/**
 * Scratch directories of the disk probe and template (disk-image.ts), and owner files being
 * written (prepare.ts), older than ORPHAN_WITHOUT_OWNER_AGE_MS: each lives for well under a
 * second, unless its process died.
 */
async function findStaleScratch(root: string, clock: Clock): Promise<string[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const stale: string[] = [];
  for (const name of names) {
    const staging = name.startsWith(OWNER_STAGING_PREFIX);
    if (!staging && (!SCRATCH_PREFIXES.some((p) => name.startsWith(p)) || name.endsWith(IMAGE_SUFFIX)))
      continue;
    const entry = path.join(root, name);
    const st = await stat(entry).catch(() => undefined);
    if (st === undefined || clock.now() - st.mtimeMs <= ORPHAN_WITHOUT_OWNER_AGE_MS) continue;
    if (staging ? st.isFile() : st.isDirectory()) stale.push(entry);
  }
  return stale;
}

/** Disk images under `root` whose workspace directory is gone (see the file comment). */
export async function findStrayImages(root: string): Promise<string[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const stray: string[] = [];
  for (const name of names) {
    if (!name.startsWith(WORKSPACE_PREFIX) || !name.endsWith(IMAGE_SUFFIX)) continue;
    const dir = path.join(root, name.slice(0, -IMAGE_SUFFIX.length));
    if (!(await stat(dir).catch(() => undefined))) stray.push(path.join(root, name));
  }
  return stray;
}
