/**
 * What the vm runtime's tests share: whether VMs can run here (QEMU, the guest assets of
 * `npm run vm-assets`, Docker with the test image), the VMs of a job on this host, and a second
 * test image (the first with a marker file: another image id, so another root disk).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { commandAvailable, requireOrSkip } from '../helpers/env.js';
import { haveDockerAndImage, IMAGE } from './docker-e2e.js';

export const VM_ASSETS_DIR = process.env.EXECUTOR_VM_ASSETS_DIR || '/var/lib/executor/vm';
export const SECOND_IMAGE = 'executor-test/busybox-vm2:latest';
/** The test image with a user of its own (uid 1234, home /home/app) as its USER. */
export const USER_IMAGE = 'executor-test/busybox-vm-user:latest';
/** The test image whose USER names nobody in its passwd file. */
export const GHOST_USER_IMAGE = 'executor-test/busybox-vm-ghost:latest';

/** True when VM tests can run; otherwise skips (or fails under CI=true) naming what is missing. */
export function haveVm(): boolean {
  if (!haveDockerAndImage()) return false;
  if (
    !requireOrSkip(
      'QEMU (qemu-system-x86_64; apt-get install qemu-system-x86)',
      commandAvailable('qemu-system-x86_64'),
    )
  )
    return false;
  return requireOrSkip(
    `the VM guest assets in ${VM_ASSETS_DIR} (npm run vm-assets)`,
    existsSync(`${VM_ASSETS_DIR}/vmlinuz`) && existsSync(`${VM_ASSETS_DIR}/initramfs.img`),
  );
}

/** Builds `tag` from the test image and `lines` when absent (no registry needed). */
function ensureImage(tag: string, lines: string[]): void {
  try {
    execFileSync('docker', ['image', 'inspect', tag], { stdio: 'pipe' });
    return;
  } catch {
    // build it
  }
  execFileSync('docker', ['build', '-q', '-t', tag, '-'], {
    input: [`FROM ${IMAGE}`, ...lines, ''].join('\n'),
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
  });
}

/** Builds SECOND_IMAGE from the test image when absent. */
export function ensureSecondImage(): void {
  ensureImage(SECOND_IMAGE, ['RUN echo second > /image-name']);
}

/** Builds USER_IMAGE and GHOST_USER_IMAGE from the test image when absent. */
export function ensureUserImages(): void {
  ensureImage(USER_IMAGE, [
    'RUN echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd && echo app:x:1234: >> /etc/group',
    'USER app',
  ]);
  ensureImage(GHOST_USER_IMAGE, ['USER ghost']);
}

/**
 * Pids of QEMU processes whose VM name belongs to job `id` (vmName in convert.ts:
 * `executor-<executor>-<id>[-<queue>]-<step>`; the queue is in it only in multi-queue mode).
 */
export function vmsOfJob(id: number): number[] {
  const ofJob = new RegExp(`-${id}(-[A-Za-z0-9_.]+)?-\\d+$`);
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv[0]?.includes('qemu-system')) continue;
    const name = argv[argv.indexOf('-name') + 1] ?? '';
    if (ofJob.test(name)) pids.push(Number(p));
  }
  return pids;
}
