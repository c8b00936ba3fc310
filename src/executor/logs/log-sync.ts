/**
 * The sync loop of a job's log entries: adds them, keeps them in sync with the server, retries
 * failed updates and sends each entry's final state (Sourcegraph `worker/cmdlogger`).
 *
 * Contracts:
 *   - Entries are added in `add` order: the add of entry N+1 is sent after entry N's add settled.
 *   - At most one request per entry is in flight; what changes while one is in flight rides the
 *     next, which leaves as soon as the one in flight settled and the entry's budget allows.
 *   - `changed` after every visible change of an open entry. Without `sink.append` (a Sourcegraph
 *     server): at most one update per entry per intervalMs (1 s, Sourcegraph's rhythm), each with
 *     the FULL redacted text. With `sink.append`: only new bytes, with their UTF-8 byte offset,
 *     sent as they come, paced per entry by a token bucket (APPEND_BURST back to back, then one per
 *     APPEND_INTERVAL_MS), so a quiet step's line leaves at once and a noisy step's output is
 *     batched by the request in flight and that budget. A retry resends from the same offset, so the server can deduplicate.
 *     With append, once an entry spills past the head, nothing more is sent for it until its final
 *     sync.
 *   - `finalSync` once the entry is closed (exitCode and durationMs set): it cancels the timer,
 *     waits for the update in flight and sends right away; it runs once, later calls share it. A
 *     failed add or final sync is recorded in `error`; a failed intermediate update is retried at
 *     the next interval and only logged, with the time since the loop's last successful request.
 *   - The server's log bounds (LogRefusedError, a 413) are not failures of the job: a command over
 *     the server's bound is shortened to it and the add sent again, once; any other refusal (the
 *     entry count, the job's log cap) stops all further adds, and `noticeRefusal` says so once, at
 *     the end of the last entry the server took.
 */
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { type BatchedOutput, createAppendBatcher, releaseSent } from './append-batcher.js';
import { capCommand } from './command-cap.js';
import type { OutputCap } from './output-cap.js';
import { LogRefusedError, type LogSink, type WireLogEntry } from './types.js';

/** An entry as the sync loop sees it. */
export interface SyncedEntry extends BatchedOutput {
  key: string;
  /** Redacted argv. */
  command: string[] | null;
  /** RFC 3339. */
  startTime: string;
  exitCode?: number;
  durationMs?: number;
  closed: boolean;
  /** Bumped on every visible change; compared with sentVersion to decide whether to sync. */
  version: number;
  sentVersion: number;
  id?: number;
  added: Promise<void>;
  timer?: NodeJS.Timeout;
  inflight?: Promise<void>;
  /**
   * The entry's send budget (a token bucket): requests it may start now, as of `tokensAt` on the
   * monotonic timer; refilled by one per interval, up to the burst.
   */
  tokens: number;
  tokensAt: number;
  final?: Promise<void>;
  error?: string;
}

/**
 * The appends of one entry are paced by a token bucket: up to APPEND_BURST may start back to back,
 * then one per APPEND_INTERVAL_MS. So a step that prints continuously makes at most
 * APPEND_BURST + 1000 / APPEND_INTERVAL_MS = 20 appends in any one second (16 a second sustained),
 * while a line of a quiet step, or the second of two writes a few ms apart (a traced command and
 * its output), leaves at once. A plain minimum gap between appends held that second write back for
 * the whole gap. Measured on a 2-core host (`npm run bench -- logs.latency logs.requests`): p50 a
 * few ms from a step's write to an SSE follower (0.5 s with the 1 s snapshots).
 */
export const APPEND_INTERVAL_MS = 62.5;
export const APPEND_BURST = 4;

export interface LogSyncOptions {
  sink: LogSink;
  cap: OutputCap;
  /** Minimum time between two snapshot updates of one entry (a server without log-append). */
  intervalMs: number;
  /** Refill interval of an entry's append budget; default APPEND_INTERVAL_MS (burst APPEND_BURST). */
  appendIntervalMs?: number;
  logger: Logger;
}

