import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadExecutorConfig } from '../../../../src/config/executor.js';
import {
  createKubeClient,
  KUBE_API_PERMISSIONS,
  KubeApiError,
} from '../../../../src/executor/runtimes/kubernetes/kube-client.js';
import { createKubernetesRuntime } from '../../../../src/executor/runtimes/kubernetes/kubernetes-runtime.js';
import type { Runtime } from '../../../../src/executor/runtimes/types.js';
import { createLogger } from '../../../../src/lib/logger.js';
import type { Job } from '../../../../src/protocol/job.js';
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

let fake: FakeKubeApiServer;
beforeEach(async () => {
  fake = await startFakeKubeApiServer();
});
afterEach(async () => {
  await fake.close();
});

function fakeKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: fake.url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'kube-token' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  return kc;
}

function runtime(env: Record<string, string> = {}): Runtime {
  const r = loadExecutorConfig({
    EXECUTOR_FRONTEND_URL: 'https://sg.example.com',
    EXECUTOR_FRONTEND_PASSWORD: 'pw',
    EXECUTOR_QUEUE_NAME: 'batches',
    ...env,
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return createKubernetesRuntime({
    client: createKubeClient({ kubeConfig: fakeKubeConfig(), namespace: 'default' }),
    settings: r.config.kubernetes,
    executorName: 'exec-1',
    hostname: 'host-a',
    queueName: 'batches',
    frontendUrl: 'https://sg.example.com',
    frontendPassword: 'pw',
    workspaceRoot: '/nonexistent',
    keepWorkspaces: false,
    files: () => ({ get: async () => Buffer.from('downloaded') }),
    logger: createLogger({ write: () => {} }),
    logDrainMs: 2_000,
  });
}

function testJob(): Job {
  return makeJob([{ image: 'alpine:3', key: 'build' }, { image: 'busybox' }], {
    id: 42,
    token: 'job-token-xyz',
  });
}

/** Starts the single-pod run; resolves once the Job exists, with the pod the controller made. */
async function start(rt: Runtime, job = testJob()) {
  const t = createTestContext('exec-1');
  const ws = await rt.prepareWorkspace(job, t.ctx);
  const runner = await rt.newRunner(job, ws, t.ctx);
  await runner.setup();
  const [spec] = rt.specs(job, ws);
  const result = runner.run(spec!).then(
    (v) => ({ ok: true as const, v }),
    (e: Error) => ({ ok: false as const, e }),
  );
  await until(() => fake.jobs.size === 1, 'the Job');
  const kjob = [...fake.jobs.values()][0]!;
  const pod = podForJob(kjob);
  fake.setPod(pod);
  return { ...t, runner, result, pod, kjob, job };
}

type Status = Record<string, unknown>;
const term = (exitCode: number) => ({ terminated: { exitCode, reason: exitCode ? 'Error' : 'Completed' } });
const running = { running: { startedAt: '2024-01-01T00:00:00Z' } };
const waiting = (reason: string) => ({ waiting: { reason } });
const setStatus = (pod: Obj, status: Status) => fake.setPod({ ...pod, status });

describe('kubernetes runtime against a fake API server', () => {
  it('streams each container log while it runs and succeeds', async () => {
    const rt = runtime();
    const { result, pod, logger, runner, kjob } = await start(rt);
    const name = pod.metadata.name;
    const init = (a: object, b: object, c: object) => [
      { name: 'setup-workspace', state: a },
      { name: 'step-kubernetes-build', state: b },
      { name: 'step-kubernetes-1', state: c },
    ];
    setStatus(pod, {
      phase: 'Pending',
      initContainerStatuses: init(running, waiting('PodInitializing'), waiting('PodInitializing')),
    });
    await until(() => fake.logFollowers(name, 'setup-workspace') === 1, 'setup log follower');
    fake.appendLog(name, 'setup-workspace', 'cloning\n');
    const setup = () => logger.entries.find((e) => e.key === 'setup.workspace');
    // The line arrives while the container is still running.
    await until(() => setup()?.stdout === 'cloning\n', 'setup output while running');
    expect(setup()!.exitCode).toBeUndefined();
    fake.endLog(name, 'setup-workspace');
    setStatus(pod, {
      phase: 'Pending',
      initContainerStatuses: init(term(0), running, waiting('PodInitializing')),
    });
    await until(() => fake.logFollowers(name, 'step-kubernetes-build') === 1, 'step follower');
    fake.appendLog(name, 'step-kubernetes-build', 'building\n');
    await until(
      () => logger.entries.some((e) => e.key === 'step.kubernetes.build' && e.stdout === 'building\n'),
      'step output',
    );
    fake.endLog(name, 'step-kubernetes-build');
    fake.appendLog(name, 'step-kubernetes-1', 'second\n');
    fake.endLog(name, 'step-kubernetes-1');
    fake.appendLog(name, 'main', 'complete\n');
    fake.endLog(name, 'main');
    setStatus(pod, {
      phase: 'Succeeded',
      initContainerStatuses: init(term(0), term(0), term(0)),
      containerStatuses: [{ name: 'main', state: term(0) }],
    });
    const r = await result;
    expect(r).toEqual({ ok: true, v: { exitCode: 0 } });
    expect(logger.entries.map((e) => [e.key, e.exitCode, e.stdout])).toEqual([
      ['setup.workspace', 0, 'cloning\n'],
      ['step.kubernetes.build', 0, 'building\n'],
      ['step.kubernetes.1', 0, 'second\n'],
      ['main', 0, 'complete\n'],
    ]);
    expect(logger.entries[1]!.command![0]).toBe('/bin/sh');
    // The Secret holds the token; the Job does not.
    const secret = fake.secrets.get('sg-executor-job-batches-42-secrets') as unknown as {
      data: Record<string, string>;
    };
    expect(Buffer.from(secret.data.TOKEN!, 'base64').toString()).toBe('job-token-xyz');
    expect(JSON.stringify(kjob)).not.toContain('job-token-xyz');

    await runner.teardown();
    const td = logger.entries.find((e) => e.key === 'teardown.kubernetes.job')!;
    expect(td.exitCode).toBe(0);
    expect(fake.jobs.size + fake.secrets.size).toBe(0);
    expect(fake.deleteBodies.find((d) => d.resource === 'jobs')!.body.propagationPolicy).toBe('Background');
    await runner.teardown(); // idempotent
    expect(logger.entries.filter((e) => e.key === 'teardown.kubernetes.job')).toHaveLength(1);
  });

  it("ends the job with a failing step's exit code", async () => {
    const { result, pod } = await start(runtime());
    fake.endLog(pod.metadata.name, 'setup-workspace');
    fake.endLog(pod.metadata.name, 'step-kubernetes-build');
    setStatus(pod, {
      phase: 'Failed',
      initContainerStatuses: [
        { name: 'setup-workspace', state: term(0) },
        { name: 'step-kubernetes-build', state: term(3) },
        { name: 'step-kubernetes-1', state: waiting('PodInitializing') },
      ],
    });
    const r = await result;
    expect(r.ok).toBe(false);
    expect(!r.ok && r.e.message).toBe(
      'running command "step.kubernetes.build": command failed with exit code 3',
    );
  });

  const infra: Array<[string, Status, RegExp]> = [
    [
      'image pull failure',
      {
        phase: 'Pending',
        initContainerStatuses: [
          {
            name: 'setup-workspace',
            image: 'helper:nope',
            state: { waiting: { reason: 'ErrImagePull', message: 'not found' } },
          },
        ],
      },
      /job sg-executor-job-batches-42 failed: image pull failed for container setup-workspace \(image helper:nope\): ErrImagePull: not found/,
    ],
    [
      'image pull back-off',
      {
        phase: 'Pending',
        initContainerStatuses: [
          { name: 'setup-workspace', state: { waiting: { reason: 'ImagePullBackOff' } } },
        ],
      },
      /image pull failed .*ImagePullBackOff/,
    ],
    [
      'unschedulable',
      {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: 3 Insufficient memory.',
          },
        ],
      },
      /pod could not be scheduled: 0\/3 nodes are available: 3 Insufficient memory\./,
    ],
    [
      'eviction',
      {
        phase: 'Failed',
        reason: 'Evicted',
        message: 'The node was low on resource: ephemeral-storage.',
        initContainerStatuses: [{ name: 'setup-workspace', state: term(137) }],
      },
      /pod was evicted: The node was low on resource: ephemeral-storage\./,
    ],
    [
      'deadline',
      {
        phase: 'Failed',
        reason: 'DeadlineExceeded',
        message: 'Pod was active on the node longer than the specified deadline',
        initContainerStatuses: [{ name: 'setup-workspace', state: term(137) }],
      },
      /pod exceeded its deadline of 1200s \(KUBERNETES_JOB_DEADLINE\)/,
    ],
  ];
  for (const [what, status, message] of infra) {
    it(`fails fast on ${what}, saying which`, async () => {
      const { result, pod, logger } = await start(runtime());
      fake.endLog(pod.metadata.name, 'setup-workspace');
      setStatus(pod, status);
      const r = await result;
      expect(r.ok).toBe(false);
      expect(!r.ok && r.e.message).toMatch(message);
      for (const e of logger.entries) expect(e.closeCount).toBe(1);
    });
  }

  it('cancel deletes the Job and its pods at once', async () => {
    const { result, pod, controller, logger } = await start(runtime());
    setStatus(pod, {
      phase: 'Pending',
      initContainerStatuses: [{ name: 'setup-workspace', state: running }],
    });
    await until(() => fake.logFollowers(pod.metadata.name, 'setup-workspace') === 1, 'follower');
    controller.abort(new Error('job canceled'));
    const r = await result;
    expect(!r.ok && r.e.message).toBe('job canceled');
    expect(fake.jobs.size).toBe(0);
    expect(fake.deleteBodies.find((d) => d.resource === 'pods')?.body.gracePeriodSeconds).toBe(0);
    expect(fake.deleteBodies.find((d) => d.resource === 'jobs')?.body.propagationPolicy).toBe('Background');
    const e = logger.entries.find((x) => x.key === 'setup.workspace')!;
    expect(e.exitCode).toBe(-1);
    expect(e.raw).toContain('step cancelled');
  });

  it('keeps Jobs and Secrets with KUBERNETES_KEEP_JOBS and creates a PVC for the pvc volume type', async () => {
    const { result, pod, runner, logger } = await start(
      runtime({ KUBERNETES_KEEP_JOBS: 'true', KUBERNETES_JOB_VOLUME_TYPE: 'pvc' }),
    );
    expect([...fake.pvcs.keys()]).toEqual(['sg-executor-job-batches-42-pvc']);
    setStatus(pod, { phase: 'Succeeded' });
    expect((await result).ok).toBe(true);
    await runner.teardown();
    expect(fake.jobs.size + fake.secrets.size + fake.pvcs.size).toBe(3);
    expect(logger.entries.some((e) => e.key === 'teardown.kubernetes.job')).toBe(false);
  });

  it('removes labelled leftovers of this host that belong to no running job', async () => {
    const rt = runtime();
    const mk = (name: string, labels: Record<string, string>): Obj => ({ metadata: { name, labels } });
    fake.jobs.set(
      'old',
      mk('old', { 'executor.host': 'host-a', 'executor.name': 'exec-0', 'executor.job': '7' }),
    );
    fake.jobs.set(
      'live',
      mk('live', { 'executor.host': 'host-a', 'executor.name': 'exec-1', 'executor.job': '8' }),
    );
    fake.secrets.set(
      'done',
      mk('done', { 'executor.host': 'host-a', 'executor.name': 'exec-1', 'executor.job': '9' }),
    );
    fake.secrets.set(
      'other',
      mk('other', { 'executor.host': 'host-b', 'executor.name': 'x', 'executor.job': '1' }),
    );
    const removed = await rt.cleanupOrphans(new Set(['8']));
    expect(removed.sort()).toEqual(['job old', 'secret done']);
    expect([...fake.jobs.keys(), ...fake.secrets.keys()].sort()).toEqual(['live', 'other']);
  });

  it('uses only the calls declared in KUBE_API_PERMISSIONS', async () => {
    const rt = runtime();
    const { result, pod, runner } = await start(rt);
    setStatus(pod, {
      phase: 'Succeeded',
      initContainerStatuses: [{ name: 'setup-workspace', state: term(0) }],
    });
    fake.endLog(pod.metadata.name, 'setup-workspace');
    await result;
    await runner.teardown();
    await rt.cleanupOrphans(new Set());
    expect(await rt.validate()).toEqual([
      { name: 'kubernetes API', ok: true, detail: 'answers; version v1.30.0-fake' },
      { name: 'kubernetes permissions', ok: true, detail: 'can list pods in default' },
    ]);
    const declared = new Set(KUBE_API_PERMISSIONS.flatMap((p) => p.verbs.map((v) => `${p.resource} ${v}`)));
    for (const c of new Set(fake.calls)) expect(declared).toContain(c);
  });
});

