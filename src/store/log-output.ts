/**
 * Pure log-output arithmetic shared by both store twins: which bytes of an incoming write are stored,
 * and where the per-attempt output cap cuts. Byte counts are UTF-8.
 */
import { AppError } from '../lib/errors.js';

/** The visible line appended once when an attempt's output reaches the cap. */
export function truncationMarker(maxOutputBytes: number): string {
  return `\n[output truncated: the job's log exceeded ${maxOutputBytes} bytes]\n`;
}

/** Largest n <= limit such that buf[0..n) ends on a UTF-8 character boundary. */
export function utf8Boundary(buf: Buffer, limit: number): number {
  let n = Math.max(0, Math.min(limit, buf.length));
  // A continuation byte (10xxxxxx) at position n means n is inside a character.
  while (n > 0 && n < buf.length && (buf[n]! & 0xc0) === 0x80) n--;
  return n;
}

export interface OutputPlan {
  /** Bytes to append to the entry (output, possibly followed by the marker). */
  data: Buffer;
  /** True when this write hit the cap: the entry gets `truncated` and the marker is in `data`. */
  truncate: boolean;
}

/**
 * The cap is per job attempt, across all its entries. `attemptBytes` is what the attempt has stored
 * so far; once any entry of the attempt is truncated, every further byte is dropped (the write is
 * still acknowledged so that the executor does not fail the job over its own log).
 */
export function planOutput(
  incoming: Buffer,
  attemptBytes: number,
  attemptTruncated: boolean,
  maxOutputBytes: number,
): OutputPlan {
  if (attemptTruncated || incoming.length === 0) return { data: Buffer.alloc(0), truncate: false };
  const room = maxOutputBytes - attemptBytes;
  if (incoming.length <= room) return { data: incoming, truncate: false };
  const cut = utf8Boundary(incoming, Math.max(0, room));
  return {
    data: Buffer.concat([incoming.subarray(0, cut), Buffer.from(truncationMarker(maxOutputBytes))]),
    truncate: true,
  };
}

/**
 * The part of a full-output update (`out` = everything so far) not yet stored: the bytes beyond
 * `storedBytes`. Nothing when `out` is not longer than what is stored; stored output is never
 * rewritten.
 */
export function newSuffix(out: string | undefined, storedBytes: number): Buffer {
  if (!out) return Buffer.alloc(0);
  const buf = Buffer.from(out, 'utf8');
  return buf.length > storedBytes ? buf.subarray(storedBytes) : Buffer.alloc(0);
}

/**
 * A read window of output as text: at most `maxBytes` of `buf`, cut on a UTF-8 character boundary
 * (so the text's byte length is where the next read starts). A window too small for its first
 * character still returns that character, so a reader always moves on.
 */
export function cutOutput(buf: Buffer, maxBytes: number): string {
  let n = wholeCharacters(buf, Math.min(buf.length, maxBytes));
  if (n === 0 && buf.length > 0) {
    n = 1;
    while (n < buf.length && (buf[n]! & 0xc0) === 0x80) n++;
  }
  return buf.subarray(0, n).toString('utf8');
}

/** Largest m <= n such that buf[0..m) ends with a whole UTF-8 character (the window may end inside one). */
function wholeCharacters(buf: Buffer, n: number): number {
  let lead = n - 1;
  while (lead >= 0 && n - lead <= 4 && (buf[lead]! & 0xc0) === 0x80) lead--;
  if (lead < 0) return 0;
  const b = buf[lead]!;
  const size = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  return lead + size > n ? lead : n;
}

/**
 * The bytes an entry's metadata adds to its attempt's log: its key and its command's strings
 * (UTF-8). They count against the same per-attempt cap as output.
 */
export function entryMetaBytes(entry: { key: string; command: string[] | null }): number {
  let n = Buffer.byteLength(entry.key, 'utf8');
  for (const part of entry.command ?? []) n += Buffer.byteLength(part, 'utf8');
  return n;
}

/** Refusal of an entry beyond the attempt's entry count (413). */
export function tooManyEntriesError(maxEntries: number): AppError {
  return new AppError(
    'PAYLOAD_TOO_LARGE',
    `this job attempt already has ${maxEntries} log entries, the most the server keeps (EXECUTOR_SERVER_MAX_LOG_ENTRIES)`,
  );
}

/** Refusal of an entry whose key and command do not fit in what is left of the cap (413). */
export function logFullError(maxBytes: number): AppError {
  return new AppError(
    'PAYLOAD_TOO_LARGE',
    `the job's log is full: its keys, commands and output reached ${maxBytes} bytes (EXECUTOR_SERVER_MAX_LOG_BYTES)`,
  );
}
