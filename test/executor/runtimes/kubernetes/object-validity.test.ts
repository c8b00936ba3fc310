/**
 * Every object the Kubernetes runtime builds, checked against the upstream OpenAPI schemas and the
 * API server's naming rules (kubernetes-validity.ts): for ordinary jobs, for every setting that
 * changes an object's shape, in single-pod (emptyDir and PVC) and multi-pod mode, and for random
 * step keys, queue and executor names.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KUBERNETES_ENV } from '../../../../src/config/executor/kubernetes-config.js';
import type { KubernetesConfig } from '../../../../src/config/executor.js';
import { loadExecutorConfig } from '../../../../src/config/executor.js';
import { KUBERNETES_STEP_PREFIX, specsFromSteps } from '../../../../src/executor/runtimes/common.js';
import {
  type BuiltJob,
  buildPvc,
  buildSecret,
  buildSingleJob,
  buildStepJob,
  jobStepKeys,
} from '../../../../src/executor/runtimes/kubernetes/convert.js';
import { type JobIdentity, jobBaseName } from '../../../../src/executor/runtimes/kubernetes/naming.js';
import { inputFiles } from '../../../../src/executor/runtimes/kubernetes/setup-script.js';
import { scriptName } from '../../../../src/executor/workspace/files.js';
import type { Job } from '../../../../src/protocol/job.js';
import { makeJob } from '../recording-logger.js';
import { type AnyObject, objectsProblems } from './kubernetes-validity.js';

const BASE_ENV = {
  EXECUTOR_FRONTEND_URL: 'https://sg.example.com',
  EXECUTOR_FRONTEND_PASSWORD: 'pw',
  EXECUTOR_QUEUE_NAME: 'batches',
};

function settings(env: Record<string, string> = {}): KubernetesConfig {
  const r = loadExecutorConfig({ ...BASE_ENV, ...env });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config.kubernetes;
}

function problemsOf(env: Record<string, string>): string[] {
  const r = loadExecutorConfig({ ...BASE_ENV, ...env });
  return r.ok ? [] : r.problems;
}

function ordinaryJob(keys: Array<string | undefined> = ['build', undefined]): Job {
  return makeJob(
    keys.map((key, i) => ({
      image: i % 2 ? 'busybox' : 'alpine:3',
      key,
      env: ['SECRET_ENV=hunter2', 'PLAIN=a=b', 'EMPTY'],
      dir: i % 2 ? '' : 'sub/dir',
    })),
    {
      id: 42,
      token: 'job-token-abc123',
      repositoryName: 'github.com/o/r',
      commit: 'deadbeef',
      files: {
        'conf/x.txt': { content: Buffer.from('file content'), modifiedAt: '2024-01-02T03:04:05Z' },
      },
    },
  );
}

const identity = (job: Job, over: Partial<JobIdentity> = {}): JobIdentity => ({
  executorName: 'exec-1',
  hostname: 'host-a',
  job,
  queueName: 'batches',
  ...over,
});

interface Built {
  objects: Array<Record<string, unknown>>;
  jobs: BuiltJob[];
}

/** What the runner creates for a job: the Secret, the PVC if any, and the Job (or one per step). */
function objectsFor(job: Job, s: KubernetesConfig, id = identity(job)): Built {
  const base = jobBaseName(id);
  if (s.singleJobPod) {
    const files = inputFiles(job, new Map());
    const built = buildSingleJob({ job, id, settings: s, frontendUrl: 'https://sg.example.com/', files });
    return {
      objects: [
        buildSecret(job, base, id, files, s.namespace),
        ...(s.jobVolumeType === 'pvc' ? [buildPvc(base, id, s)] : []),
        built.job as unknown as Record<string, unknown>,
      ],
      jobs: [built],
    };
  }
  const ws = {
    path: `/workspaces/workspace-${job.id}`,
    scriptNames: job.dockerSteps.map((_, i) => scriptName(job, i)),
    remove: async () => {},
  };
  const stepKeys = jobStepKeys(job);
  const jobs = specsFromSteps(job, ws, KUBERNETES_STEP_PREFIX).map((spec) =>
    buildStepJob({ spec, stepKeys, id, settings: s, workspaceSubPath: `workspace-${job.id}` }),
  );
  return {
    objects: [
      buildSecret(job, base, id, [], s.namespace),
      ...jobs.map((b) => b.job as unknown as Record<string, unknown>),
    ],
    jobs,
  };
}

