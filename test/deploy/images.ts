/**
 * The container images of deploy/docker, built by `npm run images` (scripts/images.sh) exactly as a
 * user builds them: `executor-server:<version>` and `executor:<version>`. They are left in place
 * afterwards, like the binary in dist/sea: the next test file and the next run find every layer in
 * Docker's build cache (a build then takes seconds instead of a minute). The Debian base is made
 * once per machine (scripts/make-base-image.sh, cached by tag; 5 to 11 minutes the first time).
 * Containers, networks and Compose projects the tests start are named per test process and removed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { commandAvailable, dockerAvailable, requireOrSkip } from '../helpers/env.js';

export const repo = fileURLToPath(new URL('../../', import.meta.url));
export const version = (JSON.parse(readFileSync(`${repo}package.json`, 'utf8')) as { version: string })
  .version;

/** Measured: the base 5 to 11 minutes, the images up to 5 more from scratch on a loaded machine. */
export const BUILD_TIMEOUT_MS = 1_500_000;

export interface Images {
  server: string;
  executor: string;
}

/** Whether a base image can be had: given (BASE_IMAGE), present (debian:12-slim), or made (mmdebstrap). */
function baseObtainable(): boolean {
  if (process.env.BASE_IMAGE || commandAvailable('mmdebstrap')) return true;
  try {
    execFileSync('docker', ['image', 'inspect', 'debian:12-slim'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** Docker and a base; skips (or fails under CI) with one line naming what is missing. */
export function canBuildImages(): boolean {
  return (
    requireOrSkip('Docker', dockerAvailable()) &&
    requireOrSkip(
      'mmdebstrap (or BASE_IMAGE, or a local debian:12-slim) for the image base',
      baseObtainable(),
    )
  );
}

/** `npm run images`: both images (and executor-postgres with postgres), the binary rebuilt when stale. */
export function buildImages(opts: { postgres?: boolean } = {}): Images {
  execFileSync('bash', ['scripts/images.sh', ...(opts.postgres ? ['--postgres'] : [])], {
    cwd: repo,
    stdio: 'pipe',
    timeout: BUILD_TIMEOUT_MS,
  });
  return { server: `executor-server:${version}`, executor: `executor:${version}` };
}

export function docker(args: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
  return execFileSync('docker', args, {
    stdio: 'pipe',
    timeout: opts.timeoutMs ?? 60_000,
    input: opts.input,
  }).toString();
}

/** Runs `docker run --rm` and returns the exit code and output (stdout and stderr together). */
export function runIn(image: string, args: string[]): { code: number; out: string } {
  try {
    const out = execFileSync('docker', ['run', '--rm', ...runArgs(image, args)], {
      stdio: 'pipe',
      timeout: 60_000,
    }).toString();
    return { code: 0, out };
  } catch (e) {
    const err = e as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { code: err.status ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** `[--entrypoint X] image args...`: an argument list starting with `--entrypoint=X` replaces it. */
function runArgs(image: string, args: string[]): string[] {
  const [first, ...rest] = args;
  if (first?.startsWith('--entrypoint=')) return [first, image, ...rest];
  return [image, ...args];
}
