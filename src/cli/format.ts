/**
 * Human output for the client commands: tables, colour only on a TTY (and never with NO_COLOR),
 * relative times and durations.
 */
const useColor = (stream: NodeJS.WriteStream = process.stdout) =>
  !!stream.isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb';

const codes = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1 } as const;
export type Color = keyof typeof codes;

export function paint(text: string, color: Color, stream?: NodeJS.WriteStream): string {
  return useColor(stream) ? `\x1b[${codes[color]}m${text}\x1b[0m` : text;
}

const STATE_COLOR: Record<string, Color> = {
  queued: 'gray',
  processing: 'cyan',
  completed: 'green',
  errored: 'yellow',
  failed: 'red',
  canceled: 'magenta',
};

export function stateText(state: string): string {
  return paint(state, STATE_COLOR[state] ?? 'bold');
}

const ANSI = /\x1b\[[0-9;]*m/g;
const visibleLength = (s: string) => s.replace(ANSI, '').length;

/** Renders rows as aligned columns; the header row is bold. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - visibleLength(c))))
      .join('  ')
      .trimEnd();
  return [paint(line(header), 'bold'), ...rows.map(line)].join('\n');
}

/** 1.2s, 3m04s, 2h05m. */
export function humanDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "5s ago", "3m ago" from an ISO time or epoch ms. */
export function ago(t: string | number | null | undefined, now = Date.now()): string {
  if (t === null || t === undefined || t === '') return '-';
  const ms = typeof t === 'number' ? t : Date.parse(t);
  if (!Number.isFinite(ms)) return '-';
  return `${humanDuration(Math.max(0, now - ms))} ago`;
}

export function toMs(t: string | number | null | undefined): number | null {
  if (t === null || t === undefined || t === '') return null;
  const ms = typeof t === 'number' ? t : Date.parse(t);
  return Number.isFinite(ms) ? ms : null;
}