describe('the fake API server refuses what a real one refuses', () => {
  const job = (name: string, containers: object[]) => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: 'default' },
    spec: { template: { spec: { restartPolicy: 'Never', containers } } },
  });
  const refusal = async (body: object) => {
    const client = createKubeClient({ kubeConfig: fakeKubeConfig(), namespace: 'default' });
    const err = await client.create('jobs', body as Record<string, unknown>).then(
      () => undefined,
      (e: unknown) => e,
    );
    return err instanceof KubeApiError
      ? { status: err.status, reason: err.reason, message: err.message }
      : err;
  };

  it('duplicate and invalid names, a request above its limit, a taken name', async () => {
    const c = { name: 'c', image: 'alpine:3' };
    expect(await refusal(job('j', [c, c]))).toMatchObject({
      status: 422,
      reason: 'Invalid',
      message: expect.stringMatching(
        /Job\.batch "j" is invalid: .*containers\[1\]\.name: Duplicate value: "c"/,
      ),
    });
    expect(await refusal(job('j-step.kubernetes..hidden', [c]))).toMatchObject({ status: 422 });
    expect(await refusal(job('j', [{ ...c, name: 'step.kubernetes.a' }]))).toMatchObject({ status: 422 });
    const greedy = { ...c, resources: { limits: { memory: '4Gi' }, requests: { memory: '12Gi' } } };
    expect(await refusal(job('j', [greedy]))).toMatchObject({
      status: 422,
      message: expect.stringMatching(
        /requests\[memory\]: Invalid value: "12Gi": must be less than or equal to memory limit of 4Gi/,
      ),
    });
    const sized = { ...c, resources: { limits: { memory: '5GB' } } };
    expect(await refusal(job('j', [sized]))).toMatchObject({ status: 422 });
    expect(await refusal({ ...job('j', [c]), metadata: { name: 'j', namespace: 'other' } })).toMatchObject({
      status: 400,
    });
    expect(await refusal(job('j', [c]))).toBeUndefined();
    expect(await refusal(job('j', [c]))).toMatchObject({ status: 409, reason: 'AlreadyExists' });
    expect(fake.created).toEqual(['jobs/j']);
  });

  it('a single-pod job whose step keys repeat is accepted, with one log entry per step', async () => {
    const keys = ['a-2', 'a', 'a', '_x', '.y', 'z..w'];
    const job = makeJob(
      keys.map((key) => ({ image: 'alpine:3', key })),
      { id: 7, token: 't' },
    );
    const { result, pod, logger, kjob } = await start(runtime(), job);
    const spec = (kjob as unknown as { spec: { template: { spec: { initContainers: { name: string }[] } } } })
      .spec.template.spec;
    const names = spec.initContainers.map((c) => c.name);
    expect(new Set(names).size).toBe(keys.length + 1);
    for (const n of names) fake.endLog(pod.metadata.name, n);
    fake.endLog(pod.metadata.name, 'main');
    setStatus(pod, {
      phase: 'Succeeded',
      initContainerStatuses: names.map((name) => ({ name, state: term(0) })),
      containerStatuses: [{ name: 'main', state: term(0) }],
    });
    expect(await result).toEqual({ ok: true, v: { exitCode: 0 } });
    expect(logger.entries.map((e) => e.key)).toEqual([
      'setup.workspace',
      ...keys.map((k) => `step.kubernetes.${k}`),
      'main',
    ]);
  });
});