const jobNames = (b: Built) => b.jobs.map((j) => j.job.metadata.name!);

describe('step keys that repeat or contain dots, underscores or leading dots', () => {
  const keys = ['a-2', 'a', 'a', 'x.y', 'x-y', '_p'];

  it('single pod: distinct, valid container names and one log entry per step', () => {
    const job = ordinaryJob(keys);
    const b = objectsFor(job, settings());
    expect(objectsProblems(b.objects)).toEqual([]);
    const { containers, job: kjob } = b.jobs[0]!;
    const names = kjob.spec.template.spec.initContainers!.map((c) => c.name);
    expect(new Set(names).size).toBe(keys.length + 1);
    // setup.workspace, main and one per step.
    expect(Object.keys(containers)).toHaveLength(keys.length + 2);
    const stepEntries = Object.values(containers).filter((c) => c.key.startsWith('step.'));
    expect(stepEntries.map((c) => c.key)).toEqual(keys.map((k) => `step.kubernetes.${k}`));
    // Readable where the key is a DNS label already.
    expect(names).toContain('step-kubernetes-a-2');
    expect(names).toContain('step-kubernetes-a');
  });

  it('multi-pod: valid, distinct Job names for keys with `_`, `.`, `..` and repeats', () => {
    const multiKeys = ['_private', '.hidden', 'a..b', 'kubernetes.', 'a', 'a', 'build'];
    const job = ordinaryJob(multiKeys);
    const b = objectsFor(job, settings({ KUBERNETES_SINGLE_JOB_POD: 'false' }));
    expect(objectsProblems(b.objects)).toEqual([]);
    const names = jobNames(b);
    expect(new Set(names).size).toBe(multiKeys.length);
    expect(names.at(-1)).toBe('sg-executor-job-batches-42-step.kubernetes.build');
    for (const j of b.jobs) expect(Object.keys(j.containers)).toHaveLength(1);
  });

  it('names stay distinct across jobs, queues and attempts', () => {
    const job = ordinaryJob(['a']);
    const ids = [
      identity(job),
      identity({ ...job, queue: 'codeintel' }),
      identity({ ...job, attempt: 2 }),
      identity({ ...job, id: 43 }),
      identity(job, { queueName: 'batches-42' }),
      identity(job, { queueName: 'Batches' }),
      identity(job, { queueName: 'batches_' }),
      identity({ ...job, id: -42 }),
      identity({ ...job, id: 42, queue: 'batches-' }),
      identity({ ...job, id: -42, queue: 'batches-' }),
    ];
    const s = settings({ KUBERNETES_SINGLE_JOB_POD: 'false' });
    const bases = ids.map(jobBaseName);
    expect(new Set(bases).size).toBe(ids.length);
    const all = ids.flatMap((id) => jobNames(objectsFor(id.job as Job, s, id)));
    expect(new Set([...all, ...bases]).size).toBe(all.length + bases.length);
  });
});

