/**
 * End to end over the vm runtime: our server and executor in one process, every step in its own
 * QEMU microVM (KVM where /dev/kvm is usable, emulated otherwise: seconds per boot). Few jobs and
 * small ones, as each step boots a kernel: one job covers clone, two images sharing the workspace,
 * a secret, a multi-megabyte output and the guest's own kernel; then the image's USER, a failing
 * step, the full workspace, cancel and timeout.
 */
import { mkdtempSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { waitFor } from '../helpers/env.js';
import { makeDemoRepo } from '../helpers/repos.js';
import { apiEntries, entry, IMAGE, storedLogText, waitForEnd } from './docker-e2e.js';
import {
  ensureSecondImage,
  ensureUserImages,
  GHOST_USER_IMAGE,
  haveVm,
  SECOND_IMAGE,
  USER_IMAGE,
  VM_ASSETS_DIR,
  vmsOfJob,
} from './vm-e2e.js';

const ok = haveVm();
const SECRET = 'vm-s3cret-Zq8"w/+';
const BIG_BYTES = 3 * 1024 * 1024;

describe.skipIf(!ok)('end to end over the vm runtime', () => {
  let cluster: LocalCluster;
  let shas: { first: string; second: string };
  let dataDir: string;

  beforeAll(async () => {
    ensureSecondImage();
    ensureUserImages();
    dataDir = mkdtempSync(join(tmpdir(), 'e2e-vm-'));
    shas = makeDemoRepo(join(dataDir, 'repos'));
    cluster = await startLocalCluster({
      dataDir,
      runtime: 'vm',
      logger: createLogger({ level: 'error' }),
      serverEnv: { EXECUTOR_SERVER_DEADLINE_INTERVAL: '1s' },
      executorEnv: {
        EXECUTOR_VM_ALLOW_EMULATION: 'true',
        // The VMs' network has its own test (vm-network.test.ts).
        EXECUTOR_JOB_NETWORK: 'none',
        EXECUTOR_VM_ASSETS_DIR: VM_ASSETS_DIR,
        EXECUTOR_VM_IMAGE_CACHE_DIR: join(dataDir, 'vm-images'),
        EXECUTOR_WORKSPACE_ROOT: join(dataDir, 'ws'),
        EXECUTOR_JOB_DISK_SPACE: '64M',
        EXECUTOR_JOB_MEMORY: '256M',
        EXECUTOR_JOB_NUM_CPUS: '1',
        EXECUTOR_MIN_FREE_DISK: '0',
        EXECUTOR_MAXIMUM_NUM_JOBS: '1',
      },
      executorDeps: { worker: { heartbeatIntervalMs: 500 } },
    });
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop({ force: true });
  }, 60_000);

  it('clones, runs two steps in two images sharing the workspace, redacts a secret, keeps 3 MiB of output, in its own kernel', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      repository: { name: 'demo/hello', commit: shas.first },
      steps: [
        {
          key: 'first',
          image: IMAGE,
          run: [
            'cat VERSION',
            'echo "kernel $(uname -r)"',
            // The host's processes (this test runs in node) are not there.
            `echo "node processes $(cat /proc/[0-9]*/comm | grep -c '^node$')"`,
            'echo "secret: $S"',
            'echo "to stderr" >&2',
            'echo handed-over > /data/out.txt',
          ],
        },
        {
          key: 'second',
          image: SECOND_IMAGE,
          run: [
            'echo "image $(cat /image-name)"',
            'echo "sees $(cat out.txt)"',
            `head -c ${BIG_BYTES} /dev/zero | tr '\\0' 'x'`,
            'echo; echo big-done',
          ],
        },
      ],
      secrets: { S: SECRET },
      maxAttempts: 1,
    });
    const final = await waitForEnd(cluster, job.id, 300_000);
    const entries = await apiEntries(cluster, job.id);
    const all = entries
      .map((e) => `${e.key}: ${e.out}`)
      .join('\n')
      .slice(0, 4000);
    expect(final.state, all).toBe('completed');
    expect(entries.map((e) => e.key)).toEqual(
      expect.arrayContaining(['setup.git.init', 'step.docker.first', 'step.docker.second', 'teardown.fs']),
    );
    const first = entry(entries, 'step.docker.first').out ?? '';
    expect(first).toContain('stdout: one');
    expect(first).toContain('stderr: to stderr');
    const kernel = /kernel (\S+)/.exec(first)?.[1];
    expect(kernel).toBeDefined();
    expect(kernel).not.toBe(os.release());
    expect(first).toContain('stdout: node processes 0');
    expect(first).toContain('secret: ${{ secrets.S }}');
    expect(await storedLogText(cluster, job.id)).not.toContain(SECRET);

    const second = entry(entries, 'step.docker.second').out ?? '';
    expect(second).toContain('stdout: image second');
    expect(second).toContain('stdout: sees handed-over');
    expect(second).toContain('stdout: big-done');
    expect(second.split('x').length - 1).toBeGreaterThanOrEqual(BIG_BYTES);
    expect(vmsOfJob(job.id)).toEqual([]);
  }, 300_000);

  it("runs the step as the image's USER, with its home; a USER missing from passwd fails the step", async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        {
          key: 'as-app',
          image: USER_IMAGE,
          run: [
            'echo "ids $(id -u):$(id -g) home $HOME"',
            // The workspace belongs to root (0755 at /data): readable, not writable, by another user.
            'touch /data/mine 2>/dev/null && echo wrote || echo cannot-write',
          ],
        },
      ],
      maxAttempts: 1,
    });
    const final = await waitForEnd(cluster, job.id, 180_000);
    const out = entry(await apiEntries(cluster, job.id), 'step.docker.as-app').out ?? '';
    expect(final.state, out).toBe('completed');
    expect(out).toContain('stdout: ids 1234:1234 home /home/app');
    expect(out).toContain('stdout: cannot-write');

    const ghost = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'ghost', image: GHOST_USER_IMAGE, run: 'echo never' }],
      maxAttempts: 1,
    });
    const ended = await waitForEnd(cluster, ghost.id, 180_000);
    const ghostOut = entry(await apiEntries(cluster, ghost.id), 'step.docker.ghost').out ?? '';
    expect(ended.state).not.toBe('completed');
    expect(ghostOut).toContain('unable to find user ghost: no matching entries in passwd file');
    expect(ghostOut).not.toContain('stdout: never');
  }, 240_000);

  it('a failing step fails the job with its exit code', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        { key: 'bad', image: IMAGE, run: 'echo about to fail; exit 7' },
        { key: 'never', image: IMAGE, run: 'echo never' },
      ],
      maxAttempts: 1,
    });
    const final = await waitForEnd(cluster, job.id, 180_000);
    expect(final.state).toBe('failed');
    expect(String(final.failureMessage)).toContain('command failed with exit code 7');
    expect(String(final.failureMessage)).not.toContain('workspace is full');
    const entries = await apiEntries(cluster, job.id);
    expect(entry(entries, 'step.docker.bad').exitCode).toBe(7);
    expect(entries.map((e) => e.key)).not.toContain('step.docker.never');
  }, 180_000);

  it('a step that fills the workspace disk fails the job naming EXECUTOR_JOB_DISK_SPACE', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'fill', image: IMAGE, run: 'dd if=/dev/zero of=/data/fill bs=1M count=100' }],
      maxAttempts: 1,
    });
    const final = await waitForEnd(cluster, job.id, 180_000);
    const out = entry(await apiEntries(cluster, job.id), 'step.docker.fill').out ?? '';
    expect(final.state, out).toBe('failed');
    expect(String(final.failureMessage)).toContain(
      'the workspace is full: jobs get 64M of disk (EXECUTOR_JOB_DISK_SPACE)',
    );
    expect(out).toMatch(/No space left on device/);
  }, 180_000);

  it('cancel kills the running VM within 5 s; the job ends canceled', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'sleepy', image: IMAGE, run: 'echo started; sleep 600' }],
    });
    await waitFor(
      async () =>
        (await apiEntries(cluster, job.id)).some(
          (e) => e.key === 'step.docker.sleepy' && (e.out ?? '').includes('started'),
        ),
      { timeoutMs: 180_000, intervalMs: 200, what: 'the step to print in its VM' },
    );
    expect(vmsOfJob(job.id).length).toBe(1);
    const canceledAt = Date.now();
    await cluster.api.cancel(job.id);
    await waitFor(() => vmsOfJob(job.id).length === 0, {
      timeoutMs: 5_000,
      intervalMs: 50,
      what: 'the VM to be gone within 5 s of the cancel',
    });
    expect(Date.now() - canceledAt).toBeLessThan(5_000);
    const final = await waitForEnd(cluster, job.id, 15_000);
    expect(final.state).toBe('canceled');
  }, 240_000);

  it('a step outliving the job timeout is killed; the job fails naming the timeout', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      timeout: '45s',
      steps: [{ key: 'slow', image: IMAGE, run: 'echo started; sleep 600' }],
      maxAttempts: 1,
    });
    const final = await waitForEnd(cluster, job.id, 120_000);
    expect(final.state).toBe('failed');
    expect(String(final.failureMessage)).toContain('job exceeded its timeout of 45s');
    await waitFor(() => vmsOfJob(job.id).length === 0, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: 'the timed-out VM to be gone',
    });
  }, 180_000);
});
