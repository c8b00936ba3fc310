/**
 * Heartbeat telemetry, gathered once at startup within a 5 s budget (Sourcegraph
 * `run/util.go newQueueTelemetryOptions`). Failures are logged and leave the field ''.
 */
import type { Logger } from '../lib/logger.js';
import type { Telemetry } from '../protocol/http.js';
import { executorVersion } from '../protocol/version.js';
import { commandOutput } from './command.js';
import type { Runtime } from './runtimes/types.js';

const BUDGET_MS = 5000;

/** Go's GOOS names. */
export function goOs(platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? 'windows' : platform;
}
/** Go's GOARCH names. */
export function goArch(arch: string = process.arch): string {
  const map: Record<string, string> = {
    x64: 'amd64',
    ia32: '386',
    arm64: 'arm64',
    arm: 'arm',
    ppc64: 'ppc64le',
    s390x: 's390x',
  };
  return map[arch] ?? arch;
}

async function firstLine(cmd: string, args: string[], strip: string): Promise<string> {
  const stdout = await commandOutput([cmd, ...args], BUDGET_MS);
  return stdout.trim().split('\n')[0]!.replace(strip, '').trim();
}

export async function gitVersion(): Promise<string> {
  return firstLine('git', ['version'], 'git version ');
}

export async function gatherTelemetry(
  runtime: Runtime | undefined,
  logger: Logger,
  version: string = executorVersion(),
): Promise<Telemetry> {
  const safe = async (what: string, fn: () => Promise<string>) => {
    try {
      return await Promise.race([
        fn(),
        new Promise<string>((_, reject) =>
          setTimeout(() => reject(new Error('timed out')), BUDGET_MS).unref(),
        ),
      ]);
    } catch (e) {
      logger.debug('telemetry: could not read a version', { what, error: e });
      return '';
    }
  };
  const [git, docker, src] = await Promise.all([
    safe('git', gitVersion),
    safe('docker', async () => (runtime && runtime.name !== 'kubernetes' ? runtime.version() : '')),
    safe('src', async () => firstLine('src', ['version', '-client-only'], 'Current version: ')),
  ]);
  return {
    os: goOs(),
    architecture: goArch(),
    dockerVersion: docker,
    executorVersion: version,
    gitVersion: git,
    igniteVersion: '',
    srcCliVersion: src,
  };
}
