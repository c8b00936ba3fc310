/**
 * What the pod runs besides the steps' own commands: the input files of a job (its files, one
 * script per step, nextIndex.sh), the setup container's script that clones the repository and
 * copies the input files into the workspace, and the skip check run before each step.
 */
import path from 'node:path';
import type { Job } from '../../../protocol/job.js';
import { ZERO_TIME } from '../../../protocol/job.js';
import { buildScript, SCRIPTS_DIR, scriptName } from '../../workspace/files.js';
import { fileKey } from './naming.js';

/** Where the job's Secret (input files) is mounted in the setup container. */
export const INPUT_MOUNT_PATH = '/job-input';
export const NEXT_INDEX_SCRIPT = 'nextIndex.sh';

/** Single-quotes for sh: `'` becomes `'"'"'`. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/**
 * Prints `skip` when `$1` (skip.json) names a next step and `$2` is not that step. Reaching the
 * named step removes the file, so later steps run again (the handler's skip-until-key rule).
 * POSIX sh and sed only: it runs in every step image.
 */
export const NEXT_INDEX_SH = `#!/bin/sh
f="$1"; key="$2"
[ -f "$f" ] || exit 0
next=$(sed -n 's/.*"nextStep"[[:space:]]*:[[:space:]]*"\\([^"]*\\)".*/\\1/p' "$f" | head -n 1)
[ -n "$next" ] || { rm -f "$f"; exit 0; }
if [ "$key" = "step.kubernetes.$next" ]; then rm -f "$f"; else echo skip; fi
`;

export interface InputFile {
  /** Path relative to the workspace. */
  rel: string;
  content: Buffer;
  /** RFC 3339, or undefined. */
  modifiedAt?: string;
}

/** Rejects absolute paths and `..` segments: job files stay inside the workspace. */
export function confinedPath(rel: string): string {
  const norm = path.posix.normalize(rel.replaceAll('\\', '/'));
  if (rel === '' || path.posix.isAbsolute(norm) || norm === '..' || norm.startsWith('../')) {
    throw new Error(`refusing to write outside of working directory: ${rel}`);
  }
  return norm;
}

/**
 * Everything the pod needs from the job, resolved on the executor: job files (downloaded
 * already), one script per step, and nextIndex.sh. Scripts are in the Secret too: commands may
 * carry secrets.
 */
export function inputFiles(job: Job, resolved: ReadonlyMap<string, Buffer>): InputFile[] {
  const out: InputFile[] = [];
  for (const [rel, f] of Object.entries(job.files)) {
    const content = f.content && f.content.length > 0 ? f.content : resolved.get(rel);
    if (content === undefined && f.bucket) throw new Error(`job file ${rel} was not downloaded`);
    out.push({
      rel: confinedPath(rel),
      content: content ?? Buffer.alloc(0),
      modifiedAt: f.modifiedAt && f.modifiedAt !== ZERO_TIME ? f.modifiedAt : undefined,
    });
  }
  job.dockerSteps.forEach((step, i) => {
    out.push({
      rel: `${SCRIPTS_DIR}/${scriptName(job, i)}`,
      content: Buffer.from(buildScript(step.commands)),
    });
  });
  out.push({ rel: NEXT_INDEX_SCRIPT, content: Buffer.from(NEXT_INDEX_SH) });
  return out;
}

/** `touch -d` syntax of busybox and GNU: `YYYY-MM-DD hh:mm:ss` in UTC. */
export function touchTime(rfc3339: string): string | undefined {
  const t = new Date(rfc3339);
  if (Number.isNaN(t.getTime())) return undefined;
  return t.toISOString().slice(0, 19).replace('T', ' ');
}

/** The git sequence of the setup container (reference §4.4.2), then copies of the input files. */
export function setupScript(
  job: Job,
  files: readonly InputFile[],
  o: { frontendUrl: string; executorName: string; gitCaCert?: string },
): string {
  const lines = ['set -e'];
  if (job.repositoryName) {
    const dir = shQuote(job.repositoryDirectory ? confinedPath(job.repositoryDirectory) : '.');
    const remote = `${o.frontendUrl.replace(/\/+$/, '')}/.executors/git/${job.repositoryName}`;
    const commit = shQuote(job.commit);
    lines.push(`mkdir -p ${dir}`, `git -C ${dir} init`);
    if (o.gitCaCert) lines.push(`git -C ${dir} config --local http.sslCAInfo ${shQuote(o.gitCaCert)}`);
    lines.push(
      `git -C ${dir} remote add origin ${shQuote(remote)}`,
      `git -C ${dir} config --local gc.auto 0`,
    );
    const headers = [
      // The token is expanded by the shell from the env (secretKeyRef); it is never in the spec.
      `-c http.extraHeader="Authorization: Bearer $TOKEN"`,
      `-c http.extraHeader=${shQuote(`X-Sourcegraph-Job-ID: ${job.id}`)}`,
      `-c http.extraHeader=${shQuote(`X-Sourcegraph-Executor-Name: ${o.executorName}`)}`,
    ].join(' ');
    lines.push(
      `git -C ${dir} ${headers} -c protocol.version=2 fetch --progress --no-recurse-submodules --no-tags --depth=1 origin ${commit}`,
      `git -C ${dir} checkout --progress --force ${commit}`,
    );
  }
  lines.push(`mkdir -p ${SCRIPTS_DIR}`);
  for (const f of files) {
    const dest = shQuote(f.rel);
    const dir = path.posix.dirname(f.rel);
    if (dir !== '.') lines.push(`mkdir -p ${shQuote(dir)}`);
    lines.push(`cp ${INPUT_MOUNT_PATH}/${fileKey(f.rel)} ${dest}`, `chmod 0777 ${dest}`);
    const t = f.modifiedAt ? touchTime(f.modifiedAt) : undefined;
    if (t) lines.push(`TZ=UTC touch -m -d ${shQuote(t)} ${dest}`);
  }
  return `${lines.join('\n')}\n`;
}
