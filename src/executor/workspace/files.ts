/**
 * Writes the job's files and one script per docker step into the workspace, with Sourcegraph's
 * layout (`worker/files/files.go`, `workspace/files.go`):
 *   - scripts in `<ws>/.sourcegraph-executor/<jobID>.<i>_<repoName with / -> _>@<commit>.sh`;
 *   - content = ScriptPreamble, an empty line, the step's commands joined by `\n`, a trailing `\n`;
 *   - one log entry `setup.fs.extras` (command null) with a `Wrote <path> in <duration>` line per
 *     file; exit code 0, or 1 on error; no entry when there is nothing to write;
 *   - every file chmod 0777; its mtime and atime set when `modifiedAt` is not the zero time.
 * Paths are validated before the entry is opened (as Sourcegraph does), and again just before each
 * write, since writing one file may not change what another path resolves to, but a clone may.
 */
import { chmod, mkdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from '../../protocol/job.js';
import { ZERO_TIME } from '../../protocol/job.js';
import type { JobLogger } from '../job-context.js';
import { openForWrite, resolveInside } from './safe-path.js';

export const SCRIPTS_DIR = '.sourcegraph-executor';
const ZERO_MS = Date.parse(ZERO_TIME);

export interface FilesFetcher {
  /** GET /.executors/files/<bucket>/<key> with the job's credentials. */
  get(bucket: string, key: string): Promise<Buffer>;
}

/**
 * Sourcegraph's ScriptPreamble, verbatim: on the first run ($1 empty) re-exec the script with bash
 * when bash exists (on PATH, else /bin/bash), passing `skip-check`; otherwise keep running in sh
 * (busybox images have no bash). Then restore default error behaviour and trace commands.
 */
export const SCRIPT_PREAMBLE = `
# Only on the first run, check if we can upgrade to bash.
if [ -z "$1" ]; then
  bash_path=$(command -p -v bash)
  set -e
  # Check if bash is present. If so, use bash. Otherwise just keep running with sh.
  if [ -n "$bash_path" ]; then
    exec "\${bash_path}" "$0" skip-check
  else
    # If not in the path but still exists at /bin/bash, we can use that.
    if [ -f "/bin/bash" ]; then
      exec /bin/bash "$0" skip-check
    fi
  fi
fi

# Restore default shell behavior.
set +e
# From the actual script, log all commands.
set -x
`;

export function buildScript(commands: string[]): string {
  return `${[SCRIPT_PREAMBLE, '', ...commands].join('\n')}\n`;
}

export function scriptName(job: Pick<Job, 'id' | 'repositoryName' | 'commit'>, stepIndex: number): string {
  return `${job.id}.${stepIndex}_${job.repositoryName.replaceAll('/', '_')}@${job.commit}.sh`;
}

/** Go's time.Duration String() for a duration in nanoseconds (e.g. `1.234567ms`, `12.5µs`). */
export function formatGoDuration(ns: bigint): string {
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  const frac = (v: bigint, unit: bigint, suffix: string) => {
    const whole = v / unit;
    const rest = (v % unit)
      .toString()
      .padStart(unit.toString().length - 1, '0')
      .replace(/0+$/, '');
    return `${whole}${rest ? `.${rest}` : ''}${suffix}`;
  };
  let s: string;
  if (abs < 1000n) s = `${abs}ns`;
  else if (abs < 1_000_000n) s = frac(abs, 1000n, 'µs');
  else if (abs < 1_000_000_000n) s = frac(abs, 1_000_000n, 'ms');
  else {
    const h = abs / 3_600_000_000_000n;
    const m = (abs / 60_000_000_000n) % 60n;
    const sec = frac(abs % 60_000_000_000n, 1_000_000_000n, 's');
    s = `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${sec}`;
  }
  return neg ? `-${s}` : s;
}

interface PlannedFile {
  rel: string;
  content?: Buffer;
  bucket?: string;
  key?: string;
  modifiedAt?: Date;
}

/**
 * Writes job files and step scripts; returns the script names in step order.
 * Errors: `refusing to write outside of working directory: <rel>` (before any entry is opened),
 * or `failed to write virtual machine files: <cause>`.
 */
export async function writeWorkspaceFiles(
  job: Job,
  workspacePath: string,
  logger: JobLogger,
  files: FilesFetcher,
): Promise<string[]> {
  await mkdir(path.join(workspacePath, SCRIPTS_DIR), { recursive: true });

  const planned: PlannedFile[] = [];
  for (const [rel, f] of Object.entries(job.files)) {
    await resolveInside(workspacePath, rel);
    const t = f.modifiedAt && f.modifiedAt !== ZERO_TIME ? new Date(f.modifiedAt) : undefined;
    planned.push({
      rel,
      content: f.content,
      bucket: f.bucket,
      key: f.key,
      modifiedAt: t && !Number.isNaN(t.getTime()) && t.getTime() !== ZERO_MS ? t : undefined,
    });
  }
  const names = job.dockerSteps.map((_, i) => scriptName(job, i));
  job.dockerSteps.forEach((step, i) => {
    planned.push({ rel: `${SCRIPTS_DIR}/${names[i]}`, content: Buffer.from(buildScript(step.commands)) });
  });
  if (planned.length === 0) return names;

  const handle = logger.entry('setup.fs.extras', null);
  try {
    for (const p of planned) {
      const abs = await resolveInside(workspacePath, p.rel);
      await mkdir(path.dirname(abs), { recursive: true });
      const start = process.hrtime.bigint();
      const content = p.bucket && p.key ? await files.get(p.bucket, p.key) : (p.content ?? Buffer.alloc(0));
      const fh = await openForWrite(abs);
      try {
        await fh.writeFile(content);
      } finally {
        await fh.close();
      }
      await chmod(abs, 0o777);
      if (p.modifiedAt) await utimes(abs, p.modifiedAt, p.modifiedAt);
      handle.writeRaw(`Wrote ${abs} in ${formatGoDuration(process.hrtime.bigint() - start)}\n`);
    }
  } catch (err) {
    handle.close(1);
    throw new Error(`failed to write virtual machine files: ${(err as Error).message}`, { cause: err });
  }
  handle.close(0);
  return names;
}
