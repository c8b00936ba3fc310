/**
 * The size bound of a log entry's command. The server refuses a command whose strings add up to
 * more than EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES (64 KiB by default) with 413, so the executor
 * shortens longer ones before sending, with a visible marker: the argv is kept up to the bound,
 * the string that crosses it is cut (between characters) and ends with the marker, and the strings
 * after it are left out (their bytes are counted in the marker).
 */
import { Buffer } from 'node:buffer';
import { charBoundary } from './utf8.js';

/** The server's default bound; a server with a smaller one says so in its 413 (see log-sync). */
export const MAX_COMMAND_BYTES = 64 * 1024;

export const commandTruncationMarker = (omittedBytes: number): string =>
  `… [truncated ${omittedBytes} bytes]`;

const bytesOf = (argv: readonly string[]): number =>
  argv.reduce((n, a) => n + Buffer.byteLength(a, 'utf8'), 0);

/** `argv` when its strings fit in `maxBytes` (UTF-8), else a shortened copy that does, marker included. */
export function capCommand(argv: string[], maxBytes: number = MAX_COMMAND_BYTES): string[] {
  const total = bytesOf(argv);
  if (total <= maxBytes) return argv;
  // The marker's own length depends on the number it shows; the widest number bounds it.
  const room = Math.max(0, maxBytes - Buffer.byteLength(commandTruncationMarker(total), 'utf8'));
  const out: string[] = [];
  let used = 0;
  for (const arg of argv) {
    const bytes = Buffer.from(arg, 'utf8');
    if (used + bytes.length <= room) {
      out.push(arg);
      used += bytes.length;
      continue;
    }
    const cut = charBoundary(bytes, room - used);
    used += cut;
    out.push(bytes.subarray(0, cut).toString('utf8') + commandTruncationMarker(total - used));
    return out;
  }
  return out;
}
