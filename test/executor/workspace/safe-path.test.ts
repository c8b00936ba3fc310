import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openForWrite, resolveInside } from '../../../src/executor/workspace/safe-path.js';

let base: string;
let ws: string;
let outside: string;

beforeAll(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'safe-path-'));
  ws = path.join(base, 'ws');
  outside = path.join(base, 'outside');
  await mkdir(path.join(ws, 'sub'), { recursive: true });
  await mkdir(outside);
  await mkdir(path.join(base, 'ws-evil'));
  await symlink(outside, path.join(ws, 'link-out'));
  await symlink(path.join(ws, 'sub'), path.join(ws, 'link-in'));
  await symlink('../../outside', path.join(ws, 'sub', 'rel-out'));
  await symlink(path.join(ws, 'missing-target'), path.join(ws, 'dangling'));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('resolveInside', () => {
  const refused = [
    '../x',
    '..',
    '/etc/passwd',
    'a/../../x',
    'a/../b',
    '..\\x',
    'a\\..\\..\\x',
    'x\0y',
    '../ws-evil/x',
    'link-out/x',
    'link-out',
    'sub/rel-out/x',
    'dangling/x',
  ];
  for (const rel of refused) {
    it(`refuses ${JSON.stringify(rel)}`, async () => {
      await expect(resolveInside(ws, rel)).rejects.toThrow(
        /^refusing to write outside of working directory: /,
      );
    });
  }

  it('refuses the sibling-prefix trick against a real sibling directory', async () => {
    // `/ws-evil` starts with `/ws`: a plain prefix check would accept it.
    await expect(resolveInside(ws, `../${path.basename(ws)}-evil/file`)).rejects.toThrow(/refusing/);
  });

  it('accepts paths inside, including through a symlink that stays inside', async () => {
    expect(await resolveInside(ws, 'a/b/c.txt')).toBe(path.join(ws, 'a/b/c.txt'));
    expect(await resolveInside(ws, './sub//x.txt')).toBe(path.join(ws, 'sub/x.txt'));
    expect(await resolveInside(ws, 'link-in/x.txt')).toBe(path.join(ws, 'link-in/x.txt'));
    expect(await resolveInside(ws, '')).toBe(ws);
    expect(await resolveInside(ws, '..foo/x')).toBe(path.join(ws, '..foo/x'));
  });
});

describe('openForWrite', () => {
  it('does not follow a symlink as the last component', async () => {
    const target = path.join(outside, 'victim.txt');
    await writeFile(target, 'original');
    await symlink(target, path.join(ws, 'final-link'));
    // The final component passes resolveInside only when it resolves inside; this one does not.
    await expect(resolveInside(ws, 'final-link')).rejects.toThrow(/refusing/);
    // Even if a caller skipped that check, the open itself refuses to follow the link.
    await expect(openForWrite(path.join(ws, 'final-link'))).rejects.toMatchObject({ code: 'ELOOP' });
    expect(await readFile(target, 'utf8')).toBe('original');
  });
});
