/**
 * The vm runtime's disks without booting a VM: the workspace disk made from a prepared workspace
 * (real mkfs.ext4 and debugfs), and the root disks of images (real Docker, the local test image),
 * converted once per image id and evicted least recently used first under the cache's cap.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { createImageDisks } from '../../../../src/executor/runtimes/vm/image-disks.js';
import { takeFileFromDisk, toVmWorkspace } from '../../../../src/executor/runtimes/vm/workspace-disk.js';
import { commandAvailable, dockerImagePresent, requireOrSkip, TEST_IMAGE } from '../../../helpers/env.js';

const haveTools = requireOrSkip(
  'e2fsprogs (mkfs.ext4, debugfs)',
  commandAvailable('mkfs.ext4') && commandAvailable('debugfs'),
);
const haveImage = haveTools && requireOrSkip(`Docker with ${TEST_IMAGE}`, dockerImagePresent(TEST_IMAGE));
const SECOND = 'executor-test/busybox-vm2:latest';
const USER_IMAGE = 'executor-test/busybox-vm-user:latest';
const LINKED_IMAGE = 'executor-test/busybox-vm-linked-passwd:latest';

const dirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Lists the files of an ext4 image's root with debugfs. */
function lsDisk(disk: string, dir = '/'): string[] {
  const out = execFileSync('debugfs', ['-R', `ls -l ${dir}`, disk], {
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/).at(-1) ?? '')
    .filter((n) => n && n !== '.' && n !== '..' && n !== 'lost+found');
}

describe.skipIf(!haveTools)('vm workspace disk', () => {
  it('holds the prepared workspace; the host directory is emptied; remove deletes both', async () => {
    const root = await tempDir('vm-ws-');
    const dir = path.join(root, 'workspace-1-x');
    await mkdir(path.join(dir, '.sourcegraph-executor'), { recursive: true });
    await writeFile(path.join(dir, '.sourcegraph-executor', 's.sh'), 'echo hi\n');
    await writeFile(path.join(dir, 'README'), 'repo\n');
    let removed = false;
    const ws = await toVmWorkspace(
      {
        path: dir,
        scriptNames: ['s.sh'],
        remove: async () => {
          removed = true;
          await rm(dir, { recursive: true, force: true });
        },
      },
      { text: '32M', bytes: 32 * 1024 * 1024 },
    );
    expect(ws.disk).toBe(`${dir}.disk.img`);
    expect(statSync(ws.disk).size).toBe(32 * 1024 * 1024);
    // Sparse: far less than the size on the host.
    expect(statSync(ws.disk).blocks * 512).toBeLessThan(8 * 1024 * 1024);
    expect(readdirSync(dir)).toEqual([]);
    expect(lsDisk(ws.disk).sort()).toEqual(['.sourcegraph-executor', 'README']);
    expect(lsDisk(ws.disk, '/.sourcegraph-executor')).toEqual(['s.sh']);
    expect(await ws.diskFull!()).toBeUndefined();
    ws.lastFree = { freeBytes: 1000, freeInodes: 10 };
    expect(await ws.diskFull!()).toContain('the workspace is full: jobs get 32M of disk');

    await ws.remove();
    expect(removed).toBe(true);
    expect(existsSync(ws.disk)).toBe(false);
  });

  it('takes skip.json out of the disk into the host directory (and off the disk); nothing when absent', async () => {
    const root = await tempDir('vm-skip-');
    const dir = path.join(root, 'workspace-2-x');
    await mkdir(dir);
    await writeFile(path.join(dir, 'skip.json'), '{"nextStep":"3"}');
    const ws = await toVmWorkspace(
      { path: dir, scriptNames: [], remove: async () => {} },
      { text: '32M', bytes: 32 * 1024 * 1024 },
    );
    await takeFileFromDisk(ws, 'skip.json');
    expect(await readFile(path.join(dir, 'skip.json'), 'utf8')).toBe('{"nextStep":"3"}');
    expect(lsDisk(ws.disk)).toEqual([]);
    await rm(path.join(dir, 'skip.json'));
    await takeFileFromDisk(ws, 'skip.json');
    expect(existsSync(path.join(dir, 'skip.json'))).toBe(false);
  });

  it('a workspace larger than its disk fails naming the limit', async () => {
    const root = await tempDir('vm-big-');
    const dir = path.join(root, 'workspace-3-x');
    await mkdir(dir);
    await writeFile(path.join(dir, 'big'), Buffer.alloc(20 * 1024 * 1024, 1));
    await expect(
      toVmWorkspace(
        { path: dir, scriptNames: [], remove: async () => {} },
        { text: '16M', bytes: 16 * 1024 * 1024 },
      ),
    ).rejects.toThrow(/cannot make the workspace disk: mkfs.ext4 -d failed/);
    expect(existsSync(`${dir}.disk.img`)).toBe(false);
  });
});

