/**
 * The job logger: one per job. It turns command output into Sourcegraph log entries and keeps them
 * in sync with the server (Sourcegraph `worker/cmdlogger`). It composes three parts:
 *   - line assembly: bytes per stream, UTF-8 carried across chunks and redaction
 *     (`stream-decoder.ts`), then prefixed lines in one reused buffer (`line-assembler.ts`);
 *   - the head/tail cap (`output-cap.ts`): what of the job's output is kept, with the truncation
 *     marker; append requests are cut from it by `append-batcher.ts`;
 *   - the sync loop (`log-sync.ts`): adds in order, one request in flight per entry (appends as
 *     output comes, snapshots once a second), retries and the final sync.
 *
 * Contracts:
 *   - `entry(key, argv)` creates an entry with startTime = now (RFC 3339) and the redacted argv,
 *     shortened with a marker beyond the server's command bound (`command-cap.ts`).
 *   - Once the server refuses further entries (its entry count or log cap), later entries are not
 *     sent and `flush()` ends the log with one line saying so; it is not an error of the job.
 *   - Output is redacted per stream (boundary-safe) BEFORE line splitting and the size cap. Bytes
 *     held back because they could begin a secret wait at most `holdMs` (MAX_HOLD_MS, 200 ms), then
 *     go out masked where they could still become one; the timer is cancelled at close and flush.
 *   - `close(exitCode)` sets exitCode and durationMs and forces a final sync right away; the entry
 *     ignores writes after it.
 *   - `flush()` waits for every entry's final sync and throws if an add or a final sync failed (the
 *     handler then errors the job, as Sourcegraph does).
 *   - Output stays bytes from the chunk to the request: lines are assembled in one buffer of the
 *     logger and copied to the head (shared blocks) or the tail (one circular buffer per entry);
 *     appends are built in one reused buffer too. So streaming output allocates no buffer and no
 *     string per chunk or per line (with text, the 100 MiB job of `npm run bench -- logs` peaked at
 *     200 MiB RSS, mostly garbage: docs/benchmarks.md). Only the full snapshots of a server without
 *     log-append are text. The parts work on one entry object, so the hot path reads its fields
 *     directly.
 */
import type { Clock, Timers } from '../../lib/clock.js';
import { systemClock, systemTimers } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { JobLogger, LogEntryHandle } from '../job-context.js';
import { capCommand } from './command-cap.js';
import { createLineAssembler, type DeliverOutput } from './line-assembler.js';
import { createLogSync, type SyncedEntry } from './log-sync.js';
import { createOutputCap } from './output-cap.js';
import type { Redactor } from './redactor.js';
import { createStreamDecoder, MAX_HOLD_MS, type OutputStream } from './stream-decoder.js';
import type { LogSink } from './types.js';
import { EMPTY } from './utf8.js';

export { MAX_PARTIAL_LINE_BYTES } from './line-assembler.js';
export { APPEND_CHUNK_BYTES, truncationMarker } from './output-cap.js';
export { MAX_HOLD_MS } from './stream-decoder.js';

export interface JobLoggerOptions {
  sink: LogSink;
  redactor: Redactor;
  clock?: Clock;
  maxOutputBytes: number;
  /**
   * Minimum time between two snapshot updates of one entry, against a server without log-append;
   * default 1000 (Sourcegraph's poll period).
   */
  syncIntervalMs?: number;
  /** Refill interval of an entry's append budget (log-append); default APPEND_INTERVAL_MS. */
  appendIntervalMs?: number;
  /** Longest wait of output the redactor holds back; default MAX_HOLD_MS (200). */
  holdMs?: number;
  /** The timers of that wait; default the system's (unref'd). */
  timers?: Timers;
  logger: Logger;
}

export type FlushableJobLogger = JobLogger & { flush(): Promise<void> };

interface EntryState extends SyncedEntry {
  startMs: number;
  streams: { stdout: OutputStream; stderr: OutputStream };
}

export function createJobLogger(opts: JobLoggerOptions): FlushableJobLogger {
  const { sink, redactor, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const cap = createOutputCap(opts.maxOutputBytes);
  const sync = createLogSync({
    sink,
    cap,
    intervalMs: opts.syncIntervalMs ?? 1000,
    appendIntervalMs: opts.appendIntervalMs,
    logger,
  });
  const deliver: DeliverOutput<EntryState> = (e, src, start, end) => {
    if (end <= start) return;
    cap.append(e, src, start, end);
    sync.changed(e);
  };
  const lines = createLineAssembler(deliver);
  const decoder = createStreamDecoder(redactor, lines, deliver, {
    holdMs: opts.holdMs ?? MAX_HOLD_MS,
    timers: opts.timers ?? systemTimers,
  });
  const entries: EntryState[] = [];

  const entry = (key: string, command: string[] | null): LogEntryHandle => {
    const startMs = clock.now();
    const streams = {} as EntryState['streams'];
    const e: EntryState = {
      key,
      command: command === null ? null : capCommand(command.map((a) => redactor.redact(a))),
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
      tokens: 0, // both set when the add is sent; nothing reads them before
      tokensAt: 0,
    };
    streams.stdout = decoder.createStream(e, 'stdout');
    streams.stderr = decoder.createStream(e, 'stderr');
    entries.push(e);
    cap.open(e);
    sync.add(e);

    return {
      write(stream, chunk) {
        if (e.closed) return;
        decoder.write(e, e.streams[stream], chunk);
      },
      writeRaw(text) {
        if (e.closed) return;
        decoder.writeText(e, redactor.redact(text));
      },
      close(exitCode) {
        if (e.closed) return;
        decoder.end(e, e.streams.stdout);
        decoder.end(e, e.streams.stderr);
        lines.flush(e);
        e.exitCode = exitCode;
        e.durationMs = Math.max(0, clock.now() - e.startMs);
        e.closed = true;
        cap.close(e);
        sync.changed(e);
        void sync.finalSync(e);
      },
    };
  };

  const flush = async () => {
    await sync.addsSettled();
    for (const e of entries) {
      if (!e.closed) logger.warn('flushing a log entry that was never closed', { key: e.key });
      decoder.cancelHold(e.streams.stdout);
      decoder.cancelHold(e.streams.stderr);
    }
    await Promise.all(entries.map((e) => sync.finalSync(e)));
    await sync.noticeRefusal();
    const errors = entries.filter((e) => e.error).map((e) => e.error!);
    if (errors.length > 0) throw new Error(errors.join('; '));
  };

  return { entry, flush };
}
