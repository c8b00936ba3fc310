/**
 * The quota of a step container's own writable layer (`--storage-opt size=`, storage.ts) on real
 * daemons, end to end. The host's daemon runs overlay2 on ext4, where the executor does not set it;
 * so this test formats a sparse file as xfs, loop-mounts it and starts a second, private dockerd
 * (helpers/second-dockerd.ts) with overlay2 and its data root on that mount. A real executor with
 * EXECUTOR_JOB_DISK_SPACE=64M runs jobs there.
 *
 * With project quotas (`pquota`):
 * - `executor validate` says the layer is limited;
 * - a step container is created with StorageOpt size=<64 MiB in bytes>, and a step writing 40 MiB
 *   outside its workspace passes, twice in one job (each step has a layer of its own);
 * - a step writing 100 MiB into /tmp gets ENOSPC at the quota, and the job fails.
 * That needs xfs quota support in the kernel (CONFIG_XFS_QUOTA), which no package installs: where the
 * kernel lacks it those tests skip with one line, also under CI.
 *
 * Without `pquota` (what `docker info` cannot tell apart): the executor still sets the option, and
 * Docker refuses the step's container with a message that names the fix; the job fails with it.
 *
 * The host's daemon, /etc/docker and firewall are not touched. The daemons, the mounts with their loop
 * devices and every file are removed afterwards, also when a setup fails half way.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { IMAGE_SUFFIX, imagePathOf, releaseDiskImage } from '../../src/executor/workspace/disk-image.js';
import { createLogger } from '../../src/lib/logger.js';
import { commandAvailable, isCI, requireOrSkip, waitFor } from '../helpers/env.js';
import { type SecondDockerd, startSecondDockerd } from '../helpers/second-dockerd.js';
import { spawnCli } from '../helpers/spawn-cli.js';
import { apiEntries, entry, haveDockerAndImage, IMAGE, waitForEnd } from './docker-e2e.js';

const QUOTA = '64M';
const QUOTA_BYTES = 64 * 1024 * 1024;
const MIB = 1024 * 1024;
/** Sparse: only what dockerd and the steps write takes space on the host. */
const XFS_BYTES = 1024 * MIB;
const VALIDATE_LINE = `✓ container writable layer: limited to ${QUOTA} per step (--storage-opt size=${QUOTA_BYTES})`;