describe('env names', () => {
  it('a name Kubernetes refuses fails the job, naming the step and the name', () => {
    for (const bad of ['', 'A\u00e9', 'TAB\tX']) {
      const job = makeJob([
        { image: 'alpine:3', env: ['OK=1'] },
        { image: 'alpine:3', env: [`${bad}=v`] },
      ]);
      // The Secret is created first: the job fails before anything exists in the cluster.
      expect(() => buildSecret(job, 'b', identity(job), [], 'default')).toThrow(
        `docker step 1: env name ${JSON.stringify(bad)} is not valid in Kubernetes`,
      );
      for (const s of [settings(), settings({ KUBERNETES_SINGLE_JOB_POD: 'false' })]) {
        expect(() => objectsFor(job, s)).toThrow(
          `docker step 1: env name ${JSON.stringify(bad)} is not valid in Kubernetes`,
        );
      }
    }
    const ok = makeJob([{ image: 'alpine:3', env: ['my.var-1=x', '_X', 'A_B=c=d'] }]);
    expect(objectsProblems(objectsFor(ok, settings()).objects)).toEqual([]);
  });
});

describe('a limit without a request', () => {
  it('the request defaults to the limit', () => {
    const s = settings({ EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '4Gi' });
    expect(s.resourceRequestMemory).toBe('4Gi');
    const b = objectsFor(ordinaryJob(), s);
    expect(objectsProblems(b.objects)).toEqual([]);
    const c = b.jobs[0]!.job.spec.template.spec.containers[0]!;
    expect(c.resources).toEqual({ limits: { memory: '4Gi' }, requests: { memory: '4Gi' } });
    const cpu = settings({ EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: '1500m' });
    expect(cpu.resourceRequestCpu).toBe('1500m');
    expect(settings().resourceRequestMemory).toBe('12Gi');
    expect(settings({ EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '1Gi' }).resourceRequestMemory).toBe(
      '1Gi',
    );
  });

  it('a request above its limit is refused at start, with one message naming both', () => {
    const p = problemsOf({ EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '16Gi' });
    expect(p).toEqual([
      'EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: the memory request 16Gi exceeds the memory limit EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY=12Gi (the default); Kubernetes refuses a pod whose request is above its limit: raise the limit or lower the request (unset, the request equals the limit)',
    ]);
    const cpu = problemsOf({
      EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: '1.5',
      EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: '1200m',
    });
    expect(cpu).toHaveLength(1);
    expect(cpu[0]).toMatch(
      /^EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: the CPU request 1\.5 exceeds the CPU limit EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU=1200m;/,
    );
    // Equal values in different units are fine; a bigger one in smaller units is not.
    expect(
      problemsOf({
        EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '1024Mi',
        EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '1Gi',
      }),
    ).toEqual([]);
    expect(
      problemsOf({
        EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '1025Mi',
        EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '1Gi',
      }),
    ).toHaveLength(1);
    expect(
      problemsOf({
        EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '1G',
        EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '1Gi',
      }),
    ).toEqual([]);
    // A CPU request with no limit has nothing to exceed.
    expect(problemsOf({ EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: '64' })).toEqual([]);
  });
});

describe('quantities', () => {
  const VARS = [
    'EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU',
    'EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU',
    'EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY',
    'EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY',
    'KUBERNETES_JOB_VOLUME_SIZE',
  ];

  it.each(VARS)('%s refuses what is not a Kubernetes quantity, naming the variable and examples', (v) => {
    for (const bad of ['5GB', '5K', '5 Gi', 'Gi', '1.2.3', '-1', '0', 'e3', '5gi']) {
      const p = problemsOf({ [v]: bad });
      expect(p, `${v}=${bad}`).toEqual([
        `${v}: must be a positive Kubernetes quantity such as "5Gi", "512Mi", "5G", "500m" or "2" (a number with an optional suffix: Ki, Mi, Gi, Ti, Pi, Ei; k, M, G, T, P, E; m for thousandths), got ${JSON.stringify(bad)}`,
      ]);
    }
  });

  it('accepts the grammar the API server parses', () => {
    for (const good of ['5G', '5Gi', '500m', '1.5', '.5', '1e3', '1E+3', '64Ki', '2k', '3Ei']) {
      expect(
        problemsOf({ KUBERNETES_JOB_VOLUME_SIZE: good, EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: good }),
        good,
      ).toEqual([]);
    }
  });
});

