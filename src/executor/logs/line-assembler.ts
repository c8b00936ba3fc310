/**
 * Line assembly: redacted output of an entry's streams becomes prefixed lines.
 *
 * Contracts:
 *   - `take` gets a stream's redacted output in whole characters (see `stream-decoder.ts`). Lines
 *     are `stdout: <line>\n` / `stderr: <line>\n` in arrival order (a CR before the newline is
 *     dropped); a partial line waits in its stream until its newline or `end`, and is emitted as a
 *     line of its own once it passes MAX_PARTIAL_LINE_BYTES, so memory stays bounded.
 *   - Lines are assembled in one buffer per logger and handed to `deliver` when it is full and on
 *     `flush`. The caller flushes at the end of every write, so the buffer only ever holds one
 *     entry's lines (writes are synchronous). What `deliver` gets is a view of that buffer, valid
 *     only during the call, of whole characters. Nothing is allocated per line: no string, no
 *     buffer, no view object.
 */
import { Buffer } from 'node:buffer';
import { charBoundary, EMPTY } from './utf8.js';

/** A partial line longer than this is emitted as a line of its own, to bound memory. */
export const MAX_PARTIAL_LINE_BYTES = 1 << 20;

/**
 * Size of the buffer lines are assembled in. A chunk of output (docker and child processes deliver
 * at most 64 KiB) usually fits with its prefixes, so it is delivered in one or two copies.
 */
const LINE_BUFFER_BYTES = 64 * 1024;

const NEWLINE = Buffer.from('\n');

/** The line state of one output stream. */
export interface LineState {
  /** `stdout: ` or `stderr: ` */
  prefix: Buffer;
  /** The line so far: `partialBytes` bytes of `partial` (redacted, whole characters). */
  partial: Buffer;
  partialBytes: number;
}

/** Receives src[start, end) of `target`'s output: whole characters, readable only during the call. */
export type DeliverOutput<T> = (target: T, src: Buffer, start: number, end: number) => void;

export interface LineAssembler<T> {
  /** Splits redacted output of stream s of `target`, whole characters, into lines. */
  take(target: T, s: LineState, src: Buffer): void;
  /** Ends stream s: its partial line goes out as a line. Call `flush` after the last `end`. */
  end(target: T, s: LineState): void;
  /** Delivers the lines assembled so far. */
  flush(target: T): void;
}

/**
 * Copies src[from, to) to dst at `at`; short runs (a prefix, the start of a line) in a loop:
 * Buffer#copy of part of a buffer makes a view object per call.
 */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number) {
  if (to - from > 48) {
    src.copy(dst, at, from, to);
    return;
  }
  for (let i = from; i < to; i++) dst[at++] = src[i]!;
}

