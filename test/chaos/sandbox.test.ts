/**
 * The sandbox matrix, under Docker and under gVisor (docker with runsc), through the whole path
 * (server -> executor process -> runtime -> container):
 *   - a step sees no Docker socket, holds no capability and runs with no-new-privileges;
 *   - a fork bomb is contained (the job ends) and a memory hog is OOM-killed with a clear message;
 *   - two jobs at once: the second cannot see the first's workspace (each job's own workspace is
 *     bind-mounted at /data), nor its host path;
 *   - writes to / and /tmp inside a container reach neither the host nor the next container;
 *   - the disk floor: with EXECUTOR_MIN_FREE_DISK far above the free space the executor does not
 *     dequeue and says why (runtime-independent, checked once);
 *   - the disk quota: with EXECUTOR_JOB_DISK_SPACE=64M a step writing 1 GiB fails the job with a
 *     message naming the limit, and its image holds at most the quota of the host's disk;
 *   - a kill -9 mid-job leaves the job's disk image mounted, and the next executor's janitor
 *     unmounts and deletes it (runtime-independent, checked once).
 */
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSpec } from '../../src/protocol/job-spec.js';
import {
  containersOfJob,
  haveDockerAndImage,
  haveGvisorAndImage,
  IMAGE,
  TERMINAL,
} from '../e2e/docker-e2e.js';
import { FILL_STEP, filledImage, hostFree, mountsUnder } from '../executor/disk-quota-helpers.js';
import { waitFor } from '../helpers/env.js';
import {
  type ChaosExecutor,
  type ChaosServer,
  kill9,
  spawnExecutor,
  startChaosServer,
  submitAll,
  TIMING,
} from './harness.js';
import { CHAOS_SEED, publish } from './scale.js';

const dockerOk = haveDockerAndImage();
const gvisorOk = dockerOk && haveGvisorAndImage();

const PIDS_LIMIT = 128;
const TAG = `${CHAOS_SEED}-${process.pid}`;

function job(key: string, run: string, queue = 'chaos'): JobSpec {
  return { queue, steps: [{ key, image: IMAGE, run }], maxAttempts: 1, timeout: '2m' } as JobSpec;
}

/** The first file named `name` under `root` (the executor's workspace layout is its own business). */
function findFile(root: string, name: string): string | undefined {
  if (!existsSync(root)) return undefined;
  for (const e of readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name === name) return join(e.parentPath, e.name);
  }
  return undefined;
}

async function ended(server: ChaosServer, id: number, timeoutMs = 60_000) {
  return waitFor(
    async () => {
      const j = await server.store.getJob(id);
      return j && TERMINAL.has(j.state) ? j : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `job ${id} to end` },
  );
}

async function stepOut(server: ChaosServer, id: number, key: string): Promise<string> {
  const entries = await server.store.getLogEntries(id, { withOutput: true });
  return entries.find((e) => e.key.endsWith(`.${key}`))?.out ?? '';
}

