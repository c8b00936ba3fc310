import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { KubernetesConfig } from '../../../../src/config/executor.js';
import { loadExecutorConfig } from '../../../../src/config/executor.js';
import {
  buildPvc,
  buildSecret,
  buildSingleJob,
  buildStepJob,
} from '../../../../src/executor/runtimes/kubernetes/convert.js';
import type { Pod } from '../../../../src/executor/runtimes/kubernetes/kube-types.js';
import {
  dnsLabel,
  fileKey,
  type JobIdentity,
  jobBaseName,
  stepContainerNames,
} from '../../../../src/executor/runtimes/kubernetes/naming.js';
import { classifyPod } from '../../../../src/executor/runtimes/kubernetes/pod-status.js';
import {
  confinedPath,
  inputFiles,
  NEXT_INDEX_SH,
  setupScript,
} from '../../../../src/executor/runtimes/kubernetes/setup-script.js';
import type { Job } from '../../../../src/protocol/job.js';
import { makeJob } from '../recording-logger.js';

function settings(env: Record<string, string> = {}): KubernetesConfig {
  const r = loadExecutorConfig({
    EXECUTOR_FRONTEND_URL: 'https://sg.example.com',
    EXECUTOR_FRONTEND_PASSWORD: 'pw',
    EXECUTOR_QUEUE_NAME: 'batches',
    ...env,
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config.kubernetes;
}

function job(over: Partial<Job> = {}): Job {
  return makeJob(
    [
      { image: 'alpine:3', key: 'build', env: ['SECRET_ENV=hunter2', 'PLAIN=a=b'], dir: 'sub' },
      { image: 'busybox', env: [] },
    ],
    {
      id: 42,
      token: 'job-token-abc123',
      repositoryName: 'github.com/o/r',
      commit: 'deadbeef',
      files: {
        'conf/x.txt': { content: Buffer.from('file-secret-content'), modifiedAt: '2024-01-02T03:04:05Z' },
      },
      ...over,
    },
  );
}

const id = (j: Job, over: Partial<JobIdentity> = {}): JobIdentity => ({
  executorName: 'exec-1',
  hostname: 'host-a',
  job: j,
  queueName: 'batches',
  ...over,
});

function single(env: Record<string, string> = {}, j = job()) {
  const s = settings(env);
  const files = inputFiles(j, new Map());
  return {
    s,
    files,
    built: buildSingleJob({ job: j, id: id(j), settings: s, frontendUrl: 'https://sg.example.com/', files }),
    j,
  };
}

describe('names', () => {
  it('follows the reference and stays a DNS label', () => {
    const j = job();
    expect(jobBaseName(id(j))).toBe('sg-executor-job-batches-42');
    expect(jobBaseName(id({ ...j, queue: 'codeintel' }))).toBe('sg-executor-job-codeintel-42');
    expect(jobBaseName(id({ ...j, attempt: 3 }))).toBe('sg-executor-job-batches-42-a3');
    expect(jobBaseName(id(j, { queueName: undefined }))).toBe('sg-executor-job--42');
    expect(stepContainerNames(['step.kubernetes.build'])).toEqual(['step-kubernetes-build']);
    const long = dnsLabel(`Step_${'x'.repeat(100)}`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[0-9a-f]{10}$/);
    expect(dnsLabel('A_b')).not.toBe(dnsLabel('a-b'));
    // A name kept as given never looks hashed, so no changed name can equal it.
    expect(dnsLabel('x-0123456789')).toMatch(/^x-0123456789-[0-9a-f]{10}$/);
  });

  it('tells keys apart that sanitise alike, and repeated keys', () => {
    const names = stepContainerNames([
      'step.kubernetes.a.b',
      'step.kubernetes.a-b',
      'step.kubernetes.A-b',
      'step.kubernetes.a',
      'step.kubernetes.a',
    ]);
    expect(names[1]).toBe('step-kubernetes-a-b');
    expect(names[3]).toBe('step-kubernetes-a');
    expect(names[0]).toMatch(/^step-kubernetes-a-b-[0-9a-f]{10}$/);
    expect(names[4]).toMatch(/^step-kubernetes-a-[0-9a-f]{10}$/);
    expect(new Set(names).size).toBe(5);
  });
});

describe('single job pod', () => {
  it('has setup-workspace, one init container per step and main, in order', () => {
    const { built } = single();
    const pod = built.job.spec.template.spec;
    expect(pod.initContainers!.map((c) => c.name)).toEqual([
      'setup-workspace',
      'step-kubernetes-build',
      'step-kubernetes-1',
    ]);
    expect(pod.containers.map((c) => c.name)).toEqual(['main']);
    expect(built.containers['setup-workspace']!.key).toBe('setup.workspace');
    expect(built.containers['step-kubernetes-1']!.key).toBe('step.kubernetes.1');
    expect(built.job.spec.backoffLimit).toBe(0);
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.activeDeadlineSeconds).toBe(1200);
    expect(pod.automountServiceAccountToken).toBe(false);
    const step = pod.initContainers![1]!;
    expect(step.image).toBe('alpine:3');
    expect(step.workingDir).toBe('/job/sub');
    expect(step.resources).toEqual({ limits: { memory: '12Gi' }, requests: { memory: '12Gi' } });
    expect(pod.initContainers![0]!.image).toBe('sourcegraph/batcheshelper:insiders');
  });

  it('never puts the token, env values or file contents in the pod spec', () => {
    const { built } = single();
    const text = JSON.stringify(built.job);
    for (const secret of ['job-token-abc123', 'hunter2', 'a=b', 'file-secret-content']) {
      expect(text).not.toContain(secret);
    }
    const setup = built.job.spec.template.spec.initContainers![0]!;
    expect(setup.env).toEqual([
      {
        name: 'TOKEN',
        valueFrom: { secretKeyRef: { name: 'sg-executor-job-batches-42-secrets', key: 'TOKEN' } },
      },
    ]);
    const step = built.job.spec.template.spec.initContainers![1]!;
    expect(step.env![0]).toEqual({
      name: 'SECRET_ENV',
      valueFrom: { secretKeyRef: { name: 'sg-executor-job-batches-42-secrets', key: 'env-0-0' } },
    });
    expect(step.env).toContainEqual({ name: 'EXECUTOR_ADD_SAFE', value: 'false' });
  });

  it('puts token, env values, files and scripts in the Secret', () => {
    const { j, files } = single();
    const secret = buildSecret(j, 'sg-executor-job-batches-42', id(j), files, 'default') as {
      data: Record<string, string>;
      metadata: { name: string; labels: Record<string, string> };
    };
    const dec = (k: string) => Buffer.from(secret.data[k]!, 'base64').toString();
    expect(secret.metadata.name).toBe('sg-executor-job-batches-42-secrets');
    expect(dec('TOKEN')).toBe('job-token-abc123');
    expect(dec('env-0-0')).toBe('hunter2');
    expect(dec('env-0-1')).toBe('a=b');
    expect(dec(fileKey('conf/x.txt'))).toBe('file-secret-content');
    expect(dec(fileKey('nextIndex.sh'))).toBe(NEXT_INDEX_SH);
    expect(secret.metadata.labels['executor.job']).toBe('42');
    const big = job({ files: { big: { content: Buffer.alloc(1100 * 1024), modifiedAt: '' } } });
    expect(() => buildSecret(big, 'b', id(big), inputFiles(big, new Map()), 'default')).toThrow(
      /Secret can hold/,
    );
  });

  it('mounts the input files only into setup-workspace, without the token', () => {
    const { built, files } = single();
    const pod = built.job.spec.template.spec;
    const input = pod.volumes!.find((v) => v.name === 'job-input') as {
      secret: { items: Array<{ key: string }> };
    };
    expect(input.secret.items.map((i) => i.key)).toEqual(files.map((f) => fileKey(f.rel)));
    expect(input.secret.items.map((i) => i.key)).not.toContain('TOKEN');
    const withInput = [...pod.initContainers!, ...pod.containers].filter((c) =>
      c.volumeMounts!.some((m) => m.name === 'job-input'),
    );
    expect(withInput.map((c) => c.name)).toEqual(['setup-workspace']);
  });

  it('uses an emptyDir with a size limit, or the job PVC', () => {
    const e = single().built.job.spec.template.spec.volumes![0];
    expect(e).toEqual({ name: 'job-data', emptyDir: { sizeLimit: '5Gi' } });
    const p = single({ KUBERNETES_JOB_VOLUME_TYPE: 'pvc', KUBERNETES_JOB_VOLUME_SIZE: '9Gi' });
    expect(p.built.job.spec.template.spec.volumes![0]).toEqual({
      name: 'job-data',
      persistentVolumeClaim: { claimName: 'sg-executor-job-batches-42-pvc' },
    });
    const pvc = buildPvc('sg-executor-job-batches-42', id(p.j), p.s) as {
      spec: unknown;
      metadata: { name: string };
    };
    expect(pvc.metadata.name).toBe('sg-executor-job-batches-42-pvc');
    expect(pvc.spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '9Gi' } } });
  });

  it('applies restricted security contexts by default', () => {
    const pod = single().built.job.spec.template.spec;
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      fsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const c of [...pod.initContainers!, ...pod.containers]) {
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
        runAsNonRoot: true,
      });
    }
    const relaxed = single({
      KUBERNETES_RUN_AS_NON_ROOT: 'false',
      KUBERNETES_RUN_AS_USER: '1001',
      KUBERNETES_RUN_AS_GROUP: '1002',
      KUBERNETES_FS_GROUP: '-1',
    }).built.job.spec.template.spec;
    expect(relaxed.securityContext).toEqual({
      runAsUser: 1001,
      runAsGroup: 1002,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(relaxed.containers[0]!.securityContext).not.toHaveProperty('runAsNonRoot');
  });

  it('applies every scheduling, resource and metadata variable', () => {
    const { built } = single({
      EXECUTOR_KUBERNETES_NAMESPACE: 'jobs',
      EXECUTOR_KUBERNETES_NODE_NAME: 'node-7',
      EXECUTOR_KUBERNETES_NODE_SELECTOR: 'disk=ssd, zone=a',
      EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_EXPRESSIONS:
        '[{"key":"k","operator":"In","values":["v"]}]',
      EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_FIELDS:
        '[{"key":"metadata.name","operator":"In","values":["n"]}]',
      EXECUTOR_KUBERNETES_POD_AFFINITY: '[{"topologyKey":"zone","labelSelector":{"matchLabels":{"a":"b"}}}]',
      EXECUTOR_KUBERNETES_POD_ANTI_AFFINITY: '[{"topologyKey":"host"}]',
      EXECUTOR_KUBERNETES_NODE_TOLERATIONS: '[{"key":"gpu","operator":"Exists","effect":"NoSchedule"}]',
      EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: '2',
      EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: '500m',
      EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '4Gi',
      EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '1Gi',
      EXECUTOR_KUBERNETES_RUNTIME_CLASS: 'gvisor',
      KUBERNETES_JOB_DEADLINE: '60',
      KUBERNETES_SINGLE_JOB_STEP_IMAGE: 'helper:1',
      KUBERNETES_ADDITIONAL_JOB_VOLUMES: '[{"name":"cache","emptyDir":{}}]',
      KUBERNETES_ADDITIONAL_JOB_VOLUME_MOUNTS: '[{"name":"cache","mountPath":"/cache"}]',
      KUBERNETES_JOB_ANNOTATIONS: '{"team":"a"}',
      KUBERNETES_JOB_POD_ANNOTATIONS: '{"sidecar.istio.io/inject":"false"}',
      KUBERNETES_IMAGE_PULL_SECRETS: 'reg1,reg2',
    });
    const pod = built.job.spec.template.spec;
    expect(built.job.metadata.namespace).toBe('jobs');
    expect(built.job.metadata.annotations).toEqual({ team: 'a' });
    expect(built.job.spec.template.metadata.annotations).toEqual({ 'sidecar.istio.io/inject': 'false' });
    expect(pod.nodeName).toBe('node-7');
    expect(pod.nodeSelector).toEqual({ disk: 'ssd', zone: 'a' });
    expect(pod.affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }],
              matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n'] }],
            },
          ],
        },
      },
      podAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { topologyKey: 'zone', labelSelector: { matchLabels: { a: 'b' } } },
        ],
      },
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'host' }] },
    });
    expect(pod.tolerations).toEqual([{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod.runtimeClassName).toBe('gvisor');
    expect(pod.activeDeadlineSeconds).toBe(60);
    expect(pod.imagePullSecrets).toEqual([{ name: 'reg1' }, { name: 'reg2' }]);
    expect(pod.volumes!.at(-1)).toEqual({ name: 'cache', emptyDir: {} });
    expect(pod.initContainers![0]!.image).toBe('helper:1');
    expect(pod.containers[0]!.image).toBe('helper:1');
    for (const c of [...pod.initContainers!, ...pod.containers]) {
      expect(c.resources).toEqual({
        limits: { memory: '4Gi', cpu: '2' },
        requests: { memory: '1Gi', cpu: '500m' },
      });
      expect(c.volumeMounts).toContainEqual({ name: 'cache', mountPath: '/cache' });
    }
  });

  it('leaves optional scheduling fields out by default', () => {
    const pod = single().built.job.spec.template.spec;
    for (const k of [
      'nodeName',
      'nodeSelector',
      'affinity',
      'tolerations',
      'imagePullSecrets',
      'runtimeClassName',
    ]) {
      expect(pod).not.toHaveProperty(k);
    }
  });

  it('rejects bad variable values, naming them', () => {
    const r = loadExecutorConfig({
      EXECUTOR_FRONTEND_URL: 'https://x',
      EXECUTOR_FRONTEND_PASSWORD: 'p',
      EXECUTOR_QUEUE_NAME: 'q',
      KUBERNETES_JOB_VOLUME_TYPE: 'hostPath',
      EXECUTOR_KUBERNETES_POD_AFFINITY: '[{}]',
      EXECUTOR_KUBERNETES_NODE_SELECTOR: 'novalue',
      KUBERNETES_JOB_ANNOTATIONS: '{',
    });
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems.join('\n');
    expect(problems).toMatch(/KUBERNETES_JOB_VOLUME_TYPE: must be emptyDir or pvc/);
    expect(problems).toMatch(/EXECUTOR_KUBERNETES_POD_AFFINITY: .*topologyKey/);
    expect(problems).toMatch(/EXECUTOR_KUBERNETES_NODE_SELECTOR: .*k=v/);
    expect(problems).toMatch(/KUBERNETES_JOB_ANNOTATIONS: is not valid JSON/);
  });

  it('selects kubernetes inside a cluster unless a runtime is named', () => {
    const base = {
      EXECUTOR_FRONTEND_URL: 'https://x',
      EXECUTOR_FRONTEND_PASSWORD: 'p',
      EXECUTOR_QUEUE_NAME: 'q',
    };
    const k8s = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const rt = (env: Record<string, string>) => {
      const r = loadExecutorConfig(env);
      return r.ok ? r.config.runtime : r.problems;
    };
    expect(rt({ ...base, ...k8s })).toBe('kubernetes');
    expect(rt({ ...base, KUBERNETES_SERVICE_HOST: '10.0.0.1' })).toBe('docker');
    expect(rt({ ...base, ...k8s, EXECUTOR_RUNTIME: 'gvisor' })).toBe('gvisor');
  });

  it('refuses files outside the workspace', () => {
    expect(() => confinedPath('../etc/passwd')).toThrow(/outside/);
    expect(() => confinedPath('/etc/passwd')).toThrow(/outside/);
    expect(confinedPath('a/./b')).toBe('a/b');
    const bad = job({ files: { '../x': { content: Buffer.from('x'), modifiedAt: '' } } });
    expect(() => inputFiles(bad, new Map())).toThrow(/outside/);
  });
});

