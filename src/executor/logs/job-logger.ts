/**
 * The job logger: one per job. It turns command output into Sourcegraph log entries and keeps them
 * in sync with the server (Sourcegraph `worker/cmdlogger`).
 *
 * Contracts:
 *   - `entry(key, argv)` creates an entry with startTime = now (RFC 3339) and the redacted argv.
 *     Entries are added in creation order: the add of entry N+1 is sent after entry N's add settled.
 *   - Output is redacted per stream (boundary-safe) BEFORE line splitting and the size cap. Lines are
 *     `stdout: <line>\n` / `stderr: <line>\n` in arrival order; a partial line waits in its stream
 *     until its newline or close (and is split at MAX_PARTIAL_LINE_CHARS so memory stays bounded).
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
 *     and durationMs ride on the last one. Head text the server has is not kept, and after the
 *     final sync an entry's tail is released.
 *   - The rolling tail is one circular byte buffer per entry (grown on demand up to the tail
 *     budget): output is encoded into a reused scratch buffer and copied in, so streaming output
 *     allocates no buffer per chunk.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Clock } from '../../lib/clock.js';
import { systemClock } from '../../lib/clock.js';
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { JobLogger, LogEntryHandle } from '../runtimes/types.js';
import type { Redactor, StreamRedactor } from './redactor.js';
import type { LogSink, WireLogEntry } from './types.js';

/** A partial line longer than this is emitted as a line of its own, to bound memory. */
export const MAX_PARTIAL_LINE_CHARS = 1 << 20;

/** Largest output of one append request (head parts are stored split to at most this size). */
export const APPEND_CHUNK_BYTES = 1 << 20;

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
  out: string;
  bytes: number;
  parts: number;
  marker: boolean;
  tail: number;
  last: boolean;
}

interface StreamState {
  decoder: StringDecoder;
  redactor: StreamRedactor;
  partial: string;
}

