/**
 * The sandbox limits through the whole path (server -> executor -> docker runtime -> container):
 * a fork bomb hits the pids limit and the job still ends, a memory hog is OOM-killed and the job's
 * failure says so, and a step sees no Docker socket and holds no capability.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import {
  apiEntries,
  clusterContainersOfJob,
  entry,
  haveDockerAndImage,
  IMAGE,
  waitForEnd,
} from './docker-e2e.js';

const ok = haveDockerAndImage();

const PIDS_LIMIT = 128;

/**
 * A fork bomb, then a wait (builtins only: no fork needed while the bomb holds every pid) for the
 * kernel's own count of forks refused at the limit (pids.events), which only grows. (It once waited
 * to read pids.current at the limit, which a busy machine can miss for minutes while refused forks
 * exit and free pids: a CI run timed out so.) cgroup v1 and v2 paths.
 */
const FORK_BOMB = [
  'e=/sys/fs/cgroup/pids/pids.events; [ -e $e ] || e=/sys/fs/cgroup/pids.events',
  'g=/sys/fs/cgroup/pids/pids.max; [ -e $g ] || g=/sys/fs/cgroup/pids.max',
  'bomb() { bomb | bomb & }',
  'bomb',
  'while read k refused < $e; [ "$refused" -eq 0 ]; do :; done',
  'read m < $g',
  'echo "refused=$refused max=$m"',
].join('\n');

describe.skipIf(!ok)('sandbox limits end to end (docker runtime)', () => {
  let cluster: LocalCluster;

  beforeAll(async () => {
    const data = mkdtempSync(join(tmpdir(), 'e2e-sandbox-'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'docker',
      logger: createLogger({ level: 'error' }),
      executorEnv: {
        EXECUTOR_JOB_MEMORY: '64m',
        EXECUTOR_JOB_PIDS_LIMIT: String(PIDS_LIMIT),
        EXECUTOR_JOB_NETWORK: 'none',
      },
    });
  });

  afterAll(async () => {
    await cluster?.stop({ force: true });
  });

  // No wall-clock bound: on a loaded machine the bomb takes a while to reach the limit. What is
  // claimed is that forks were refused at the limit and the job ends.
  it('stops a fork bomb at the pids limit, and the job ends', { timeout: 300_000 }, async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'bomb', image: IMAGE, run: FORK_BOMB }],
    });
    const final = await waitForEnd(cluster, job.id, 240_000);
    expect(final.state).toBe('completed');
    const bomb = entry(await apiEntries(cluster, job.id), 'step.docker.bomb');
    // A refused fork is the proof that the limit held; the bomb's "can't fork" message may be cut
    // mid-write when the step's end kills it (see docker-runtime.test.ts).
    const seen = /stdout: refused=(\d+) max=(\d+)/.exec(bomb.out ?? '');
    expect(seen?.[2]).toBe(String(PIDS_LIMIT));
    expect(Number(seen?.[1])).toBeGreaterThan(0);
    expect(bomb.command).toEqual(expect.arrayContaining(['--pids-limit', String(PIDS_LIMIT)]));
    expect(await clusterContainersOfJob(cluster, job.id)).toEqual([]);
  });

  it('OOM-kills a memory hog and the failure message says out of memory', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      // tail keeps the last 10 lines; /dev/zero has no newline, so its buffer grows without end.
      steps: [{ key: 'hog', image: IMAGE, run: 'echo hogging; tail /dev/zero' }],
    });
    const final = await waitForEnd(cluster, job.id, 90_000);
    expect(final.state).toBe('failed');
    expect(String(final.failureMessage)).toContain('out of memory');
    expect(String(final.failureMessage)).toContain('exit code 137');
    const hog = entry(await apiEntries(cluster, job.id), 'step.docker.hog');
    expect(hog.exitCode).toBe(137);
    expect(hog.out).toContain('container was killed: out of memory (limit 64m)');
    expect(hog.command).toEqual(expect.arrayContaining(['--memory', '64m', '--memory-swap', '64m']));
    expect(await clusterContainersOfJob(cluster, job.id)).toEqual([]);
  });

  it('gives steps no Docker socket and no capabilities', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        {
          key: 'probe',
          image: IMAGE,
          run: [
            'for s in /var/run/docker.sock /run/docker.sock; do if [ -e $s ]; then echo "$s present"; else echo "$s absent"; fi; done',
            'grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs):" /proc/self/status',
          ],
        },
      ],
    });
    const final = await waitForEnd(cluster, job.id);
    expect(final.state).toBe('completed');
    const out = entry(await apiEntries(cluster, job.id), 'step.docker.probe').out ?? '';
    expect(out).toContain('stdout: /var/run/docker.sock absent');
    expect(out).toContain('stdout: /run/docker.sock absent');
    expect(out).toMatch(/^stdout: CapEff:\s+0000000000000000$/m);
    expect(out).toMatch(/^stdout: CapPrm:\s+0000000000000000$/m);
    expect(out).toMatch(/^stdout: CapBnd:\s+0000000000000000$/m);
    expect(out).toMatch(/^stdout: NoNewPrivs:\s+1$/m);
  });
});
