/**
 * The Kubernetes runtime (Sourcegraph `runner/kubernetes.go`, `command/kubernetes.go`).
 *
 * Single job pod (the default): no local workspace; setup() creates the job's Secret (token, step
 * env values, files and scripts) and, with KUBERNETES_JOB_VOLUME_TYPE=pvc, a PVC; specs() returns
 * ONE spec whose run() creates the Job and follows its pod: a log entry per container as it starts
 * (`setup.workspace`, `step.kubernetes.<key|i>`, `main`), its log followed while it runs.
 * Multi-pod: the executor prepares the workspace on the shared PVC itself, and each step is a Job.
 *
 * Failure: a container that ends non-zero fails the job with that step's exit code; image pull
 * errors, an unschedulable pod, eviction and the pod deadline fail it at once, saying which.
 * Cancel: the job's AbortSignal deletes the Job (background propagation) and its pods (grace 0)
 * at once. teardown() deletes Jobs, Secret and PVC (`teardown.kubernetes.job`, exit 1 when a
 * deletion failed) unless keepJobs; it is idempotent and safe after a failed setup.
 */
import os from 'node:os';
import path from 'node:path';
import type { KubernetesConfig } from '../../../config/executor.js';
import { errorMessage } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { Job } from '../../../protocol/job.js';
import { recordUid } from '../../../protocol/job.js';
import type { JobContext, LogEntryHandle } from '../../job-context.js';
import type { FilesFetcher } from '../../workspace/files.js';
import { scriptName } from '../../workspace/files.js';
import {
  KUBERNETES_STEP_PREFIX,
  type LocalWorkspaceSettings,
  prepareHostWorkspace,
  specsFromSteps,
} from '../common.js';
import type { CheckResult, Runner, RunSpec, Runtime, StepOutcome, Workspace } from '../types.js';
import { type BuiltJob, buildPvc, buildSecret, buildSingleJob, buildStepJob } from './convert.js';
import type { KubeClient, WatchEvent } from './kube-client.js';
import type { KubeObject, Pod } from './kube-types.js';
import {
  hostSelector,
  JOB_NAME_LABEL,
  type JobIdentity,
  jobBaseName,
  LABELS,
  labelValue,
  pvcName,
  secretName,
} from './naming.js';
import { classifyPod, startedContainers } from './pod-status.js';
import { type InputFile, inputFiles } from './setup-script.js';

export interface KubernetesRuntimeOptions extends LocalWorkspaceSettings {
  client: KubeClient;
  settings: KubernetesConfig;
  /** For the `executor.host` label; default os.hostname(). */
  hostname?: string;
  /** EXECUTOR_QUEUE_NAME (single-queue mode), part of object names. */
  queueName?: string;
  files: (job: Job) => FilesFetcher;
  logger: Logger;
  /** After a container ends, how long its followed log may take to deliver its last bytes. */
  logDrainMs?: number;
  /** Consecutive failed watch (re)connections before the job errors. */
  maxWatchFailures?: number;
}

/** The single spec of a single-pod job; it is never a log key itself. */
export const SINGLE_POD_SPEC_KEY = 'kubernetes.job';

/**
 * Single pod: no local workspace, only the job's input files. Multi-pod: a workspace on the shared
 * PVC (EXECUTOR_WORKSPACE_ROOT is where the executor's own pod mounts it).
 */
export interface KubeWorkspace extends Workspace {
  /** Single pod: the resolved job files (downloaded here, inlined into the Secret). */
  readonly inputs?: InputFile[];
}

class StepFailedError extends Error {
  constructor(
    readonly key: string,
    readonly exitCode: number,
  ) {
    super(`running command "${key}": command failed with exit code ${exitCode}`);
    this.name = 'StepFailedError';
  }
}

type PodResult = { kind: 'ok' } | { kind: 'step-failed'; key: string; exitCode: number };