describe('setup script', () => {
  it('runs the reference git sequence with the token from the env and the job headers', () => {
    const j = job({ repositoryDirectory: 'repo' });
    const script = setupScript(j, inputFiles(j, new Map()), {
      frontendUrl: 'https://sg.example.com/',
      executorName: 'exec-1',
      gitCaCert: '/certs/ca.pem',
    });
    expect(script).not.toContain('job-token-abc123');
    expect(script).toContain(
      "git -C 'repo' remote add origin 'https://sg.example.com/.executors/git/github.com/o/r'",
    );
    expect(script).toContain("git -C 'repo' config --local http.sslCAInfo '/certs/ca.pem'");
    expect(script).toContain('-c http.extraHeader="Authorization: Bearer $TOKEN"');
    expect(script).toContain("-c http.extraHeader='X-Sourcegraph-Job-ID: 42'");
    expect(script).toContain("-c http.extraHeader='X-Sourcegraph-Executor-Name: exec-1'");
    expect(script).toContain(
      "fetch --progress --no-recurse-submodules --no-tags --depth=1 origin 'deadbeef'",
    );
    expect(script).toContain("git -C 'repo' checkout --progress --force 'deadbeef'");
    expect(script).toContain(`cp /job-input/${fileKey('conf/x.txt')} 'conf/x.txt'`);
    expect(script).toContain("TZ=UTC touch -m -d '2024-01-02 03:04:05' 'conf/x.txt'");
    const lines = script.split('\n');
    expect(lines.findIndex((l) => l.includes(' fetch '))).toBeLessThan(
      lines.findIndex((l) => l.includes(' checkout ')),
    );
  });

  it('quotes hostile names', () => {
    const j = job({ commit: "x'; rm -rf /; '" });
    const script = setupScript(j, [], { frontendUrl: 'https://x', executorName: 'e' });
    expect(script).toContain(`'x'"'"'; rm -rf /; '"'"''`);
  });
});