/**
 * One variant per setting that changes an object's shape. `coverage` below holds the matrix to the
 * catalogue: a new KUBERNETES_* variable fails it until it is added here or to NO_SHAPE.
 */
const MATRIX: Record<string, Record<string, string>> = {
  defaults: {},
  namespace: { EXECUTOR_KUBERNETES_NAMESPACE: 'jobs-ns' },
  nodeName: { EXECUTOR_KUBERNETES_NODE_NAME: 'node-7.example.com' },
  nodeSelector: { EXECUTOR_KUBERNETES_NODE_SELECTOR: 'disktype=ssd,topology.kubernetes.io/zone=eu-1a' },
  nodeAffinity: {
    EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_EXPRESSIONS:
      '[{"key":"k","operator":"In","values":["v"]}]',
    EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_FIELDS:
      '[{"key":"metadata.name","operator":"In","values":["n"]}]',
  },
  nodeAffinityFieldsOnly: {
    EXECUTOR_KUBERNETES_NODE_REQUIRED_AFFINITY_MATCH_FIELDS:
      '[{"key":"metadata.name","operator":"NotIn","values":["n"]}]',
  },
  podAffinity: {
    EXECUTOR_KUBERNETES_POD_AFFINITY: '[{"topologyKey":"zone","labelSelector":{"matchLabels":{"a":"b"}}}]',
    EXECUTOR_KUBERNETES_POD_ANTI_AFFINITY: '[{"topologyKey":"kubernetes.io/hostname"}]',
  },
  tolerations: {
    EXECUTOR_KUBERNETES_NODE_TOLERATIONS: '[{"key":"gpu","operator":"Exists","effect":"NoSchedule"}]',
  },
  persistenceVolume: { EXECUTOR_KUBERNETES_PERSISTENCE_VOLUME_NAME: 'shared-workspaces' },
  memoryLimitOnly: { EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '4Gi' },
  memoryRequestOnly: { EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '1G' },
  cpuLimitOnly: { EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: '2' },
  cpuRequestOnly: { EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: '250m' },
  allResources: {
    EXECUTOR_KUBERNETES_RESOURCE_LIMIT_CPU: '2',
    EXECUTOR_KUBERNETES_RESOURCE_REQUEST_CPU: '500m',
    EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '4096Mi',
    EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '4Gi',
  },
  runtimeClass: { EXECUTOR_KUBERNETES_RUNTIME_CLASS: 'gvisor' },
  deadline: { KUBERNETES_JOB_DEADLINE: '60' },
  runAs: {
    KUBERNETES_RUN_AS_USER: '1001',
    KUBERNETES_RUN_AS_GROUP: '1002',
    KUBERNETES_FS_GROUP: '-1',
    KUBERNETES_RUN_AS_NON_ROOT: 'false',
  },
  rootAllowedNoFsGroup: { KUBERNETES_RUN_AS_NON_ROOT: 'false', KUBERNETES_FS_GROUP: '0' },
  volumeSize: { KUBERNETES_JOB_VOLUME_SIZE: '500M' },
  additionalVolumes: {
    KUBERNETES_ADDITIONAL_JOB_VOLUMES:
      '[{"name":"cache","emptyDir":{}},{"name":"certs","secret":{"secretName":"ca"}}]',
    KUBERNETES_ADDITIONAL_JOB_VOLUME_MOUNTS:
      '[{"name":"cache","mountPath":"/cache"},{"name":"certs","mountPath":"/certs","readOnly":true}]',
  },
  stepImage: { KUBERNETES_SINGLE_JOB_STEP_IMAGE: 'registry.example.com/helper:1.2' },
  gitCaCert: { KUBERNETES_GIT_CA_CERT: '/certs/ca.pem' },
  annotations: {
    KUBERNETES_JOB_ANNOTATIONS: '{"team":"a","example.com/owner":"batch changes"}',
    KUBERNETES_JOB_POD_ANNOTATIONS: '{"sidecar.istio.io/inject":"false"}',
  },
  imagePullSecrets: { KUBERNETES_IMAGE_PULL_SECRETS: 'reg1,reg2' },
};
MATRIX.everything = Object.assign({}, ...Object.values(MATRIX));

