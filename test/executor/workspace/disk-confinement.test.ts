/**
 * EXECUTOR_JOB_DISK_SPACE at startup and in `executor validate`: which runtimes apply it, and the
 * real probe (make, mount and remove a small image) as root and as an unprivileged user.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { diskConfinement, diskQuotaProblem } from '../../../src/executor/workspace/disk-confinement.js';
import { requireOrSkip } from '../../helpers/env.js';

const quota = { text: '20G', bytes: 20 * 1024 ** 3 };
const root = process.getuid?.() === 0;
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('diskConfinement', () => {
  it('says which runtimes apply no quota, without probing', async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-conf-'));
    const at = (runtime: string, bytes = quota.bytes) =>
      diskConfinement({ runtime, jobDiskSpace: { text: bytes ? '20G' : '0', bytes }, workspaceRoot: dir });
    expect(await at('shell')).toEqual({
      name: 'job disk',
      ok: true,
      detail: 'no quota: steps run on this host and can fill any of its file systems',
    });
    expect((await at('kubernetes')).detail).toBe(
      'EXECUTOR_JOB_DISK_SPACE does not apply to the kubernetes runtime',
    );
    // vm: the size of each job's disk, which needs no mount on this host, so nothing to probe.
    expect(await at('vm')).toEqual({
      name: 'job disk',
      ok: true,
      detail:
        "each job's workspace is an ext4 disk of 20G attached to its steps' VMs; a step that fills it gets ENOSPC",
    });
    expect((await at('vm', 0)).detail).toContain('disk of EXECUTOR_FIRECRACKER_DISK_SPACE');
    expect(await at('docker', 0)).toEqual({
      name: 'job disk',
      ok: true,
      detail: `no quota (EXECUTOR_JOB_DISK_SPACE=0): a step can fill the file system of ${dir}`,
    });
    expect(
      await diskQuotaProblem({ runtime: 'shell', jobDiskSpace: quota, workspaceRoot: dir }),
    ).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe.skipIf(!requireOrSkip('root (loop mounts)', root))('the probe', () => {
  it('passes as root and leaves nothing behind', async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-conf-'));
    const c = await diskConfinement({ runtime: 'gvisor', jobDiskSpace: quota, workspaceRoot: dir });
    expect(c).toEqual({
      name: 'job disk',
      ok: true,
      detail: `each workspace is a 20G ext4 image (sparse, loop-mounted) under ${dir}`,
    });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses, saying what is missing and how to fix it, for a user who may not mount', async () => {
    dir = mkdtempSync(join(tmpdir(), 'disk-conf-'));
    chmodSync(dir, 0o777);
    const module = fileURLToPath(
      new URL('../../../src/executor/workspace/disk-confinement.ts', import.meta.url),
    );
    const script = `import(${JSON.stringify(module)}).then(async (m) => process.stdout.write(String(await m.diskQuotaProblem({ runtime: 'docker', jobDiskSpace: { text: '20G', bytes: ${quota.bytes} }, workspaceRoot: ${JSON.stringify(dir)} }))))`;
    // nobody, with no capabilities: as an executor run by an ordinary user.
    const { stdout } = await promisify(execFile)(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--inh-caps=-all',
        process.execPath,
        '--import',
        'tsx',
        '-e',
        script,
      ],
      { env: { PATH: process.env.PATH, HOME: dir }, timeout: 120_000 },
    );
    expect(stdout).toMatch(
      new RegExp(
        `^EXECUTOR_JOB_DISK_SPACE=20G gives each workspace a loop-mounted ext4 image, but this process cannot make one in ${dir} \\(mount failed: .+\\)\\. It needs mkfs\\.ext4, a loop device and the privilege to mount \\(root, or CAP_SYS_ADMIN\\)\\. Run the executor as root, or set EXECUTOR_JOB_DISK_SPACE=0`,
      ),
    );
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);
});
