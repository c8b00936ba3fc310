/**
 * The Runtime interface: how a job's steps get run. One folder per runtime (docker/, shell/,
 * kubernetes/, vm/), each with a pure `convert.ts` (step -> container config or pod spec) and the I/O
 * around it; what they share is in common.ts. gVisor is the docker runtime with the runsc OCI
 * runtime.
 *
 * Call order for one job (the handler owns it):
 *   ws = await runtime.prepareWorkspace(job, ctx)        // clone + files + scripts (local runtimes)
 *   runner = await runtime.newRunner(job, ws, ctx)
 *   try { await runner.setup(); for (spec of runtime.specs(job, ws)) await runner.run(spec) }
 *   finally { await runner.teardown(); await ws.remove() }
 * A runtime that does everything in one unit (the Kubernetes single pod) returns one spec whose
 * run() streams several log entries; the handler does not need to know.
 */
import type { Job } from '../../protocol/job.js';
import type { JobContext } from '../job-context.js';

export interface Workspace {
  /** Host path of the workspace, or '' for runtimes without a local workspace. */
  readonly path: string;
  /** Script file names (in `.sourcegraph-executor/`), one per docker step, in step order. */
  readonly scriptNames: string[];
  /** Removes the workspace (logs `teardown.fs`) unless keepWorkspaces; idempotent. */
  remove(): Promise<void>;
  /**
   * With a disk quota (EXECUTOR_JOB_DISK_SPACE): called after a step failed and its processes
   * ended; resolves to the reason to add to the step's error when the workspace's disk is full.
   */
  diskFull?(): Promise<string | undefined>;
}

export interface RunSpec {
  /** Log key, e.g. `step.docker.build` or `step.docker.0`. */
  key: string;
  /** Index of the docker step in job.dockerSteps. */
  stepIndex: number;
  image: string;
  /** Script path relative to the workspace, e.g. `.sourcegraph-executor/42.0_repo@sha.sh`. */
  scriptPath: string;
  /** Working directory relative to the workspace root ('' = root). */
  dir: string;
  env: string[];
}

export interface StepOutcome {
  exitCode: number;
  /** The container was killed by the kernel OOM killer. */
  oomKilled?: boolean;
  /** The step failed with its container's writable layer full: the reason to add to its error. */
  layerFull?: string;
}

export interface Runner {
  /** Pulls images, writes docker auth config, etc. */
  setup(): Promise<void>;
  /** Runs one spec to completion, streaming its output to a log entry keyed spec.key. */
  run(spec: RunSpec): Promise<StepOutcome>;
  /** Removes everything the runner created; idempotent and safe after a failed setup. */
  teardown(): Promise<void>;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * A runtime whose workspaces are of type W. The handler passes back to newRunner() and specs() only
 * the workspace this runtime's prepareWorkspace() returned for the same job, so a runtime may rely
 * on its own workspace fields without checking them.
 */
export interface Runtime<W extends Workspace = Workspace> {
  readonly name: 'docker' | 'gvisor' | 'shell' | 'kubernetes' | 'vm';
  /** `step.docker` for docker, gvisor and shell; `step.kubernetes` for kubernetes. */
  readonly stepKeyPrefix: string;
  /**
   * Why this runtime must not start on this host (the executor refuses with the message), or
   * undefined. Only runtimes with preconditions beyond validate()'s advice have it (vm: KVM or
   * EXECUTOR_VM_ALLOW_EMULATION, QEMU, the guest assets).
   */
  startupProblem?(): Promise<string | undefined>;
  /** Checks for `executor validate` and startup (daemon answers, runsc registered, ...). */
  validate(): Promise<CheckResult[]>;
  /** Version string for heartbeat telemetry (`dockerVersion`), '' when not applicable. */
  version(): Promise<string>;
  prepareWorkspace(job: Job, ctx: JobContext): Promise<W>;
  newRunner(job: Job, ws: W, ctx: JobContext): Promise<Runner>;
  specs(job: Job, ws: W): RunSpec[];
  /**
   * Removes containers and workspaces labelled by executors of this host that belong to no running
   * job (`activeJobUids`). Returns what was removed, for logs and metrics.
   */
  cleanupOrphans(activeJobUids: ReadonlySet<string>): Promise<string[]>;
  /**
   * Releases what the runtime keeps between jobs (the docker runtime's idle network holders).
   * Called once, after the last job ended; no job runs after it.
   */
  close?(): Promise<void>;
}
