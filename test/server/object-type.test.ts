/**
 * objectType against git itself on a real repository: every object loose, then packed with deltas;
 * what it answers must be git's type, and it may only say "absent" when git has no such object.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectType } from '../../src/server/user-api/object-type.js';
import { GIT_TEST_ENV } from '../helpers/repos.js';

const git = (dir: string, ...args: string[]) =>
  execFileSync('git', ['-C', dir, ...args], { env: GIT_TEST_ENV, encoding: 'utf8' });

let base: string;
let repo: string;
let gitDir: string;

/** Every object of the repository with git's type. */
const allObjects = () =>
  git(repo, 'cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(objecttype)')
    .trim()
    .split('\n')
    .map((l) => l.split(' ') as [string, string]);

beforeAll(() => {
  base = mkdtempSync(path.join(os.tmpdir(), 'object-type-'));
  repo = path.join(base, 'repo');
  gitDir = path.join(repo, '.git');
  git(base, 'init', '-q', '-b', 'main', repo);
  // Files that change a little per commit: a repack stores most versions as deltas.
  const text = randomBytes(6000).toString('base64');
  for (let c = 0; c < 12; c++) {
    for (let f = 0; f < 4; f++)
      writeFileSync(path.join(repo, `f${f}.txt`), `${text}\nversion ${c} of ${f}\n`);
    git(repo, 'add', '.');
    git(repo, 'commit', '-qm', `commit ${c}`);
  }
  git(repo, 'tag', '-a', '-m', 'an annotated tag', 'v1');
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('objectType', () => {
  it("reads every loose object's type as git does", async () => {
    const objects = allObjects();
    expect(objects.length).toBeGreaterThan(12 * 3);
    for (const [sha, type] of objects) expect(await objectType(gitDir, sha), sha).toBe(type);
  });

  it("reads packed objects' types as git does, and leaves deltas to git", async () => {
    git(repo, 'repack', '-a', '-d', '-f', '-q', '--depth=50', '--window=50');
    git(repo, 'prune-packed');
    const objects = allObjects();
    let known = 0;
    let commits = 0;
    for (const [sha, type] of objects) {
      const got = await objectType(gitDir, sha);
      if (got !== undefined) {
        expect(got, sha).toBe(type);
        known++;
        if (got === 'commit') commits++;
      }
    }
    // Deltas (most blob versions here) are left to git; commits are whole in a pack.
    expect(known).toBeLessThan(objects.length);
    expect(commits).toBe(objects.filter(([, t]) => t === 'commit').length);
  });

  it('absent only when nothing could hold the object', async () => {
    const missing = randomBytes(20).toString('hex');
    expect(() => git(repo, 'cat-file', '-e', missing)).toThrow();
    expect(await objectType(gitDir, missing)).toBe('absent');
    // A name that shares its first byte with a packed object: the search within the fan-out bucket.
    const [packed] = allObjects()[0]!;
    const near = `${packed.slice(0, 2)}${'0'.repeat(38)}`;
    if (near !== packed) expect(await objectType(gitDir, near)).toBe('absent');

    const alternates = path.join(gitDir, 'objects', 'info', 'alternates');
    writeFileSync(alternates, `${path.join(base, 'elsewhere')}\n`);
    expect(await objectType(gitDir, missing)).toBeUndefined();
    rmSync(alternates);
    const pack = git(repo, 'rev-parse', '--git-path', 'objects/pack').trim();
    const promisor = path.join(repo, pack, 'pack-0000000000000000000000000000000000000000.promisor');
    writeFileSync(promisor, '');
    expect(await objectType(gitDir, missing)).toBeUndefined();
    rmSync(promisor);
  });

  it('leaves anything but a full lowercase SHA-1 to git', async () => {
    const head = git(repo, 'rev-parse', 'HEAD').trim();
    expect(await objectType(gitDir, head)).toBe('commit');
    for (const name of ['main', 'v1', head.slice(0, 12), head.toUpperCase(), `${head}^{commit}`])
      expect(await objectType(gitDir, name), name).toBeUndefined();
  });
});
