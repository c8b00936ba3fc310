/**
 * The docker and gVisor runtimes against the real Docker daemon, with steps in the locally built
 * `executor-test/busybox:latest` image (scripts/build-test-images.sh).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  createDockerRuntime,
  type DockerRuntimeOptions,
} from '../../../../src/executor/runtimes/docker/docker-runtime.js';
import type { Runtime, Workspace } from '../../../../src/executor/runtimes/types.js';
import { createMemoryLogger } from '../../../../src/lib/logger.js';
import { recordUid, ZERO_TIME } from '../../../../src/protocol/job.js';
import {
  dockerAvailable,
  dockerImagePresent,
  gvisorAvailable,
  requireOrSkip,
  waitFor,
} from '../../../helpers/env.js';
import { createTestContext, makeJob, makeWorkspace } from '../recording-logger.js';

const IMAGE = 'executor-test/busybox:latest';

const haveDocker = requireOrSkip('Docker', dockerAvailable());
const haveImage =
  haveDocker && requireOrSkip(`image ${IMAGE} (run scripts/build-test-images.sh)`, dockerImagePresent(IMAGE));
const haveGvisor = haveImage && requireOrSkip('gVisor (runsc registered with Docker)', gvisorAvailable());

const EXECUTOR_NAME = `runtime-test-${process.pid}`;
const docker = new Dockerode();

function options(over: Partial<DockerRuntimeOptions> = {}): DockerRuntimeOptions {
  return {
    kind: 'docker',
    docker,
    executorName: EXECUTOR_NAME,
    workspaceRoot: '',
    keepWorkspaces: false,
    frontendUrl: 'http://127.0.0.1:1',
    frontendPassword: '',
    // Not used: these tests build workspaces by hand and never call prepareWorkspace.
    files: undefined as unknown as DockerRuntimeOptions['files'],
    cpus: 1,
    memory: '256m',
    pidsLimit: 1024,
    network: 'none',
    additionalMounts: [],
    addHostGateway: false,
    logger: createMemoryLogger(),
    ...over,
  };
}

async function containersOfJob(uid: string) {
  return docker.listContainers({ all: true, filters: { label: [`executor.job=${uid}`] } });
}

const workspaces: Workspace[] = [];
async function workspace(scripts: string[], extra: Record<string, string> = {}) {
  const ws = await makeWorkspace(scripts, extra);
  workspaces.push(ws);
  return ws;
}

afterAll(async () => {
  await Promise.all(workspaces.map((w) => w.remove()));
});

/** Runs every step of a one-job workspace through the runtime, as the handler would. */
async function runJob(runtime: Runtime, scripts: string[], stepOver: { dir?: string; env?: string[] } = {}) {
  const ws = await workspace(scripts);
  const job = makeJob(scripts.map(() => ({ image: IMAGE, ...stepOver })));
  const t = createTestContext(EXECUTOR_NAME);
  const runner = await runtime.newRunner(job, ws, t.ctx);
  const outcomes = [];
  try {
    await runner.setup();
    for (const spec of runtime.specs(job, ws)) outcomes.push(await runner.run(spec));
  } finally {
    await runner.teardown();
  }
  return { job, ws, outcomes, entries: t.logger.entries };
}

