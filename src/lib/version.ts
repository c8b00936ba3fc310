/**
 * This package's version, read once from package.json (two levels up from both src/lib and
 * dist/lib). Our executor reports it with a build tag (protocol/version.ts `executorVersion`).
 */
import { readFileSync } from 'node:fs';

/** Set at bundle time by the single-file build (scripts/package.mjs); not defined otherwise. */
declare const __EXECUTOR_PACKAGE_VERSION__: string | undefined;

let cached: string | undefined;

export function packageVersion(): string {
  if (cached === undefined && typeof __EXECUTOR_PACKAGE_VERSION__ === 'string') {
    cached = __EXECUTOR_PACKAGE_VERSION__;
  }
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version?: string;
      };
      cached = pkg.version ?? '0.0.0';
    } catch {
      cached = '0.0.0';
    }
  }
  return cached;
}
