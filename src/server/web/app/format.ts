/** Display helpers: ages, durations, sizes. */

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m % 60} m`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

export function formatAge(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  return `${formatDuration(Math.max(0, now - Date.parse(iso)))} ago`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

export function formatNumber(n: number): string {
  if (Math.abs(n) >= 100 || Number.isInteger(n)) return String(Math.round(n));
  return n.toFixed(Math.abs(n) < 1 ? 3 : 1);
}

export function shortSha(sha: string | null): string {
  return sha ? sha.slice(0, 10) : '';
}