describe.skipIf(!haveImage)('docker runtime (real daemon)', () => {
  const runtime = createDockerRuntime(options());

  it('validates the daemon and reports its version', async () => {
    const checks = await runtime.validate();
    expect(checks).toEqual([
      { name: 'docker daemon', ok: true, detail: expect.stringMatching(/^answers; version \d/) },
      // The host's daemon does not remap (docker-userns.test.ts runs one that does).
      {
        name: 'user namespaces',
        ok: true,
        detail:
          'not remapped: root in steps is root on the host (with no capabilities); enable with executor install --userns-remap',
      },
      // This runtime is made without a disk quota.
      { name: 'container writable layer', ok: true, detail: 'not limited (EXECUTOR_JOB_DISK_SPACE=0)' },
    ]);
    expect(await runtime.version()).toMatch(/^\d+\.\d+/);
  });

  it('reports a daemon that does not answer as a failed check', async () => {
    const dead = createDockerRuntime(
      options({ docker: new Dockerode({ socketPath: '/nonexistent/docker.sock' }) }),
    );
    const [check] = await dead.validate();
    expect(check?.ok).toBe(false);
    expect(check?.detail).toMatch(/does not answer/);
  });

  it('lowers a CPU limit above the host CPU count to it, with one info line', async () => {
    const logger = createMemoryLogger();
    const greedy = createDockerRuntime(options({ cpus: 4096, logger }));
    const ncpu = ((await docker.info()) as { NCPU: number }).NCPU;
    for (let i = 0; i < 2; i++) {
      const { outcomes, entries } = await runJob(greedy, ['echo ran']);
      expect(outcomes).toEqual([{ exitCode: 0, oomKilled: false }]);
      expect(entries[0]?.stdout).toBe('ran\n');
      const cmd = entries[0]?.command ?? [];
      expect(cmd[cmd.indexOf('--cpus') + 1]).toBe(String(ncpu));
    }
    const lines = logger.lines.filter((l) => l.includes("the Docker host's count"));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'info',
      msg: `steps get ${ncpu} CPUs, the Docker host's count (EXECUTOR_JOB_NUM_CPUS is 4096)`,
    });
    expect(logger.lines.filter((l) => JSON.parse(l).level === 'warn' && /CPU/.test(l))).toEqual([]);
  });

  it('keys specs step.docker.<key|index> and points at the step scripts', async () => {
    const ws = await workspace(['true', 'true']);
    const job = makeJob([{ image: IMAGE, key: 'build', dir: 'a', env: ['X=1'] }, { image: IMAGE }]);
    expect(runtime.stepKeyPrefix).toBe('step.docker');
    expect(runtime.specs(job, ws)).toEqual([
      {
        key: 'step.docker.build',
        stepIndex: 0,
        image: IMAGE,
        scriptPath: '.sourcegraph-executor/step-0.sh',
        dir: 'a',
        env: ['X=1'],
      },
      {
        key: 'step.docker.1',
        stepIndex: 1,
        image: IMAGE,
        scriptPath: '.sourcegraph-executor/step-1.sh',
        dir: '',
        env: [],
      },
    ]);
  });

  it('runs a step with the workspace at /data, its dir and env, and demultiplexed output', async () => {
    const ws = await workspace(['echo "pwd=$(pwd)"; echo "foo=$FOO"; cat /data/sub/marker; echo oops >&2'], {
      'sub/marker': 'marker-content\n',
    });
    const job = makeJob([{ image: IMAGE, dir: 'sub', env: ['FOO=bar baz'] }]);
    const t = createTestContext(EXECUTOR_NAME);
    const runner = await runtime.newRunner(job, ws, t.ctx);
    await runner.setup();
    const [spec] = runtime.specs(job, ws);
    const outcome = await runner.run(spec!);
    await runner.teardown();

    expect(outcome).toEqual({ exitCode: 0, oomKilled: false });
    const [entry] = t.logger.entries;
    expect(entry?.key).toBe('step.docker.0');
    expect(entry?.command?.slice(0, 3)).toEqual(['docker', 'run', '--rm']);
    expect(entry?.command).toContain(`${ws.path}:/data`);
    expect(entry?.stdout).toBe('pwd=/data/sub\nfoo=bar baz\nmarker-content\n');
    expect(entry?.stderr).toBe('oops\n');
    expect(entry?.exitCode).toBe(0);
    expect(entry?.closeCount).toBe(1);
    expect(await containersOfJob(recordUid(job))).toEqual([]);
  });

  it('prepares the workspace with prepareLocalWorkspace and runs the generated scripts', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'executor-docker-ws-'));
    const fetched: string[] = [];
    const rt = createDockerRuntime(
      options({
        workspaceRoot: root,
        // Per-job fetcher; the job's files are inline except one that is fetched.
        files: (job) => ({
          get: async (bucket, key) => {
            fetched.push(`${job.id}:${bucket}/${key}`);
            return Buffer.from('fetched-content');
          },
        }),
      }),
    );
    const job = makeJob([{ image: IMAGE, env: ['GREETING=hello'] }], {
      files: {
        'inline.txt': { content: Buffer.from('inline-content'), modifiedAt: ZERO_TIME },
        'remote.txt': { bucket: 'b', key: 'k', modifiedAt: ZERO_TIME },
      },
    });
    job.dockerSteps[0]!.commands = ['cat inline.txt remote.txt', 'echo "$GREETING from $(pwd)"'];
    const t = createTestContext(EXECUTOR_NAME);
    const ws = await rt.prepareWorkspace(job, t.ctx);
    try {
      expect(ws.path.startsWith(root)).toBe(true);
      const runner = await rt.newRunner(job, ws, t.ctx);
      await runner.setup();
      const outcomes = [];
      for (const spec of rt.specs(job, ws)) outcomes.push(await runner.run(spec));
      await runner.teardown();
      expect(outcomes).toEqual([{ exitCode: 0, oomKilled: false }]);
      const step = t.logger.entries.find((e) => e.key === 'step.docker.0');
      expect(step?.stdout).toBe('inline-contentfetched-contenthello from /data\n');
      expect(fetched).toEqual([`${job.id}:b/k`]);
    } finally {
      await ws.remove();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('writes from the step are visible in the workspace on the host', async () => {
    const { ws, outcomes } = await runJob(runtime, ['echo from-step > /data/out.txt']);
    expect(outcomes).toEqual([{ exitCode: 0, oomKilled: false }]);
    expect(execFileSync('cat', [path.join(ws.path, 'out.txt')]).toString()).toBe('from-step\n');
  });

  it('reports a non-zero exit code and still runs the next step when asked', async () => {
    const { outcomes, entries } = await runJob(runtime, ['echo before; exit 3', 'echo second']);
    expect(outcomes.map((o) => o.exitCode)).toEqual([3, 0]);
    expect(entries.map((e) => [e.key, e.exitCode, e.stdout])).toEqual([
      ['step.docker.0', 3, 'before\n'],
      ['step.docker.1', 0, 'second\n'],
    ]);
  });

  it('kills and removes the container within 5 s when the job is cancelled', async () => {
    const ws = await workspace(['echo started; sleep 300; echo never']);
    const job = makeJob([{ image: IMAGE }]);
    const t = createTestContext(EXECUTOR_NAME);
    const runner = await runtime.newRunner(job, ws, t.ctx);
    await runner.setup();
    const running = runner.run(runtime.specs(job, ws)[0]!);
    running.catch(() => {});
    await waitFor(() => t.logger.entries[0]?.stdout.includes('started'), { what: 'step output' });
    expect(await containersOfJob(recordUid(job))).toHaveLength(1);

    const reason = new Error('job cancelled by test');
    const t0 = Date.now();
    t.controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    await waitFor(async () => (await containersOfJob(recordUid(job))).length === 0, {
      timeoutMs: 5_000,
      what: 'container removal',
    });
    expect(Date.now() - t0).toBeLessThan(5_000);
    const [entry] = t.logger.entries;
    expect(entry?.closeCount).toBe(1);
    expect(entry?.raw).toContain('step cancelled: job cancelled by test');
    expect(entry?.stdout).not.toContain('never');
    await runner.teardown();
    await runner.teardown();
  });

  it('refuses to run a step after the job was cancelled', async () => {
    const ws = await workspace(['echo hi']);
    const job = makeJob([{ image: IMAGE }]);
    const t = createTestContext(EXECUTOR_NAME);
    const runner = await runtime.newRunner(job, ws, t.ctx);
    const reason = new Error('cancelled before start');
    t.controller.abort(reason);
    await expect(runner.run(runtime.specs(job, ws)[0]!)).rejects.toBe(reason);
    expect(t.logger.entries).toEqual([]);
    expect(await containersOfJob(recordUid(job))).toEqual([]);
  });

  // No wall-clock bound: on a loaded machine the bomb takes a while to reach the limit. What is
  // claimed is that forks were refused at the limit and the job ends.
  it('contains a fork bomb with the pids limit, and the job ends', { timeout: 300_000 }, async () => {
    const bombRuntime = createDockerRuntime(options({ pidsLimit: 64 }));
    // The step waits for the kernel's own count of forks refused at the limit (pids.events), which
    // only grows. (It once waited to read pids.current at exactly 64, which a busy machine can miss
    // for minutes while refused forks exit and free pids: a CI run timed out so.) `read` and `[` are
    // shell builtins, so the loop needs no fork while the bomb holds every pid.
    const script = [
      'bomb() { bomb | bomb & }',
      'bomb',
      'cg=/sys/fs/cgroup/pids',
      'while read k refused < $cg/pids.events; [ "$refused" -eq 0 ]; do :; done',
      'read m < $cg/pids.max',
      'echo "refused=$refused max=$m"',
    ].join('\n');
    const { job, outcomes, entries } = await runJob(bombRuntime, [script]);
    expect(outcomes[0]?.exitCode).toBe(0);
    // A refused fork is the proof that the limit held. The bomb's own "can't fork" message is not
    // asserted: the step's end kills bomb processes mid-write, and on a loaded machine the only
    // message written was cut before those words (seen in CI).
    const seen = /refused=(\d+) max=(\d+)/.exec(entries[0]?.stdout ?? '');
    expect(seen?.[2]).toBe('64');
    expect(Number(seen?.[1])).toBeGreaterThan(0);
    expect(await containersOfJob(recordUid(job))).toEqual([]);
  });

  it('OOM-kills a memory hog at the memory limit and says so', async () => {
    const hogRuntime = createDockerRuntime(options({ memory: '64m' }));
    // tail keeps the last 10 lines; /dev/zero has no newline, so its buffer grows without end.
    const { outcomes, entries } = await runJob(hogRuntime, ['tail /dev/zero']);
    expect(outcomes[0]).toEqual({ exitCode: 137, oomKilled: true });
    expect(entries[0]?.raw).toContain('container was killed: out of memory (limit 64m)');
    expect(entries[0]?.exitCode).toBe(137);
  });

  it('runs steps without a Docker socket, capabilities or new privileges', async () => {
    const { outcomes, entries } = await runJob(runtime, [
      'if [ -e /var/run/docker.sock ] || [ -e /run/docker.sock ]; then echo sock=present; else echo sock=absent; fi\n' +
        'grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs):" /proc/self/status',
    ]);
    expect(outcomes[0]?.exitCode).toBe(0);
    const out = entries[0]!.stdout;
    expect(out).toContain('sock=absent');
    expect(out).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(out).toMatch(/^CapPrm:\s+0000000000000000$/m);
    expect(out).toMatch(/^CapBnd:\s+0000000000000000$/m);
    expect(out).toMatch(/^NoNewPrivs:\s+1$/m);
  });

  it('gives a step no network with network=none', async () => {
    const { entries } = await runJob(runtime, ['ls /sys/class/net']);
    expect(entries[0]?.stdout.trim().split(/\s+/)).toEqual(['lo']);
  });

  it('fails setup with a clear error naming an image that cannot be pulled', async () => {
    const ws = await workspace(['true']);
    const job = makeJob([{ image: 'localhost:1/executor-test/missing:1' }]);
    const t = createTestContext(EXECUTOR_NAME);
    const runner = await runtime.newRunner(job, ws, t.ctx);
    await expect(runner.setup()).rejects.toThrow(/cannot pull image "localhost:1\/executor-test\/missing:1"/);
    await runner.teardown();
  });

  describe('cleanupOrphans', () => {
    const created: string[] = [];
    afterEach(async () => {
      await Promise.all(
        created.splice(0).map((id) =>
          docker
            .getContainer(id)
            .remove({ force: true })
            .catch(() => {}),
        ),
      );
    });

    async function labelled(name: string, job: string, pid: number) {
      const c = await docker.createContainer({
        Image: IMAGE,
        Cmd: ['true'],
        Labels: {
          'executor.name': name,
          'executor.host': os.hostname(),
          'executor.pid': String(pid),
          'executor.job': job,
        },
      });
      created.push(c.id);
      return c.id;
    }

    it('removes containers of dead executors and of our inactive jobs, keeps the rest', async () => {
      const dead = spawnSync('true');
      expect(dead.pid).toBeGreaterThan(0);
      const deadPid = await labelled(`other-${process.pid}`, '1', dead.pid);
      const ourInactive = await labelled(EXECUTOR_NAME, '2', process.pid);
      const ourActive = await labelled(EXECUTOR_NAME, '3-batches', process.pid);
      const otherLive = await labelled(`other-${process.pid}`, '4', process.pid);

      const removed = await runtime.cleanupOrphans(new Set(['3-batches']));
      const ids = (await docker.listContainers({ all: true })).map((c) => c.Id);
      expect(ids).not.toContain(deadPid);
      expect(ids).not.toContain(ourInactive);
      expect(ids).toContain(ourActive);
      expect(ids).toContain(otherLive);
      expect(removed).toEqual(
        expect.arrayContaining([
          expect.stringContaining(deadPid.slice(0, 12)),
          expect.stringContaining(ourInactive.slice(0, 12)),
        ]),
      );
      expect(
        removed.some((r) => r.includes(ourActive.slice(0, 12)) || r.includes(otherLive.slice(0, 12))),
      ).toBe(false);
    });
  });
});

