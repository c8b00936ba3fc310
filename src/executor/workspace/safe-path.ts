/**
 * Paths inside a workspace. Job files and the repository directory come from the job payload, and
 * the cloned repository may contain symlinks, so a relative path is only accepted when it provably
 * stays under the workspace root.
 *
 * Sourcegraph checks `strings.HasPrefix(filepath.Abs(Join(wd, rel)), wd)`, which accepts a sibling
 * such as `/ws-evil` for `/ws` and follows symlinks. Here the path is checked lexically (no `..`
 * segment, not absolute, no NUL, no backslash) and then every existing component is checked with
 * lstat/realpath, so a symlink that leads out of the root is refused. Writers must still open the
 * final file with O_NOFOLLOW (see openForWrite) so that a symlink as the last component is not
 * followed.
 */
import { constants } from 'node:fs';
import { type FileHandle, lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';

export class PathOutsideWorkspaceError extends Error {
  constructor(rel: string) {
    super(`refusing to write outside of working directory: ${JSON.stringify(rel).slice(1, -1)}`);
    this.name = 'PathOutsideWorkspaceError';
  }
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/**
 * Resolves `rel` against `root` and returns the absolute path, or throws PathOutsideWorkspaceError.
 * `''` resolves to the root itself. Existing components are checked through symlinks; missing ones
 * are fine (the caller creates them).
 */
export async function resolveInside(root: string, rel: string): Promise<string> {
  const refuse = () => new PathOutsideWorkspaceError(rel);
  if (rel.includes('\0') || rel.includes('\\') || path.isAbsolute(rel)) throw refuse();
  const segments = rel.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) throw refuse();

  const absRoot = path.resolve(root);
  const target = path.join(absRoot, ...segments);
  if (!isInside(absRoot, target)) throw refuse();

  const realRoot = await realpath(absRoot);
  let cur = absRoot;
  for (const seg of segments) {
    cur = path.join(cur, seg);
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(cur);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') break; // the rest does not exist yet
      throw err;
    }
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = await realpath(cur);
      } catch {
        throw refuse(); // dangling or looping link: cannot prove where it goes
      }
      if (!isInside(realRoot, real)) throw refuse();
    }
  }
  return target;
}

/**
 * Opens `absPath` for writing (create or truncate) without following a symlink in the last
 * component. Call after resolveInside.
 */
export function openForWrite(absPath: string, mode = 0o777): Promise<FileHandle> {
  return open(
    absPath,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    mode,
  );
}
