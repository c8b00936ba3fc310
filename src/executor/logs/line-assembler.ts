/**
 * Line assembly: the output streams of a job's entries, as bytes, become prefixed lines.
 *
 * Contracts:
 *   - Per stream, an incomplete UTF-8 character at the end of a chunk waits for the next (invalid
 *     bytes become U+FFFD, as a StringDecoder makes them); a high surrogate ending a string chunk
 *     waits for its low half. The stream's redactor sees only whole characters, and lines are split
 *     AFTER redaction, so a secret split across chunks or lines is still found.
 *   - Lines are `stdout: <line>\n` / `stderr: <line>\n` in arrival order (a CR before the newline
 *     is dropped); a partial line waits in its stream until its newline or `end`, and is emitted as
 *     a line of its own once it passes MAX_PARTIAL_LINE_BYTES, so memory stays bounded.
 *   - Lines are assembled in one buffer per logger (writes are synchronous, so it only ever holds
 *     one entry's lines) and handed to `deliver` when it is full and at the end of every `write`.
 *     What `deliver` gets is a view of that buffer, valid only during the call, of whole characters.
 *     Nothing is allocated per chunk or per line: no string, no buffer, no view object.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import type { ByteStreamRedactor, Redactor } from './redactor.js';
import { charBoundary, EMPTY, sequenceLength } from './utf8.js';

/** A partial line longer than this is emitted as a line of its own, to bound memory. */
export const MAX_PARTIAL_LINE_BYTES = 1 << 20;

/**
 * Size of the buffer lines are assembled in. A chunk of output (docker and child processes deliver
 * at most 64 KiB) usually fits with its prefixes, so it is delivered in one or two copies.
 */
const LINE_BUFFER_BYTES = 64 * 1024;

/** Text longer than this (raw text, string chunks) is encoded into a buffer of its own. */
const TEXT_SCRATCH_BYTES = 64 * 1024;

const NEWLINE = Buffer.from('\n');

export type StreamName = 'stdout' | 'stderr';

/** One output stream of one entry. */
export interface OutputStream {
  /** `stdout: ` or `stderr: ` */
  prefix: Buffer;
  /** An incomplete UTF-8 character at the end of the last chunk: its `pendingBytes` bytes. */
  pending: Buffer;
  pendingBytes: number;
  /** A high surrogate that ended the last string chunk, waiting for its low half. */
  highSurrogate: string;
  redactor: ByteStreamRedactor;
  /** The line so far: `partialBytes` bytes of `partial` (redacted, whole characters). */
  partial: Buffer;
  partialBytes: number;
}

/** Receives src[start, end) of `target`'s output: whole characters, readable only during the call. */
export type DeliverOutput<T> = (target: T, src: Buffer, start: number, end: number) => void;

