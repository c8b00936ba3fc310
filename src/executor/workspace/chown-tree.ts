/**
 * Gives a workspace to the uid and gid a step's root has on the host (Docker user-namespace
 * remapping, see runtimes/docker/userns.ts): every directory, file and symlink under `dir`, and
 * `dir` itself.
 *
 * Called after the clone and the files are written and before any step runs, so nothing in the tree
 * is written by the job yet. Symlinks are changed themselves (lchown), never followed: a repository
 * may hold a link to /etc/passwd, and following it would hand that file to the job (readdir's
 * entries describe the link, not its target, so a link to a directory is not descended either).
 */
import { lchown, readdir } from 'node:fs/promises';
import path from 'node:path';

export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await lchown(dir, uid, gid);
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, uid, gid);
    else await lchown(p, uid, gid);
  }
}