describe('multi-pod step job', () => {
  it('mounts the shared PVC with the workspace as subPath', () => {
    const j = job();
    const s = settings({
      KUBERNETES_SINGLE_JOB_POD: 'false',
      EXECUTOR_KUBERNETES_PERSISTENCE_VOLUME_NAME: 'shared',
    });
    const built = buildStepJob({
      stepKeys: ['step.kubernetes.build', 'step.kubernetes.1'],
      spec: {
        key: 'step.kubernetes.build',
        stepIndex: 0,
        image: 'alpine:3',
        scriptPath: '.sourcegraph-executor/42.0.sh',
        dir: 'sub',
        env: ['SECRET_ENV=hunter2'],
      },
      id: id(j),
      settings: s,
      workspaceSubPath: 'workspace-42-abc',
    });
    expect(built.job.metadata.name).toBe('sg-executor-job-batches-42-step.kubernetes.build');
    const pod = built.job.spec.template.spec;
    expect(pod.initContainers).toBeUndefined();
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0]!;
    expect(c.name).toBe('step-kubernetes-build');
    expect(c.command).toEqual(['/bin/sh', '/job/.sourcegraph-executor/42.0.sh']);
    expect(c.workingDir).toBe('/job/sub');
    expect(c.volumeMounts).toEqual([
      { name: 'sg-executor-job-volume', mountPath: '/job', subPath: 'workspace-42-abc' },
    ]);
    expect(pod.volumes).toEqual([
      { name: 'sg-executor-job-volume', persistentVolumeClaim: { claimName: 'shared' } },
    ]);
    expect(JSON.stringify(built.job)).not.toContain('hunter2');
    expect(built.containers['step-kubernetes-build']!.key).toBe('step.kubernetes.build');
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
  });
});

