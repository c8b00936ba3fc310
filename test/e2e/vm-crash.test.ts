/**
 * kill -9 of an executor with the vm runtime while a step's VM runs: the VM (a QEMU process the
 * executor started) outlives it; the next executor's janitor kills it and removes its workspace,
 * disk and sockets. Both executors are the real CLI (`executor run`) in their own processes.
 */
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { waitFor } from '../helpers/env.js';
import { type CliProcess, spawnCli } from '../helpers/spawn-cli.js';
import { IMAGE } from './docker-e2e.js';
import { haveVm, VM_ASSETS_DIR, vmsOfJob } from './vm-e2e.js';

const ok = haveVm();

describe.skipIf(!ok)('kill -9 of the executor mid-step (vm runtime, separate processes)', () => {
  let cluster: LocalCluster;
  let data: string;
  const executors: CliProcess[] = [];

  beforeAll(async () => {
    data = mkdtempSync(join(tmpdir(), 'e2e-vm-crash-'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'vm',
      noExecutor: true,
      logger: createLogger({ level: 'error' }),
    });
  });

  afterAll(async () => {
    for (const e of executors) {
      if (e.child.exitCode === null && e.child.signalCode === null) {
        e.child.kill('SIGKILL');
        await e.exited;
      }
    }
    await cluster?.stop();
  });

  function startExecutor(role: string, queue: string): CliProcess {
    const p = spawnCli(
      ['run'],
      cluster.executorEnv({
        EXECUTOR_QUEUE_NAME: queue,
        EXECUTOR_RUNTIME: 'vm',
        EXECUTOR_NAME: `${role}-${process.pid}`,
        EXECUTOR_MAXIMUM_NUM_JOBS: '1',
        EXECUTOR_VM_ALLOW_EMULATION: 'true',
        EXECUTOR_JOB_NETWORK: 'none',
        EXECUTOR_VM_ASSETS_DIR: VM_ASSETS_DIR,
        EXECUTOR_VM_IMAGE_CACHE_DIR: join(data, 'vm-images'),
        EXECUTOR_WORKSPACE_ROOT: join(data, 'ws'),
        EXECUTOR_JOB_DISK_SPACE: '32M',
        EXECUTOR_JOB_MEMORY: '256M',
        EXECUTOR_JOB_NUM_CPUS: '1',
        EXECUTOR_MIN_FREE_DISK: '0',
        // Janitor rounds every 2 s: a round that meets a VM still dying leaves its files to the next.
        EXECUTOR_CLEANUP_TASK_INTERVAL: '2s',
      }),
    );
    executors.push(p);
    return p;
  }

  it("the next executor's janitor kills the orphaned VM and removes its workspace and disk", async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'sleepy', image: IMAGE, run: 'echo started; sleep 600' }],
      maxAttempts: 1,
    });
    const first = startExecutor('vm-crash-first', 'default');
    const [vm] = await waitFor(() => (vmsOfJob(job.id).length > 0 ? vmsOfJob(job.id) : undefined), {
      timeoutMs: 180_000,
      intervalMs: 200,
      what: `the first executor's VM\n${first.output()}`,
    });
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    // The VM is not the executor's: it is still running.
    expect(existsSync(`/proc/${vm}`)).toBe(true);
    expect(readdirSync(join(data, 'ws')).some((n) => n.endsWith('.disk.img'))).toBe(true);

    // The next executor serves another queue: the server requeues the job after the stall window,
    // and this test is about what the dead one left, not about running the job again.
    const second = startExecutor('vm-crash-second', 'other');
    await waitFor(() => vmsOfJob(job.id).length === 0, {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `the janitor to kill the orphaned VM\n${second.output()}`,
    });
    await waitFor(() => readdirSync(join(data, 'ws')).length === 0, {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `the janitor to remove the workspace, its disk and sockets: ${readdirSync(join(data, 'ws')).join(', ')}`,
    });
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 300_000);
});
