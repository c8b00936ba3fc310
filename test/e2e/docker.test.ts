/**
 * End to end over the docker runtime: our server (SQLite, git over the job-token proxy) and our
 * executor in one process, steps in real containers of the locally built busybox image.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { waitFor } from '../helpers/env.js';
import { makeDemoRepo } from '../helpers/repos.js';
import {
  apiEntries,
  clusterContainersOfJob,
  docker,
  entry,
  haveDockerAndImage,
  IMAGE,
  waitForEnd,
} from './docker-e2e.js';

const ok = haveDockerAndImage();

describe.skipIf(!ok)('end to end over the docker runtime', () => {
  let cluster: LocalCluster;
  let shas: { first: string; second: string };

  beforeAll(async () => {
    const data = mkdtempSync(join(tmpdir(), 'e2e-docker-'));
    shas = makeDemoRepo(join(data, 'repos'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'docker',
      logger: createLogger({ level: 'error' }),
      // The deadline enforcer runs every second so the timeout test ends promptly.
      serverEnv: { EXECUTOR_SERVER_DEADLINE_INTERVAL: '1s' },
      // EXECUTOR_JOB_NUM_CPUS is left at its default (4): above this host's CPUs on small machines,
      // which the runtime must lower to the daemon's CPU count instead of failing every step.
      executorEnv: { EXECUTOR_MAXIMUM_NUM_JOBS: '2' },
      // Cancels and unknown jobs are learnt from heartbeats; beat every 500 ms to keep the test short.
      executorDeps: { worker: { heartbeatIntervalMs: 500 } },
    });
  });

  afterAll(async () => {
    await cluster?.stop({ force: true });
  });

  it('clones at a commit, writes files, runs two steps and logs each under its key', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      // The first commit, not the branch tip (whose VERSION is "two").
      repository: { name: 'demo/hello', commit: shas.first },
      files: { 'in/data.txt': 'from a file\n' },
      steps: [
        {
          key: 'show',
          image: IMAGE,
          run: ['cat VERSION', 'cat in/data.txt', 'echo handed-over > out.txt'],
        },
        {
          image: IMAGE,
          run: 'echo "second step sees: $(cat out.txt)"; echo "FOO=$FOO"',
          env: { FOO: 'bar' },
        },
      ],
    });
    const final = await waitForEnd(cluster, job.id);
    expect(final.state).toBe('completed');
    expect(final.failureMessage).toBeNull();
    expect(final.commit).toBe(shas.first);

    const entries = await apiEntries(cluster, job.id);
    expect(entries.map((e) => e.key)).toEqual(
      expect.arrayContaining([
        'setup.git.init',
        'setup.git.fetch',
        'setup.git.checkout',
        'setup.fs.extras',
        'step.docker.show',
        'step.docker.1',
        'teardown.fs',
      ]),
    );
    const show = entry(entries, 'step.docker.show');
    expect(show.exitCode).toBe(0);
    expect(show.out).toContain('stdout: one\n');
    expect(show.out).not.toContain('stdout: two');
    expect(show.out).toContain('stdout: from a file\n');
    const second = entry(entries, 'step.docker.1');
    expect(second.exitCode).toBe(0);
    expect(second.out).toContain('stdout: second step sees: handed-over\n');
    expect(second.out).toContain('stdout: FOO=bar\n');

    // The step ran in the test image with a CPU limit the daemon accepts (at most its CPU count).
    const command = show.command ?? [];
    expect(command).toContain(IMAGE);
    const cpusAt = command.indexOf('--cpus');
    expect(cpusAt).toBeGreaterThan(0);
    const info = (await docker.info()) as { NCPU: number };
    expect(Number(command[cpusAt + 1])).toBe(Math.min(4, info.NCPU));

    expect(await clusterContainersOfJob(cluster, job.id)).toEqual([]);
  });

  it('ends failed with the exit code logged when a step fails', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        { key: 'bad', image: IMAGE, run: 'echo about to fail; exit 7' },
        { key: 'never', image: IMAGE, run: 'echo must not run' },
      ],
    });
    const final = await waitForEnd(cluster, job.id);
    // Errored with no attempts left is failed (maxAttempts defaults to 1).
    expect(final.state).toBe('failed');
    expect(String(final.failureMessage)).toContain('"step.docker.bad"');
    expect(String(final.failureMessage)).toContain('exit code 7');
    const entries = await apiEntries(cluster, job.id);
    const bad = entry(entries, 'step.docker.bad');
    expect(bad.exitCode).toBe(7);
    expect(bad.out).toContain('stdout: about to fail');
    expect(entries.map((e) => e.key)).not.toContain('step.docker.never');
    expect(await clusterContainersOfJob(cluster, job.id)).toEqual([]);
  });

  it('cancels a running step: the job ends canceled and its container is gone within 5 s', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'sleepy', image: IMAGE, run: 'echo started; sleep 60' }],
    });
    // Running: its container exists and the step has printed.
    await waitFor(
      async () => (await clusterContainersOfJob(cluster, job.id)).some((c) => c.State === 'running'),
      {
        timeoutMs: 60_000,
        what: 'the step container to run',
      },
    );

    const canceledAt = Date.now();
    await cluster.api.cancel(job.id);
    await waitFor(async () => (await clusterContainersOfJob(cluster, job.id)).length === 0, {
      timeoutMs: 5_000,
      intervalMs: 50,
      what: 'the container to be removed within 5 s of the cancel',
    });
    const goneAfterMs = Date.now() - canceledAt;
    const final = await waitForEnd(cluster, job.id, 15_000);
    expect(final.state).toBe('canceled');
    expect(goneAfterMs).toBeLessThan(5_000);
    const sleepy = entry(await apiEntries(cluster, job.id), 'step.docker.sleepy');
    expect(sleepy.exitCode).not.toBe(0);
  });

  it('times out a job whose step outlives its timeout: failed, message naming the timeout, container gone', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      timeout: '3s',
      steps: [{ key: 'slow', image: IMAGE, run: 'echo started; sleep 60' }],
    });
    const startedAt = Date.now();
    const final = await waitForEnd(cluster, job.id, 30_000);
    // Errored by the server's deadline with no attempts left: failed.
    expect(final.state).toBe('failed');
    expect(String(final.failureMessage)).toContain('job exceeded its timeout of 3s');
    expect(Date.now() - startedAt).toBeLessThan(30_000);
    await waitFor(async () => (await clusterContainersOfJob(cluster, job.id)).length === 0, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: 'the timed-out job container to be removed',
    });
  });
});