describe('skip logic (nextIndex.sh, run with the real sh)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-skip-'));
  const script = path.join(dir, 'nextIndex.sh');
  writeFileSync(script, NEXT_INDEX_SH);
  const skip = path.join(dir, 'skip.json');
  const run = (key: string) => execFileSync('sh', [script, skip, key]).toString().trim();

  it('skips until the named step, then runs everything again', () => {
    expect(run('step.kubernetes.a')).toBe('');
    writeFileSync(skip, '{"nextStep": "c"}');
    expect(run('step.kubernetes.b')).toBe('skip');
    expect(run('step.kubernetes.bc')).toBe('skip');
    expect(run('step.kubernetes.c')).toBe('');
    expect(run('step.kubernetes.d')).toBe('');
    writeFileSync(skip, '{"nextStep":""}');
    expect(run('step.kubernetes.e')).toBe('');
    rmSync(dir, { recursive: true, force: true });
  });

  it('wraps each step container in the skip check', () => {
    const c = single().built.job.spec.template.spec.initContainers![1]!;
    expect(c.command![2]).toBe(
      `if [ "$(/bin/sh /job/nextIndex.sh /job/skip.json 'step.kubernetes.build')" != "skip" ]; then /bin/sh /job/.sourcegraph-executor/42.0_github.com_o_r@deadbeef.sh; fi`,
    );
  });
});

