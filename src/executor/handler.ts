/**
 * Runs one job from start to its mark (Sourcegraph `worker/handler.go` + `workerutil.handle`).
 *
 * One AbortController per job is the only cancel switch: a server cancel, the per-job timeout and a
 * forced shutdown all call `abort(reason)` with a reason class (running-jobs.ts) that decides the
 * final mark:
 *
 * | outcome                                   | mark                                          |
 * |-------------------------------------------|-----------------------------------------------|
 * | every step exited 0, logs flushed         | markComplete                                  |
 * | canceled by the server (heartbeat)        | markFailed "job canceled"                      |
 * | timeout                                   | markErrored "job exceeded maximum execution time of 30m0s[: cause]" |
 * | forced shutdown                           | markErrored "executor shutting down"          |
 * | step failed, setup failed, log flush failed, unknown to the server | markErrored with the error    |
 *
 * Teardown and workspace removal always run; the final log flush must succeed before markComplete
 * (its errors are appended to the job's error). Marks are never sent with the aborted signal.
 */
import { access, constants, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../lib/clock.js';
import { formatDuration } from '../lib/duration.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { type Job, recordUid } from '../protocol/job.js';
import { envListToRecord, hostEnv, runCommand } from './command.js';
import type { JobContext } from './job-context.js';
import { createJobLogger } from './logs/job-logger.js';
import { createRedactor } from './logs/redactor.js';
import type { LogSink } from './logs/types.js';
import type { ExecutorMetrics } from './metrics.js';
import { JobCanceledError, JobTimeoutError, ShutdownError } from './running-jobs.js';
import { SKIP_FILE, stepKey } from './runtimes/common.js';
import type { Runner, Runtime, Workspace } from './runtimes/types.js';

/**
 * Where the final state goes: the queue client (also under `executor exec`, which runs a private
 * server in-process).
 */
export interface JobReporter {
  markComplete(job: Job): Promise<void>;
  markErrored(job: Job, errorMessage: string): Promise<void>;
  markFailed(job: Job, errorMessage: string): Promise<void>;
}

export interface HandlerDeps {
  runtime: Runtime;
  reporter: JobReporter;
  sinkFor(job: Job): LogSink;
  executorName: string;
  frontendPassword: string;
  maximumRuntimePerJobMs: number;
  maxLogBytes: number;
  logger: Logger;
  clock?: Clock;
  metrics?: ExecutorMetrics;
  /** Update period of a log entry; default the logger's (1 s). */
  logSyncIntervalMs?: number;
  /** Resolves to the path of `src` when on PATH (cli steps), else undefined. */
  findSrc?: () => Promise<string | undefined>;
  /** Time between SIGTERM and SIGKILL for host commands (cli steps). */
  graceMs?: number;
}

export interface HandleOptions {
  /** The job's one AbortController (the running-jobs set holds the same one). */
  controller?: AbortController;
}

export type JobOutcome =
  | { mark: 'complete' }
  | { mark: 'errored'; message: string }
  | { mark: 'failed'; message: string };

export async function findOnPath(
  name: string,
  envPath = process.env.PATH ?? '',
): Promise<string | undefined> {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Reads and deletes skip.json; '' when absent or empty. */
async function readSkip(wsPath: string): Promise<string> {
  if (!wsPath) return '';
  const file = path.join(wsPath, SKIP_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return '';
  }
  await rm(file, { force: true });
  try {
    const v = JSON.parse(text) as { nextStep?: unknown };
    return typeof v.nextStep === 'string' ? v.nextStep : '';
  } catch {
    throw new Error(`invalid ${SKIP_FILE}: not JSON`);
  }
}

/**
 * The error of a step that exited non-zero, with the reason when it is known: the OOM killer, a
 * full workspace (asked of the workspace only now, after the step's processes have ended), or its
 * container's full writable layer (the runner's verdict).
 */
async function stepFailure(
  key: string,
  exitCode: number,
  ws: Workspace,
  oomKilled?: boolean,
  layerFull?: string,
): Promise<Error> {
  const full = (await ws.diskFull?.().catch(() => undefined)) ?? layerFull;
  const reason = oomKilled
    ? " (killed: out of memory; raise EXECUTOR_JOB_MEMORY or lower the step's memory use)"
    : full
      ? ` (${full})`
      : '';
  return new Error(`running command "${key}": command failed with exit code ${exitCode}${reason}`);
}

/** Runs the job and sends its mark. Never throws; returns the outcome it reported. */
export async function handleJob(job: Job, deps: HandlerDeps, opts: HandleOptions = {}): Promise<JobOutcome> {
  const controller = opts.controller ?? new AbortController();
  const signal = controller.signal;
  const uid = recordUid(job);
  const log = deps.logger.child({ job: uid });
  const queueLabel = { queue: job.queue ?? '' };
  const started = performance.now();
  deps.metrics?.handlers.inc(queueLabel);

  const limit = formatDuration(deps.maximumRuntimePerJobMs);
  const timer = setTimeout(() => controller.abort(new JobTimeoutError(limit)), deps.maximumRuntimePerJobMs);

  const redactor = createRedactor({ [deps.frontendPassword]: 'SECRET_REMOVED', ...job.redactedValues });
  const jobLogger = createJobLogger({
    sink: deps.sinkFor(job),
    redactor,
    clock: deps.clock,
    maxOutputBytes: deps.maxLogBytes,
    syncIntervalMs: deps.logSyncIntervalMs,
    logger: log,
  });
  const ctx: JobContext = { signal, logger: jobLogger, executorName: deps.executorName };
  const errors: string[] = [];

  /** The error of an aborted job is its abort reason, whatever the step reported. */
  const checkAborted = () => {
    if (signal.aborted) throw signal.reason;
  };

  let ws: Workspace | undefined;
  let runner: Runner | undefined;
  let primary: unknown;
  try {
    const srcPath = job.cliSteps.length > 0 ? await (deps.findSrc ?? (() => findOnPath('src')))() : undefined;
    if (job.cliSteps.length > 0 && !srcPath) {
      throw new Error(
        'this job has cli steps, which run src-cli on the executor host, but `src` is not on PATH; install src-cli or send docker steps',
      );
    }
    try {
      ws = await deps.runtime.prepareWorkspace(job, ctx);
    } catch (e) {
      checkAborted();
      throw new Error(`creating workspace: ${errorMessage(e)}`);
    }
    runner = await deps.runtime.newRunner(job, ws, ctx);
    await runner.setup();
    checkAborted();

    let skipKey = '';
    for (const spec of deps.runtime.specs(job, ws)) {
      if (skipKey) {
        if (spec.key !== skipKey) {
          log.info('skipping step', { key: spec.key, until: skipKey });
          continue;
        }
        skipKey = '';
      }
      checkAborted();
      const out = await runner.run(spec);
      checkAborted();
      if (out.exitCode !== 0)
        throw await stepFailure(spec.key, out.exitCode, ws, out.oomKilled, out.layerFull);
      if (spec.key.endsWith('.pre')) {
        const next = await readSkip(ws.path);
        if (next) skipKey = `${deps.runtime.stepKeyPrefix}.${next}`;
      }
    }

    // Legacy cli steps (src-cli on the host), after all docker steps, as Sourcegraph runs them.
    for (const [i, step] of job.cliSteps.entries()) {
      checkAborted();
      const key = stepKey('step.src', step.key, i);
      const r = await runCommand({
        key,
        argv: [srcPath!, ...step.command],
        cwd: path.join(ws.path, step.dir),
        env: { ...hostEnv(), ...envListToRecord(step.env) },
        logger: jobLogger,
        signal,
        graceMs: deps.graceMs,
      });
      checkAborted();
      if (r.error) throw new Error(`running command "${key}": ${r.error}`);
      if (r.exitCode !== 0) throw await stepFailure(key, r.exitCode, ws);
    }
  } catch (e) {
    primary = signal.aborted ? signal.reason : e;
  } finally {
    clearTimeout(timer);
    if (runner) {
      await runner.teardown().catch((e) => errors.push(`teardown: ${errorMessage(e)}`));
    }
    if (ws) {
      await ws.remove().catch((e) => errors.push(`removing workspace: ${errorMessage(e)}`));
    }
    await jobLogger.flush().catch((e) => errors.push(`uploading logs: ${errorMessage(e)}`));
  }

  const outcome = decideOutcome(primary, signal, errors);
  deps.metrics?.handlers.dec(queueLabel);
  deps.metrics?.processor.record(
    'Handle',
    (performance.now() - started) / 1000,
    outcome.mark !== 'complete',
    queueLabel,
  );
  try {
    if (outcome.mark === 'complete') await deps.reporter.markComplete(job);
    else if (outcome.mark === 'failed') await deps.reporter.markFailed(job, outcome.message);
    else await deps.reporter.markErrored(job, outcome.message);
    log.info('job finished', {
      mark: outcome.mark,
      ...('message' in outcome ? { error: outcome.message } : {}),
    });
  } catch (e) {
    log.error('Failed to finalize record', { mark: outcome.mark, error: e });
  }
  return outcome;
}

function decideOutcome(primary: unknown, signal: AbortSignal, extra: string[]): JobOutcome {
  const reason = signal.aborted ? signal.reason : undefined;
  const join = (head: string) => [head, ...extra].filter(Boolean).join('; ');
  if (reason instanceof JobCanceledError) return { mark: 'failed', message: join(reason.message) };
  if (reason instanceof ShutdownError) return { mark: 'errored', message: join(reason.message) };
  if (reason instanceof JobTimeoutError) return { mark: 'errored', message: join(reason.message) };
  if (primary !== undefined) return { mark: 'errored', message: join(errorMessage(primary)) };
  if (extra.length > 0) return { mark: 'errored', message: extra.join('; ') };
  return { mark: 'complete' };
}