export interface LineAssembler<T> {
  /** A stream of `target` whose lines are delivered to it. */
  createStream(target: T, name: StreamName): OutputStream;
  /** Output of stream s; every line it completes is delivered before this returns. */
  write(target: T, s: OutputStream, chunk: Buffer | string): void;
  /** Text without a prefix (already redacted), delivered at once. */
  writeText(target: T, text: string): void;
  /** Ends stream s: what waits in it goes out as its last line. Call `flush` after the last `end`. */
  end(target: T, s: OutputStream): void;
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

export function createLineAssembler<T>(redactor: Redactor, deliver: DeliverOutput<T>): LineAssembler<T> {
  // Lines are assembled here (`lineBytes` bytes).
  const lines = Buffer.allocUnsafeSlow(LINE_BUFFER_BYTES);
  let lineBytes = 0;
  // Where the lines of a batch end (a line takes at least its 8-byte prefix and its newline).
  const newlines = new Int32Array(Math.ceil(LINE_BUFFER_BYTES / 9));
  // Text (raw text, string chunks) is encoded here.
  let textScratch = EMPTY;

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
  const emitLine = (target: T, s: OutputStream, src: Buffer, start: number, end: number, crlf: boolean) => {
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
  const takeLines = (target: T, s: OutputStream, src: Buffer) => {
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

  /** Feeds src[start, end) of stream s to its redactor, invalid UTF-8 replaced as a decoder would. */
  const feed = (s: OutputStream, src: Buffer, start: number, end: number) => {
    if (end <= start) return;
    const view = start === 0 && end === src.length ? src : src.subarray(start, end);
    s.redactor.push(isUtf8(view) ? view : Buffer.from(view.toString('utf8'), 'utf8'));
  };

  /** Output bytes of stream s: whole characters go on, an incomplete one at the end waits. */
  const decode = (s: OutputStream, chunk: Buffer) => {
    const n = chunk.length;
    let start = 0;
    if (s.pendingBytes > 0) {
      // Complete the waiting character with the continuation bytes it lacks; a byte that is not one
      // ends it (and it becomes U+FFFD).
      const size = sequenceLength(s.pending[0]!);
      while (s.pendingBytes < size && start < n && (chunk[start]! & 0xc0) === 0x80) {
        s.pending[s.pendingBytes++] = chunk[start++]!;
      }
      if (s.pendingBytes < size && start === n) return;
      feed(s, s.pending, 0, s.pendingBytes);
      s.pendingBytes = 0;
    }
    // An incomplete character at the end: its lead byte is one of the last three bytes.
    let end = n;
    for (let i = n - 1; i >= start && i >= n - 3; i--) {
      const b = chunk[i]!;
      if ((b & 0xc0) === 0x80) continue;
      if (sequenceLength(b) > n - i) end = i;
      break;
    }
    feed(s, chunk, start, end);
    if (end < n) {
      chunk.copy(s.pending, 0, end, n);
      s.pendingBytes = n - end;
    }
  };

  /** UTF-8 of `text`, in the scratch buffer when it is small (valid until the next call). */
  const encode = (text: string): Buffer => {
    const size = Buffer.byteLength(text, 'utf8');
    if (size > TEXT_SCRATCH_BYTES) return Buffer.from(text, 'utf8');
    if (textScratch.length < size) textScratch = Buffer.allocUnsafeSlow(TEXT_SCRATCH_BYTES);
    textScratch.write(text, 0, size, 'utf8');
    return textScratch.subarray(0, size);
  };

  return {
    createStream(target, name) {
      const s: OutputStream = {
        prefix: Buffer.from(`${name}: `, 'utf8'),
        pending: Buffer.alloc(4),
        pendingBytes: 0,
        highSurrogate: '',
        redactor: undefined!, // set below: its sink needs the state
        partial: EMPTY,
        partialBytes: 0,
      };
      s.redactor = redactor.createByteStreamRedactor((bytes) => takeLines(target, s, bytes));
      return s;
    },
    write(target, s, chunk) {
      if (typeof chunk === 'string') {
        // A surrogate pair split across two string chunks is encoded once it is whole.
        let text = s.highSurrogate + chunk;
        s.highSurrogate = '';
        const last = text.charCodeAt(text.length - 1);
        if (last >= 0xd800 && last <= 0xdbff) {
          s.highSurrogate = text.slice(-1);
          text = text.slice(0, -1);
        }
        decode(s, encode(text));
      } else {
        decode(s, chunk);
      }
      flush(target);
    },
    writeText(target, text) {
      if (text === '') return;
      const bytes = encode(text);
      deliver(target, bytes, 0, bytes.length);
    },
    end(target, s) {
      if (s.highSurrogate !== '') decode(s, encode(s.highSurrogate));
      feed(s, s.pending, 0, s.pendingBytes);
      s.pendingBytes = 0;
      s.redactor.end();
      if (s.partialBytes > 0) emitLine(target, s, EMPTY, 0, 0, false);
      s.partial = EMPTY;
    },
    flush,
  };
}