describe.skipIf(!haveGvisor)('gvisor runtime (real daemon with runsc)', () => {
  const runtime = createDockerRuntime(options({ kind: 'gvisor' }));

  it('validates that the daemon has the runsc runtime', async () => {
    const checks = await runtime.validate();
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['docker daemon', true],
      ['user namespaces', true],
      ['container writable layer', true],
      ['gvisor runtime', true],
    ]);
    expect(runtime.name).toBe('gvisor');
  });

  it('runs the step inside gVisor, hardened, with the workspace at /data', async () => {
    const { outcomes, entries } = await runJob(
      runtime,
      [
        'dmesg | head -n 1; echo "pwd=$(pwd) foo=$FOO"; grep -E "^CapEff:" /proc/self/status; [ -e /var/run/docker.sock ] || echo sock=absent',
      ],
      { dir: 'x', env: ['FOO=1'] },
    );
    expect(outcomes[0]?.exitCode).toBe(0);
    const out = entries[0]!.stdout;
    expect(out).toContain('Starting gVisor');
    expect(out).toContain('pwd=/data/x foo=1');
    expect(out).toMatch(/^CapEff:\s+0000000000000000$/m);
    // gVisor's /proc/<pid>/status has no NoNewPrivs line; the flag is in the same create body as
    // under runc (checked there and in the convert tests).
    expect(out).toContain('sock=absent');
    expect(entries[0]?.command).toEqual(expect.arrayContaining(['--runtime', 'runsc']));
  });

  it('survives a fork bomb under gVisor: the job ends and the sandbox is removed', {
    timeout: 300_000,
  }, async () => {
    const { job, outcomes, entries } = await runJob(runtime, [
      'bomb() { bomb | bomb & }\nbomb\necho after-bomb',
    ]);
    expect(entries[0]?.stdout).toContain('after-bomb');
    expect(entries[0]?.exitCode).toBe(outcomes[0]?.exitCode);
    expect(await containersOfJob(recordUid(job))).toEqual([]);
  });

  it('OOM-kills a memory hog under gVisor and says so', async () => {
    const hogRuntime = createDockerRuntime(options({ kind: 'gvisor', memory: '64m' }));
    const { outcomes, entries } = await runJob(hogRuntime, ['tail /dev/zero']);
    expect(outcomes[0]).toEqual({ exitCode: 137, oomKilled: true });
    expect(entries[0]?.raw).toContain('container was killed: out of memory (limit 64m)');
  });

  it('reports exit codes and cancels under gVisor too', async () => {
    const { outcomes } = await runJob(runtime, ['exit 5']);
    expect(outcomes[0]?.exitCode).toBe(5);

    const ws = await workspace(['echo started; sleep 300']);
    const job = makeJob([{ image: IMAGE }]);
    const t = createTestContext(EXECUTOR_NAME);
    const runner = await runtime.newRunner(job, ws, t.ctx);
    const running = runner.run(runtime.specs(job, ws)[0]!);
    running.catch(() => {});
    await waitFor(() => t.logger.entries[0]?.stdout.includes('started'), {
      what: 'step output',
      timeoutMs: 30_000,
    });
    const reason = new Error('cancelled');
    t.controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    await waitFor(async () => (await containersOfJob(recordUid(job))).length === 0, { timeoutMs: 5_000 });
    await runner.teardown();
  });
});

// The step dir must exist for `-w`; Docker creates a missing one, as `docker run -w` does.
it.skipIf(!haveImage)('creates a missing step dir like docker run -w', async () => {
  const runtime = createDockerRuntime(options());
  const { outcomes, entries, ws } = await runJob(runtime, ['pwd'], { dir: 'made/by/docker' });
  expect(outcomes[0]?.exitCode).toBe(0);
  expect(entries[0]?.stdout).toBe('/data/made/by/docker\n');
  expect(existsSync(path.join(ws.path, 'made/by/docker'))).toBe(true);
});