/** Built into the kernel, or a module that mount loads. */
function xfsAvailable(): boolean {
  try {
    if (/\sxfs$/m.test(readFileSync('/proc/filesystems', 'utf8'))) return true;
    execFileSync('modinfo', ['-n', 'xfs'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether xfs can mount with `pquota`: false when the kernel's configuration says it was built
 * without CONFIG_XFS_QUOTA (the mount then fails: "quota support not available in this kernel");
 * true when it has it or does not publish its configuration (the mount will tell).
 */
function xfsQuotaInKernel(): boolean {
  let config: string;
  try {
    config = gunzipSync(readFileSync('/proc/config.gz')).toString();
  } catch {
    return true;
  }
  return /^CONFIG_XFS_QUOTA=y$/m.test(config);
}

const ready =
  haveDockerAndImage() &&
  requireOrSkip('root (a loop-mounted xfs and a second dockerd)', process.getuid?.() === 0) &&
  requireOrSkip('dockerd', commandAvailable('dockerd')) &&
  requireOrSkip('mkfs.xfs (xfsprogs)', commandAvailable('mkfs.xfs')) &&
  requireOrSkip('xfs in the kernel', xfsAvailable());

// A kernel option, not a package: CI cannot install it, so this skips there too, saying so.
const quotaReady = ready && xfsQuotaInKernel();
if (ready && !quotaReady) {
  console.warn(
    `skipping: xfs project quotas are not in this kernel (CONFIG_XFS_QUOTA)${isCI ? ' (also under CI=true: no package provides a kernel option)' : ''}; the writable-layer quota itself is not exercised`,
  );
}

/** The bytes a step reports with `echo "wrote $(wc -c < f) bytes"` (its stdout, not the trace). */
function wrote(out: string | undefined): number[] {
  return [...(out ?? '').matchAll(/^stdout: wrote (\d+) bytes$/gm)].map((m) => Number(m[1]));
}

interface Rig {
  daemon: SecondDockerd;
  /** The private daemon's Engine API. */
  docker: Dockerode;
  cluster: LocalCluster;
}

/**
 * A loop-mounted xfs (with `mountOptions`), a private dockerd with overlay2 on it holding the test
 * image, and a local cluster whose in-process executor runs its jobs there with the 64M quota.
 * `cleanup` undoes whatever part of it was made; idempotent.
 */
function xfsRig(name: string, mountOptions: string) {
  let dir: string | undefined;
  let xfs = '';
  let workspaces = '';
  let daemon: SecondDockerd | undefined;
  let cluster: LocalCluster | undefined;
  const savedDockerHost = process.env.DOCKER_HOST;

  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaned ??= (async () => {
      await cluster?.stop({ force: true });
      if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = savedDockerHost;
      // A workspace (or validate's probe) left mounted by a failed job or a killed run.
      for (const n of workspaces && existsSync(workspaces) ? readdirSync(workspaces) : []) {
        if (n.endsWith(IMAGE_SUFFIX))
          await releaseDiskImage(path.join(workspaces, n.slice(0, -IMAGE_SUFFIX.length)), {
            detachLoops: true,
          });
      }
      await daemon?.stop();
      if (dir) {
        // Unmounts (lazily if busy), detaches the loop device and deletes the xfs image.
        await releaseDiskImage(xfs, { detachLoops: true });
        rmSync(dir, { recursive: true, force: true });
      }
    })();
    return cleaned;
  };

  const start = async (): Promise<Rig> => {
    try {
      dir = mkdtempSync(path.join(os.tmpdir(), `${name}-`));
      xfs = path.join(dir, 'xfs');
      workspaces = path.join(dir, 'workspaces');
      mkdirSync(xfs);
      mkdirSync(workspaces);
      const image = imagePathOf(xfs);
      const fd = openSync(image, 'wx', 0o600);
      try {
        ftruncateSync(fd, XFS_BYTES);
      } finally {
        closeSync(fd);
      }
      execFileSync('mkfs.xfs', ['-q', image], { stdio: 'pipe' });
      execFileSync('mount', ['-o', mountOptions, image, xfs], { stdio: 'pipe' });

      daemon = await startSecondDockerd(
        [],
        name,
        {},
        { dataRoot: path.join(xfs, 'docker'), storageDriver: 'overlay2' },
      );
      const docker = new Dockerode({ socketPath: daemon.host.slice('unix://'.length) });
      daemon.docker(['load'], execFileSync('docker', ['save', IMAGE], { maxBuffer: 256 * MIB }));

      // The executor's Docker client (dockerode reads DOCKER_HOST) talks to the private daemon; the
      // variable is this worker process's own.
      process.env.DOCKER_HOST = daemon.host;
      cluster = await startLocalCluster({
        dataDir: path.join(dir, 'cluster'),
        runtime: 'docker',
        logger: createLogger({ level: 'error' }),
        executorEnv: {
          DOCKER_HOST: daemon.host,
          EXECUTOR_JOB_NETWORK: 'none',
          EXECUTOR_JOB_NUM_CPUS: '0',
          EXECUTOR_JOB_MEMORY: '0',
          EXECUTOR_JOB_DISK_SPACE: QUOTA,
          EXECUTOR_WORKSPACE_ROOT: workspaces,
          EXECUTOR_MIN_FREE_DISK: '0',
        },
      });
      return { daemon, docker, cluster };
    } catch (err) {
      await cleanup();
      throw err;
    }
  };
  return { start, cleanup };
}

/** `executor validate` against the rig's server and daemon. */
async function validate(rig: Rig): Promise<{ code: number | string; out: string }> {
  const p = spawnCli(['validate'], rig.cluster.executorEnv());
  const code = await p.exited;
  return { code, out: p.output() };
}

describe.skipIf(!quotaReady)('the writable-layer quota on overlay2 over xfs with pquota', () => {
  const setup = xfsRig('stopt', 'loop,pquota');
  let rig: Rig;
  beforeAll(async () => {
    rig = await setup.start();
  }, 180_000);
  afterAll(setup.cleanup, 120_000);

  it('the daemon runs overlay2 on xfs; executor validate says the layer is limited', async () => {
    const info = await rig.docker.info();
    expect(info.Driver).toBe('overlay2');
    expect(info.DriverStatus).toContainEqual(['Backing Filesystem', 'xfs']);
    const v = await validate(rig);
    expect(v.out).toContain(VALIDATE_LINE);
    expect(v.code, v.out).toBe(0);
  });

  it('each step container gets the quota; steps writing under it outside the workspace pass', async () => {
    const job = await rig.cluster.api.submit({
      queue: 'default',
      steps: [
        {
          key: 'hold',
          image: IMAGE,
          run: [
            'dd if=/dev/zero of=/tmp/fill bs=1M count=40 || exit 1',
            'echo "wrote $(wc -c < /tmp/fill) bytes"',
            // Blocks until the test has inspected this container and writes into the FIFO.
            'mkfifo /tmp/release && read -r _ < /tmp/release',
          ],
        },
        {
          key: 'again',
          image: IMAGE,
          run: [
            // A new container: the first step's 40 MiB are not in this layer.
            'test ! -e /tmp/fill || exit 1',
            'dd if=/dev/zero of=/tmp/fill bs=1M count=40 || exit 1',
            'echo "wrote $(wc -c < /tmp/fill) bytes"',
          ],
        },
      ],
    });
    const step = await waitFor(
      async () => {
        const list = await rig.docker.listContainers({
          filters: { label: [`executor.job=${job.id}`], status: ['running'] },
        });
        return list[0];
      },
      { timeoutMs: 90_000, intervalMs: 100, what: `the first step of job ${job.id} to run` },
    );
    const inspected = await rig.docker.getContainer(step.Id).inspect();
    expect(inspected.HostConfig.StorageOpt).toEqual({ size: String(QUOTA_BYTES) });
    // The FIFO exists once the step is past its write; opening it blocks until the reader is there.
    await waitFor(
      () => {
        try {
          rig.daemon.docker(['exec', step.Id, 'sh', '-c', 'test -p /tmp/release && echo go > /tmp/release']);
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the first step to wait for its release' },
    );

    const final = await waitForEnd(rig.cluster, job.id);
    const entries = await apiEntries(rig.cluster, job.id);
    expect(final.state, JSON.stringify(entries, null, 1)).toBe('completed');
    expect(wrote(entry(entries, 'step.docker.hold').out)).toEqual([40 * MIB]);
    expect(wrote(entry(entries, 'step.docker.again').out)).toEqual([40 * MIB]);
    // The log's `docker run` line names the option as it was sent.
    expect(entry(entries, 'step.docker.hold').command).toContain(`size=${QUOTA_BYTES}`);
  });

  it('a step writing past the quota outside the workspace gets ENOSPC and the job fails', async () => {
    const job = await rig.cluster.api.submit({
      queue: 'default',
      steps: [
        {
          key: 'fill',
          image: IMAGE,
          run: [
            'dd if=/dev/zero of=/tmp/fill bs=1M count=100',
            'rc=$?',
            'echo "wrote $(wc -c < /tmp/fill) bytes"',
            'exit $rc',
          ],
        },
      ],
    });
    const final = await waitForEnd(rig.cluster, job.id);
    const entries = await apiEntries(rig.cluster, job.id);
    const fill = entry(entries, 'step.docker.fill');
    expect(final.state, JSON.stringify(entries, null, 1)).toBe('failed');
    expect(String(final.failureMessage)).toContain('"step.docker.fill"');
    expect(fill.exitCode).not.toBe(0);
    expect(fill.out).toContain('No space left on device');
    // Stopped by the layer's quota: not the 100 MiB asked for, nor some much smaller limit.
    const [n] = wrote(fill.out);
    expect(n).toBeLessThanOrEqual(QUOTA_BYTES);
    expect(n).toBeGreaterThan(QUOTA_BYTES - 8 * MIB);
  });
});

describe.skipIf(!ready)('overlay2 over xfs without pquota', () => {
  const setup = xfsRig('stnoq', 'loop');
  let rig: Rig;
  beforeAll(async () => {
    rig = await setup.start();
  }, 180_000);
  afterAll(setup.cleanup, 120_000);

  it("is taken as able; Docker refuses the step's container, naming the fix, and the job fails", async () => {
    // `docker info` looks the same as with pquota, so validate cannot tell.
    const info = await rig.docker.info();
    expect(info.DriverStatus).toContainEqual(['Backing Filesystem', 'xfs']);
    const v = await validate(rig);
    expect(v.out).toContain(VALIDATE_LINE);
    expect(v.code, v.out).toBe(0);

    const job = await rig.cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'any', image: IMAGE, run: 'echo ran' }],
    });
    const final = await waitForEnd(rig.cluster, job.id);
    const entries = await apiEntries(rig.cluster, job.id);
    const text = `${final.failureMessage}\n${JSON.stringify(entries)}`;
    expect(final.state, text).not.toBe('completed');
    expect(text).toContain("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
    expect(text).not.toContain('stdout: ran');
    // What was sent: the step's `docker run` line in the log.
    expect(entry(entries, 'step.docker.any').command).toContain(`size=${QUOTA_BYTES}`);
  });
});