export function createKubernetesRuntime(opts: KubernetesRuntimeOptions): Runtime<KubeWorkspace> {
  const { client, settings: s } = opts;
  const hostname = opts.hostname ?? os.hostname();
  const log = opts.logger.child({ runtime: 'kubernetes' });
  const drainMs = opts.logDrainMs ?? 10_000;
  const maxWatchFailures = opts.maxWatchFailures ?? 5;

  const identity = (job: Job): JobIdentity => ({
    executorName: opts.executorName,
    hostname,
    job,
    queueName: opts.queueName,
  });

  /**
   * Follows the pods of one Job until it succeeds or fails, opening a log entry per container as
   * it starts and streaming its log while it runs. Resolves with the outcome; rejects with an
   * infrastructure failure or the abort reason.
   */
  async function followJob(built: BuiltJob, ctx: JobContext): Promise<PodResult> {
    const jobName = built.job.metadata.name!;
    const local = new AbortController();
    const stopLocal = () => local.abort(ctx.signal.reason);
    ctx.signal.addEventListener('abort', stopLocal, { once: true });

    interface Tracked {
      entry: LogEntryHandle;
      key: string;
      done: Promise<void>;
      exitCode?: number;
      closed: boolean;
    }
    const tracked = new Map<string, Tracked>();
    const pods = new Set<string>();
    let settle: (r: PodResult | Error) => void = () => {};
    const finished = new Promise<PodResult | Error>((r) => {
      settle = r;
    });
    let over = false;
    let resourceVersion = '';

    const finish = (r: PodResult | Error) => {
      if (over) return;
      over = true;
      settle(r);
    };

    const track = (pod: string, container: string) => {
      const id = `${pod}/${container}`;
      let t = tracked.get(id);
      if (t) return t;
      const known = built.containers[container];
      const key = known?.key ?? container.replaceAll('-', '.');
      const entry = ctx.logger.entry(key, known?.command ?? null);
      const done = client
        .followLog(pod, container, (b) => entry.write('stdout', b), local.signal)
        .catch((err) => {
          if (!local.signal.aborted)
            entry.writeRaw(`error: cannot read the container log: ${errorMessage(err)}\n`);
        });
      t = { entry, key, done, closed: false };
      tracked.set(id, t);
      return t;
    };

    const onPod = (pod: Pod) => {
      const podName = pod.metadata.name ?? '';
      pods.add(podName);
      for (const c of startedContainers(pod)) {
        const t = track(podName, c.name);
        if (c.exitCode !== undefined && t.exitCode === undefined) t.exitCode = c.exitCode;
      }
      const v = classifyPod(pod, s.jobDeadlineSeconds);
      if (v.kind === 'succeeded') finish({ kind: 'ok' });
      else if (v.kind === 'step-failed') {
        const key = built.containers[v.container]?.key ?? v.container.replaceAll('-', '.');
        finish({ kind: 'step-failed', key, exitCode: v.exitCode });
      } else if (v.kind === 'infra-failed') finish(new Error(`job ${jobName} failed: ${v.message}`));
    };

    const onEvent = (ev: WatchEvent) => {
      if (over) return;
      const rv = ev.object?.metadata?.resourceVersion;
      if (rv) resourceVersion = rv;
      if (ev.type === 'ERROR') {
        // 410 Gone: the resourceVersion is too old; watch again from now.
        log.warn('pod watch error event', { job: jobName, status: ev.object as unknown });
        resourceVersion = '';
        return;
      }
      if (ev.type === 'BOOKMARK') return;
      if (ev.type === 'DELETED') {
        finish(
          new Error(`job ${jobName} failed: pod ${ev.object.metadata.name} was deleted before it finished`),
        );
        return;
      }
      onPod(ev.object);
    };

    const watchLoop = (async () => {
      let failures = 0;
      while (!over && !local.signal.aborted) {
        try {
          await client.watchPods(`${JOB_NAME_LABEL}=${jobName}`, resourceVersion, onEvent, local.signal);
          failures = 0;
        } catch (err) {
          if (over || local.signal.aborted) return;
          failures++;
          log.warn('pod watch failed', { job: jobName, failures, err });
          if (failures >= maxWatchFailures) {
            finish(
              new Error(`job ${jobName}: watching its pods failed ${failures} times: ${errorMessage(err)}`),
            );
            return;
          }
          await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** failures, 5_000)));
        }
      }
    })();

    const aborted = new Promise<'aborted'>((resolve) => {
      if (ctx.signal.aborted) resolve('aborted');
      ctx.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
    });

    try {
      const result = await Promise.race([finished, aborted]);
      if (result === 'aborted') {
        over = true;
        local.abort(ctx.signal.reason);
        // Kill at once: the Job (so no new pod starts) and every pod we saw, without grace.
        await Promise.allSettled([
          client.delete('jobs', jobName, { propagationPolicy: 'Background' }),
          ...[...pods].map((p) => client.delete('pods', p, { gracePeriodSeconds: 0 })),
        ]);
        for (const t of tracked.values()) {
          if (t.closed) continue;
          t.entry.writeRaw(`step cancelled: ${errorMessage(ctx.signal.reason)}\n`);
          t.closed = true;
          t.entry.close(-1);
        }
        throw ctx.signal.reason;
      }
      // Let every followed log deliver its last bytes, then close the entries.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...tracked.values()].map((t) => t.done)),
        new Promise<void>((r) => (timer = setTimeout(r, drainMs))),
      ]);
      clearTimeout(timer);
      local.abort(new Error('job finished'));
      for (const t of tracked.values()) {
        if (t.closed) continue;
        t.closed = true;
        if (t.exitCode === undefined && result instanceof Error)
          t.entry.writeRaw(`error: ${result.message}\n`);
        t.entry.close(t.exitCode ?? -1);
      }
      if (result instanceof Error) throw result;
      return result;
    } finally {
      over = true;
      local.abort(new Error('job finished'));
      ctx.signal.removeEventListener('abort', stopLocal);
      await watchLoop;
    }
  }

  function newRunner(job: Job, ws: KubeWorkspace, ctx: JobContext): Runner {
    const id = identity(job);
    const base = jobBaseName(id);
    const createdJobs = new Set<string>();
    let secretCreated = false;
    let pvcCreated = false;
    let tornDown: Promise<void> | undefined;

    async function createJob(built: BuiltJob): Promise<void> {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await client.create('jobs', built.job as unknown as KubeObject);
      createdJobs.add(built.job.metadata.name!);
    }

    return {
      async setup() {
        const files = s.singleJobPod ? (ws.inputs ?? []) : [];
        const secret = buildSecret(job, base, id, files, s.namespace);
        await client.create('secrets', secret);
        secretCreated = true;
        if (s.singleJobPod && s.jobVolumeType === 'pvc') {
          await client.create('persistentvolumeclaims', buildPvc(base, id, s));
          pvcCreated = true;
        }
      },

      async run(spec: RunSpec): Promise<StepOutcome> {
        if (s.singleJobPod) {
          const built = buildSingleJob({
            job,
            id,
            settings: s,
            frontendUrl: opts.frontendUrl,
            files: ws.inputs ?? [],
          });
          await createJob(built);
          const r = await followJob(built, ctx);
          if (r.kind === 'step-failed') throw new StepFailedError(r.key, r.exitCode);
          return { exitCode: 0 };
        }
        const built = buildStepJob({
          spec,
          id,
          settings: s,
          workspaceSubPath: path.relative(opts.workspaceRoot, ws.path),
        });
        await createJob(built);
        const r = await followJob(built, ctx);
        return { exitCode: r.kind === 'step-failed' ? r.exitCode : 0 };
      },

      teardown() {
        tornDown ??= (async () => {
          if (s.keepJobs) return;
          if (createdJobs.size === 0 && !secretCreated && !pvcCreated) return;
          const entry = ctx.logger.entry('teardown.kubernetes.job', null);
          const failures: string[] = [];
          const del = async (what: string, fn: () => Promise<boolean>) => {
            try {
              await fn();
              entry.writeRaw(`Deleted ${what}\n`);
            } catch (err) {
              failures.push(`${what}: ${errorMessage(err)}`);
              entry.writeRaw(`Failed to delete ${what}: ${errorMessage(err)}\n`);
            }
          };
          for (const name of createdJobs) {
            await del(`job ${name}`, () => client.delete('jobs', name, { propagationPolicy: 'Background' }));
          }
          if (secretCreated)
            await del(`secret ${secretName(base)}`, () => client.delete('secrets', secretName(base)));
          if (pvcCreated) {
            await del(`persistent volume claim ${pvcName(base)}`, () =>
              client.delete('persistentvolumeclaims', pvcName(base)),
            );
          }
          entry.close(failures.length > 0 ? 1 : 0);
          if (failures.length > 0) {
            tornDown = undefined; // a later call retries
            throw new Error(`deleting kubernetes objects: ${failures.join('; ')}`);
          }
        })();
        return tornDown;
      },
    };
  }

  return {
    name: 'kubernetes',
    stepKeyPrefix: KUBERNETES_STEP_PREFIX,

    async validate(): Promise<CheckResult[]> {
      const checks: CheckResult[] = [];
      try {
        const v = await client.serverVersion();
        checks.push({ name: 'kubernetes API', ok: true, detail: `answers; version ${v}` });
      } catch (err) {
        checks.push({
          name: 'kubernetes API',
          ok: false,
          detail: `the Kubernetes API does not answer (${errorMessage(err)}); check EXECUTOR_KUBERNETES_CONFIG_PATH or the in-cluster service account`,
        });
        return checks;
      }
      try {
        await client.list('pods', hostSelector(hostname));
        checks.push({ name: 'kubernetes permissions', ok: true, detail: `can list pods in ${s.namespace}` });
      } catch (err) {
        checks.push({
          name: 'kubernetes permissions',
          ok: false,
          detail: `cannot list pods in namespace ${s.namespace} (${errorMessage(err)}); apply the Role in deploy/kubernetes`,
        });
      }
      return checks;
    },

    async version() {
      return '';
    },

    async prepareWorkspace(job: Job, ctx: JobContext): Promise<KubeWorkspace> {
      if (!s.singleJobPod) return prepareHostWorkspace(job, ctx, opts, opts.files(job));
      const names = job.dockerSteps.map((_, i) => scriptName(job, i));
      // Files from the files store are downloaded here and inlined into the Secret.
      const fetcher = opts.files(job);
      const resolved = new Map<string, Buffer>();
      for (const [rel, f] of Object.entries(job.files)) {
        if ((!f.content || f.content.length === 0) && f.bucket && f.key) {
          if (ctx.signal.aborted) throw ctx.signal.reason;
          resolved.set(rel, await fetcher.get(f.bucket, f.key));
        }
      }
      const inputs = inputFiles(job, resolved);
      return { path: '', scriptNames: names, inputs, remove: async () => {} };
    },

    async newRunner(job: Job, ws: KubeWorkspace, ctx: JobContext): Promise<Runner> {
      return newRunner(job, ws, ctx);
    },

    specs(job: Job, ws: KubeWorkspace): RunSpec[] {
      if (s.singleJobPod) {
        return [
          {
            key: SINGLE_POD_SPEC_KEY,
            stepIndex: -1,
            image: s.singleJobStepImage,
            scriptPath: '',
            dir: '',
            env: [],
          },
        ];
      }
      return specsFromSteps(job, ws, KUBERNETES_STEP_PREFIX);
    },

    async cleanupOrphans(activeJobUids: ReadonlySet<string>): Promise<string[]> {
      const me = labelValue(opts.executorName);
      const active = new Set([...activeJobUids].map(labelValue));
      const removed: string[] = [];
      const kinds = [
        ['jobs', 'job'],
        ['secrets', 'secret'],
        ['persistentvolumeclaims', 'persistent volume claim'],
      ] as const;
      for (const [resource, what] of kinds) {
        let items: KubeObject[];
        try {
          items = (await client.list(resource, hostSelector(hostname))).items;
        } catch (err) {
          log.warn('cannot list kubernetes objects for the janitor', { resource, err });
          continue;
        }
        for (const item of items) {
          const meta = (item.metadata ?? {}) as { name?: string; labels?: Record<string, string> };
          const labels = meta.labels ?? {};
          // Ours and not running a job we know of, or left by an earlier executor on this host.
          const orphan = labels[LABELS.name] !== me || !active.has(labels[LABELS.job] ?? '');
          if (!orphan || !meta.name) continue;
          try {
            await client.delete(
              resource,
              meta.name,
              resource === 'jobs' ? { propagationPolicy: 'Background' } : {},
            );
            removed.push(`${what} ${meta.name}`);
            log.info('removed orphaned kubernetes object', {
              resource,
              name: meta.name,
              job: labels[LABELS.job],
            });
          } catch (err) {
            log.warn('cannot remove orphaned kubernetes object', { resource, name: meta.name, err });
          }
        }
      }
      return removed;
    },
  };
}

/** The uid label value of a job, as cleanupOrphans compares it. */
export function jobUidLabel(job: Pick<Job, 'id' | 'queue'>): string {
  return labelValue(recordUid(job));
}
