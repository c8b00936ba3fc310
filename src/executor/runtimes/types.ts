/**
 * The Runtime interface: how a job's steps get run. One folder per runtime (docker/, shell/,
 * kubernetes/, firecracker/), each with a pure `convert.ts` (step -> container config or pod spec)
 * and the I/O around it. gVisor is the docker runtime with the runsc OCI runtime.
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

/** Writes a log entry (redacted on the way out). Returned by JobLogger.entry(). */
export interface LogEntryHandle {
  /**
   * Appends output; `stream` prefixes each line as Sourcegraph does (`stdout: `, `stderr: `). The
   * chunk is read only during the call, so a runtime may pass a view of a buffer it reuses.
   */
  write(stream: 'stdout' | 'stderr', chunk: Buffer | string): void;
  /** Appends raw text (no prefix), for entries such as `setup.fs.extras` and `teardown.fs`. */
  writeRaw(text: string): void;
  /** Ends the entry with an exit code; durationMs is measured by the logger. */
  close(exitCode: number): void;
}

export interface JobLogger {
  /** Opens a log entry with its key and command (argv; redacted before upload). */
  entry(key: string, command: string[] | null): LogEntryHandle;
}

export interface JobContext {
  /** Aborted on cancel, timeout or forced shutdown; the reason is an Error naming which. */
  signal: AbortSignal;
  logger: JobLogger;
  executorName: string;
}

export interface Workspace {
  /** Host path of the workspace, or '' for runtimes without a local workspace. */
  readonly path: string;
  /** Script file names (in `.sourcegraph-executor/`), one per docker step, in step order. */
  readonly scriptNames: string[];
  /** Removes the workspace (logs `teardown.fs`) unless keepWorkspaces; idempotent. */
  remove(): Promise<void>;
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

export interface Runtime {
  readonly name: 'docker' | 'gvisor' | 'shell' | 'kubernetes' | 'firecracker';
  /** `step.docker` for docker, gvisor and shell; `step.kubernetes` for kubernetes. */
  readonly stepKeyPrefix: string;
  /** Checks for `executor validate` and startup (daemon answers, runsc registered, ...). */
  validate(): Promise<CheckResult[]>;
  /** Version string for heartbeat telemetry (`dockerVersion`), '' when not applicable. */
  version(): Promise<string>;
  prepareWorkspace(job: Job, ctx: JobContext): Promise<Workspace>;
  newRunner(job: Job, ws: Workspace, ctx: JobContext): Promise<Runner>;
  specs(job: Job, ws: Workspace): RunSpec[];
  /**
   * Removes containers and workspaces labelled by executors of this host that belong to no running
   * job (`activeJobUids`). Returns what was removed, for logs and metrics.
   */
  cleanupOrphans(activeJobUids: ReadonlySet<string>): Promise<string[]>;
}
