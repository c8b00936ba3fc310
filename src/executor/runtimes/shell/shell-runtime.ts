/**
 * The shell runtime (Sourcegraph `command/shell.go`): each step runs on THIS HOST as
 * `/bin/sh <ws>/.sourcegraph-executor/<script>` in `<ws>/<dir>`, with the step env plus HOME, PATH,
 * USER and DOCKER_HOST. The image is ignored. Jobs are NOT isolated from the host or from each
 * other: for development and trusted jobs only, which is said loudly at startup.
 */
import path from 'node:path';
import type { Logger } from '../../../lib/logger.js';
import type { Job } from '../../../protocol/job.js';
import { commandOutput, envListToRecord, hostEnv, runCommand } from '../../command.js';
import type { JobContext } from '../../job-context.js';
import type { FilesFetcher } from '../../workspace/files.js';
import { removeOrphanWorkspaces } from '../../workspace/janitor.js';
import {
  DOCKER_STEP_PREFIX,
  type LocalWorkspaceSettings,
  prepareHostWorkspace,
  specsFromSteps,
} from '../common.js';
import type { CheckResult, Runner, RunSpec, Runtime, Workspace } from '../types.js';

export const SHELL_RUNTIME_WARNING =
  "EXECUTOR_RUNTIME=shell: job steps run directly on this host with the executor's user and NO isolation; use it only for development or fully trusted jobs";

export interface ShellRuntimeOptions extends LocalWorkspaceSettings {
  /** Files of a job (GET /.executors/files with the job's credentials). */
  files: (job: Job) => FilesFetcher;
  logger: Logger;
  /** Time between SIGTERM and SIGKILL when a step is aborted. */
  graceMs?: number;
}

export function createShellRuntime(opts: ShellRuntimeOptions): Runtime {
  opts.logger.warn(SHELL_RUNTIME_WARNING);
  return {
    name: 'shell',
    stepKeyPrefix: DOCKER_STEP_PREFIX,
    async validate(): Promise<CheckResult[]> {
      try {
        await commandOutput(['/bin/sh', '-c', 'exit 0']);
        return [
          { name: 'shell', ok: true, detail: '/bin/sh runs; WARNING: jobs are not isolated from this host' },
        ];
      } catch (e) {
        return [{ name: 'shell', ok: false, detail: `/bin/sh does not run: ${(e as Error).message}` }];
      }
    },
    async version() {
      return '';
    },
    prepareWorkspace(job: Job, ctx: JobContext): Promise<Workspace> {
      return prepareHostWorkspace(job, ctx, opts, opts.files(job));
    },
    async newRunner(_job: Job, ws: Workspace, ctx: JobContext): Promise<Runner> {
      return {
        async setup() {},
        async run(spec: RunSpec) {
          const r = await runCommand({
            key: spec.key,
            argv: ['/bin/sh', path.join(ws.path, spec.scriptPath)],
            cwd: path.join(ws.path, spec.dir),
            env: { ...hostEnv(), ...envListToRecord(spec.env) },
            logger: ctx.logger,
            signal: ctx.signal,
            graceMs: opts.graceMs,
          });
          if (r.error) throw new Error(r.error);
          return { exitCode: r.exitCode };
        },
        async teardown() {},
      };
    },
    specs(job: Job, ws: Workspace): RunSpec[] {
      return specsFromSteps(job, ws, DOCKER_STEP_PREFIX);
    },
    cleanupOrphans(active) {
      return removeOrphanWorkspaces(opts.workspaceRoot, active, opts.executorName);
    },
  };
}
