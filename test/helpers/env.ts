/**
 * Availability of the real things some tests need (Docker, gVisor, PostgreSQL). Where one is
 * missing the test is skipped with one line naming it, except under CI=true, where a missing
 * dependency fails the run: CI must prove everything.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const cache = new Map<string, boolean>();

function probe(name: string, fn: () => boolean): boolean {
  let v = cache.get(name);
  if (v === undefined) {
    try {
      v = fn();
    } catch {
      v = false;
    }
    cache.set(name, v);
  }
  return v;
}

export const isCI = process.env.CI === 'true';

export function dockerAvailable(): boolean {
  return probe('docker', () => {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'pipe', timeout: 10_000 });
    return true;
  });
}

export function gvisorAvailable(): boolean {
  return probe('gvisor', () => {
    if (!dockerAvailable()) return false;
    const out = execFileSync('docker', ['info', '--format', '{{json .Runtimes}}'], {
      stdio: 'pipe',
      timeout: 10_000,
    }).toString();
    return out.includes('runsc');
  });
}

/** The local test image (scripts/build-test-images.sh builds it; no registry is reachable). */
export const TEST_IMAGE = 'executor-test/busybox:latest';

/** Whether the Docker daemon answers and has `image` locally. */
export function dockerImagePresent(image: string = TEST_IMAGE): boolean {
  return probe(`image ${image}`, () => {
    if (!dockerAvailable()) return false;
    execFileSync('docker', ['image', 'inspect', image], { stdio: 'pipe', timeout: 10_000 });
    return true;
  });
}

/** The PostgreSQL admin URL tests create their databases with (env TEST_DATABASE_URL). */
export function postgresUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || undefined;
}

export function kvmAvailable(): boolean {
  return existsSync('/dev/kvm');
}

/** Whether `cmd` is on PATH. */
export function commandAvailable(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns true when the dependency is there. When it is not: under CI=true throws (the suite fails);
 * elsewhere prints one line and returns false so the caller can `describe.skipIf(!ok)`.
 */
export function requireOrSkip(what: string, available: boolean): boolean {
  if (available) return true;
  if (isCI) throw new Error(`${what} is required under CI=true but is not available`);
  console.warn(`skipping: ${what} is not available`);
  return false;
}

/**
 * Polls `cond` every intervalMs until it is truthy or timeoutMs passes (then throws). The default
 * deadline is a hang detector, not a claim about speed: generous enough for a loaded 2-core machine
 * (a busy CI host runs the suite's files side by side), and it costs nothing when the condition
 * comes true early. A test whose point is a bound passes its own timeoutMs.
 */
export async function waitFor<T>(
  cond: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}
