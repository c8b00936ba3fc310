/**
 * Shared by the disk quota tests (test/executor/runtimes/docker/disk-quota.test.ts and the chaos
 * sandbox matrix): a step that fills its workspace and waits, what it cost the host, and the mounts
 * and loop devices a test must leave behind it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE_SUFFIX } from '../../src/executor/workspace/disk-image.js';
import { waitFor } from '../helpers/env.js';

/**
 * Asks for 1 GiB in the workspace, then says it is done by renaming /data/a to /data/b (a rename to
 * a name of the same length needs no free block, unlike a new file on a full disk), then waits for
 * /data/release and fails. Without a quota the host would lose the whole GiB.
 */
export const FILL_STEP = [
  ': > /data/a',
  'dd if=/dev/zero of=/data/big bs=1M count=1024 2>&1',
  'ls -l /data/big',
  'mv /data/a /data/b',
  'i=0; while [ ! -e /data/release ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done',
  'exit 1',
].join('\n');

export function hostFree(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/**
 * Waits until the FILL_STEP under `root` has filled its workspace; returns the workspace and the
 * bytes the host's file system holds for its image (allocated blocks, not the apparent size).
 */
export async function filledImage(root: string): Promise<{ workspace: string; hostBytes: number }> {
  const workspace = await waitFor(
    () =>
      readdirSync(root)
        .map((n) => join(root, n))
        .find((p) => existsSync(join(p, 'b'))),
    { timeoutMs: 90_000, intervalMs: 100, what: 'the step to fill its workspace' },
  );
  return { workspace, hostBytes: statSync(`${workspace}${IMAGE_SUFFIX}`).blocks * 512 };
}

/** Mount points under `dir`, from the host's mount table. */
export function mountsUnder(dir: string): string[] {
  const table = execFileSync('findmnt', ['-rn', '-o', 'TARGET']).toString();
  return table.split('\n').filter((t) => t.startsWith(`${dir}/`));
}

/** Loop devices backed by a file under `dir`, as `NAME BACK-FILE` lines. */
export function loopsUnder(dir: string): string[] {
  return execFileSync('losetup', ['-a', '-n', '-O', 'NAME,BACK-FILE'])
    .toString()
    .split('\n')
    .filter((l) => l.includes(`${dir}/`));
}

/** Unmounts and detaches whatever a failed test left under `dir`, then removes it. */
export function scrub(dir: string): void {
  for (const m of mountsUnder(dir)) execFileSync('umount', ['-l', m]);
  for (const l of loopsUnder(dir)) execFileSync('losetup', ['-d', l.split(/\s+/)[0]!]);
  rmSync(dir, { recursive: true, force: true });
}
