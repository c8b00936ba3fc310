/**
 * The output streams of a job's entries, from the bytes a runtime writes to the line assembler.
 *
 * Contracts:
 *   - Per stream, an incomplete UTF-8 character at the end of a chunk waits for the next (invalid
 *     bytes become U+FFFD, as a StringDecoder makes them); a high surrogate ending a string chunk
 *     waits for its low half. So the stream's redactor, and everything after it, sees only whole
 *     characters, and lines are split AFTER redaction: a secret split across chunks is still found.
 *   - A chunk is read only during `write`; every line it completes is delivered before `write`
 *     returns. Text (string chunks, raw text) is encoded into one scratch buffer of the logger, so
 *     nothing is allocated per chunk.
 *   - Bytes the redactor holds back (they could begin a secret) wait at most `holdMs`
 *     (MAX_HOLD_MS): one timer per stream, set while it holds bytes, cancelled once it holds none
 *     and at `end` or `cancelHold`. When it fires, the redactor releases them, masked where they
 *     could still become a secret (ByteStreamRedactor.release), and the lines they complete are
 *     delivered.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import type { Timer, Timers } from '../../lib/clock.js';
import type { DeliverOutput, LineAssembler, LineState } from './line-assembler.js';
import type { ByteStreamRedactor, Redactor } from './redactor.js';
import { EMPTY, sequenceLength } from './utf8.js';

/** Text longer than this (raw text, string chunks) is encoded into a buffer of its own. */
const TEXT_SCRATCH_BYTES = 64 * 1024;

/**
 * The longest that output bytes wait in a stream's redactor for the bytes that decide whether they
 * begin a secret; past it they go out, masked where they could still become one. A secret printed
 * by one write reaches the redactor in chunks that follow one another at once (a pipe or docker's
 * stream hands over up to 64 KiB per read), so a pause this long means the process stopped there,
 * and a follower should see what it printed before. 200 ms is four append intervals
 * (APPEND_INTERVAL_MS): such a line reaches a follower a moment late instead of only when the step
 * prints more or ends.
 */
export const MAX_HOLD_MS = 200;

export type StreamName = 'stdout' | 'stderr';

/** One output stream of one entry. */
export interface OutputStream extends LineState {
  /** An incomplete UTF-8 character at the end of the last chunk: its `pendingBytes` bytes. */
  pending: Buffer;
  pendingBytes: number;
  /** A high surrogate that ended the last string chunk, waiting for its low half. */
  highSurrogate: string;
  redactor: ByteStreamRedactor;
  /** Set while the redactor holds bytes: releases them when they have waited holdMs. */
  holdTimer: Timer | undefined;
}

/** How long held bytes may wait, and the timers that say when they have. */
export interface HoldBound {
  holdMs: number;
  timers: Timers;
}

export interface StreamDecoder<T> {
  /** A stream of `target` whose lines the assembler delivers to it. */
  createStream(target: T, name: StreamName): OutputStream;
  /** Output of stream s; every line it completes is delivered before this returns. */
  write(target: T, s: OutputStream, chunk: Buffer | string): void;
  /** Text without a prefix (already redacted), delivered at once. */
  writeText(target: T, text: string): void;
  /** Ends stream s: what waits in it goes out as its last line. Flush the assembler after. */
  end(target: T, s: OutputStream): void;
  /** Cancels stream s's hold timer (what it holds stays held). */
  cancelHold(s: OutputStream): void;
}

export function createStreamDecoder<T>(
  redactor: Redactor,
  lines: LineAssembler<T>,
  deliver: DeliverOutput<T>,
  { holdMs, timers }: HoldBound,
): StreamDecoder<T> {
  // Text (raw text, string chunks) is encoded here.
  let textScratch = EMPTY;

  const cancelHold = (s: OutputStream) => {
    s.holdTimer?.cancel();
    s.holdTimer = undefined;
  };

  /** After a write of stream s: its timer runs while its redactor holds bytes, and only then. */
  const watchHold = (target: T, s: OutputStream) => {
    if (!s.redactor.holding()) {
      cancelHold(s);
      return;
    }
    s.holdTimer ??= timers.set(() => {
      s.holdTimer = undefined;
      s.redactor.release();
      lines.flush(target);
    }, holdMs);
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
        holdTimer: undefined,
        partial: EMPTY,
        partialBytes: 0,
      };
      s.redactor = redactor.createByteStreamRedactor((bytes) => lines.take(target, s, bytes));
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
      lines.flush(target);
      watchHold(target, s);
    },
    writeText(target, text) {
      if (text === '') return;
      const bytes = encode(text);
      deliver(target, bytes, 0, bytes.length);
    },
    end(target, s) {
      cancelHold(s);
      if (s.highSurrogate !== '') decode(s, encode(s.highSurrogate));
      feed(s, s.pending, 0, s.pendingBytes);
      s.pendingBytes = 0;
      s.redactor.end();
      lines.end(target, s);
    },
    cancelHold,
  };
}
