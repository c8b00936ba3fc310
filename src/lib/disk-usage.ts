/** Bytes on disk of a directory tree, as the executor and the server account for caches and mirrors. */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Sum of the sizes of every regular file under `dir`. A file gone between the listing and its stat
 * (git replaced it) is not counted; a directory that cannot be listed throws.
 */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    try {
      total += (await stat(path.join(e.parentPath, e.name))).size;
    } catch {
      // Gone meanwhile: not counted.
    }
  }
  return total;
}
