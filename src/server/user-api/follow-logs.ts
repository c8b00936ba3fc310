/**
 * `GET /api/v1/jobs/:id/logs?follow=1`: server-sent events until the job ends: `entry` (a new
 * entry, or changed fields), `output` (`{attempt, entryId, data}` chunks in order), then `end` with
 * the final job. The stream follows the latest attempt unless `attempt` is given. It also ends
 * when the client leaves or the server closes.
 *
 * A follower reads when it is woken: an accepted log write or mark of the job wakes it at once
 * (log-notifier.ts), so a line reaches it within one store read of the append; a slow timer
 * (FOLLOW_FALLBACK_MS) covers changes nobody announces. Events go out as soon as they are read.
 *
 * A follower keeps its position (the last entry id it has seen, and per unfinished entry the bytes
 * it has sent) and each poll reads only what lies after it: entries after that id, the entries
 * still open (no exit code yet, at most FOLLOW_OPEN_MAX of the latest), and output from each
 * entry's sent offset. Every read is bounded (FOLLOW_ENTRIES_PER_READ entries,
 * FOLLOW_BYTES_PER_READ bytes, FOLLOW_BYTES_PER_POLL per poll), so a poll costs what is new, not
 * what the job holds, and no single store call blocks the event loop for long. When a poll stopped
 * at a bound, the next one starts at once (after yielding to the event loop) instead of waiting.
 *
 * Memory: a poll holds at most 100 entries (commands cut at COMMAND_VIEW_CHARS) and 256 KiB of
 * output, about 1.5 MiB, and a follower whose client does not read waits for its socket to drain
 * before it reads more; so followers together hold at most EXECUTOR_SERVER_MAX_FOLLOWERS x 1.5 MiB.
 */

import {
  COMMAND_VIEW_CHARS,
  encodeLogStreamEvent,
  type LogStreamEvent,
  SSE_KEEPALIVE,
} from '../../protocol/user-api.js';
import { type JobRecord, type LogEntryRecord, TERMINAL_STATES } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import { maskSecrets } from '../executor-api/mask-secrets.js';
import type { RouteContext } from '../http.js';
import { createLogWaker } from '../log-notifier.js';
import { jobView, logEntryView, secretValues } from './job-view.js';

/**
 * How often a follower looks for new output without being woken. Accepted log writes and marks
 * wake the job's followers at once (in-process, and on PostgreSQL through NOTIFY from the other
 * replicas); this timer only catches what no wake-up announces (a reset by another replica's
 * resetter, a lost NOTIFY while the LISTEN connection reconnects).
 */
export const FOLLOW_FALLBACK_MS = 1000;
const FOLLOW_KEEPALIVE_MS = 15_000;
/** New entries one poll reads. */
export const FOLLOW_ENTRIES_PER_READ = 50;
/** Open entries (no exit code yet) a poll re-reads for changed fields and output: the latest ones. */
export const FOLLOW_OPEN_MAX = 50;
/**
 * Output reads between two yields to the event loop: SQLite reads are synchronous, so a poll that
 * read fifty entries' output in one go would hold the loop for all of them (measured: 10-90 ms
 * per 100 entries on a loaded 2-core host); in groups of this many a turn stays a few ms.
 */
export const FOLLOW_READS_PER_TURN = 16;
/** Output bytes of one store read; a 256 KiB SQLite read takes well under a millisecond. */
export const FOLLOW_BYTES_PER_READ = 256 * 1024;
/** Output bytes one poll sends in all, before it yields. */
export const FOLLOW_BYTES_PER_POLL = 256 * 1024;

interface Tracked {
  /** Output bytes sent. */
  sent: number;
  /** exitCode, durationMs, truncated as last sent. */
  fields: string;
  outLength: number;
  open: boolean;
}

