/**
 * The happy-path job of the docker end-to-end test, run under gVisor (EXECUTOR_RUNTIME=gvisor: the
 * same containers with the runsc OCI runtime), plus the socket and capability checks there.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { makeDemoRepo } from '../helpers/repos.js';
import {
  apiEntries,
  clusterContainersOfJob,
  entry,
  haveGvisorAndImage,
  IMAGE,
  waitForEnd,
} from './docker-e2e.js';

const ok = haveGvisorAndImage();

describe.skipIf(!ok)('end to end over the gvisor runtime', () => {
  let cluster: LocalCluster;
  let shas: { first: string; second: string };

  beforeAll(async () => {
    const data = mkdtempSync(join(tmpdir(), 'e2e-gvisor-'));
    shas = makeDemoRepo(join(data, 'repos'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'gvisor',
      logger: createLogger({ level: 'error' }),
    });
  });

  afterAll(async () => {
    await cluster?.stop({ force: true });
  });

  it('clones at a commit, writes files, runs two steps under runsc and completes', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
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
          run: [
            'echo "second step sees: $(cat out.txt)"',
            // gVisor's kernel identifies itself in the kernel log: proof the step ran under runsc.
            'dmesg | head -n 1',
            '[ -e /var/run/docker.sock ] && echo sock=present || echo sock=absent',
            'grep -E "^CapEff:" /proc/self/status',
          ],
        },
      ],
    });
    const final = await waitForEnd(cluster, job.id, 120_000);
    expect(final.state).toBe('completed');

    const entries = await apiEntries(cluster, job.id);
    expect(entries.map((e) => e.key)).toEqual(
      expect.arrayContaining(['setup.git.checkout', 'setup.fs.extras', 'step.docker.show', 'step.docker.1']),
    );
    const show = entry(entries, 'step.docker.show');
    expect(show.exitCode).toBe(0);
    expect(show.out).toContain('stdout: one\n');
    expect(show.out).toContain('stdout: from a file\n');
    expect(show.command).toEqual(expect.arrayContaining(['--runtime', 'runsc']));
    const second = entry(entries, 'step.docker.1');
    expect(second.exitCode).toBe(0);
    expect(second.out).toContain('stdout: second step sees: handed-over\n');
    expect(second.out).toMatch(/stdout: .*gVisor/);
    expect(second.out).toContain('stdout: sock=absent');
    expect(second.out).toMatch(/^stdout: CapEff:\s+0000000000000000$/m);
    expect(await clusterContainersOfJob(cluster, job.id)).toEqual([]);
  });

  it('ends failed with the exit code under gVisor too', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'bad', image: IMAGE, run: 'exit 9' }],
    });
    const final = await waitForEnd(cluster, job.id, 120_000);
    expect(final.state).toBe('failed');
    expect(String(final.failureMessage)).toContain('exit code 9');
    expect(entry(await apiEntries(cluster, job.id), 'step.docker.bad').exitCode).toBe(9);
    expect(await clusterContainersOfJob(cluster, job.id)).toEqual([]);
  });
});
