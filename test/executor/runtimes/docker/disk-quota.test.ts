/**
 * EXECUTOR_JOB_DISK_SPACE on real Docker and gVisor, through our server and executor: a step that
 * writes past a 64M quota fails the job with a message naming the limit and the variable, while
 * the host's file system takes at most the quota; the limit 0 keeps the plain workspace directory.
 * And the janitor: images left mounted by a crash are unmounted and deleted, with their loop devices.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../../../src/cli/local-cluster.js';
import { IMAGE_SUFFIX, isMountPoint, mountDiskImage } from '../../../../src/executor/workspace/disk-image.js';
import {
  ORPHAN_WITHOUT_OWNER_AGE_MS,
  removeOrphanWorkspaces,
} from '../../../../src/executor/workspace/janitor.js';
import { OWNER_SUFFIX } from '../../../../src/executor/workspace/prepare.js';
import { createLogger } from '../../../../src/lib/logger.js';
import {
  apiEntries,
  haveDockerAndImage,
  haveGvisorAndImage,
  IMAGE,
  waitForEnd,
} from '../../../e2e/docker-e2e.js';
import { requireOrSkip, waitFor } from '../../../helpers/env.js';
import {
  FILL_STEP,
  filledImage,
  hostFree,
  loopsUnder,
  mountsUnder,
  scrub,
} from '../../disk-quota-helpers.js';

const root = process.getuid?.() === 0;
const dockerOk = haveDockerAndImage() && requireOrSkip('root (loop-mounted workspaces)', root);
const gvisorOk = dockerOk && haveGvisorAndImage();
const MiB = 1024 * 1024;

const clusters: LocalCluster[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const c of clusters) await c.stop({ force: true });
  for (const d of dirs) scrub(d);
}, 120_000);

async function cluster(runtime: 'docker' | 'gvisor', disk: string): Promise<{ c: LocalCluster; ws: string }> {
  const dir = mkdtempSync(join(tmpdir(), `disk-quota-${runtime}-`));
  dirs.push(dir);
  const ws = join(dir, 'ws');
  mkdirSync(ws);
  const c = await startLocalCluster({
    dataDir: join(dir, 'data'),
    runtime,
    logger: createLogger({ level: 'error' }),
    executorEnv: {
      EXECUTOR_JOB_DISK_SPACE: disk,
      EXECUTOR_JOB_NETWORK: 'none',
      EXECUTOR_JOB_NUM_CPUS: '0',
      EXECUTOR_WORKSPACE_ROOT: ws,
      EXECUTOR_MIN_FREE_DISK: '0',
    },
  });
  clusters.push(c);
  return { c, ws };
}

for (const runtime of ['docker', 'gvisor'] as const) {
  const ok = runtime === 'docker' ? dockerOk : gvisorOk;
  describe.skipIf(!ok)(`EXECUTOR_JOB_DISK_SPACE (${runtime})`, () => {
    it('a step writing past 64M fails the job naming the limit; the host holds at most the quota', async () => {
      const { c, ws } = await cluster(runtime, '64M');
      const before = hostFree(ws);
      const job = await c.api.submit({
        queue: 'default',
        steps: [{ key: 'fill', image: IMAGE, run: FILL_STEP }],
        maxAttempts: 1,
      });
      const filled = await filledImage(ws);
      const lost = before - hostFree(ws);
      writeFileSync(join(filled.workspace, 'release'), '');
      const end = await waitForEnd(c, job.id);
      const out = (await apiEntries(c, job.id)).map((e) => `${e.key}: ${e.out}`).join('\n');
      expect(end.state, out).not.toBe('completed');
      expect(end.failureMessage, out).toContain('command failed with exit code 1');
      expect(end.failureMessage, out).toContain(
        'the workspace is full: jobs get 64M of disk (EXECUTOR_JOB_DISK_SPACE)',
      );
      expect(out).toMatch(/No space left on device/);
      // What the job cost the host is its image's blocks: the quota at most, of the GiB asked for.
      expect(filled.hostBytes).toBeGreaterThan(32 * MiB);
      expect(filled.hostBytes).toBeLessThanOrEqual(64 * MiB);
      // The file system's free space moves with everything else this machine writes meanwhile;
      // well under the GiB asked for.
      expect(lost).toBeLessThan(1024 * MiB);
      expect(readdirSync(ws)).toEqual([]);
      expect(mountsUnder(ws)).toEqual([]);
    }, 180_000);

    it('a step that fails on a disk with room gets no disk message', async () => {
      const { c } = await cluster(runtime, '64M');
      const job = await c.api.submit({
        queue: 'default',
        steps: [{ key: 'fail', image: IMAGE, run: 'dd if=/dev/zero of=/data/f bs=1M count=8; exit 3' }],
        maxAttempts: 1,
      });
      const end = await waitForEnd(c, job.id);
      expect(end.failureMessage).toContain('command failed with exit code 3');
      expect(end.failureMessage).not.toContain('EXECUTOR_JOB_DISK_SPACE');
    }, 180_000);

    it.runIf(runtime === 'docker')(
      'the limit 0 keeps a plain directory on the host file system',
      async () => {
        const { c, ws } = await cluster(runtime, '0');
        const job = await c.api.submit({
          queue: 'default',
          steps: [
            {
              key: 'plain',
              image: IMAGE,
              run: [
                'dd if=/dev/zero of=/data/f bs=1M count=80 2>/dev/null && echo wrote-80M',
                'touch /data/written',
                'i=0; while [ ! -e /data/release ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done',
              ],
            },
          ],
          maxAttempts: 1,
        });
        const wsDir = await waitFor(
          () => {
            const d = readdirSync(ws).find((n) => !n.endsWith(OWNER_SUFFIX));
            return d && existsSync(join(ws, d, 'written')) ? join(ws, d) : undefined;
          },
          { timeoutMs: 90_000, intervalMs: 100, what: 'the step to write its file' },
        );
        const mounted = await isMountPoint(wsDir);
        const images = readdirSync(ws).filter((n) => n.endsWith(IMAGE_SUFFIX));
        writeFileSync(join(wsDir, 'release'), '');
        const end = await waitForEnd(c, job.id);
        expect(mounted).toBe(false);
        expect(images).toEqual([]);
        expect(end.state).toBe('completed');
        expect((await apiEntries(c, job.id)).find((e) => e.key === 'step.docker.plain')?.out).toContain(
          'wrote-80M',
        );
      },
      180_000,
    );
  });
}

describe.skipIf(!requireOrSkip('root (loop mounts)', root))('the janitor and images left by a crash', () => {
  let dir: string;
  afterEach(() => scrub(dir));

  async function leftByCrash(name: string, owner: object): Promise<string> {
    const ws = join(dir, name);
    await mkdir(ws);
    await writeFile(`${ws}${OWNER_SUFFIX}`, JSON.stringify(owner));
    await mountDiskImage(ws, { text: '32M', bytes: 32 * MiB });
    await writeFile(join(ws, 'data'), 'x'.repeat(4096));
    return ws;
  }

  it('unmounts and deletes the image of a dead executor and of a job no longer running here', async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-janitor-'));
    const base = { hostname: os.hostname(), createdAt: new Date().toISOString() };
    // A pid that is surely gone: a child that has exited.
    const deadPid = Number(execFileSync('sh', ['-c', 'echo $$']).toString().trim());
    const dead = await leftByCrash('workspace-1-aaa', {
      ...base,
      executorName: 'gone',
      pid: deadPid,
      jobUid: '1',
    });
    const mine = await leftByCrash('workspace-2-bbb', {
      ...base,
      executorName: 'me',
      pid: process.pid,
      jobUid: '2',
    });
    const active = await leftByCrash('workspace-3-ccc', {
      ...base,
      executorName: 'me',
      pid: process.pid,
      jobUid: '3',
    });
    expect(await isMountPoint(dead)).toBe(true);

    const removed = await removeOrphanWorkspaces(dir, new Set(['3']), 'me');
    expect(removed.sort()).toEqual([dead, mine].sort());
    for (const ws of [dead, mine]) {
      expect(existsSync(ws)).toBe(false);
      expect(existsSync(`${ws}${IMAGE_SUFFIX}`)).toBe(false);
    }
    // The running job's workspace is untouched: still mounted, its file there.
    expect(await isMountPoint(active)).toBe(true);
    expect(existsSync(join(active, 'data'))).toBe(true);
    expect(mountsUnder(dir)).toEqual([active]);
    expect(loopsUnder(dir)).toHaveLength(1);
  });

  it('removes the scratch of a probe that died mounted, once it is old', async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-janitor-'));
    const probe = join(dir, '.disk-probe-xyz');
    await mkdir(probe);
    await mountDiskImage(probe, { text: '16M', bytes: 16 * MiB });
    expect(await removeOrphanWorkspaces(dir, new Set(), 'me')).toEqual([]);
    expect(await isMountPoint(probe)).toBe(true);
    const later = { now: () => Date.now() + ORPHAN_WITHOUT_OWNER_AGE_MS + 60_000 };
    expect(await removeOrphanWorkspaces(dir, new Set(), 'me', { clock: later })).toEqual([probe]);
    expect(readdirSync(dir)).toEqual([]);
    expect(loopsUnder(dir)).toEqual([]);
  });

  it('detaches and deletes an image whose workspace directory is gone', async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-janitor-'));
    const image = path.join(dir, `workspace-4-ddd${IMAGE_SUFFIX}`);
    execFileSync('truncate', ['-s', '32M', image]);
    // A loop device still attached to it, as a crash between attaching and mounting leaves one.
    execFileSync('losetup', ['-f', image]);
    expect(loopsUnder(dir)).toHaveLength(1);
    const removed = await removeOrphanWorkspaces(dir, new Set(), 'me');
    expect(removed).toEqual([image]);
    expect(existsSync(image)).toBe(false);
    expect(loopsUnder(dir)).toEqual([]);
  });
});
