/**
 * Version rules shared by both sides.
 *
 * - Reported version: the Sourcegraph release whose protocol we implement, ours as build metadata
 *   (`executorVersion`).
 * - Payload gate (Sourcegraph `CheckSourcegraphVersion(v, ">= 4.3.0-0", "2022-11-24")`): the v2 Job
 *   shape goes to executors at 4.3.0 or later, dev builds, build-date versions dated 2022-11-24 or
 *   later, and to our own executor (its version carries the `+executor` build tag).
 * - Compatibility (Sourcegraph `calculateExecutorCompatibility`): OUTDATED when the server is beyond
 *   executor.(minor+1).0, VERSION_AHEAD when the executor is beyond server.(minor+1).0, else
 *   UP_TO_DATE; null when inactive or either side is a dev build.
 */
import { packageVersion } from '../lib/version.js';
import type { Compatibility } from './user-api.js';

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: string[];
  build: string;
}

/** Lenient semver as Masterminds parses it: optional `v`, one to three numeric parts. */
export function parseSemver(text: string): SemVer | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$/.exec(
    text.trim(),
  );
  if (!m) return undefined;
  return {
    major: Number(m[1]),
    minor: Number(m[2] ?? 0),
    patch: Number(m[3] ?? 0),
    prerelease: m[4] ? m[4].split('.') : [],
    build: m[5] ?? '',
  };
}

