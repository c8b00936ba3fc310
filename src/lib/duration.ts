/**
 * Go-style durations ("1s", "30m", "1h30m", "250ms", "0") and data sizes ("12G", "5Gi", "512M").
 * Sourcegraph's configuration uses Go syntax, so ours accepts the same strings.
 */
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration into milliseconds. Returns undefined when the text is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
  }
  return Math.round(total);
}

/** Formats milliseconds the way Go prints a duration ("1m30s", "250ms", "0s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  let rest = Math.round(ms / 1000);
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  const s = rest - m * 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  ki: 1024,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  ti: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * Parses a data size into bytes. Docker's convention is followed for bare letters ("12G" is 12 GiB
 * for `docker run --memory`), so single-letter units are binary; "GB" is decimal, "Gi"/"GiB" binary.
 */
export function parseSizeBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) return undefined;
  const unit = m[2]!.toLowerCase();
  const factor = unit.length === 1 && unit !== 'b' ? 1024 ** ' kmgt'.indexOf(unit) : SIZE_UNITS[unit];
  if (factor === undefined) return undefined;
  return Math.round(Number(m[1]) * factor);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/**
 * A lifetime such as an API token's expiry: whole days ("30d"), a Go duration ("12h", "90m"), or
 * both ("1d12h"). Returns undefined when the text is none of these.
 */
export function parseLifetimeMs(text: string): number | undefined {
  const m = /^(?:(\d{1,6})d)?(.*)$/.exec(text.trim());
  if (!m || (m[1] === undefined && m[2] === '')) return undefined;
  const rest = m[2] === '' ? 0 : parseDurationMs(m[2]!);
  if (rest === undefined) return undefined;
  return Number(m[1] ?? 0) * 86_400_000 + rest;
}