export async function followLogs(
  ctx: RouteContext,
  deps: RouteDeps,
  initial: JobRecord,
  fixedAttempt?: number,
): Promise<void> {
  const { res } = ctx;
  const { store } = deps;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  // Headers go out now, so a client sees the stream open before the first event.
  res.flushHeaders();
  // Events written in one tick go out in one write (cork, uncork on the next tick).
  const send = (e: LogStreamEvent) => {
    if (res.writableCorked === 0) {
      res.cork();
      process.nextTick(() => res.uncork());
    }
    res.write(encodeLogStreamEvent(e));
    lastWrite = Date.now();
  };
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  const signal = AbortSignal.any([gone.signal, ctx.closing]);
  // Subscribed before the first read, so no write after it goes unannounced.
  const waker = createLogWaker(deps.logNotifier, initial.id);
  res.on('close', () => waker.close());
  // Registered with the store before the first read, so that other replicas announce later writes.
  await deps.logNotifier.ready();
  const secrets = secretValues(initial);
  let lastWrite = Date.now();
  let endedSeen = false;
  let attempt = -1;
  let afterEntryId = 0;
  // Set by a poll that stopped at a bound: the next one starts without waiting.
  let more = false;
  // Entries not finished for this follower: open, or with output not yet sent.
  const tracked = new Map<number, Tracked>();

  const see = (e: LogEntryRecord) => {
    const fields = JSON.stringify([e.exitCode, e.durationMs, e.truncated]);
    const t = tracked.get(e.entryId);
    if (!t || t.fields !== fields) send({ event: 'entry', data: logEntryView(e, secrets) });
    tracked.set(e.entryId, { sent: t?.sent ?? 0, fields, outLength: e.outLength, open: e.exitCode === null });
    if (e.entryId > afterEntryId) afterEntryId = e.entryId;
  };

  while (!signal.aborted) {
    // A client that does not read: read nothing more until what was sent has left.
    if (res.writableNeedDrain) await drained(res, signal);
    if (signal.aborted) break;
    const release = await deps.followers.pollSlot();
    let job: JobRecord | null;
    more = false;
    try {
      job = await poll();
    } finally {
      release();
    }
    if (!job) break;
    const ended = TERMINAL_STATES.includes(job.state);
    // One more pass after the job is seen ended catches writes that raced the final mark.
    if (ended && endedSeen && !more) {
      send({ event: 'end', data: jobView(job) });
      break;
    }
    if (ended) endedSeen = true;
    if (more || ended) {
      await turn();
      continue;
    }
    if (Date.now() - lastWrite > FOLLOW_KEEPALIVE_MS) {
      res.write(SSE_KEEPALIVE);
      lastWrite = Date.now();
    }
    await waker.wait(deps.followFallbackMs, signal);
  }
  waker.close();
  res.end();

  /** One poll: the job, entries after the position and the open ones, output after each offset. */
  async function poll(): Promise<JobRecord | null> {
    const job = await store.getJob(initial.id);
    if (!job) return null;
    const now = fixedAttempt ?? job.attempts;
    if (now !== attempt) {
      // A new attempt (a reset or retry while following the latest): its entries start again at 1.
      attempt = now;
      afterEntryId = 0;
      tracked.clear();
    }
    if (attempt === 0) return job;
    const open = [...tracked].filter(([, t]) => t.open).map(([id]) => id);
    const reread = open.slice(-FOLLOW_OPEN_MAX);
    const changed =
      reread.length > 0
        ? await store.getLogEntries(job.id, { attempt, entryIds: reread, commandChars: COMMAND_VIEW_CHARS })
        : [];
    for (const e of changed) see(e);
    const fresh = await store.getLogEntries(job.id, {
      attempt,
      afterEntryId,
      limit: FOLLOW_ENTRIES_PER_READ,
      commandChars: COMMAND_VIEW_CHARS,
    });
    for (const e of fresh) see(e);
    more = fresh.length === FOLLOW_ENTRIES_PER_READ;
    more = (await sendOutput(job.id)) || more;
    return job;
  }

  /** Sends output after each tracked entry's position, within the poll's budget; true if some is left. */
  async function sendOutput(jobId: number): Promise<boolean> {
    let budget = FOLLOW_BYTES_PER_POLL;
    let reads = 0;
    for (const [entryId, t] of tracked) {
      while (t.outLength > t.sent) {
        if (budget <= 0 || signal.aborted) return true;
        if (++reads % FOLLOW_READS_PER_TURN === 0) await turn();
        const data = await store.readLogOutput(
          jobId,
          attempt,
          entryId,
          t.sent,
          Math.min(FOLLOW_BYTES_PER_READ, budget, t.outLength - t.sent),
        );
        if (data.length === 0) break;
        const bytes = Buffer.byteLength(data, 'utf8');
        t.sent += bytes;
        budget -= bytes;
        send({ event: 'output', data: { attempt, entryId, data: maskSecrets(data, secrets) } });
      }
      // Finished for this follower: closed, and all its output sent.
      if (!t.open && t.sent >= t.outLength) tracked.delete(entryId);
    }
    return false;
  }
}

/** Lets the event loop run (other requests, I/O) before the follower goes on. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function drained(res: RouteContext['res'], signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
