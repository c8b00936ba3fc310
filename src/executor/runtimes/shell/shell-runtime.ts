/**
 * The shell runtime (Sourcegraph `command/shell.go`): each step runs on THIS HOST as
 * `/bin/sh <ws>/.sourcegraph-executor/<script>` in `<ws>/<dir>`, with the step env plus HOME, PATH,
 * USER and DOCKER_HOST. The image is ignored. Jobs are NOT isolated from the host or from each
 * other: for development and trusted jobs only, which is said loudly at startup.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../../../lib/logger.js';
import type { Job } from '../../../protocol/job.js';
import { hostEnv, runCommand } from '../../command.js';
import type { FilesFetcher } from '../../workspace/files.js';
import { removeOrphanWorkspaces } from '../../workspace/janitor.js';
import { prepareLocalWorkspace } from '../../workspace/prepare.js';
import type { CheckResult, JobContext, Runner, RunSpec, Runtime, Workspace } from '../types.js';

const pexec = promisify(execFile);

export const SHELL_RUNTIME_WARNING =
  "EXECUTOR_RUNTIME=shell: job steps run directly on this host with the executor's user and NO isolation; use it only for development or fully trusted jobs";

export interface ShellRuntimeOptions {
  executorName: string;
  workspaceRoot: string;
  keepWorkspaces: boolean;
  frontendUrl: string;
  frontendPassword: string;
  /** Files of a job (GET /.executors/files with the job's credentials). */
  files: (job: Job) => FilesFetcher;
  logger: Logger;
  /** Time between SIGTERM and SIGKILL when a step is aborted. */
  graceMs?: number;
}

/** Splits `K=V` step env entries (first `=`); entries without `=` are set to ''. */
export function envListToRecord(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of env) {
    const i = kv.indexOf('=');
    if (i < 0) out[kv] = '';
    else out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** Key of step i: `step.docker.<key>` or `step.docker.<i>` (Sourcegraph `dockerKey`). */
export function stepKey(prefix: string, key: string | undefined, i: number): string {
  return `${prefix}.${key || i}`;
}

export function createShellRuntime(opts: ShellRuntimeOptions): Runtime {
  opts.logger.warn(SHELL_RUNTIME_WARNING);
  const prefix = 'step.docker';
  return {
    name: 'shell',
    stepKeyPrefix: prefix,
    async validate(): Promise<CheckResult[]> {
      try {
        await pexec('/bin/sh', ['-c', 'exit 0']);
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
      return prepareLocalWorkspace(job, ctx, {
        root: opts.workspaceRoot,
        keepWorkspaces: opts.keepWorkspaces,
        frontendUrl: opts.frontendUrl,
        frontendPassword: opts.frontendPassword,
        executorName: opts.executorName,
        files: opts.files(job),
      });
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
      return job.dockerSteps.map((s, i) => ({
        key: stepKey(prefix, s.key, i),
        stepIndex: i,
        image: s.image,
        scriptPath: path.posix.join('.sourcegraph-executor', ws.scriptNames[i]!),
        dir: s.dir,
        env: s.env,
      }));
    },
    cleanupOrphans(active) {
      return removeOrphanWorkspaces(opts.workspaceRoot, active, opts.executorName);
    },
  };
}
