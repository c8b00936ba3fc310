/**
 * Multi-pod mode (KUBERNETES_SINGLE_JOB_POD=false) against the FAKE Kubernetes API server: the
 * executor prepares the workspace on the shared PVC itself (a temp dir stands in for its mount),
 * then each step is one Job mounting that PVC with the workspace as subPath. The handler drives the
 * steps, so the failure tests run the real handleJob.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadExecutorConfig } from '../../../../src/config/executor.js';
import { handleJob, type JobOutcome } from '../../../../src/executor/handler.js';
import { createKubeClient } from '../../../../src/executor/runtimes/kubernetes/kube-client.js';
import { createKubernetesRuntime } from '../../../../src/executor/runtimes/kubernetes/kubernetes-runtime.js';
import type { Runtime } from '../../../../src/executor/runtimes/types.js';
import { createLogger } from '../../../../src/lib/logger.js';
import { type Job, ZERO_TIME } from '../../../../src/protocol/job.js';
import { createFakeLogSink, type FakeLogSink } from '../../logs/fake-log-sink.js';
import { startFakeFrontend } from '../../workspace/fake-frontend.js';
import { createTestContext, makeJob } from '../recording-logger.js';
import {
  type FakeKubeApiServer,
  type Obj,
  podForJob,
  startFakeKubeApiServer,
} from './fake-kube-apiserver.js';

/** Polls `cond` until true (bounded); the fake and the runtime talk over real sockets. */
async function until(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const BASE = 'sg-executor-job-batches-42';
const BUILD_JOB = `${BASE}-step.kubernetes.build`;
const SECOND_JOB = `${BASE}-step.kubernetes.1`;

let fake: FakeKubeApiServer;
/** Stands in for the shared PVC as mounted in the executor's pod (EXECUTOR_WORKSPACE_ROOT). */
let pvcRoot: string;
beforeEach(async () => {
  fake = await startFakeKubeApiServer();
  pvcRoot = await mkdtemp(path.join(os.tmpdir(), 'kube-multi-pod-test-'));
});
afterEach(async () => {
  await fake.close();
  await rm(pvcRoot, { recursive: true, force: true });
});

function runtime(
  env: Record<string, string> = {},
  over: { frontendUrl?: string; files?: Record<string, string> } = {},
): Runtime {
  const r = loadExecutorConfig({
    EXECUTOR_FRONTEND_URL: 'https://sg.example.com',
    EXECUTOR_FRONTEND_PASSWORD: 'pw',
    EXECUTOR_QUEUE_NAME: 'batches',
    KUBERNETES_SINGLE_JOB_POD: 'false',
    ...env,
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: fake.url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'kube-token' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  const store = over.files ?? {};
  return createKubernetesRuntime({
    client: createKubeClient({ kubeConfig: kc, namespace: 'default' }),
    settings: r.config.kubernetes,
    executorName: 'exec-1',
    hostname: 'host-a',
    queueName: 'batches',
    frontendUrl: over.frontendUrl ?? 'https://sg.example.com',
    frontendPassword: 'pw',
    workspaceRoot: pvcRoot,
    keepWorkspaces: false,
    files: () => ({
      get: async (bucket, key) => {
        const v = store[`${bucket}/${key}`];
        if (v === undefined) throw new Error(`no file ${bucket}/${key}`);
        return Buffer.from(v);
      },
    }),
    logger: createLogger({ write: () => {} }),
    logDrainMs: 2_000,
  });
}

function testJob(over: Partial<Job> = {}): Job {
  return makeJob([{ image: 'alpine:3', key: 'build', env: ['FOO=bar baz'] }, { image: 'busybox' }], {
    id: 42,
    token: 'job-token-xyz',
    ...over,
  });
}

/** Waits for the step Job `name`, then plays the Job controller: its pod appears, Pending. */
async function podOf(name: string): Promise<Obj> {
  await until(() => fake.jobs.has(name), `Job ${name}`);
  const pod = podForJob(fake.jobs.get(name)!);
  fake.setPod(pod);
  return pod;
}

type Status = Record<string, unknown>;
const term = (exitCode: number) => ({ terminated: { exitCode, reason: exitCode ? 'Error' : 'Completed' } });
const running = { running: { startedAt: '2024-01-01T00:00:00Z' } };
const setStatus = (pod: Obj, status: Status) => fake.setPod({ ...pod, status });
const one = (container: string, state: object, phase = 'Running'): Status => ({
  phase,
  containerStatuses: [{ name: container, image: 'alpine:3', state }],
});

/** Runs one step's pod to the end: running, a log line seen while it runs, then `exitCode`. */
async function playStep(
  jobName: string,
  container: string,
  line: string,
  exitCode: number,
  seen: () => string | undefined,
) {
  const pod = await podOf(jobName);
  setStatus(pod, one(container, running));
  await until(() => fake.logFollowers(pod.metadata.name, container) === 1, `log follower of ${jobName}`);
  fake.appendLog(pod.metadata.name, container, line);
  await until(() => seen() === line, `${jobName} output while running`);
  fake.endLog(pod.metadata.name, container);
  setStatus(pod, one(container, term(exitCode), exitCode === 0 ? 'Succeeded' : 'Failed'));
  return pod;
}

function handlerDeps(rt: Runtime, sink: FakeLogSink) {
  const marks: string[] = [];
  return {
    marks,
    deps: {
      runtime: rt,
      reporter: {
        markComplete: async () => void marks.push('complete'),
        markErrored: async (_: Job, m: string) => void marks.push(`errored: ${m}`),
        markFailed: async (_: Job, m: string) => void marks.push(`failed: ${m}`),
      },
      sinkFor: () => sink,
      executorName: 'exec-1',
      frontendPassword: 'pw',
      maximumRuntimePerJobMs: 15_000,
      maxLogBytes: 1 << 20,
      logger: createLogger({ write: () => {} }),
      logSyncIntervalMs: 20,
    },
  };
}

const storedEntries = (sink: FakeLogSink) => [...sink.stored.values()];
const jobCreates = () => fake.created.filter((c) => c.startsWith('jobs/'));

describe('kubernetes runtime, multi-pod mode, against a fake API server', () => {
  it('creates the Secret, then one Job per step in order, streams each step log while it runs, deletes them at teardown', async () => {
    const rt = runtime();
    const job = testJob();
    const { ctx, logger } = createTestContext('exec-1');
    const ws = await rt.prepareWorkspace(job, ctx);
    const runner = await rt.newRunner(job, ws, ctx);
    await runner.setup();
    expect(fake.created).toEqual([`secrets/${BASE}-secrets`]);
    const specs = rt.specs(job, ws);
    expect(specs.map((s) => s.key)).toEqual(['step.kubernetes.build', 'step.kubernetes.1']);
    const entry = (key: string) => logger.entries.find((e) => e.key === key);

    const first = runner.run(specs[0]!);
    await playStep(BUILD_JOB, 'step-kubernetes-build', 'building\n', 0, () => {
      const e = entry('step.kubernetes.build');
      // Still open while the line arrives: the log is followed, not read at the end.
      return e?.exitCode === undefined ? e?.stdout : undefined;
    });
    expect(await first).toEqual({ exitCode: 0 });
    // The second step's Job is created only when the handler runs it.
    expect(jobCreates()).toEqual([`jobs/${BUILD_JOB}`]);

    const second = runner.run(specs[1]!);
    await playStep(SECOND_JOB, 'step-kubernetes-1', 'second\n', 0, () => {
      const e = entry('step.kubernetes.1');
      return e?.exitCode === undefined ? e?.stdout : undefined;
    });
    expect(await second).toEqual({ exitCode: 0 });
    expect(fake.created).toEqual([`secrets/${BASE}-secrets`, `jobs/${BUILD_JOB}`, `jobs/${SECOND_JOB}`]);
    const steps = logger.entries.filter((e) => e.key.startsWith('step.'));
    expect(steps.map((e) => [e.key, e.exitCode, e.stdout, e.command])).toEqual([
      ['step.kubernetes.build', 0, 'building\n', ['/bin/sh', `/job/${specs[0]!.scriptPath}`]],
      ['step.kubernetes.1', 0, 'second\n', ['/bin/sh', `/job/${specs[1]!.scriptPath}`]],
    ]);
    // Both steps mount the one shared PVC; the runtime neither creates nor deletes it.
    for (const name of [BUILD_JOB, SECOND_JOB]) {
      const vols = (fake.jobs.get(name)!.spec as { template: { spec: { volumes: Obj[] } } }).template.spec
        .volumes;
      expect(vols[0]).toEqual({
        name: 'sg-executor-job-volume',
        persistentVolumeClaim: { claimName: 'sg-executor-pvc' },
      });
    }

    await runner.teardown();
    const td = entry('teardown.kubernetes.job')!;
    expect(td.exitCode).toBe(0);
    expect(td.raw).toBe(
      [`Deleted job ${BUILD_JOB}`, `Deleted job ${SECOND_JOB}`, `Deleted secret ${BASE}-secrets`, ''].join(
        '\n',
      ),
    );
    expect(fake.jobs.size + fake.secrets.size).toBe(0);
    expect(
      fake.deleteBodies.filter((d) => d.resource === 'jobs').map((d) => d.body.propagationPolicy),
    ).toEqual(['Background', 'Background']);
    expect(fake.calls.filter((c) => c.startsWith('persistentvolumeclaims'))).toEqual([]);
    await runner.teardown(); // idempotent
    expect(logger.entries.filter((e) => e.key === 'teardown.kubernetes.job')).toHaveLength(1);
    await ws.remove();
    expect(existsSync(ws.path)).toBe(false);
  });

  it('steps whose keys repeat or start with `_` or `.` each get a valid Job of their own', async () => {
    const rt = runtime();
    const keys = ['_private', '.hidden', 'a..b', 'a', 'a'];
    const job = makeJob(
      keys.map((key) => ({ image: 'alpine:3', key })),
      { id: 42, token: 't' },
    );
    const { ctx, logger } = createTestContext('exec-1');
    const ws = await rt.prepareWorkspace(job, ctx);
    const runner = await rt.newRunner(job, ws, ctx);
    await runner.setup();
    const specs = rt.specs(job, ws);
    for (const [i, spec] of specs.entries()) {
      const run = runner.run(spec);
      await until(() => jobCreates().length === i + 1, `the Job of step ${i}`);
      const name = jobCreates()[i]!.slice('jobs/'.length);
      const pod = await podOf(name);
      const container = (pod.spec as { containers: Array<{ name: string }> }).containers[0]!.name;
      fake.endLog(pod.metadata.name, container);
      setStatus(pod, one(container, term(0), 'Succeeded'));
      expect(await run).toEqual({ exitCode: 0 });
    }
    expect(new Set(jobCreates()).size).toBe(keys.length);
    expect(logger.entries.filter((e) => e.key.startsWith('step.')).map((e) => [e.key, e.exitCode])).toEqual(
      keys.map((k) => [`step.kubernetes.${k}`, 0]),
    );
    await runner.teardown();
    expect(fake.jobs.size + fake.secrets.size).toBe(0);
    await ws.remove();
  });

  it('keeps the step Jobs and the Secret with KUBERNETES_KEEP_JOBS', async () => {
    const rt = runtime({ KUBERNETES_KEEP_JOBS: 'true' });
    const job = testJob();
    const { ctx, logger } = createTestContext('exec-1');
    const ws = await rt.prepareWorkspace(job, ctx);
    const runner = await rt.newRunner(job, ws, ctx);
    await runner.setup();
    const [spec] = rt.specs(job, ws);
    const run = runner.run(spec!);
    const pod = await podOf(BUILD_JOB);
    fake.endLog(pod.metadata.name, 'step-kubernetes-build');
    setStatus(pod, one('step-kubernetes-build', term(0), 'Succeeded'));
    expect(await run).toEqual({ exitCode: 0 });
    await runner.teardown();
    expect([...fake.jobs.keys(), ...fake.secrets.keys()]).toEqual([BUILD_JOB, `${BASE}-secrets`]);
    expect(fake.calls.filter((c) => c.endsWith(' delete'))).toEqual([]);
    expect(logger.entries.some((e) => e.key === 'teardown.kubernetes.job')).toBe(false);
    await ws.remove();
  });

  it('a step whose pod is first seen finished still gets its whole log', async () => {
    const rt = runtime();
    const job = testJob();
    const { ctx, logger } = createTestContext('exec-1');
    const ws = await rt.prepareWorkspace(job, ctx);
    const runner = await rt.newRunner(job, ws, ctx);
    await runner.setup();
    const [spec] = rt.specs(job, ws);
    const run = runner.run(spec!);
    await until(() => fake.jobs.has(BUILD_JOB), 'the Job');
    const pod = podForJob(fake.jobs.get(BUILD_JOB)!);
    // A short step: it ran and ended between two watch events.
    fake.appendLog(pod.metadata.name, 'step-kubernetes-build', 'one\ntwo\n');
    fake.endLog(pod.metadata.name, 'step-kubernetes-build');
    fake.setPod({ ...pod, status: one('step-kubernetes-build', term(0), 'Succeeded') });
    expect(await run).toEqual({ exitCode: 0 });
    const e = logger.entries.find((x) => x.key === 'step.kubernetes.build')!;
    expect([e.stdout, e.exitCode, e.closeCount]).toEqual(['one\ntwo\n', 0, 1]);
    await runner.teardown();
    await ws.remove();
  });

  it("a failing step ends the job with that step's exit code; later steps' Jobs are never created", async () => {
    const rt = runtime();
    const sink = createFakeLogSink();
    const { deps, marks } = handlerDeps(rt, sink);
    const outcome = handleJob(testJob(), deps);
    const pod = await podOf(BUILD_JOB);
    fake.appendLog(pod.metadata.name, 'step-kubernetes-build', 'compiler error\n');
    fake.endLog(pod.metadata.name, 'step-kubernetes-build');
    setStatus(pod, one('step-kubernetes-build', term(3), 'Failed'));
    const msg = 'running command "step.kubernetes.build": command failed with exit code 3';
    expect(await outcome).toEqual<JobOutcome>({ mark: 'errored', message: msg });
    expect(marks).toEqual([`errored: ${msg}`]);
    expect(jobCreates()).toEqual([`jobs/${BUILD_JOB}`]);
    const step = storedEntries(sink).find((e) => e.key === 'step.kubernetes.build')!;
    expect(step.exitCode).toBe(3);
    expect(step.out).toBe('stdout: compiler error\n');
    // Teardown still ran: the failed step's Job and the Secret are gone.
    expect(storedEntries(sink).find((e) => e.key === 'teardown.kubernetes.job')?.exitCode).toBe(0);
    expect(fake.jobs.size + fake.secrets.size).toBe(0);
  });

  const infra: Array<[string, Status, string]> = [
    [
      'an image pull failure',
      {
        phase: 'Pending',
        containerStatuses: [
          {
            name: 'step-kubernetes-build',
            image: 'alpine:3',
            state: { waiting: { reason: 'ErrImagePull', message: 'manifest unknown' } },
          },
        ],
      },
      `job ${BUILD_JOB} failed: image pull failed for container step-kubernetes-build (image alpine:3): ErrImagePull: manifest unknown`,
    ],
    [
      'an unschedulable pod',
      {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: persistentvolumeclaim "sg-executor-pvc" not found.',
          },
        ],
      },
      `job ${BUILD_JOB} failed: pod could not be scheduled: 0/3 nodes are available: persistentvolumeclaim "sg-executor-pvc" not found.`,
    ],
  ];
  for (const [what, status, message] of infra) {
    it(`fails fast on ${what}, naming the cause, and runs no later step`, async () => {
      const rt = runtime();
      const { deps, marks } = handlerDeps(rt, createFakeLogSink());
      const outcome = handleJob(testJob(), deps);
      const pod = await podOf(BUILD_JOB);
      const started = Date.now();
      setStatus(pod, status);
      expect(await outcome).toEqual<JobOutcome>({ mark: 'errored', message });
      // Well under the pod deadline (1200 s) and the job's 15 s: the status alone ended it.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(marks).toEqual([`errored: ${message}`]);
      expect(jobCreates()).toEqual([`jobs/${BUILD_JOB}`]);
      expect(fake.jobs.size + fake.secrets.size).toBe(0);
    });
  }

  it("cancel deletes the running step's Job and its pod at once", async () => {
    const rt = runtime();
    const job = testJob();
    const { ctx, controller, logger } = createTestContext('exec-1');
    const ws = await rt.prepareWorkspace(job, ctx);
    const runner = await rt.newRunner(job, ws, ctx);
    await runner.setup();
    const [first] = rt.specs(job, ws);
    const run = runner.run(first!).then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    const pod = await podOf(BUILD_JOB);
    setStatus(pod, one('step-kubernetes-build', running));
    await until(() => fake.logFollowers(pod.metadata.name, 'step-kubernetes-build') === 1, 'follower');
    controller.abort(new Error('job canceled'));
    expect(await run).toBe('job canceled');
    // Deleted by run() itself, before any teardown.
    expect(fake.jobs.size).toBe(0);
    expect(fake.pods.size).toBe(0);
    expect(fake.deleteBodies.map((d) => [d.resource, d.name])).toEqual([
      ['jobs', BUILD_JOB],
      ['pods', pod.metadata.name],
    ]);
    expect(fake.deleteBodies[0]!.body.propagationPolicy).toBe('Background');
    expect(fake.deleteBodies[1]!.body.gracePeriodSeconds).toBe(0);
    const e = logger.entries.find((x) => x.key === 'step.kubernetes.build')!;
    expect(e.exitCode).toBe(-1);
    expect(e.raw).toContain('step cancelled: job canceled');
    // A step started after the cancel creates nothing.
    const [, second] = rt.specs(job, ws);
    await expect(runner.run(second!)).rejects.toThrow('job canceled');
    expect(jobCreates()).toEqual([`jobs/${BUILD_JOB}`]);
    await runner.teardown();
    expect(fake.secrets.size).toBe(0);
    await ws.remove();
  });
});

describe('kubernetes runtime, multi-pod mode: the workspace on the shared volume', () => {
  const gitEnv = {
    ...process.env,
    GIT_AUTHOR_NAME: 't',
    GIT_AUTHOR_EMAIL: 't@example.com',
    GIT_COMMITTER_NAME: 't',
    GIT_COMMITTER_EMAIL: 't@example.com',
  };
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', ['-C', cwd, ...args], { env: gitEnv, encoding: 'utf8' }).trim();

  it('the executor clones and writes files and scripts under the PVC mount; step Jobs mount that directory as subPath', async () => {
    const repos = await mkdtemp(path.join(os.tmpdir(), 'kube-multi-pod-repos-'));
    const frontend = await (async () => {
      const src = path.join(repos, 'src');
      await mkdir(path.join(src, 'lib'), { recursive: true });
      git(src, 'init', '-q');
      await writeFile(path.join(src, 'lib', 'main.go'), 'package main\n');
      git(src, 'add', '.');
      git(src, 'commit', '-qm', 'init');
      execFileSync('git', ['clone', '-q', '--bare', src, path.join(repos, 'served', 'github.com/acme/app')]);
      return startFakeFrontend(path.join(repos, 'served'));
    })();
    try {
      const commit = git(path.join(repos, 'src'), 'rev-parse', 'HEAD');
      const rt = runtime(
        {},
        { frontendUrl: frontend.url, files: { 'batch-changes/spec/1': 'from the store\n' } },
      );
      const job = makeJob([{ image: 'alpine:3', key: 'build', dir: 'lib', env: ['FOO=bar baz'] }], {
        id: 42,
        token: 'job-token-xyz',
        repositoryName: 'github.com/acme/app',
        commit,
        files: {
          'inline.txt': { content: Buffer.from('inline\n'), modifiedAt: ZERO_TIME },
          'sub/remote.txt': { bucket: 'batch-changes', key: 'spec/1', modifiedAt: ZERO_TIME },
        },
      });
      job.dockerSteps[0]!.commands = ['echo hi'];
      const { ctx } = createTestContext('exec-1');
      const ws = await rt.prepareWorkspace(job, ctx);
      // The workspace is a directory of the PVC mount, holding the checkout, files and scripts.
      expect(path.dirname(ws.path)).toBe(pvcRoot);
      expect(await readFile(path.join(ws.path, 'lib', 'main.go'), 'utf8')).toBe('package main\n');
      expect(await readFile(path.join(ws.path, 'inline.txt'), 'utf8')).toBe('inline\n');
      expect(await readFile(path.join(ws.path, 'sub', 'remote.txt'), 'utf8')).toBe('from the store\n');

      const runner = await rt.newRunner(job, ws, ctx);
      await runner.setup();
      // Files travel on the volume, not in the Secret: it holds the token and the env values only.
      const secret = fake.secrets.get(`${BASE}-secrets`) as unknown as { data: Record<string, string> };
      expect(Object.keys(secret.data).sort()).toEqual(['TOKEN', 'env-0-0']);
      const [spec] = rt.specs(job, ws);
      const run = runner.run(spec!);
      const pod = await podOf(BUILD_JOB);
      fake.endLog(pod.metadata.name, 'step-kubernetes-build');
      setStatus(pod, one('step-kubernetes-build', term(0), 'Succeeded'));
      expect(await run).toEqual({ exitCode: 0 });

      const c = (
        fake.jobs.get(BUILD_JOB)!.spec as {
          template: {
            spec: {
              containers: Array<{
                command: string[];
                workingDir: string;
                env: Array<{ name: string; valueFrom: { secretKeyRef: { name: string; key: string } } }>;
                volumeMounts: Array<{ name: string; mountPath: string; subPath: string }>;
              }>;
            };
          };
        }
      ).template.spec.containers[0]!;
      const mount = c.volumeMounts[0]!;
      expect(mount.mountPath).toBe('/job');
      expect(mount.subPath).toBe(path.basename(ws.path));
      // What the pod sees at /job is ws.path: its script and working directory exist there.
      const onVolume = (p: string) => path.join(pvcRoot, mount.subPath, path.posix.relative('/job', p));
      expect(c.command[0]).toBe('/bin/sh');
      expect(await readFile(onVolume(c.command[1]!), 'utf8')).toContain('echo hi');
      expect(c.workingDir).toBe('/job/lib');
      expect(existsSync(onVolume(c.workingDir))).toBe(true);
      // The env value reaches the pod from the Secret, not the spec.
      expect(JSON.stringify(fake.jobs.get(BUILD_JOB))).not.toContain('bar baz');
      const ref = c.env[0]!.valueFrom.secretKeyRef;
      expect(c.env[0]!.name).toBe('FOO');
      expect(ref.name).toBe(`${BASE}-secrets`);
      expect(Buffer.from(secret.data[ref.key]!, 'base64').toString()).toBe('bar baz');

      await runner.teardown();
      await ws.remove();
      expect(existsSync(ws.path)).toBe(false);
    } finally {
      await frontend.close();
      await rm(repos, { recursive: true, force: true });
    }
  });
});
