/**
 * Workspace disk images made from a template (the per-job path of the docker and gvisor runtimes):
 * file systems of the quota's size, separate from each other, sparse on the host, and released
 * without a trace. And the filefrag reader the template is built with.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createDiskImages,
  diskIsFull,
  IMAGE_SUFFIX,
  isMountPoint,
  parseFilefrag,
  releaseDiskImage,
} from '../../../src/executor/workspace/disk-image.js';
import { requireOrSkip } from '../../helpers/env.js';
import { scrub } from '../disk-quota-helpers.js';

describe('parseFilefrag', () => {
  it('reads extents as byte ranges in the block size it reports', () => {
    const out = [
      'Filesystem type is: ef53',
      'File size of /w/t.img is 21474836480 (5242880 blocks of 4096 bytes)',
      ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
      '   0:        0..    1028:    6597632..   6598660:   1029:            ',
      '   1:     1044..    1044:    6598676..   6598676:      1:            ',
      '   2:    98304..   98307:    6602752..   6602755:      4:    6666240: last,eof',
      '/w/t.img: 3 extents found',
    ].join('\n');
    expect(parseFilefrag(out)).toEqual([
      { offset: 0, length: 1029 * 4096 },
      { offset: 1044 * 4096, length: 4096 },
      { offset: 98304 * 4096, length: 4 * 4096 },
    ]);
    expect(parseFilefrag('filefrag: Operation not supported')).toBeUndefined();
    expect(parseFilefrag('File size of x is 0 (0 blocks of 4096 bytes)\nx: 0 extents found')).toBeUndefined();
  });
});

describe.skipIf(!requireOrSkip('root (loop mounts)', process.getuid?.() === 0))('createDiskImages', () => {
  let dir: string;
  afterEach(() => scrub(dir));

  it('mounts separate, sparse file systems of the quota, empty and private, and releases them', async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-images-'));
    const images = createDiskImages({ text: '20G', bytes: 20 * 1024 ** 3 }, dir);
    const [a, b] = [join(dir, 'workspace-1-a'), join(dir, 'workspace-2-b')];
    for (const d of [a, b]) {
      mkdirSync(d, { mode: 0o700 });
      await images.mount(d);
    }
    writeFileSync(join(a, 'only-in-a'), 'x');
    for (const d of [a, b]) {
      expect(await isMountPoint(d)).toBe(true);
      const fs = statfsSync(d);
      // The whole 20G, less ext4's own metadata.
      expect(fs.blocks * fs.bsize).toBeGreaterThan(19 * 1024 ** 3);
      expect(statSync(d).mode & 0o777).toBe(0o700);
      // Sparse: a few MiB of the host's disk for a 20G image.
      expect(statSync(`${d}${IMAGE_SUFFIX}`).blocks * 512).toBeLessThan(16 * 1024 ** 2);
      expect(await diskIsFull(d, images.quota)).toBe(false);
    }
    // Both came from the one template (mkfs would have given each its own UUID).
    const uuid = (d: string) =>
      execFileSync('blkid', ['-s', 'UUID', '-o', 'value', `${d}${IMAGE_SUFFIX}`])
        .toString()
        .trim();
    expect(uuid(a)).toMatch(/^[0-9a-f-]{36}$/);
    expect(uuid(b)).toBe(uuid(a));
    expect(readdirSync(a)).toEqual(['only-in-a']);
    expect(readdirSync(b)).toEqual([]);
    // The template was made under the root and is gone.
    expect(readdirSync(dir).sort()).toEqual(
      [
        'workspace-1-a',
        `workspace-1-a${IMAGE_SUFFIX}`,
        'workspace-2-b',
        `workspace-2-b${IMAGE_SUFFIX}`,
      ].sort(),
    );
    for (const d of [a, b]) await releaseDiskImage(d);
    expect(readdirSync(dir).sort()).toEqual(['workspace-1-a', 'workspace-2-b']);
    expect(await isMountPoint(a)).toBe(false);
  });
});