/** Variables that change no object (read elsewhere), or select the mode the matrix runs in. */
const NO_SHAPE = [
  'EXECUTOR_KUBERNETES_CONFIG_PATH',
  'KUBERNETES_KEEP_JOBS',
  'KUBERNETES_SINGLE_JOB_POD',
  'KUBERNETES_JOB_VOLUME_TYPE',
];

const MODES: Record<string, Record<string, string>> = {
  'single pod, emptyDir': {},
  'single pod, PVC': { KUBERNETES_JOB_VOLUME_TYPE: 'pvc' },
  'multi-pod': { KUBERNETES_SINGLE_JOB_POD: 'false' },
};

describe('every object is valid for every setting that changes its shape', () => {
  it('the matrix covers every KUBERNETES_* variable', () => {
    const covered = new Set([...Object.values(MATRIX).flatMap((e) => Object.keys(e)), ...NO_SHAPE]);
    expect(Object.keys(KUBERNETES_ENV).filter((v) => !covered.has(v))).toEqual([]);
  });

  for (const [mode, modeEnv] of Object.entries(MODES)) {
    it.each(Object.keys(MATRIX))(`${mode}: %s`, (name) => {
      const s = settings({ ...MATRIX[name], ...modeEnv });
      for (const job of [ordinaryJob(), ordinaryJob([]), ordinaryJob(['x', 'y', 'z'])]) {
        const b = objectsFor(job, s);
        expect(objectsProblems(b.objects)).toEqual([]);
        const kinds = b.objects.map((o) => o.kind);
        expect(kinds.filter((k) => k === 'PersistentVolumeClaim')).toHaveLength(
          mode === 'single pod, PVC' ? 1 : 0,
        );
        expect(kinds.filter((k) => k === 'Job')).toHaveLength(s.singleJobPod ? 1 : job.dockerSteps.length);
      }
    });
  }

  it('the check itself refuses what an API server refuses', () => {
    const b = objectsFor(ordinaryJob(), settings());
    const job = structuredClone(b.objects.at(-1)) as AnyObject;
    const pod = job.spec.template.spec;
    pod.initContainers[2].name = pod.initContainers[1].name;
    pod.containers[0].resources = { limits: { memory: '1Gi' }, requests: { memory: '2Gi' } };
    pod.initContainers[0].volumeMounts.push({ name: 'nope', mountPath: '/nope' });
    pod.initContainers[1].env[0].valueFrom.secretKeyRef.key = 'env-9-9';
    job.metadata.labels['executor.job'] = '-bad';
    job.spec.template.spec.volumes[0].emptyDir.sizeLimit = '5GB';
    const problems = objectsProblems([b.objects[0]!, job]).join('\n');
    expect(problems).toMatch(/initContainers\[2\]\.name: Duplicate value/);
    expect(problems).toMatch(/containers\[0\]\.resources\.requests\[memory\]: Invalid value: "2Gi"/);
    expect(problems).toMatch(/volumeMounts\[\d+\]\.name: Not found: "nope"/);
    expect(problems).toMatch(/key env-9-9 is not in Secret/);
    expect(problems).toMatch(/labels\[executor\.job\]: "-bad" is not a label value/);
    expect(problems).toMatch(/schema: .*sizeLimit must match format "quantity"/);
    const badName = { ...job, metadata: { ...job.metadata, name: 'x.-y' } };
    expect(objectsProblems([badName]).join('\n')).toMatch(/metadata\.name is not a DNS-1123 subdomain/);
  });
});