export interface LogSync {
  /** Queues e's add behind the adds before it; sets `e.added`. */
  add(e: SyncedEntry): void;
  /** e changed visibly: its next update is due within intervalMs. */
  changed(e: SyncedEntry): void;
  finalSync(e: SyncedEntry): Promise<void>;
  /** Settles once every add queued so far has settled. */
  addsSettled(): Promise<void>;
  /**
   * When the server refused further entries: appends one line saying so to the last entry it took
   * (after that entry's final sync; with log-append only, else a warning in the executor's log).
   * Best effort and once; never throws.
   */
  noticeRefusal(): Promise<void>;
}

/** The line a job's log ends with when the server refused further entries. */
export const refusalNotice = (serverText: string): string =>
  `\n[executor: the server refused further log entries (${serverText}); the output of later steps is not in this log]\n`;

/** sink.add, sent once more with the command shortened when the server names a smaller bound. */
async function addShortening(e: SyncedEntry, send: () => Promise<number>): Promise<number> {
  try {
    return await send();
  } catch (err) {
    if (!(err instanceof LogRefusedError) || err.commandLimitBytes === undefined || !e.command) throw err;
    e.command = capCommand(e.command, err.commandLimitBytes);
    return send();
  }
}

/** Appends `notice` to `target`'s output after its final sync (log-append only); never throws. */
async function appendNotice(
  sink: LogSink,
  target: SyncedEntry | undefined,
  notice: string,
  logger: Logger,
): Promise<void> {
  if (!target || target.id === undefined || !sink.append) {
    logger.warn('cannot note the refused log entries in the job log', { notice: notice.trim() });
    return;
  }
  await target.final;
  const text = Buffer.from(notice, 'utf8');
  try {
    await sink.append(target.id, target.sentBytes, text, {});
    target.sentBytes += text.length;
  } catch (err) {
    logger.warn('noting the refused log entries in the job log failed', { err: errorMessage(err) });
  }
}

/** e on the wire with `out`; `final`: with exitCode and durationMs once they are known. */
function wire(e: SyncedEntry, out: string, final = true): WireLogEntry {
  const w: WireLogEntry = { key: e.key, command: e.command, startTime: e.startTime };
  if (final && e.exitCode !== undefined) w.exitCode = e.exitCode;
  w.out = out;
  if (final && e.durationMs !== undefined) w.durationMs = e.durationMs;
  return w;
}

/** An entry's token bucket: `burst` requests at once, refilled by one per `intervalMs`. */
function sendBudget(burst: number, intervalMs: number, mono: () => number) {
  /** e's budget refilled up to now; returns when it can start its next request. */
  const readyAt = (e: SyncedEntry): number => {
    const now = mono();
    if (intervalMs > 0) e.tokens = Math.min(burst, e.tokens + (now - e.tokensAt) / intervalMs);
    else e.tokens = burst;
    e.tokensAt = now;
    return e.tokens >= 1 ? now : now + (1 - e.tokens) * intervalMs;
  };
  const spend = (e: SyncedEntry) => {
    readyAt(e);
    e.tokens -= 1;
  };
  return { readyAt, spend };
}

