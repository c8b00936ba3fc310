/**
 * What the runtimes share: the log keys of steps, run specs made from a job's docker steps, and the
 * preparation of a workspace on this host (docker, gvisor, shell and multi-pod kubernetes).
 */

import type { Job } from '../../protocol/job.js';
import type { JobContext } from '../job-context.js';
import type { DiskImages } from '../workspace/disk-image.js';
import { type FilesFetcher, SCRIPTS_DIR } from '../workspace/files.js';
import type { GitCache } from '../workspace/git-cache.js';
import { prepareLocalWorkspace } from '../workspace/prepare.js';
import type { RunSpec, Workspace } from './types.js';

/** Log key prefix of steps run by docker, gvisor and shell (Sourcegraph `dockerKey`). */
export const DOCKER_STEP_PREFIX = 'step.docker';
/** Log key prefix of steps run by kubernetes (Sourcegraph `kubernetesKey`). */
export const KUBERNETES_STEP_PREFIX = 'step.kubernetes';

/**
 * `{"nextStep":"<key>"}`, written into the workspace by a `.pre` step: the steps before that one
 * are skipped (Sourcegraph `types/skip.go`).
 */
export const SKIP_FILE = 'skip.json';

/** Key of step i: `<prefix>.<key>`, or `<prefix>.<i>` when the step has no key. */
export function stepKey(prefix: string, key: string | undefined, i: number): string {
  return `${prefix}.${key || i}`;
}

/** One spec per docker step, each running the workspace's script of that step. */
export function specsFromSteps(job: Job, ws: Workspace, prefix: string): RunSpec[] {
  return job.dockerSteps.map((step, i) => {
    const script = ws.scriptNames[i];
    if (script === undefined) throw new Error(`workspace has no script for docker step ${i}`);
    return {
      key: stepKey(prefix, step.key, i),
      stepIndex: i,
      image: step.image,
      scriptPath: `${SCRIPTS_DIR}/${script}`,
      dir: step.dir,
      env: [...step.env],
    };
  });
}

/** The settings of a runtime that prepares workspaces on this host. */
export interface LocalWorkspaceSettings {
  executorName: string;
  /** Parent directory of the workspaces. */
  workspaceRoot: string;
  keepWorkspaces: boolean;
  frontendUrl: string;
  frontendPassword: string;
  /** The clone cache shared by every job slot of this executor; undefined = none. */
  gitCache?: GitCache;
}

/**
 * Clones the repository and writes files and step scripts into a new workspace on this host; with
 * `stepRoot` (Docker user-namespace remapping) the workspace is then given to those host ids; with
 * `disk` it is an image of its quota mounted on the workspace directory (disk-image.ts).
 */
export function prepareHostWorkspace(
  job: Job,
  ctx: JobContext,
  settings: LocalWorkspaceSettings,
  files: FilesFetcher,
  confine: { stepRoot?: { uid: number; gid: number }; disk?: DiskImages } = {},
): Promise<Workspace> {
  return prepareLocalWorkspace(job, ctx, {
    ...confine,
    root: settings.workspaceRoot,
    keepWorkspaces: settings.keepWorkspaces,
    frontendUrl: settings.frontendUrl,
    frontendPassword: settings.frontendPassword,
    executorName: settings.executorName,
    gitCache: settings.gitCache,
    files,
  });
}
