/**
 * The one module of the executor that runs external processes (git, sh, src, ...): a job's commands
 * through runCommand, and short commands outside any job (startup checks, telemetry) through
 * commandOutput. Docker and Kubernetes are spoken to through their APIs, not their CLIs.
 *
 * Every runCommand opens a log entry with its key and argv (the job logger redacts the argv), streams
 * stdout and stderr into it, and closes it with the exit code. Cancellation goes through an
 * AbortSignal: SIGTERM to the whole process group, then SIGKILL after graceMs. The child is the
 * leader of its own process group (spawn detached), so grandchildren (a shell's children, git's
 * remote helpers) are signalled too.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { errorMessage } from '../lib/errors.js';
import type { JobLogger } from './job-context.js';

export const DEFAULT_GRACE_MS = 5000;

export interface RunCommandOptions {
  /** Log entry key, e.g. `setup.git.fetch`. */
  key: string;
  argv: string[];
  cwd?: string;
  /** The complete environment of the process (nothing is inherited). */
  env: Record<string, string>;
  logger: JobLogger;
  signal?: AbortSignal;
  /** Time between SIGTERM and SIGKILL on abort; default DEFAULT_GRACE_MS. */
  graceMs?: number;
  /** Written to the process's stdin, which is then closed. Without it stdin is /dev/null. */
  stdin?: string;
}

export interface RunCommandResult {
  /**
   * The process exit code; -1 when it was ended by a signal (as Go's ExitCode reports) or could not
   * be started.
   */
  exitCode: number;
  /** Set when the process could not be started (`starting command: ...`). */
  error?: string;
}

/**
 * Sourcegraph's environment for commands run on the host: HOME, PATH, USER and DOCKER_HOST from the
 * executor's environment (as `K=` when unset), then `extra`.
 */
export function hostEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ['HOME', 'PATH', 'USER', 'DOCKER_HOST']) env[k] = process.env[k] ?? '';
  return { ...env, ...extra };
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

const pexec = promisify(execFile);

/**
 * Runs a short command that belongs to no job and resolves to its stdout. Rejects when it cannot
 * start, exits non-zero or runs longer than timeoutMs (0 = no limit); the error message names the
 * command and carries its stderr.
 */
export async function commandOutput(argv: readonly string[], timeoutMs = 0): Promise<string> {
  const { stdout } = await pexec(argv[0]!, argv.slice(1), { timeout: timeoutMs });
  return stdout;
}

/**
 * Like commandOutput, with `input` written to the process's stdin (iptables-restore reads its
 * rules there). Rejects on a non-zero exit with stderr in the message.
 */
export function commandOutputWithInput(
  argv: readonly string[],
  input: string,
  timeoutMs = 0,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${argv.join(' ')}: ${String(stderr).trim() || errorMessage(err)}`));
      else resolve(String(stdout));
    });
    child.stdin?.end(input);
  });
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // The group is already gone.
  }
}

export function runCommand(opts: RunCommandOptions): Promise<RunCommandResult> {
  const handle = opts.logger.entry(opts.key, opts.argv);
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;

  const failStart = (message: string): RunCommandResult => {
    const error = `starting command: ${message}`;
    handle.writeRaw(`${error}\n`);
    handle.close(-1);
    return { exitCode: -1, error };
  };

  if (opts.argv.length === 0) return Promise.resolve(failStart('empty command'));
  if (opts.signal?.aborted) {
    return Promise.resolve(failStart(`aborted: ${errorMessage(opts.signal.reason)}`));
  }

  return new Promise<RunCommandResult>((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(opts.argv[0]!, opts.argv.slice(1), {
        cwd: opts.cwd,
        env: opts.env,
        detached: true,
        stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (err) {
      resolve(failStart(errorMessage(err)));
      return;
    }

    let started = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      if (child.pid === undefined) return;
      killGroup(child.pid, 'SIGTERM');
      killTimer ??= setTimeout(() => {
        if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      }, graceMs);
    };

    child.once('spawn', () => {
      started = true;
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.signal?.aborted) onAbort();
      if (opts.stdin !== undefined && child.stdin) {
        child.stdin.on('error', () => {}); // EPIPE when the process does not read its input
        child.stdin.end(opts.stdin);
      }
    });
    child.stdout?.on('data', (b: Buffer) => handle.write('stdout', b));
    child.stderr?.on('data', (b: Buffer) => handle.write('stderr', b));

    child.once('error', (err) => {
      if (started) return; // reported through 'close'
      resolve(failStart(errorMessage(err)));
    });
    // 'close' fires after the process exited AND both pipes ended, so no output is lost.
    child.once('close', (code, signal) => {
      if (!started) return;
      opts.signal?.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      // Whatever the leader left behind in its group goes with it once it was asked to stop.
      if (opts.signal?.aborted && child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      const exitCode = signal !== null || code === null ? -1 : code;
      handle.close(exitCode);
      resolve({ exitCode });
    });
  });
}