export function createLogSync(opts: LogSyncOptions): LogSync {
  const { sink, cap, logger } = opts;
  const appendMode = typeof sink.append === 'function';
  const intervalMs = appendMode ? (opts.appendIntervalMs ?? APPEND_INTERVAL_MS) : opts.intervalMs;
  // Snapshots keep Sourcegraph's plain rhythm: a burst of one is a minimum gap of intervalMs.
  const burst = appendMode ? APPEND_BURST : 1;
  const { readyAt, spend } = sendBudget(burst, intervalMs, () => mono());
  const batcher = appendMode ? createAppendBatcher(cap.capBytes) : undefined;
  // Rate limiting uses a monotonic timer, not the injected clock: the clock stamps entries, the
  // timer decides when to talk to the server.
  const mono = () => performance.now();
  let lastSuccessAt = mono();
  const sinceLastSuccessMs = () => Math.round(mono() - lastSuccessAt);
  let addChain: Promise<void> = Promise.resolve();
  let refused: string | undefined; // the server's text once it refused an entry (count, cap)
  let noticed = false;
  let lastAdded: SyncedEntry | undefined;

  /** Sends the current state if it changed since the last successful send. Throws on failure. */
  const send = async (e: SyncedEntry) => {
    const v = e.version;
    if (v === e.sentVersion || e.id === undefined) return;
    if (batcher) {
      // An entry closed while this runs gets its tail from the final sync, which waits for it.
      const closed = e.closed;
      // Only the output there when this sync began: what arrives while an append is in flight
      // rides the next sync, appendIntervalMs after this one began (else a step that prints
      // continuously gets back-to-back appends, one per round trip).
      const partsAtStart = e.headParts.length;
      for (;;) {
        const b = batcher.next(e, closed);
        if (!b.last && b.bytes === 0) break; // spilled past the head: nothing to send until close
        await sink.append!(
          e.id,
          e.sentBytes,
          b.out,
          b.last ? { exitCode: e.exitCode, durationMs: e.durationMs } : {},
        );
        lastSuccessAt = mono();
        batcher.acknowledged(e, b);
        if (b.last || (!closed && e.sentParts >= partsAtStart)) break;
      }
    } else {
      const closed = e.closed;
      await sink.update(e.id, wire(e, cap.text(e)));
      lastSuccessAt = mono();
      if (closed) releaseSent(e);
    }
    e.sentVersion = v;
  };

  const schedule = (e: SyncedEntry) => {
    if (e.id === undefined || e.closed || e.timer || e.inflight || e.version === e.sentVersion) return;
    const waitMs = Math.max(0, readyAt(e) - mono());
    e.timer = setTimeout(() => {
      e.timer = undefined;
      if (e.closed) return;
      // Timers run on the event loop's cached time and may fire a little early by this clock.
      if (readyAt(e) > mono()) {
        schedule(e);
        return;
      }
      spend(e);
      e.inflight = send(e)
        .catch((err) =>
          logger.warn('log entry update failed; retrying', {
            key: e.key,
            err: errorMessage(err),
            sinceLastSuccessMs: sinceLastSuccessMs(),
          }),
        )
        .finally(() => {
          e.inflight = undefined;
          schedule(e);
        });
    }, waitMs);
    e.timer.unref();
  };

  return {
    add(e) {
      e.added = addChain = addChain.then(async () => {
        // The server takes no more entries; noticeRefusal says so once.
        if (refused !== undefined) return;
        const v = e.version;
        const closed = e.closed;
        const b = batcher?.next(e, closed);
        e.tokensAt = mono();
        e.tokens = burst - 1; // the add is the entry's first request
        try {
          e.id = await addShortening(e, () =>
            sink.add(b ? wire(e, b.out.toString('utf8'), b.last) : wire(e, cap.text(e))),
          );
          lastAdded = e;
          lastSuccessAt = mono();
          if (b) batcher!.acknowledged(e, b);
          else if (closed) releaseSent(e);
          // Head parts left over (more than one request's worth) go out with the next sync.
          if (!b || b.last || (!closed && e.sentParts === e.headParts.length)) e.sentVersion = v;
        } catch (err) {
          if (err instanceof LogRefusedError) {
            refused = err.serverText;
            logger.warn('the server refuses further log entries of this job; later output is not sent', {
              key: e.key,
              reason: err.serverText,
            });
            return;
          }
          e.error = `adding log entry ${e.key} failed: ${errorMessage(err)}`;
          logger.error('adding log entry failed', {
            key: e.key,
            err: errorMessage(err),
            sinceLastSuccessMs: sinceLastSuccessMs(),
          });
        }
        if (!e.closed) schedule(e);
      });
    },
    changed(e) {
      e.version++;
      schedule(e);
    },
    finalSync(e) {
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
          logger.error('log entry final update failed', {
            key: e.key,
            err: errorMessage(err),
            sinceLastSuccessMs: sinceLastSuccessMs(),
          });
        }
      })();
      return e.final;
    },
    addsSettled: () => addChain,
    async noticeRefusal() {
      if (refused === undefined || noticed) return;
      noticed = true;
      await appendNotice(sink, lastAdded, refusalNotice(refused), logger);
    },
  };
}
