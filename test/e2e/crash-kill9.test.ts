/**
 * kill -9 of an executor in the middle of a job: the server (in this process) requeues the job once
 * it has been unheard of for the stall window, a second executor process completes it, and that
 * executor's janitor removes the container the first one left behind. Both executors are the real
 * CLI (`executor run`) in their own processes, with the docker runtime.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { waitFor } from '../helpers/env.js';
import { type CliProcess, spawnCli } from '../helpers/spawn-cli.js';
import {
  apiEntries,
  containersOfJob,
  docker,
  entry,
  haveDockerAndImage,
  IMAGE,
  waitForEnd,
  waitForState,
} from './docker-e2e.js';

const ok = haveDockerAndImage();

async function containerExists(id: string): Promise<boolean> {
  try {
    await docker.getContainer(id).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

describe.skipIf(!ok)('kill -9 of the executor mid-job (docker runtime, separate processes)', () => {
  let cluster: LocalCluster;
  const executors: CliProcess[] = [];
  const names: string[] = [];

  beforeAll(async () => {
    const data = mkdtempSync(join(tmpdir(), 'e2e-crash-'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'docker',
      noExecutor: true,
      logger: createLogger({ level: 'error' }),
      // The stall window must exceed the executors' heartbeat interval (5 s, fixed as in
      // Sourcegraph's executor): with 3 s the live second executor's job was reset before its
      // next heartbeat, again and again, until it failed after EXECUTOR_SERVER_MAX_RESETS.
      serverEnv: { EXECUTOR_SERVER_STALLED_AFTER: '10s', EXECUTOR_SERVER_RESET_INTERVAL: '500ms' },
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

  function startExecutor(role: string): CliProcess {
    const name = `${role}-${process.pid}`;
    names.push(name);
    const p = spawnCli(
      ['run'],
      cluster.executorEnv({
        EXECUTOR_RUNTIME: 'docker',
        EXECUTOR_NAME: name,
        EXECUTOR_MAXIMUM_NUM_JOBS: '1',
        EXECUTOR_JOB_NETWORK: 'none',
      }),
    );
    executors.push(p);
    return p;
  }

  it('requeues after the stall window; a second executor completes it and removes the orphan', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'work', image: IMAGE, run: 'echo attempt-started; sleep 4; echo attempt-done' }],
    });

    const first = startExecutor('crash-first');
    const orphan = await waitFor(
      async () => (await containersOfJob(job.id, names)).find((c) => c.State === 'running'),
      { timeoutMs: 60_000, intervalMs: 100, what: `the first executor's step container\n${first.output()}` },
    );
    expect(orphan.Labels['executor.pid']).toBe(String(first.child.pid));
    expect((await cluster.api.getJob(job.id)).state).toBe('processing');

    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    // Unheard of for the stall window: requeued by the server, not failed.
    const requeued = await waitForState(cluster, job.id, 'queued', 30_000);
    expect(requeued.numResets).toBe(1);
    expect(requeued.attempts).toBe(1);
    const second = startExecutor('crash-second');
    // The janitor runs when an executor starts: the orphan of the dead process goes. (Every
    // executor's janitor removes containers of dead executors of its host, so with tests running in
    // parallel another one may get there first; either way it must go.)
    await waitFor(async () => !(await containerExists(orphan.Id)), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `the janitor to remove the orphaned container\n${second.output()}`,
    });

    const final = await waitForEnd(cluster, job.id, 60_000);
    expect(final.state, `${final.failureMessage}\n${second.output()}`).toBe('completed');
    expect(final.attempts).toBe(2);
    expect(final.numResets).toBe(1);
    expect(String(final.executor)).toContain('crash-second');
    const work = entry(await apiEntries(cluster, job.id), 'step.docker.work');
    expect(work.exitCode).toBe(0);
    expect(work.out).toContain('stdout: attempt-done');

    // The second executor marked it once, and said it removed the orphan.
    await waitFor(() => second.output().includes('job finished'), { what: 'the job-finished log line' });
    expect(second.output().match(/job finished/g)).toHaveLength(1);
    expect(await containersOfJob(job.id, names)).toEqual([]);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