/** Compares a and b: negative, zero or positive. Build metadata is ignored, as semver says. */
export function compareSemver(a: SemVer, b: SemVer): number {
  for (const k of ['major', 'minor', 'patch'] as const) {
    if (a[k] !== b[k]) return a[k] - b[k];
  }
  if (a.prerelease.length === 0 || b.prerelease.length === 0) {
    return (a.prerelease.length === 0 ? 1 : 0) - (b.prerelease.length === 0 ? 1 : 0);
  }
  const n = Math.max(a.prerelease.length, b.prerelease.length);
  for (let i = 0; i < n; i++) {
    const x = a.prerelease[i];
    const y = b.prerelease[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    if (xn && yn && Number(x) !== Number(y)) return Number(x) - Number(y);
    if (xn !== yn) return xn ? -1 : 1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** The build tag our executor puts on its version, so that our server knows it reads v2. */
export const OUR_BUILD_TAG = 'executor';

/**
 * The Sourcegraph release whose executor protocol we implement: Sourcegraph's `cmd/executor` as of
 * July 2024 (upstream commit f8cc07220a), on main after the 5.5 branch cut, so first released in
 * 5.6.0 (August 2024). A Sourcegraph instance judges an executor by this number (one minor version of
 * skew either way), so it is what our executor reports by default.
 */
export const SOURCEGRAPH_PROTOCOL_VERSION = '5.6.0';

/**
 * The version string our executor sends in dequeue and heartbeat requests, and our server in its
 * version header: `5.6.0+executor.0.1.0`, the Sourcegraph release we speak with our own version as
 * build metadata (which semver comparison ignores). `reported` (EXECUTOR_REPORTED_VERSION) replaces
 * the release part; a semver without build metadata gets ours appended, so that our server still
 * recognises the executor; anything else (`dev`, an insiders build name) is sent as it is.
 */
export function executorVersion(reported?: string): string {
  const ours = `${OUR_BUILD_TAG}.${packageVersion()}`;
  if (reported === undefined || reported === '') return `${SOURCEGRAPH_PROTOCOL_VERSION}+${ours}`;
  const s = parseSemver(reported);
  return s && !s.build && !isDevVersion(reported) ? `${reported.trim()}+${ours}` : reported;
}

/**
 * Our own version inside a version of our executor or server: the part after `executor.` in the
 * build metadata (`5.6.0+executor.0.1.0` -> `0.1.0`), or, in the older form `0.1.0+executor`, the
 * version itself. undefined when `v` is not ours.
 */
export function ourVersionOf(v: string): string | undefined {
  const s = parseSemver(v);
  if (!s) return undefined;
  const ids = s.build.split('.');
  const i = ids.indexOf(OUR_BUILD_TAG);
  if (i < 0) return undefined;
  const rest = ids.slice(i + 1).join('.');
  if (rest && parseSemver(rest)) return rest;
  return `${s.major}.${s.minor}.${s.patch}${s.prerelease.length ? `-${s.prerelease.join('.')}` : ''}`;
}

export function isDevVersion(v: string): boolean {
  return v === 'dev' || v === '0.0.0+dev';
}

export function isOurExecutorVersion(v: string): boolean {
  const s = parseSemver(v);
  return !!s && s.build.split('.').includes(OUR_BUILD_TAG);
}

const BUILD_DATE = /^\d+_(\d{4}-\d{2}-\d{2})_(?:\d+\.\d+-)?[a-z0-9]{7,}(?:_patch)?$/;
const V2_MIN = parseSemver('4.3.0-0')!;
const V2_MIN_DATE = '2022-11-24';

export class InvalidVersionError extends Error {
  constructor(readonly version: string) {
    super(`failed to check version ${JSON.stringify(version)}: Invalid Semantic Version`);
  }
}

/**
 * Whether an executor reporting `version` understands the v2 payload. An empty version means no
 * (the Go server only checks non-empty versions). Throws InvalidVersionError for unparsable text,
 * which the dequeue route turns into a 500 as Sourcegraph does.
 */
export function supportsV2Payload(version: string): boolean {
  if (version === '') return false;
  if (isDevVersion(version) || isOurExecutorVersion(version)) return true;
  const d = BUILD_DATE.exec(version);
  if (d) return d[1]! >= V2_MIN_DATE;
  const s = parseSemver(version);
  if (!s) throw new InvalidVersionError(version);
  return compareSemver(s, V2_MIN) >= 0;
}

const INSIDERS = /^[\w-]+_(\d{4}-\d{2}-\d{2})_(\d+\.\d+-)?\w+/;
const RELEASE_CYCLE_DAYS = 35;
const DAILY = /\d+_(\d{4}-\d{2}-\d{2})_(\d+\.\d+)?-?[a-z0-9]{7,}(_patch)?$/;

function lenientSemver(v: string): SemVer | undefined {
  const s = parseSemver(v);
  if (s) return s;
  const m = DAILY.exec(v);
  return m?.[2] ? parseSemver(m[2]) : undefined;
}

/**
 * Returns the compatibility of an executor with a server, or null where Sourcegraph shows none
 * (inactive executor, dev builds, one side an insiders build, unparsable versions).
 */
export function calculateCompatibility(
  executorVersion: string,
  serverVersion: string,
  active: boolean,
): Compatibility | null {
  if (!active) return null;
  if (isDevVersion(executorVersion) || isDevVersion(serverVersion)) return null;
  const ei = INSIDERS.exec(executorVersion);
  const si = INSIDERS.exec(serverVersion);
  if (ei && si) {
    const day = 86_400_000;
    const e = Date.parse(ei[1]!);
    const s = Date.parse(si[1]!);
    if (e > s + RELEASE_CYCLE_DAYS * day) return 'VERSION_AHEAD';
    if (e < s - RELEASE_CYCLE_DAYS * day) return 'OUTDATED';
    return 'UP_TO_DATE';
  }
  if (ei || si) return null;
  const e = lenientSemver(executorVersion);
  const s = lenientSemver(serverVersion);
  if (!e || !s) return null;
  const incMinor = (v: SemVer): SemVer => ({ ...v, minor: v.minor + 1, patch: 0, prerelease: [], build: '' });
  if (compareSemver(s, incMinor(e)) > 0) return 'OUTDATED';
  if (compareSemver(e, incMinor(s)) > 0) return 'VERSION_AHEAD';
  return 'UP_TO_DATE';
}
