/**
 * The runner of one Kubernetes job. setup() creates the job's Secret (token, step env values and,
 * for a single pod, files and scripts) and, with KUBERNETES_JOB_VOLUME_TYPE=pvc, its PVC; run()
 * creates a Job (the single pod, or one per step in multi-pod mode) and follows it. teardown()
 * deletes what was created (`teardown.kubernetes.job`, exit 1 when a deletion failed) unless
 * KUBERNETES_KEEP_JOBS; it is idempotent, safe after a failed setup, and retried after a failure.
 */
import path from 'node:path';
import type { KubernetesConfig } from '../../../config/executor.js';
import { errorMessage } from '../../../lib/errors.js';
import type { Job } from '../../../protocol/job.js';
import type { JobContext } from '../../job-context.js';
import type { Runner, RunSpec, StepOutcome, Workspace } from '../types.js';
import {
  type BuiltJob,
  buildPvc,
  buildSecret,
  buildSingleJob,
  buildStepJob,
  jobStepKeys,
} from './convert.js';
import type { PodResult } from './follow-job.js';
import type { KubeClient } from './kube-client.js';
import type { KubeObject } from './kube-types.js';
import { type JobIdentity, jobBaseName, pvcName, secretName } from './naming.js';
import type { InputFile } from './setup-script.js';

/**
 * Single pod: no local workspace, only the job's input files. Multi-pod: a workspace on the shared
 * PVC (EXECUTOR_WORKSPACE_ROOT is where the executor's own pod mounts it).
 */
export interface KubeWorkspace extends Workspace {
  /** Single pod: the resolved job files (downloaded here, inlined into the Secret). */
  readonly inputs?: InputFile[];
}

export interface KubeRunnerDeps {
  client: KubeClient;
  settings: KubernetesConfig;
  id: JobIdentity;
  frontendUrl: string;
  /** Multi-pod: where the shared PVC is mounted in the executor's own pod. */
  workspaceRoot: string;
  /** Follows a created Job to its end (followJob with the runtime's settings). */
  follow(built: BuiltJob, ctx: JobContext): Promise<PodResult>;
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

export function createKubeRunner(job: Job, ws: KubeWorkspace, ctx: JobContext, deps: KubeRunnerDeps): Runner {
  const { client, settings: s, id } = deps;
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
          frontendUrl: deps.frontendUrl,
          files: ws.inputs ?? [],
        });
        await createJob(built);
        const r = await deps.follow(built, ctx);
        if (r.kind === 'step-failed') throw new StepFailedError(r.key, r.exitCode);
        return { exitCode: 0 };
      }
      const built = buildStepJob({
        spec,
        stepKeys: jobStepKeys(job),
        id,
        settings: s,
        workspaceSubPath: path.relative(deps.workspaceRoot, ws.path),
      });
      await createJob(built);
      const r = await deps.follow(built, ctx);
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