describe('settings that would make objects the API server refuses', () => {
  it.each([
    ['EXECUTOR_KUBERNETES_NODE_NAME', 'Node_7', /must be a Kubernetes object name/],
    ['EXECUTOR_KUBERNETES_PERSISTENCE_VOLUME_NAME', 'my pvc', /must be a Kubernetes object name/],
    ['EXECUTOR_KUBERNETES_RUNTIME_CLASS', 'gVisor', /must be a Kubernetes object name/],
    ['KUBERNETES_IMAGE_PULL_SECRETS', 'reg1,Reg_2', /must be Secret names/],
    ['EXECUTOR_KUBERNETES_NODE_SELECTOR', 'disk type=ssd', /keys must be label keys/],
    ['EXECUTOR_KUBERNETES_NODE_SELECTOR', 'disk=fast ssd', /values label values/],
    ['KUBERNETES_JOB_ANNOTATIONS', '{"bad key":"x"}', /keys must be annotation keys/],
    ['KUBERNETES_JOB_POD_ANNOTATIONS', '{"a/b/c":"x"}', /keys must be annotation keys/],
    [
      'KUBERNETES_ADDITIONAL_JOB_VOLUMES',
      '[{"name":"Cache","emptyDir":{}}]',
      /each with a name that is a DNS label/,
    ],
  ])('%s=%s is refused at start', (name, value, message) => {
    const p = problemsOf({ [name]: value });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(new RegExp(`^${name}: .*${message.source}`));
  });

  it('invalid JSON is reported once, as invalid JSON', () => {
    expect(problemsOf({ KUBERNETES_JOB_ANNOTATIONS: '{' })).toEqual([
      expect.stringMatching(/^KUBERNETES_JOB_ANNOTATIONS: is not valid JSON/),
    ]);
  });
});

describe('random step keys, queue and executor names (property)', () => {
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 90 }),
    fc.string({ unit: fc.constantFrom('a', 'A', '-', '_', '.', '0', ' '), maxLength: 70 }),
    fc.constantFrom('a', 'a-2', '_private', '.hidden', 'a..b', '0123456789', 'x-0123456789', ''),
  );
  const scenario = fc.record({
    pool: fc.array(text, { minLength: 1, maxLength: 5 }),
    picks: fc.array(fc.nat(), { minLength: 0, maxLength: 8 }),
    queue: fc.option(text, { nil: undefined }),
    queueName: text,
    executorName: text,
    hostname: text,
    id: fc.integer({ min: -1000, max: 2 ** 40 }),
    attempt: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  });

  it('every object is valid and all names are distinct, in both modes', () => {
    const single = settings({ KUBERNETES_JOB_VOLUME_TYPE: 'pvc' });
    const multi = settings({ KUBERNETES_SINGLE_JOB_POD: 'false' });
    fc.assert(
      fc.property(scenario, (sc) => {
        const keys = sc.picks.map((p) => sc.pool[p % sc.pool.length]!);
        const job = makeJob(
          keys.map((key) => ({ image: 'alpine:3', key, env: ['A=1'] })),
          { id: sc.id, queue: sc.queue, attempt: sc.attempt },
        );
        const id = identity(job, {
          queueName: sc.queueName,
          executorName: sc.executorName,
          hostname: sc.hostname,
        });
        const s1 = objectsFor(job, single, id);
        expect(objectsProblems(s1.objects)).toEqual([]);
        expect(Object.keys(s1.jobs[0]!.containers)).toHaveLength(keys.length + 2);
        const m = objectsFor(job, multi, id);
        expect(objectsProblems(m.objects)).toEqual([]);
        expect(new Set(jobNames(m)).size).toBe(keys.length);
        expect(jobNames(m)).not.toContain(jobNames(s1)[0]);
        // Another job (id + 1) never shares a name with this one.
        const other = { ...job, id: sc.id + 1 };
        const o = objectsFor(other, multi, { ...id, job: other });
        const names = (b: Built) => b.objects.map((x) => (x as { metadata: { name: string } }).metadata.name);
        for (const n of names(o)) expect(names(m)).not.toContain(n);
      }),
      { numRuns: 150 },
    );
  });
});