describe('classifyPod', () => {
  const pod = (status: Pod['status'], meta: Pod['metadata'] = { name: 'p' }): Pod => ({
    metadata: meta,
    status,
  });
  it('names image pull failures, unschedulable, eviction and deadline', () => {
    expect(
      classifyPod(
        pod({
          phase: 'Pending',
          initContainerStatuses: [
            {
              name: 'step-x',
              image: 'nope:1',
              state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling' } },
            },
          ],
        }),
        1200,
      ),
    ).toEqual({
      kind: 'infra-failed',
      reason: 'ImagePullBackOff',
      message: 'image pull failed for container step-x (image nope:1): ImagePullBackOff: Back-off pulling',
    });
    expect(
      classifyPod(
        pod({
          phase: 'Pending',
          conditions: [
            { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes' },
          ],
        }),
        1200,
      ),
    ).toMatchObject({ kind: 'infra-failed', message: 'pod could not be scheduled: 0/3 nodes' });
    const killed = [{ name: 'main', state: { terminated: { exitCode: 137 } } }];
    expect(
      classifyPod(
        pod({ phase: 'Failed', reason: 'Evicted', message: 'low on disk', containerStatuses: killed }),
        1,
      ),
    ).toMatchObject({
      reason: 'Evicted',
      message: 'pod was evicted: low on disk',
    });
    expect(
      classifyPod(pod({ phase: 'Failed', reason: 'DeadlineExceeded', containerStatuses: killed }), 60),
    ).toMatchObject({
      message: 'pod exceeded its deadline of 60s (KUBERNETES_JOB_DEADLINE)',
    });
  });

  it('reports a step exit code, success, and keeps waiting otherwise', () => {
    expect(
      classifyPod(
        pod({
          phase: 'Failed',
          initContainerStatuses: [{ name: 's', state: { terminated: { exitCode: 3 } } }],
        }),
        1,
      ),
    ).toEqual({ kind: 'step-failed', container: 's', exitCode: 3 });
    expect(classifyPod(pod({ phase: 'Succeeded' }), 1)).toEqual({ kind: 'succeeded' });
    expect(classifyPod(pod({ phase: 'Running' }), 1)).toEqual({ kind: 'running' });
    expect(
      classifyPod(
        pod({
          phase: 'Pending',
          initContainerStatuses: [{ name: 's', state: { waiting: { reason: 'PodInitializing' } } }],
        }),
        1,
      ),
    ).toEqual({
      kind: 'running',
    });
    expect(
      classifyPod(pod({ phase: 'Pending' }, { name: 'p', deletionTimestamp: '2024-01-01T00:00:00Z' }), 1),
    ).toMatchObject({
      message: 'deleted by scheduler: pod could not be scheduled',
    });
  });
});
