/**
 * The job logger: one per job. It turns command output into Sourcegraph log entries and keeps them
 * in sync with the server (Sourcegraph `worker/cmdlogger`).
 *
 * Contracts:
 *   - `entry(key, argv)` creates an entry with startTime = now (RFC 3339) and the redacted argv.
 *     Entries are added in creation order: the add of entry N+1 is sent after entry N's add settled.
 *   - Output is redacted per stream (boundary-safe) BEFORE line splitting and the size cap. Lines are
 *     `stdout: <line>\n` / `stderr: <line>\n` in arrival order (a CR before the newline is dropped);
 *     a partial line waits in its stream until its newline or close (and is emitted as a line of
 *     its own once it passes MAX_PARTIAL_LINE_BYTES, so memory stays bounded).
 *   - Without `sink.append`: at most one update per entry per syncIntervalMs, each with the FULL
 *     redacted snapshot. With `sink.append`: only new bytes, with their UTF-8 byte offset; a retry
 *     resends from the same offset, so the server can deduplicate.
 *   - `close(exitCode)` sets exitCode and durationMs and forces a final sync right away.
 *   - `flush()` waits for every entry's final sync and throws if an add or a final sync failed (the
 *     handler then errors the job, as Sourcegraph does). Failed intermediate updates are retried at
 *     the next interval and only logged.
 *   - Per-job output cap `maxOutputBytes`: the first half of the budget keeps the job's head; after
 *     that each open entry keeps a rolling tail inside what is left of the second half (tails of
 *     closed entries are committed and count against it). When bytes were dropped, an entry's
 *     snapshot is head + marker + tail. Memory is O(cap) whatever the output size. With append,
 *     once an entry spills past the head, nothing more is sent for it until close, then the
 *     marker and the tail.
 *   - With append, no request carries more than APPEND_CHUNK_BYTES of output (plus the marker):
 *     the head and the final tail go out as consecutive appends with their offsets, and exitCode
 *     and durationMs ride on the last one. Head output the server has is not kept, and after the
 *     final sync an entry's tail is released.
 *   - Output stays bytes from the chunk to the request: per stream, an incomplete UTF-8 character
 *     at the end of a chunk waits for the next (invalid bytes become U+FFFD, as a StringDecoder
 *     makes them), the redactor works on bytes, and lines with their prefix are assembled in one
 *     reused buffer of the logger, which is copied to the head (blocks of APPEND_CHUNK_BYTES) or
 *     the tail (one circular buffer per entry, grown on demand up to the tail budget). Appends are
 *     built in one reused buffer too. So streaming output allocates no buffer and no string per
 *     chunk or per line (with text, the 100 MiB job of `npm run bench -- logs` peaked at 200 MiB
 *     RSS, mostly garbage: docs/benchmarks.md). Every piece of output is whole characters, so byte
 *     offsets and the head/tail cut fall between characters. Only the full snapshots of a server
 *     without log-append are text.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import type { Clock } from '../../lib/clock.js';
import { systemClock } from '../../lib/clock.js';
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { JobLogger, LogEntryHandle } from '../job-context.js';
import type { ByteStreamRedactor, Redactor } from './redactor.js';
import type { LogSink, WireLogEntry } from './types.js';

/** A partial line longer than this is emitted as a line of its own, to bound memory. */
export const MAX_PARTIAL_LINE_BYTES = 1 << 20;

/** Largest output of one append request (head parts are stored split to at most this size). */
export const APPEND_CHUNK_BYTES = 1 << 20;

/**
 * Size of the buffer lines are assembled in. A chunk of output (docker and child processes deliver
 * at most 64 KiB) usually fits with its prefixes, so it goes to the tail in one or two copies.
 */
const LINE_BUFFER_BYTES = 64 * 1024;

/** Text longer than this (writeRaw, string chunks) is encoded into a buffer of its own. */
const TEXT_SCRATCH_BYTES = 64 * 1024;

export interface JobLoggerOptions {
  sink: LogSink;
  redactor: Redactor;
  clock?: Clock;
  maxOutputBytes: number;
  /** Minimum time between two updates of one entry; default 1000 (Sourcegraph's poll period). */
  syncIntervalMs?: number;
  logger: Logger;
}

export type FlushableJobLogger = JobLogger & { flush(): Promise<void> };

