/**
 * The type of an object named by its full SHA-1, read from the repository's own files without
 * starting git: a submit by sha is answered without a `git rev-parse` (a process start, which from a
 * large server process costs more than the lookup itself), and one at a sha the mirror lacks goes
 * straight to the fetch.
 *
 * - A loose object: the header of its zlib stream (`<type> <size>\0`).
 * - A packed object: found through the pack indexes (version 2: fan-out, sorted names, offsets),
 *   its type is the 3 bits of the entry's first byte in the pack.
 * - `absent` only when neither holds it and nothing else could: no alternates, no promisor pack
 *   (a partial clone's missing objects are promised, not absent).
 * - undefined when this cannot tell (a deltified entry, another index version, a pack replaced
 *   between the listing and the read, alternates): the caller asks git.
 */
import { existsSync } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync, constants as zlibConstants } from 'node:zlib';

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';

const PACK_TYPES: Record<number, ObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
const IDX_MAGIC = 0xff744f63; // "\377tOc"
const FANOUT_AT = 8;
const NAMES_AT = FANOUT_AT + 256 * 4;

async function looseType(objectsDir: string, sha: string): Promise<ObjectType | 'absent' | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path.join(objectsDir, sha.slice(0, 2), sha.slice(2)), 'r');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : undefined;
  }
  try {
    const head = Buffer.alloc(64);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const text = inflateSync(head.subarray(0, bytesRead), { finishFlush: zlibConstants.Z_SYNC_FLUSH })
      .subarray(0, 16)
      .toString('latin1');
    const type = /^(commit|tree|blob|tag) /.exec(text)?.[1] as ObjectType | undefined;
    return type;
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/** The object's type in one pack; 'absent' when its index does not list it. */
async function packedType(idxPath: string, sha: Buffer): Promise<ObjectType | 'absent' | undefined> {
  const idx = await open(idxPath, 'r');
  let offset: number;
  try {
    const head = Buffer.alloc(NAMES_AT);
    if ((await idx.read(head, 0, NAMES_AT, 0)).bytesRead !== NAMES_AT) return undefined;
    if (head.readUInt32BE(0) !== IDX_MAGIC || head.readUInt32BE(4) !== 2) return undefined;
    const first = sha[0]!;
    const lo = first === 0 ? 0 : head.readUInt32BE(FANOUT_AT + (first - 1) * 4);
    const hi = head.readUInt32BE(FANOUT_AT + first * 4);
    const count = head.readUInt32BE(FANOUT_AT + 255 * 4);
    if (hi <= lo) return 'absent';
    const names = Buffer.alloc((hi - lo) * 20);
    await idx.read(names, 0, names.length, NAMES_AT + lo * 20);
    let a = 0;
    let b = hi - lo;
    let at = -1;
    while (a < b) {
      const m = (a + b) >>> 1;
      const c = names.compare(sha, 0, 20, m * 20, m * 20 + 20);
      if (c === 0) {
        at = lo + m;
        break;
      }
      if (c > 0) b = m;
      else a = m + 1;
    }
    if (at < 0) return 'absent';
    const offsetsAt = NAMES_AT + count * 20 + count * 4;
    const word = Buffer.alloc(8);
    await idx.read(word, 0, 4, offsetsAt + at * 4);
    const small = word.readUInt32BE(0);
    if (small & 0x80000000) {
      await idx.read(word, 0, 8, offsetsAt + count * 4 + (small & 0x7fffffff) * 8);
      offset = Number(word.readBigUInt64BE(0));
    } else {
      offset = small;
    }
  } finally {
    await idx.close();
  }
  const pack = await open(idxPath.replace(/\.idx$/, '.pack'), 'r');
  try {
    const byte = Buffer.alloc(1);
    if ((await pack.read(byte, 0, 1, offset)).bytesRead !== 1) return undefined;
    return PACK_TYPES[(byte[0]! >> 4) & 7];
  } finally {
    await pack.close();
  }
}

/** See the top of this file. `gitDir` is a repository's git directory. */
export async function objectType(gitDir: string, sha: string): Promise<ObjectType | 'absent' | undefined> {
  if (!/^[0-9a-f]{40}$/.test(sha)) return undefined;
  const objectsDir = path.join(gitDir, 'objects');
  try {
    const loose = await looseType(objectsDir, sha);
    if (loose !== 'absent') return loose;
    const packDir = path.join(objectsDir, 'pack');
    const files = await readdir(packDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    const name = Buffer.from(sha, 'hex');
    for (const f of files) {
      if (!/^pack-[0-9a-f]+\.idx$/.test(f)) continue;
      const type = await packedType(path.join(packDir, f), name);
      if (type !== 'absent') return type;
    }
    if (files.some((f) => f.endsWith('.promisor'))) return undefined;
    if (existsSync(path.join(objectsDir, 'info', 'alternates'))) return undefined;
    return 'absent';
  } catch {
    return undefined;
  }
}