for (const runtime of ['docker', 'gvisor'] as const) {
  const ok = runtime === 'docker' ? dockerOk : gvisorOk;
  describe.skipIf(!ok)(`sandbox matrix (${runtime})`, () => {
    let dir: string;
    let server: ChaosServer;
    let ex: ChaosExecutor;
    let ws: string;
    const name = `sandbox-${runtime}-${TAG}`;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), `chaos-sandbox-${runtime}-`));
      server = await startChaosServer({ dir: join(dir, 'server') });
      ws = join(dir, 'ws');
      ex = spawnExecutor(server, {
        name,
        workspaceRoot: ws,
        runtime,
        maxJobs: 2,
        env: {
          EXECUTOR_JOB_MEMORY: '64m',
          EXECUTOR_JOB_PIDS_LIMIT: String(PIDS_LIMIT),
          EXECUTOR_JOB_NETWORK: 'none',
        },
      });
      await ex.ready;
    });
    afterAll(async () => {
      if (ex) await kill9(ex);
      await server?.stop();
    });

    it('no Docker socket, no capabilities, no new privileges; workspaces and writes stay put', async () => {
      const secret = `a-secret-${TAG}`;
      const outside = `outside-${TAG}`;
      const [a] = await submitAll(server, [
        job(
          'a',
          [
            `echo s3cret > /data/${secret}`,
            'for s in /var/run/docker.sock /run/docker.sock; do if [ -e $s ]; then echo "$s present"; else echo "$s absent"; fi; done',
            'grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs):" /proc/self/status',
            `for p in /${outside} /tmp/${outside}; do if echo x > $p 2>/dev/null; then echo "wrote $p"; else echo "could not write $p"; fi; done`,
            // Held open until the test releases it, so the second job runs beside it.
            'i=0; while [ ! -e /data/release ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done',
            '[ -e /data/release ] && echo released',
          ].join('\n'),
        ),
      ]);
      const secretOnHost = await waitFor(() => findFile(ws, secret), {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: "the first job's workspace file",
      });
      const aWorkspace = dirname(secretOnHost);
      const [b] = await submitAll(server, [
        job(
          'b',
          [
            `if [ -e /data/${secret} ]; then echo "sees /data/${secret}"; else echo "no /data/${secret}"; fi`,
            `f=$(find / \\( -path /proc -o -path /sys \\) -prune -o -name ${secret} -print 2>/dev/null | head -n 1)`,
            'echo "find: ${f:-none}"',
            `if [ -e ${aWorkspace} ]; then echo "sees host path"; else echo "no host path"; fi`,
            `for p in /${outside} /tmp/${outside}; do if [ -e $p ]; then echo "sees $p"; else echo "no $p"; fi; done`,
          ].join('\n'),
        ),
      ]);
      const bEnd = await ended(server, b!.id);
      const bOut = await stepOut(server, b!.id, 'b');
      writeFileSync(join(aWorkspace, 'release'), '');
      const aEnd = await ended(server, a!.id);
      const aOut = await stepOut(server, a!.id, 'a');
      const leaked = [join('/', outside), join('/tmp', outside), join(tmpdir(), outside)].filter((p) =>
        existsSync(p),
      );
      publish(`sandbox isolation (${runtime})`, {
        secondSawFirst: !bOut.includes(`stdout: no /data/${secret}`) || !bOut.includes('stdout: find: none'),
        hostWritesLeaked: leaked.length,
      });
      expect(aEnd.state, aOut).toBe('completed');
      expect(bEnd.state, bOut).toBe('completed');
      expect(aOut).toContain('stdout: /var/run/docker.sock absent');
      expect(aOut).toContain('stdout: /run/docker.sock absent');
      expect(aOut).toMatch(/^stdout: CapEff:\s+0000000000000000$/m);
      expect(aOut).toMatch(/^stdout: CapPrm:\s+0000000000000000$/m);
      const aCommand =
        (await server.store.getLogEntries(a!.id)).find((e) => e.key.endsWith('.a'))?.command ?? [];
      expect(aCommand.join(' ')).toContain('no-new-privileges');
      // gVisor's /proc/<pid>/status has no NoNewPrivs line; runc's shows the flag itself.
      if (runtime === 'docker') expect(aOut).toMatch(/^stdout: NoNewPrivs:\s+1$/m);
      // B ran while A was held open (A was only released after B ended).
      expect(aOut).toContain('stdout: released');
      expect(bOut).toContain(`stdout: no /data/${secret}`);
      expect(bOut).toContain('stdout: find: none');
      expect(bOut).toContain('stdout: no host path');
      expect(bOut).toContain(`stdout: no /${outside}`);
      expect(bOut).toContain(`stdout: no /tmp/${outside}`);
      expect(leaked).toEqual([]);
      expect(await containersOfJob(a!.id, [name], 'chaos')).toEqual([]);
      expect(await containersOfJob(b!.id, [name], 'chaos')).toEqual([]);
    }, 120_000);

    it('contains a fork bomb and OOM-kills a memory hog with a clear message', async () => {
      const [bomb, hog] = await submitAll(server, [
        job(
          'bomb',
          [
            'e=/sys/fs/cgroup/pids/pids.events; [ -e $e ] || e=/sys/fs/cgroup/pids.events',
            'bomb() { bomb | bomb & }',
            'bomb',
            // Builtins only (no fork is possible while the bomb holds every pid): wait until the
            // kernel has refused a fork at the limit (pids.events only grows; pids.current at the
            // limit can be missed for minutes on a busy machine) where the cgroup is visible, else
            // spin briefly; then end, and the container's end takes the bomb with it.
            'if [ -e $e ]; then while read k refused < $e; [ "$refused" -eq 0 ]; do :; done; else i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; fi',
            'echo contained',
          ].join('\n'),
        ),
        // tail keeps its last 10 lines; /dev/zero has no newline, so its buffer grows without end.
        job('hog', 'echo hogging; tail /dev/zero'),
      ]);
      const t0 = performance.now();
      const [bombEnd, hogEnd] = await Promise.all([
        ended(server, bomb!.id, 90_000),
        ended(server, hog!.id, 90_000),
      ]);
      const bombOut = await stepOut(server, bomb!.id, 'bomb');
      const hogOut = await stepOut(server, hog!.id, 'hog');
      publish(`sandbox limits (${runtime})`, {
        forkBomb: bombEnd.state,
        forkRefused: bombOut.includes("can't fork"),
        forkBombMessage: bombEnd.failureMessage,
        forkBombTail: bombEnd.state === 'completed' ? undefined : bombOut.split('\n').slice(-6),
        memoryHog: hogEnd.state,
        hogMessage: hogEnd.failureMessage,
        seconds: Math.round((performance.now() - t0) / 100) / 10,
      });
      expect(TERMINAL.has(bombEnd.state)).toBe(true);
      const bombCommand = (await server.store.getLogEntries(bomb!.id)).find((e) =>
        e.key.endsWith('.bomb'),
      )?.command;
      expect(bombCommand).toEqual(expect.arrayContaining(['--pids-limit', String(PIDS_LIMIT)]));
      if (runtime === 'docker') {
        expect(bombEnd.state, bombOut).toBe('completed');
        // The wait above ends only with the pids counter at the limit; the bomb's "can't fork"
        // message may be cut mid-write by the step's end, so it is published, not asserted.
        expect(bombOut).toContain('stdout: contained');
      }
      expect(hogEnd.state, hogOut).toBe('failed');
      expect(String(hogEnd.failureMessage)).toContain('out of memory');
      expect(hogOut).toContain('container was killed: out of memory (limit 64m)');
      expect(await containersOfJob(bomb!.id, [name], 'chaos')).toEqual([]);
      expect(await containersOfJob(hog!.id, [name], 'chaos')).toEqual([]);
    }, 120_000);

    it.runIf(runtime === 'docker')(
      'honours the disk floor: does not dequeue below it and says why',
      async () => {
        const queue = `chaos-disk-${TAG}`;
        const floorWs = join(dir, 'ws-floor');
        const low = spawnExecutor(server, {
          name: `floor-${TAG}`,
          workspaceRoot: floorWs,
          runtime,
          env: { EXECUTOR_QUEUE_NAME: queue, EXECUTOR_MIN_FREE_DISK: '1000TiB' },
        });
        let normal: ChaosExecutor | undefined;
        try {
          await low.ready;
          const [j] = await submitAll(server, [job('floor', 'echo ran', queue)]);
          await waitFor(
            () => low.output().includes('not dequeuing: free disk space is below EXECUTOR_MIN_FREE_DISK'),
            { what: 'the executor to say why it does not dequeue' },
          );
          // An observation window of many poll intervals: the job must stay queued throughout.
          const t = performance.now();
          await waitFor(
            async () => {
              const s = await server.store.getJob(j!.id);
              if (s?.state !== 'queued')
                throw new Error(`the job was taken below the disk floor: ${s?.state}`);
              return performance.now() - t >= 10 * TIMING.pollMs;
            },
            { timeoutMs: 10 * TIMING.pollMs + 30_000, intervalMs: 50 },
          );
          const line = low
            .output()
            .split('\n')
            .find((l) => l.includes('not dequeuing'));
          expect(line).toMatch(/"required":"1000(\.0)? TiB"/);
          expect(line).toMatch(/"free":/);
          expect((await server.store.getJob(j!.id))?.attempts).toBe(0);
          // The same job is runnable: an executor without the floor takes it at once.
          await kill9(low);
          normal = spawnExecutor(server, {
            name: `nofloor-${TAG}`,
            workspaceRoot: floorWs,
            runtime,
            env: { EXECUTOR_QUEUE_NAME: queue },
          });
          const end = await ended(server, j!.id);
          publish('sandbox disk floor', { refusedWithReason: true, thenCompleted: end.state });
          expect(end.state).toBe('completed');
        } finally {
          await kill9(low);
          if (normal) await kill9(normal);
        }
      },
      90_000,
    );

    it('the disk quota: a step writing past 64M fails the job naming the limit; the host is spared', async () => {
      const queue = `chaos-quota-${runtime}-${TAG}`;
      const quotaWs = join(dir, 'ws-quota');
      const q = spawnExecutor(server, {
        name: `quota-${runtime}-${TAG}`,
        workspaceRoot: quotaWs,
        runtime,
        env: { EXECUTOR_QUEUE_NAME: queue, EXECUTOR_JOB_DISK_SPACE: '64M', EXECUTOR_JOB_NETWORK: 'none' },
      });
      try {
        await q.ready;
        const before = hostFree(quotaWs);
        const [j] = await submitAll(server, [job('fill', FILL_STEP, queue)]);
        const filled = await filledImage(quotaWs);
        const lostMiB = Math.round((before - hostFree(quotaWs)) / 2 ** 20);
        writeFileSync(join(filled.workspace, 'release'), '');
        const end = await ended(server, j!.id, 90_000);
        const out = await stepOut(server, j!.id, 'fill');
        const imageMiB = Math.round(filled.hostBytes / 2 ** 20);
        publish(`sandbox disk quota (${runtime})`, {
          state: end.state,
          message: end.failureMessage,
          imageMiB,
          hostFreeDropMiB: lostMiB,
        });
        expect(end.state, out).not.toBe('completed');
        expect(String(end.failureMessage), out).toContain(
          'the workspace is full: jobs get 64M of disk (EXECUTOR_JOB_DISK_SPACE)',
        );
        expect(out).toContain('No space left on device');
        // The job cost the host its image's blocks, at most the quota of the GiB it asked for; the
        // free space also moves with whatever else this machine writes meanwhile.
        expect(filled.hostBytes).toBeLessThanOrEqual(64 * 2 ** 20);
        expect(lostMiB).toBeLessThan(1024);
        expect(readdirSync(quotaWs)).toEqual([]);
      } finally {
        await kill9(q);
      }
    }, 120_000);

    it.runIf(runtime === 'docker')(
      'a kill -9 mid-job leaves the disk image mounted; the next janitor removes it',
      async () => {
        const queue = `chaos-crash-disk-${TAG}`;
        const crashWs = join(dir, 'ws-crash');
        const first = spawnExecutor(server, {
          name: `crash-disk-${TAG}`,
          workspaceRoot: crashWs,
          runtime,
          env: { EXECUTOR_QUEUE_NAME: queue, EXECUTOR_JOB_DISK_SPACE: '64M', EXECUTOR_JOB_NETWORK: 'none' },
        });
        let second: ChaosExecutor | undefined;
        try {
          await first.ready;
          await submitAll(server, [
            job(
              'held',
              'echo x > /data/here; i=0; while [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done',
              queue,
            ),
          ]);
          const here = await waitFor(() => findFile(crashWs, 'here'), {
            timeoutMs: 60_000,
            intervalMs: 100,
            what: 'the held step to write into its workspace',
          });
          await kill9(first);
          const left = mountsUnder(crashWs);
          expect(left).toEqual([dirname(here)]);
          // Another executor on the same workspace root, taking nothing from that queue.
          second = spawnExecutor(server, {
            name: `after-crash-disk-${TAG}`,
            workspaceRoot: crashWs,
            runtime,
            env: { EXECUTOR_QUEUE_NAME: `${queue}-other`, EXECUTOR_JOB_DISK_SPACE: '64M' },
          });
          await waitFor(() => mountsUnder(crashWs).length === 0 && readdirSync(crashWs).length === 0, {
            timeoutMs: 60_000,
            intervalMs: 100,
            what: 'the janitor to unmount and delete the image',
          });
          publish('sandbox disk crash', { leftMounted: left.length, removedByJanitor: true });
        } finally {
          await kill9(first);
          if (second) await kill9(second);
        }
      },
      120_000,
    );
  });
}
