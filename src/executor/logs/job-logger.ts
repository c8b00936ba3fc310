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
  headParts: string[];
  headBytes: number;
  /** Rolling tail: buffers from ringStart on. */
  ring: Buffer[];
  ringStart: number;
  ringBytes: number;
  omitted: number;
  exitCode?: number;
  durationMs?: number;
  closed: boolean;
  /** Bumped on every visible change; compared with sentVersion to decide whether to sync. */
  version: number;
  sentVersion: number;
  /** Append mode: head parts and bytes already acknowledged by the server. */
  sentParts: number;
  sentBytes: number;
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

  const ringText = (e: EntryState) => Buffer.concat(e.ring.slice(e.ringStart)).toString('utf8');
  const snapshot = (e: EntryState) =>
    e.headParts.join('') + (e.omitted > 0 ? truncationMarker(e.omitted, cap) : '') + ringText(e);

  const trimRing = (e: EntryState) => {
    let others = 0;
    for (const o of open) if (o !== e) others += o.ringBytes;
    const limit = Math.max(0, cap - headBudget - committedTail - others);
    while (e.ringBytes > limit && e.ringStart < e.ring.length) {
      const first = e.ring[e.ringStart]!;
      const excess = e.ringBytes - limit;
      if (first.length <= excess) {
        e.ring[e.ringStart] = EMPTY; // release it now, not at the next compaction
        e.ringStart++;
        e.ringBytes -= first.length;
        e.omitted += first.length;
        continue;
      }
      // Drop `excess` bytes, then any continuation bytes so the tail starts on a character.
      let k = excess;
      while (k < first.length && (first[k]! & 0xc0) === 0x80) k++;
      e.ring[e.ringStart] = first.subarray(k);
      e.ringBytes -= k;
      e.omitted += k;
    }
    if (e.ringStart > 64 && e.ringStart * 2 > e.ring.length) {
      e.ring = e.ring.slice(e.ringStart);
      e.ringStart = 0;
    }
  };

  const appendOutput = (e: EntryState, text: string) => {
    if (text === '') return;
    let bytes = Buffer.from(text, 'utf8');
    if (e.ringBytes === 0 && e.omitted === 0 && headUsed < headBudget) {
      const room = headBudget - headUsed;
      if (bytes.length <= room) {
        e.headParts.push(text);
        e.headBytes += bytes.length;
        headUsed += bytes.length;
        bump(e);
        return;
      }
      const k = charBoundary(bytes, room);
      if (k > 0) {
        e.headParts.push(bytes.subarray(0, k).toString('utf8'));
        e.headBytes += k;
      }
      headUsed = headBudget;
      bytes = bytes.subarray(k);
    }
    e.ring.push(bytes);
    e.ringBytes += bytes.length;
    trimRing(e);
    bump(e);
  };

  const wire = (e: EntryState, out: string): WireLogEntry => {
    const w: WireLogEntry = { key: e.key, command: e.command, startTime: e.startTime };
    if (e.exitCode !== undefined) w.exitCode = e.exitCode;
    w.out = out;
    if (e.durationMs !== undefined) w.durationMs = e.durationMs;
    return w;
  };

  /** What append mode may send now: unsent head, and after close the marker and the tail. */
  const appendPayload = (e: EntryState) => {
    const parts = e.headParts.slice(e.sentParts);
    let out = parts.join('');
    if (e.closed) out += (e.omitted > 0 ? truncationMarker(e.omitted, cap) : '') + ringText(e);
    return { out, parts: parts.length };
  };

  /** Sends the current state if it changed since the last successful send. Throws on failure. */
  const send = async (e: EntryState) => {
    const v = e.version;
    if (v === e.sentVersion || e.id === undefined) return;
    if (appendMode) {
      const { out, parts } = appendPayload(e);
      const fields: { exitCode?: number; durationMs?: number } = {};
      if (e.closed) {
        fields.exitCode = e.exitCode;
        fields.durationMs = e.durationMs;
      } else if (out === '') {
        e.sentVersion = v; // spilled past the head: nothing to send until close
        return;
      }
      await sink.append!(e.id, e.sentBytes, out, fields);
      e.sentParts += parts;
      e.sentBytes += Buffer.byteLength(out, 'utf8');
    } else {
      await sink.update(e.id, wire(e, snapshot(e)));
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
      headBytes: 0,
      ring: [],
      ringStart: 0,
      ringBytes: 0,
      omitted: 0,
      closed: false,
      version: 0,
      sentVersion: -1,
      sentParts: 0,
      sentBytes: 0,
      added: Promise.resolve(),
      lastSendAt: mono(),
    };
    entries.push(e);
    open.add(e);
    e.added = addChain = addChain.then(async () => {
      const v = e.version;
      const out = appendMode ? appendPayload(e) : { out: snapshot(e), parts: e.headParts.length };
      e.lastSendAt = mono();
      try {
        e.id = await sink.add(wire(e, out.out));
        e.sentVersion = v;
        e.sentParts = out.parts;
        e.sentBytes = Buffer.byteLength(out.out, 'utf8');
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