interface EntryState {
  key: string;
  command: string[] | null;
  startTime: string;
  startMs: number;
  streams: { stdout: StreamState; stderr: StreamState };
  /** Head text in parts of at most APPEND_CHUNK_BYTES; with append, parts sent are set to ''. */
  headParts: string[];
  headPartBytes: number[];
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

/** Largest k <= n such that buf[k] does not start inside a UTF-8 sequence. */
function charBoundary(buf: Buffer, n: number): number {
  let k = Math.min(n, buf.length);
  while (k > 0 && k < buf.length && (buf[k]! & 0xc0) === 0x80) k--;
  return k;
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
  // Output on its way into a ring is encoded here: one buffer for the logger, grown as needed.
  let scratch = EMPTY;

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
    e.headParts.join('') + (e.omitted > 0 ? truncationMarker(e.omitted, cap) : '') + ringText(e);

  /** Drops n bytes from the front of the tail, then up to the next character start. */
  const dropFront = (e: EntryState, n: number) => {
    let k = Math.min(n, e.ringBytes);
    while (k < e.ringBytes && (ringAt(e, k) & 0xc0) === 0x80) k++;
    if (k === 0) return;
    e.ringStart = e.ringBytes === k ? 0 : (e.ringStart + k) % e.ring.length;
    e.ringBytes -= k;
    e.omitted += k;
  };

  /** Adds `src` to e's tail, keeping it within the budget that other open tails leave. */
  const pushTail = (e: EntryState, src: Buffer) => {
    let others = 0;
    for (const o of open) if (o !== e) others += o.ringBytes;
    const limit = Math.max(0, tailBudget - committedTail - others);
    let from = 0;
    if (src.length >= limit) {
      dropFront(e, e.ringBytes);
      from = src.length - limit;
      while (from < src.length && (src[from]! & 0xc0) === 0x80) from++;
      e.omitted += from;
    } else if (e.ringBytes + src.length > limit) {
      dropFront(e, e.ringBytes + src.length - limit);
    }
    const n = src.length - from;
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

  /** Adds head text, split into parts of at most APPEND_CHUNK_BYTES on character boundaries. */
  const pushHead = (e: EntryState, text: string, bytes: number) => {
    e.headBytes += bytes;
    if (bytes <= APPEND_CHUNK_BYTES) {
      e.headParts.push(text);
      e.headPartBytes.push(bytes);
      return;
    }
    let buf = Buffer.from(text, 'utf8');
    while (buf.length > 0) {
      const k = buf.length <= APPEND_CHUNK_BYTES ? buf.length : charBoundary(buf, APPEND_CHUNK_BYTES);
      e.headParts.push(buf.toString('utf8', 0, k));
      e.headPartBytes.push(k);
      buf = buf.subarray(k);
    }
  };

  const appendOutput = (e: EntryState, text: string) => {
    if (text === '') return;
    const size = Buffer.byteLength(text, 'utf8');
    if (e.ringBytes === 0 && e.omitted === 0 && headUsed < headBudget) {
      const room = headBudget - headUsed;
      if (size <= room) {
        pushHead(e, text, size);
        headUsed += size;
        bump(e);
        return;
      }
    }
    if (scratch.length < size) scratch = Buffer.allocUnsafeSlow(Math.max(size, 64 * 1024));
    scratch.write(text, 0, size, 'utf8');
    let bytes = scratch.subarray(0, size);
    if (e.ringBytes === 0 && e.omitted === 0 && headUsed < headBudget) {
      const k = charBoundary(bytes, headBudget - headUsed);
      if (k > 0) pushHead(e, bytes.toString('utf8', 0, k), k);
      headUsed = headBudget;
      bytes = bytes.subarray(k);
    }
    pushTail(e, bytes);
    bump(e);
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
    let out = '';
    let bytes = 0;
    let parts = 0;
    for (let i = e.sentParts; i < e.headParts.length; i++) {
      const b = e.headPartBytes[i]!;
      if (parts > 0 && bytes + b > APPEND_CHUNK_BYTES) break;
      out += e.headParts[i]!;
      bytes += b;
      parts++;
    }
    const headDone = e.sentParts + parts === e.headParts.length;
    let marker = false;
    let tail = 0;
    if (closed && headDone) {
      if (!e.sentMarker) {
        marker = true;
        if (e.omitted > 0) {
          const m = truncationMarker(e.omitted, cap);
          out += m;
          bytes += Buffer.byteLength(m, 'utf8');
        }
      }
      const room = APPEND_CHUNK_BYTES - bytes;
      if (room > 0 && e.sentTail < e.ringBytes) {
        let end = Math.min(e.ringBytes, e.sentTail + room);
        while (end < e.ringBytes && end > e.sentTail && (ringAt(e, end) & 0xc0) === 0x80) end--;
        out += ringSlice(e, e.sentTail, end);
        tail = end - e.sentTail;
        bytes += tail;
      }
    }
    const last = closed && headDone && (e.sentMarker || marker) && e.sentTail + tail === e.ringBytes;
    return { out, bytes, parts, marker, tail, last };
  };

  /** Records a batch the server acknowledged and lets go of what it no longer needs. */
  const acknowledged = (e: EntryState, b: Batch) => {
    for (let i = e.sentParts; i < e.sentParts + b.parts; i++) e.headParts[i] = '';
    e.sentParts += b.parts;
    e.sentBytes += b.bytes;
    if (b.marker) e.sentMarker = true;
    e.sentTail += b.tail;
    if (b.last) release(e);
  };

  /** After the final sync: nothing of the entry's text is needed any more. */
  const release = (e: EntryState) => {
    e.headParts = [];
    e.headPartBytes = [];
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
        if (!b.last && b.out === '') break; // spilled past the head: nothing to send until close
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

  const newStream = (): StreamState => ({
    decoder: new StringDecoder('utf8'),
    redactor: redactor.createStreamRedactor(),
    partial: '',
  });

  const takeLines = (e: EntryState, name: 'stdout' | 'stderr', text: string, atEnd: boolean) => {
    const s = e.streams[name];
    let data = s.partial + text;
    let out = '';
    let start = 0;
    for (let nl = data.indexOf('\n'); nl !== -1; nl = data.indexOf('\n', start)) {
      const end = nl > start && data.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      out += `${name}: ${data.slice(start, end)}\n`;
      start = nl + 1;
    }
    data = data.slice(start);
    if ((atEnd && data !== '') || data.length > MAX_PARTIAL_LINE_CHARS) {
      out += `${name}: ${data}\n`;
      data = '';
    }
    s.partial = data;
    appendOutput(e, out);
  };

  const entry = (key: string, command: string[] | null): LogEntryHandle => {
    const startMs = clock.now();
    const e: EntryState = {
      key,
      command: command === null ? null : command.map((a) => redactor.redact(a)),
      startTime: new Date(startMs).toISOString(),
      startMs,
      streams: { stdout: newStream(), stderr: newStream() },
      headParts: [],
      headPartBytes: [],
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
    entries.push(e);
    open.add(e);
    e.added = addChain = addChain.then(async () => {
      const v = e.version;
      const closed = e.closed;
      const b = appendMode ? nextBatch(e, closed) : undefined;
      e.lastSendAt = mono();
      try {
        e.id = await sink.add(b ? wire(e, b.out, b.last) : wire(e, snapshot(e)));
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
        const text = typeof chunk === 'string' ? chunk : s.decoder.write(chunk);
        takeLines(e, stream, s.redactor.push(text), false);
      },
      writeRaw(text) {
        if (e.closed) return;
        appendOutput(e, redactor.redact(text));
      },
      close(exitCode) {
        if (e.closed) return;
        for (const name of ['stdout', 'stderr'] as const) {
          const s = e.streams[name];
          const rest = s.redactor.push(s.decoder.end());
          takeLines(e, name, rest + s.redactor.end(), true);
        }
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