export function createLineAssembler<T>(deliver: DeliverOutput<T>): LineAssembler<T> {
  // Lines are assembled here (`lineBytes` bytes).
  const lines = Buffer.allocUnsafeSlow(LINE_BUFFER_BYTES);
  let lineBytes = 0;
  // Where the lines of a batch end (a line takes at least its 8-byte prefix and its newline).
  const newlines = new Int32Array(Math.ceil(LINE_BUFFER_BYTES / 9));

  const flush = (target: T) => {
    deliver(target, lines, 0, lineBytes);
    lineBytes = 0;
  };

  /** Adds src[start, end), whole characters, to the assembled lines; flushes when full. */
  const putLine = (target: T, src: Buffer, start: number, end: number) => {
    while (start < end) {
      const room = LINE_BUFFER_BYTES - lineBytes;
      const k = end - start <= room ? end : charBoundary(src, start + room);
      if (k <= start) {
        flush(target); // not room for the next character
        continue;
      }
      copyBytes(src, start, k, lines, lineBytes);
      lineBytes += k - start;
      start = k;
    }
  };

  /** Emits `<prefix><partial><src[start, end)>\n`, without a CR before the newline when `crlf`. */
  const emitLine = (target: T, s: LineState, src: Buffer, start: number, end: number, crlf: boolean) => {
    let partialEnd = s.partialBytes;
    if (crlf) {
      if (end > start) {
        if (src[end - 1] === 13) end--;
      } else if (partialEnd > 0 && s.partial[partialEnd - 1] === 13) partialEnd--;
    }
    const size = s.prefix.length + partialEnd + (end - start) + 1;
    if (lineBytes + size <= LINE_BUFFER_BYTES) {
      // The usual case, in place.
      copyBytes(s.prefix, 0, s.prefix.length, lines, lineBytes);
      lineBytes += s.prefix.length;
      if (partialEnd > 0) {
        copyBytes(s.partial, 0, partialEnd, lines, lineBytes);
        lineBytes += partialEnd;
      }
      copyBytes(src, start, end, lines, lineBytes);
      lineBytes += end - start;
      lines[lineBytes++] = 10;
    } else {
      putLine(target, s.prefix, 0, s.prefix.length);
      putLine(target, s.partial, 0, partialEnd);
      putLine(target, src, start, end);
      putLine(target, NEWLINE, 0, 1);
    }
    s.partialBytes = 0;
    // A long line's buffer is not kept.
    if (s.partial.length > LINE_BUFFER_BYTES) s.partial = EMPTY;
  };

  /** Splits redacted output of stream s into lines. */
  const takeLines = (target: T, s: LineState, src: Buffer) => {
    const n = src.length;
    let start = 0;
    let nl = src.indexOf(10, 0);
    if (nl !== -1 && s.partialBytes > 0) {
      emitLine(target, s, src, 0, nl, true); // the line begun in an earlier segment
      start = nl + 1;
      nl = src.indexOf(10, start);
    }
    const prefix = s.prefix;
    const p = prefix.length;
    while (nl !== -1) {
      const room = LINE_BUFFER_BYTES - lineBytes;
      if (p + (nl - start) + 1 > room) {
        if (lineBytes > 0) {
          flush(target);
        } else {
          emitLine(target, s, src, start, nl, true); // longer than the line buffer
          start = nl + 1;
          nl = src.indexOf(10, start);
        }
        continue;
      }
      // A batch of the lines that fit, with their prefixes, in the line buffer.
      let count = 0;
      let batchEnd = start;
      while (nl !== -1 && nl + 1 - start + p * (count + 1) <= room) {
        newlines[count++] = nl;
        batchEnd = nl + 1;
        nl = src.indexOf(10, batchEnd);
      }
      // The batch is copied in once, behind the room its prefixes take; then each line moves up
      // into place after its prefix. A line's prefix ends before where its own bytes were copied,
      // so no byte is overwritten before it has moved. (A copy per line would cost a view object
      // per line, as much garbage as the output.)
      const raw = lineBytes + p * count - start;
      src.copy(lines, raw + start, start, batchEnd);
      let out = lineBytes;
      let from = start;
      for (let i = 0; i < count; i++) {
        const lineEnd = newlines[i]!;
        const end = lineEnd > from && src[lineEnd - 1] === 13 ? lineEnd - 1 : lineEnd;
        for (let k = 0; k < p; k++) lines[out + k] = prefix[k]!;
        out += p;
        lines.copyWithin(out, raw + from, raw + end);
        out += end - from;
        lines[out++] = 10;
        from = lineEnd + 1;
      }
      lineBytes = out;
      start = batchEnd;
    }
    if (start === n) return;
    const need = s.partialBytes + (n - start);
    if (need > s.partial.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, 2 * s.partial.length, 1024));
      s.partial.copy(grown, 0, 0, s.partialBytes);
      s.partial = grown;
    }
    src.copy(s.partial, s.partialBytes, start, n);
    s.partialBytes = need;
    if (s.partialBytes > MAX_PARTIAL_LINE_BYTES) emitLine(target, s, EMPTY, 0, 0, false);
  };

  return {
    take: takeLines,
    end(target, s) {
      if (s.partialBytes > 0) emitLine(target, s, EMPTY, 0, 0, false);
      s.partial = EMPTY;
    },
    flush,
  };
}
