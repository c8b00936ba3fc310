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
 *
 * The parts: kube-runner.ts (setup, run, teardown), follow-job.ts (watching a Job to its end),
 * orphans.ts (the janitor), convert.ts and its neighbours (the objects, pure).
 */
import os from 'node:os';
import type { KubernetesConfig } from '../../../config/executor.js';
import { errorMessage } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { Job } from '../../../protocol/job.js';
import { recordUid } from '../../../protocol/job.js';
import type { JobContext } from '../../job-context.js';
import type { FilesFetcher } from '../../workspace/files.js';
import { scriptName } from '../../workspace/files.js';
import {
  KUBERNETES_STEP_PREFIX,
  type LocalWorkspaceSettings,
  prepareHostWorkspace,
  specsFromSteps,
} from '../common.js';
import type { CheckResult, Runner, RunSpec, Runtime } from '../types.js';
import { followJob } from './follow-job.js';
import type { KubeClient } from './kube-client.js';
import { createKubeRunner, type KubeWorkspace } from './kube-runner.js';
import { hostSelector, type JobIdentity, labelValue } from './naming.js';
import { removeOrphanObjects } from './orphans.js';
import { inputFiles } from './setup-script.js';

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
      return createKubeRunner(job, ws, ctx, {
        client,
        settings: s,
        id: identity(job),
        frontendUrl: opts.frontendUrl,
        workspaceRoot: opts.workspaceRoot,
        follow: (built, jobCtx) =>
          followJob(built, jobCtx, {
            client,
            log,
            drainMs,
            maxWatchFailures,
            jobDeadlineSeconds: s.jobDeadlineSeconds,
          }),
      });
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

    cleanupOrphans(activeJobUids: ReadonlySet<string>): Promise<string[]> {
      return removeOrphanObjects(activeJobUids, { client, executorName: opts.executorName, hostname, log });
    },
  };
}

/** The uid label value of a job, as cleanupOrphans compares it. */
export function jobUidLabel(job: Pick<Job, 'id' | 'queue'>): string {
  return labelValue(recordUid(job));
}
