/**
 * The wake-up behind long-poll dequeues: parked requests wait on events, not timers, so an idle
 * fleet costs the store nothing.
 *
 * - `notify(queue, jobs)` (an enqueue here, a NOTIFY from another replica, a requeue) wakes at most
 *   `jobs` waiters of that queue, the longest-waiting first: one job wakes one executor, not the
 *   whole fleet. Waiters then claim through the Store, which lets exactly one win per job.
 * - `dueAt(queue, at)`: a job that becomes ready later (retry backoff) sets one timer per queue, at
 *   the earliest such time, which wakes one waiter then.
 * - One slow safety re-check for all queues that have waiters (not one per request): it asks the
 *   store how many jobs are ready per queue and wakes that many waiters. It covers what no event
 *   announced (a lost NOTIFY, a job made due on another replica).
 * - `knownEmpty(queues)`: true while every queue was last seen empty by a claim attempt and no
 *   event has touched it since; a dequeue then parks at once without asking the store. Every event
 *   stamps its queue with the next value of one counter, so a stale "empty" is impossible: a claim
 *   attempt records emptiness only if no queue it read got a newer stamp while it ran (`epoch`
 *   before, `markEmpty` after).
 */
import { type Clock, systemClock } from '../lib/clock.js';

export interface EnqueueNotifier {
  /** Wakes up to `jobs` (default 1) waiters of `queue`, longest-waiting first. */
  notify(queue: string, jobs?: number): void;
  /** A job of `queue` becomes ready at `at` (epoch ms): one waiter is woken then. */
  dueAt(queue: string, at: number): void;
  /**
   * Resolves with the queue whose event woke it, or null when `timeoutMs` passes or `signal`
   * aborts, whichever comes first. Never rejects.
   */
  wait(queues: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<string | null>;
  /** The queues' event counter, read before a claim attempt (see markEmpty). */
  epoch(queues: readonly string[]): number;
  /** Records that a claim attempt begun at `epoch` found nothing in `queues`. */
  markEmpty(queues: readonly string[], epoch: number): void;
  /** Every queue was seen empty and nothing has happened to it since. */
  knownEmpty(queues: readonly string[]): boolean;
  /** Number of current waiters (for tests and metrics). */
  waiting(): number;
  /** Stops the timers (the safety re-check, due timers) and releases every waiter. */
  close(): void;
}

export interface EnqueueNotifierOptions {
  /** Ready jobs per queue, for the safety re-check. Without it there is no re-check. */
  readyCounts?: (queues: string[], now: number) => Promise<Map<string, number>>;
  /** Interval of the safety re-check. Default 1000. */
  recheckMs?: number;
  clock?: Clock;
  /** Errors of the re-check (the store unreachable); the re-check carries on. */
  onError?: (e: unknown) => void;
}

interface Waiter {
  queues: readonly string[];
  wake(queue: string | null): void;
}

interface QueueState {
  /** Insertion-ordered: the first is the longest-waiting. */
  waiters: Set<Waiter>;
  /** The stamp of the last event that may have made a job ready (0: none seen). */
  epoch: number;
  /** The epoch at which a claim attempt last found the queue empty; -1 when not known empty. */
  emptyAt: number;
  due?: { at: number; timer: NodeJS.Timeout };
}

export function createEnqueueNotifier(opts: EnqueueNotifierOptions = {}): EnqueueNotifier {
  const clock = opts.clock ?? systemClock;
  const queues = new Map<string, QueueState>();
  let count = 0;
  let closed = false;
  let stamps = 0;

  const stateOf = (queue: string): QueueState => {
    let s = queues.get(queue);
    if (!s) {
      s = { waiters: new Set(), epoch: 0, emptyAt: -1 };
      queues.set(queue, s);
    }
    return s;
  };
  /** Drops a queue's state once nothing refers to it (no waiter, no timer, not known empty). */
  const tidy = (queue: string, s: QueueState) => {
    if (s.waiters.size === 0 && !s.due && s.emptyAt < 0) queues.delete(queue);
  };

  const wakeSome = (queue: string, jobs: number) => {
    const s = queues.get(queue);
    if (!s) return;
    let left = Math.max(0, Math.floor(jobs));
    for (const w of s.waiters) {
      if (left <= 0) break;
      w.wake(queue);
      left--;
    }
  };

  const event = (queue: string) => {
    const s = stateOf(queue);
    s.epoch = ++stamps;
    s.emptyAt = -1;
    return s;
  };

  const recheck = createRecheck(
    opts,
    clock,
    () => count,
    queues,
    (q, n) => {
      event(q);
      wakeSome(q, n);
    },
  );

  return {
    notify(queue, jobs = 1) {
      event(queue);
      wakeSome(queue, jobs);
    },

    dueAt(queue, at) {
      if (closed) return;
      const s = stateOf(queue);
      if (s.due && s.due.at <= at) return;
      if (s.due) clearTimeout(s.due.timer);
      const timer = setTimeout(
        () => {
          s.due = undefined;
          event(queue);
          wakeSome(queue, 1);
          tidy(queue, s);
        },
        Math.max(0, at - clock.now()),
      );
      timer.unref();
      s.due = { at, timer };
    },

    wait(names, timeoutMs, signal) {
      return new Promise<string | null>((resolve) => {
        if (signal?.aborted || closed) {
          resolve(null);
          return;
        }
        let timer: NodeJS.Timeout | undefined;
        const waiter: Waiter = {
          queues: names,
          wake(queue) {
            if (timer === undefined) return;
            clearTimeout(timer);
            timer = undefined;
            count--;
            for (const q of names) {
              const s = queues.get(q);
              if (!s) continue;
              s.waiters.delete(waiter);
              tidy(q, s);
            }
            signal?.removeEventListener('abort', onAbort);
            recheck.stopIfIdle();
            resolve(queue);
          },
        };
        const onAbort = () => waiter.wake(null);
        count++;
        timer = setTimeout(onAbort, Math.max(0, timeoutMs));
        for (const q of names) stateOf(q).waiters.add(waiter);
        signal?.addEventListener('abort', onAbort, { once: true });
        recheck.start();
      });
    },

    epoch(names) {
      let newest = 0;
      for (const q of names) newest = Math.max(newest, queues.get(q)?.epoch ?? 0);
      return newest;
    },

    markEmpty(names, epoch) {
      // Any event since `epoch` stamped its queue with a larger value.
      for (const q of names) if ((queues.get(q)?.epoch ?? 0) > epoch) return;
      for (const q of names) {
        const s = stateOf(q);
        s.emptyAt = s.epoch;
      }
    },

    knownEmpty(names) {
      if (names.length === 0) return false;
      for (const q of names) {
        const s = queues.get(q);
        if (!s || s.emptyAt < 0 || s.emptyAt !== s.epoch) return false;
      }
      return true;
    },

    waiting: () => count,

    close() {
      closed = true;
      recheck.stop();
      for (const [, s] of queues) {
        if (s.due) clearTimeout(s.due.timer);
        s.due = undefined;
        for (const w of [...s.waiters]) w.wake(null);
      }
      queues.clear();
    },
  };
}

/**
 * The one safety re-check of a notifier: while anyone waits, every `recheckMs` it asks the store
 * how many jobs are ready in the queues that have waiters (one call for all of them) and hands
 * each count to `wake`.
 */
function createRecheck(
  opts: EnqueueNotifierOptions,
  clock: Clock,
  waiting: () => number,
  queues: ReadonlyMap<string, QueueState>,
  wake: (queue: string, jobs: number) => void,
) {
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let stopped = false;
  const run = async () => {
    if (running || !opts.readyCounts) return;
    const watched = [...queues].filter(([, s]) => s.waiters.size > 0).map(([q]) => q);
    if (watched.length === 0) return;
    running = true;
    try {
      const counts = await opts.readyCounts(watched, clock.now());
      for (const q of watched) {
        const n = counts.get(q) ?? 0;
        if (n > 0) wake(q, n);
      }
    } catch (e) {
      opts.onError?.(e);
    } finally {
      running = false;
    }
  };
  return {
    start() {
      if (timer || stopped || !opts.readyCounts) return;
      timer = setInterval(() => void run(), opts.recheckMs ?? 1000);
      timer.unref();
    },
    stopIfIdle() {
      if (timer && waiting() === 0) {
        clearInterval(timer);
        timer = undefined;
      }
    },
    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