export function truncationMarker(omittedBytes: number, capBytes: number): string {
  return `\n[... ${omittedBytes} bytes of output omitted: log limit of ${capBytes} bytes reached ...]\n`;
}

interface Batch {
  /** A view of the logger's batch buffer: valid until the next batch is built. */
  out: Buffer;
  bytes: number;
  parts: number;
  marker: boolean;
  tail: number;
  last: boolean;
}

interface StreamState {
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

interface EntryState {
  key: string;
  command: string[] | null;
  startTime: string;
  startMs: number;
  streams: { stdout: StreamState; stderr: StreamState };
  /** Head output in parts of at most APPEND_CHUNK_BYTES; with append, parts sent are emptied. */
  headParts: Buffer[];
  headBytes: number;
  /** Rolling tail: `ringBytes` bytes of `ring`, circular, from `ringStart`. */
  ring: Buffer;
  ringStart: number;
  ringBytes: number;
  omitted: number;
  exitCode?: number;
  durationMs?: number;
  closed: boolean;
  /** Bumped on every visible change; compared with sentVersion to decide whether to sync. */
  version: number;
  sentVersion: number;
  /** Append mode: head parts, bytes, marker and tail bytes already acknowledged by the server. */
  sentParts: number;
  sentBytes: number;
  sentMarker: boolean;
  sentTail: number;
  id?: number;
  added: Promise<void>;
  timer?: NodeJS.Timeout;
  inflight?: Promise<void>;
  lastSendAt: number;
  final?: Promise<void>;
  error?: string;
}

const EMPTY = Buffer.alloc(0);
const NEWLINE = Buffer.from('\n');

/** Largest k <= n such that buf[k] does not start inside a UTF-8 sequence. */
function charBoundary(buf: Buffer, n: number): number {
  let k = Math.min(n, buf.length);
  while (k > 0 && k < buf.length && (buf[k]! & 0xc0) === 0x80) k--;
  return k;
}

/** Length of the UTF-8 sequence that `lead` starts (1 for a byte that starts none). */
function sequenceLength(lead: number): number {
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 1;
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

export function createJobLogger(opts: JobLoggerOptions): FlushableJobLogger {
  const { sink, redactor, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const intervalMs = opts.syncIntervalMs ?? 1000;
  const cap = Math.max(0, Math.floor(opts.maxOutputBytes));
  const headBudget = Math.floor(cap / 2);
  const appendMode = typeof sink.append === 'function';
  // Rate limiting uses a monotonic timer, not the injected clock: the clock stamps entries, the
  // timer decides when to talk to the server.
  const mono = () => performance.now();

  let headUsed = 0;
  let committedTail = 0;
  const open = new Set<EntryState>();
  const entries: EntryState[] = [];
  let addChain: Promise<void> = Promise.resolve();

  const tailBudget = cap - headBudget;
  // Lines are assembled here (`lineBytes` bytes) and go to an entry's head or tail when it is full
  // and at the end of every write: one buffer for the logger, since writes are synchronous.
  const lines = Buffer.allocUnsafeSlow(LINE_BUFFER_BYTES);
  let lineBytes = 0;
  // Where the lines of a batch end (a line takes at least its 8-byte prefix and its newline).
  const newlines = new Int32Array(Math.ceil(LINE_BUFFER_BYTES / 9));
  // Text (writeRaw, string chunks) is encoded here.
  let textScratch = EMPTY;
  // Head parts are views of blocks of APPEND_CHUNK_BYTES, filled in turn (`headBlockUsed` bytes).
  let headBlock = EMPTY;
  let headBlockUsed = 0;
  // Append requests are built here; the sink copies what it sends before append() returns. Head
  // parts and the tail fill at most APPEND_CHUNK_BYTES of it; the marker comes on top.
  const batchBytes = APPEND_CHUNK_BYTES + Buffer.byteLength(truncationMarker(Number.MAX_SAFE_INTEGER, cap));
  let batchBuffer = EMPTY;

  /** Bytes [from, to) of the tail as a string (decoded in place unless they wrap around). */
  const ringSlice = (e: EntryState, from: number, to: number): string => {
    if (to <= from || e.ring.length === 0) return '';
    const size = e.ring.length;
    const a = (e.ringStart + from) % size;
    const b = a + (to - from);
    if (b <= size) return e.ring.toString('utf8', a, b);
    return Buffer.concat([e.ring.subarray(a), e.ring.subarray(0, b - size)]).toString('utf8');
  };
  const ringAt = (e: EntryState, i: number) => e.ring[(e.ringStart + i) % e.ring.length]!;
  const ringText = (e: EntryState) => ringSlice(e, 0, e.ringBytes);
  const snapshot = (e: EntryState) =>
    Buffer.concat(e.headParts).toString('utf8') +
    (e.omitted > 0 ? truncationMarker(e.omitted, cap) : '') +
    ringText(e);
  /** Copies bytes [from, to) of the tail to dst at `at`. */
  const ringCopy = (e: EntryState, from: number, to: number, dst: Buffer, at: number) => {
    const size = e.ring.length;
    const a = (e.ringStart + from) % size;
    const first = Math.min(to - from, size - a);
    e.ring.copy(dst, at, a, a + first);
    if (first < to - from) e.ring.copy(dst, at + first, 0, to - from - first);
  };

  /** Drops n bytes from the front of the tail, then up to the next character start. */
  const dropFront = (e: EntryState, n: number) => {
    let k = Math.min(n, e.ringBytes);
    while (k < e.ringBytes && (ringAt(e, k) & 0xc0) === 0x80) k++;
    if (k === 0) return;
    e.ringStart = e.ringBytes === k ? 0 : (e.ringStart + k) % e.ring.length;
    e.ringBytes -= k;
    e.omitted += k;
  };

  /** Adds src[start, end) to e's tail, keeping it within the budget that other open tails leave. */
  const pushTail = (e: EntryState, src: Buffer, start: number, end: number) => {
    let others = 0;
    for (const o of open) if (o !== e) others += o.ringBytes;
    const limit = Math.max(0, tailBudget - committedTail - others);
    let from = start;
    if (end - start >= limit) {
      dropFront(e, e.ringBytes);
      from = end - limit;
      while (from < end && (src[from]! & 0xc0) === 0x80) from++;
      e.omitted += from - start;
    } else if (e.ringBytes + end - start > limit) {
      dropFront(e, e.ringBytes + end - start - limit);
    }
    const n = end - from;
    if (n === 0) return;
    const need = e.ringBytes + n;
    if (need > e.ring.length) {
      const grown = Buffer.allocUnsafeSlow(
        Math.min(tailBudget, Math.max(need, e.ring.length * 2, 64 * 1024)),
      );
      const size = e.ring.length;
      const first = Math.min(e.ringBytes, size - e.ringStart);
      e.ring.copy(grown, 0, e.ringStart, e.ringStart + first);
      if (first < e.ringBytes) e.ring.copy(grown, first, 0, e.ringBytes - first);
      e.ring = grown;
      e.ringStart = 0;
    }
    const size = e.ring.length;
    const at = (e.ringStart + e.ringBytes) % size;
    const first = Math.min(n, size - at);
    src.copy(e.ring, at, from, from + first);
    if (first < n) src.copy(e.ring, 0, from + first, from + n);
    e.ringBytes += n;
  };

  /** Copies src[start, end) to the head, in parts of whole characters in the logger's blocks. */
  const pushHead = (e: EntryState, src: Buffer, start: number, end: number) => {
    e.headBytes += end - start;
    while (start < end) {
      if (headBlockUsed === headBlock.length) {
        headBlock = Buffer.allocUnsafeSlow(APPEND_CHUNK_BYTES);
        headBlockUsed = 0;
      }
      const room = headBlock.length - headBlockUsed;
      const k = end - start <= room ? end : charBoundary(src, start + room);
      if (k <= start) {
        headBlockUsed = headBlock.length; // no room for the next character: on to a new block
        continue;
      }
      src.copy(headBlock, headBlockUsed, start, k);
      e.headParts.push(headBlock.subarray(headBlockUsed, headBlockUsed + (k - start)));
      headBlockUsed += k - start;
      start = k;
    }
  };

  /** Adds output src[start, end), whole characters, to e's head while there is room, else its tail. */
  const appendOutput = (e: EntryState, src: Buffer, start: number, end: number) => {
    if (end <= start) return;
    if (e.ringBytes === 0 && e.omitted === 0 && headUsed < headBudget) {
      const room = headBudget - headUsed;
      const k = end - start <= room ? end : charBoundary(src, start + room);
      if (k > start) pushHead(e, src, start, k);
      if (k === end) {
        headUsed += end - start;
        bump(e);
        return;
      }
      headUsed = headBudget;
      start = k;
    }
    pushTail(e, src, start, end);
    bump(e);
  };

  /** UTF-8 of `text`, in the logger's scratch buffer when it is small (valid until the next call). */
  const encode = (text: string): Buffer => {
    const size = Buffer.byteLength(text, 'utf8');
    if (size > TEXT_SCRATCH_BYTES) return Buffer.from(text, 'utf8');
    if (textScratch.length < size) textScratch = Buffer.allocUnsafeSlow(TEXT_SCRATCH_BYTES);
    textScratch.write(text, 0, size, 'utf8');
    return textScratch.subarray(0, size);
  };

  const appendText = (e: EntryState, text: string) => {
    if (text === '') return;
    const bytes = encode(text);
    appendOutput(e, bytes, 0, bytes.length);
  };

  /** `final`: with exitCode and durationMs once they are known. */
  const wire = (e: EntryState, out: string, final = true): WireLogEntry => {
    const w: WireLogEntry = { key: e.key, command: e.command, startTime: e.startTime };
    if (final && e.exitCode !== undefined) w.exitCode = e.exitCode;
    w.out = out;
    if (final && e.durationMs !== undefined) w.durationMs = e.durationMs;
    return w;
  };

  /**
   * Append mode's next request: unsent head parts, and once `closed` the marker and the tail, at
   * most APPEND_CHUNK_BYTES of output besides the marker. `last`: nothing is left after it.
   */
  const nextBatch = (e: EntryState, closed: boolean): Batch => {
    if (batchBuffer.length === 0) batchBuffer = Buffer.allocUnsafeSlow(batchBytes);
    let bytes = 0;
    let parts = 0;
    for (let i = e.sentParts; i < e.headParts.length; i++) {
      const part = e.headParts[i]!;
      if (parts > 0 && bytes + part.length > APPEND_CHUNK_BYTES) break;
      part.copy(batchBuffer, bytes);
      bytes += part.length;
      parts++;
    }
    const headDone = e.sentParts + parts === e.headParts.length;
    let marker = false;
    let tail = 0;
    if (closed && headDone) {
      if (!e.sentMarker) {
        marker = true;
        if (e.omitted > 0) bytes += batchBuffer.write(truncationMarker(e.omitted, cap), bytes, 'utf8');
      }
      const room = APPEND_CHUNK_BYTES - bytes;
      if (room > 0 && e.sentTail < e.ringBytes) {
        let end = Math.min(e.ringBytes, e.sentTail + room);
        while (end < e.ringBytes && end > e.sentTail && (ringAt(e, end) & 0xc0) === 0x80) end--;
        ringCopy(e, e.sentTail, end, batchBuffer, bytes);
        tail = end - e.sentTail;
        bytes += tail;
      }
    }
    const last = closed && headDone && (e.sentMarker || marker) && e.sentTail + tail === e.ringBytes;
    return { out: batchBuffer.subarray(0, bytes), bytes, parts, marker, tail, last };
  };

  /** Records a batch the server acknowledged and lets go of what it no longer needs. */
  const acknowledged = (e: EntryState, b: Batch) => {
    for (let i = e.sentParts; i < e.sentParts + b.parts; i++) e.headParts[i] = EMPTY;
    e.sentParts += b.parts;
    e.sentBytes += b.bytes;
    if (b.marker) e.sentMarker = true;
    e.sentTail += b.tail;
    if (b.last) release(e);
  };

  /** After the final sync: nothing of the entry's text is needed any more. */
  const release = (e: EntryState) => {
    e.headParts = [];
    e.sentParts = 0;
    e.ring = EMPTY;
    e.ringStart = 0;
    e.sentTail = e.ringBytes; // ringBytes stays: the job's tail budget still counts it
  };

  /** Sends the current state if it changed since the last successful send. Throws on failure. */
  const send = async (e: EntryState) => {
    const v = e.version;
    if (v === e.sentVersion || e.id === undefined) return;
    if (appendMode) {
      // An entry closed while this runs gets its tail from the final sync, which waits for it.
      const closed = e.closed;
      for (;;) {
        const b = nextBatch(e, closed);
        if (!b.last && b.bytes === 0) break; // spilled past the head: nothing to send until close
        await sink.append!(
          e.id,
          e.sentBytes,
          b.out,
          b.last ? { exitCode: e.exitCode, durationMs: e.durationMs } : {},
        );
        acknowledged(e, b);
        if (b.last) break;
      }
    } else {
      const closed = e.closed;
      await sink.update(e.id, wire(e, snapshot(e)));
      if (closed) release(e);
    }
    e.sentVersion = v;
  };

  const schedule = (e: EntryState) => {
    if (e.id === undefined || e.closed || e.timer || e.inflight || e.version === e.sentVersion) return;
    const waitMs = Math.max(0, e.lastSendAt + intervalMs - mono());
    e.timer = setTimeout(() => {
      e.timer = undefined;
      if (e.closed) return;
      // Timers run on the event loop's cached time and may fire a little early by this clock.
      if (mono() < e.lastSendAt + intervalMs) {
        schedule(e);
        return;
      }
      e.lastSendAt = mono();
      e.inflight = send(e)
        .catch((err) =>
          logger.warn('log entry update failed; retrying', { key: e.key, err: errorMessage(err) }),
        )
        .finally(() => {
          e.inflight = undefined;
          schedule(e);
        });
    }, waitMs);
    e.timer.unref();
  };

  function bump(e: EntryState) {
    e.version++;
    schedule(e);
  }

  const finalSync = (e: EntryState): Promise<void> => {
    e.final ??= (async () => {
      await e.added;
      if (e.id === undefined) return; // the add failed; its error is already recorded
      if (e.timer) {
        clearTimeout(e.timer);
        e.timer = undefined;
      }
      while (e.inflight) await e.inflight;
      try {
        await send(e);
      } catch (err) {
        e.error = `final update of log entry ${e.key} failed: ${errorMessage(err)}`;
        logger.error('log entry final update failed', { key: e.key, err: errorMessage(err) });
      }
    })();
    return e.final;
  };

  /** Sends the assembled lines to e. */
  const flushLines = (e: EntryState) => {
    appendOutput(e, lines, 0, lineBytes);
    lineBytes = 0;
  };

  /** Adds src[start, end), whole characters, to the assembled lines; flushes to e when full. */
  const putLine = (e: EntryState, src: Buffer, start: number, end: number) => {
    while (start < end) {
      const room = LINE_BUFFER_BYTES - lineBytes;
      const k = end - start <= room ? end : charBoundary(src, start + room);
      if (k <= start) {
        flushLines(e); // not room for the next character
        continue;
      }
      copyBytes(src, start, k, lines, lineBytes);
      lineBytes += k - start;
      start = k;
    }
  };

  /** Emits `<prefix><partial><src[start, end)>\n`, without a CR before the newline when `crlf`. */
  const emitLine = (
    e: EntryState,
    s: StreamState,
    src: Buffer,
    start: number,
    end: number,
    crlf: boolean,
  ) => {
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
      putLine(e, s.prefix, 0, s.prefix.length);
      putLine(e, s.partial, 0, partialEnd);
      putLine(e, src, start, end);
      putLine(e, NEWLINE, 0, 1);
    }
    s.partialBytes = 0;
    // A long line's buffer is not kept.
    if (s.partial.length > LINE_BUFFER_BYTES) s.partial = EMPTY;
  };

  /** Splits redacted output of stream s into lines. */
  const takeLines = (e: EntryState, s: StreamState, src: Buffer) => {
    const n = src.length;
    let start = 0;
    let nl = src.indexOf(10, 0);
    if (nl !== -1 && s.partialBytes > 0) {
      emitLine(e, s, src, 0, nl, true); // the line begun in an earlier segment
      start = nl + 1;
      nl = src.indexOf(10, start);
    }
    const prefix = s.prefix;
    const p = prefix.length;
    while (nl !== -1) {
      const room = LINE_BUFFER_BYTES - lineBytes;
      if (p + (nl - start) + 1 > room) {
        if (lineBytes > 0) {
          flushLines(e);
        } else {
          emitLine(e, s, src, start, nl, true); // longer than the line buffer
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
    if (s.partialBytes > MAX_PARTIAL_LINE_BYTES) emitLine(e, s, EMPTY, 0, 0, false);
  };

  /** Feeds src[start, end) of stream s to its redactor, invalid UTF-8 replaced as a decoder would. */
  const feed = (s: StreamState, src: Buffer, start: number, end: number) => {
    if (end <= start) return;
    const view = start === 0 && end === src.length ? src : src.subarray(start, end);
    s.redactor.push(isUtf8(view) ? view : Buffer.from(view.toString('utf8'), 'utf8'));
  };

  /** Output bytes of stream s: whole characters go on, an incomplete one at the end waits. */
  const decode = (s: StreamState, chunk: Buffer) => {
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

  const newStream = (e: EntryState, name: 'stdout' | 'stderr'): StreamState => {
    const s: StreamState = {
      prefix: Buffer.from(`${name}: `, 'utf8'),
      pending: Buffer.alloc(4),
      pendingBytes: 0,
      highSurrogate: '',
      redactor: undefined!, // set below: its sink needs the state
      partial: EMPTY,
      partialBytes: 0,
    };
    s.redactor = redactor.createByteStreamRedactor((bytes) => takeLines(e, s, bytes));
    return s;
  };

  const entry = (key: string, command: string[] | null): LogEntryHandle => {
    const startMs = clock.now();
    const streams = {} as EntryState['streams'];
    const e: EntryState = {
      key,
      command: command === null ? null : command.map((a) => redactor.redact(a)),
      startTime: new Date(startMs).toISOString(),
      startMs,
      streams,
      headParts: [],
      headBytes: 0,
      ring: EMPTY,
      ringStart: 0,
      ringBytes: 0,
      omitted: 0,
      closed: false,
      version: 0,
      sentVersion: -1,
      sentParts: 0,
      sentBytes: 0,
      sentMarker: false,
      sentTail: 0,
      added: Promise.resolve(),
      lastSendAt: mono(),
    };
    streams.stdout = newStream(e, 'stdout');
    streams.stderr = newStream(e, 'stderr');
    entries.push(e);
    open.add(e);
    e.added = addChain = addChain.then(async () => {
      const v = e.version;
      const closed = e.closed;
      const b = appendMode ? nextBatch(e, closed) : undefined;
      e.lastSendAt = mono();
      try {
        e.id = await sink.add(b ? wire(e, b.out.toString('utf8'), b.last) : wire(e, snapshot(e)));
        if (b) acknowledged(e, b);
        else if (closed) release(e);
        // Head parts left over (more than one request's worth) go out with the next sync.
        if (!b || b.last || (!closed && e.sentParts === e.headParts.length)) e.sentVersion = v;
      } catch (err) {
        e.error = `adding log entry ${key} failed: ${errorMessage(err)}`;
        logger.error('adding log entry failed', { key, err: errorMessage(err) });
      }
      if (!e.closed) schedule(e);
    });

    return {
      write(stream, chunk) {
        if (e.closed) return;
        const s = e.streams[stream];
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
        flushLines(e);
      },
      writeRaw(text) {
        if (e.closed) return;
        appendText(e, redactor.redact(text));
      },
      close(exitCode) {
        if (e.closed) return;
        for (const name of ['stdout', 'stderr'] as const) {
          const s = e.streams[name];
          if (s.highSurrogate !== '') decode(s, encode(s.highSurrogate));
          feed(s, s.pending, 0, s.pendingBytes);
          s.pendingBytes = 0;
          s.redactor.end();
          if (s.partialBytes > 0) emitLine(e, s, EMPTY, 0, 0, false);
          s.partial = EMPTY;
        }
        flushLines(e);
        e.exitCode = exitCode;
        e.durationMs = Math.max(0, clock.now() - e.startMs);
        e.closed = true;
        open.delete(e);
        committedTail += e.ringBytes;
        e.version++;
        void finalSync(e);
      },
    };
  };

  const flush = async () => {
    await addChain;
    for (const e of entries) {
      if (!e.closed) logger.warn('flushing a log entry that was never closed', { key: e.key });
    }
    await Promise.all(entries.map((e) => finalSync(e)));
    const errors = entries.filter((e) => e.error).map((e) => e.error!);
    if (errors.length > 0) throw new Error(errors.join('; '));
  };

  return { entry, flush };
}