describe.skipIf(!haveImage)('vm image root disks', () => {
  const docker = new Dockerode();

  it('converts an image once, with its environment; a second acquire reuses the disk', async () => {
    const cache = await tempDir('vm-images-');
    const disks = createImageDisks({ docker, cacheDir: cache, capBytes: 1024 * 1024 * 1024 });
    const a = await disks.acquire(TEST_IMAGE);
    const imageEnv = JSON.parse(
      execFileSync('docker', ['image', 'inspect', TEST_IMAGE, '--format', '{{json .Config.Env}}']).toString(),
    );
    expect(a.env).toEqual(imageEnv);
    expect(lsDisk(a.path)).toContain('bin');
    const inode = statSync(a.path).ino;
    const b = await disks.acquire(TEST_IMAGE);
    expect(b.path).toBe(a.path);
    expect(statSync(b.path).ino).toBe(inode);
    a.release();
    b.release();
    // No export container is left behind.
    const left = await docker.listContainers({ all: true, filters: { label: ['executor.vm-export=1'] } });
    expect(left).toEqual([]);
  });

  it("resolves the image's USER against its own passwd file, through links inside the image, as Docker does", async () => {
    const build = (tag: string, lines: string[]) =>
      execFileSync('docker', ['build', '-q', '-t', tag, '-'], {
        input: [`FROM ${TEST_IMAGE}`, ...lines, ''].join('\n'),
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, DOCKER_BUILDKIT: '0' },
      });
    build(USER_IMAGE, [
      'RUN echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd && echo app:x:1234: >> /etc/group',
      'USER app',
    ]);
    // passwd an absolute link, read inside the image (on this host the target does not exist), and
    // group a relative one climbing above the root, which stays at the image's root.
    build(LINKED_IMAGE, [
      'RUN mkdir -p /accounts && echo app:x:99:99::/elsewhere:/bin/sh > /accounts/passwd && ln -sf /accounts/passwd /etc/passwd && echo staff:x:77: > /accounts/group && ln -sf ../../../../../accounts/group /etc/group',
      'USER app:staff',
    ]);
    const cache = await tempDir('vm-users-');
    const disks = createImageDisks({ docker, cacheDir: cache, capBytes: 1024 ** 3 });
    const app = await disks.acquire(USER_IMAGE);
    expect(app.user).toEqual({ uid: 1234, gid: 1234, home: '/home/app' });
    const root = await disks.acquire(TEST_IMAGE);
    expect(root.user).toEqual({ uid: 0, gid: 0, home: '/root' });
    const linked = await disks.acquire(LINKED_IMAGE);
    expect(linked.user).toEqual({ uid: 99, gid: 77, home: '/elsewhere' });
    for (const d of [app, root, linked]) d.release();
  });

  it('evicts the least recently used disk not in use when a new one passes the cap', async () => {
    execFileSync('docker', ['build', '-q', '-t', SECOND, '-'], {
      input: `FROM ${TEST_IMAGE}\nRUN echo second > /image-name\n`,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
    });
    const cache = await tempDir('vm-evict-');
    const probe = await createImageDisks({ docker, cacheDir: cache, capBytes: 1024 ** 3 }).acquire(
      TEST_IMAGE,
    );
    const oneDisk = statSync(probe.path).blocks * 512;
    // Room for one root disk of these (nearly equal) images on the host, not for two.
    const disks = createImageDisks({ docker, cacheDir: cache, capBytes: Math.round(oneDisk * 1.5) });
    const first = await disks.acquire(TEST_IMAGE);
    const held = await disks.acquire(TEST_IMAGE);
    first.release();
    // Still in use (held): kept although over the cap.
    const second = await disks.acquire(SECOND);
    expect(existsSync(held.path)).toBe(true);
    expect(existsSync(second.path)).toBe(true);
    held.release();
    second.release();
    // Neither in use now; the first is still cached.
    const again = await disks.acquire(TEST_IMAGE);
    expect(again.path).toBe(held.path);
    again.release();
    await rm(second.path);
    await rm(second.path.replace(/\.ext4$/, '.json'));
    const rebuilt = await disks.acquire(SECOND);
    // Converting SECOND again passed the cap: the least recently used disk not in use went.
    expect(existsSync(held.path)).toBe(false);
    expect(existsSync(rebuilt.path)).toBe(true);
    rebuilt.release();
  });
});
