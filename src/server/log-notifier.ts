/**
 * In-process wake-up of log followers: a log write the server accepted (add, update, append) or the
 * end of an attempt calls `notify(jobId)`, which wakes every follower of that job at once, so a
 * line reaches them in the time of one store read instead of a poll period. With PostgreSQL the
 * store also announces the write to the other replicas (NOTIFY on `executor_logs`), whose
 * LISTEN calls `notify` there.
 *
 * Contracts:
 *   - A wake-up is a hint, never data: the woken follower reads the store. Missed wake-ups are
 *     harmless, as followers also re-check on a slow timer (FOLLOW_FALLBACK_MS).
 *   - `subscribe` registers for the follower's whole life, so a write that lands while the follower
 *     is reading is not lost: the follower sees its wake-up when it next waits.
 */
export interface LogNotifier {
  notify(jobId: number): void;
  /** Calls `wake` after every notify(jobId) until the returned function is called. */
  subscribe(jobId: number, wake: () => void): () => void;
  /** Current subscriptions (for tests and metrics). */
  subscribers(): number;
  /**
   * Settles once the replica's followers are registered with the store (Store.followLogs), so that
   * writes on other replicas are announced from then on; at once without such a store, and after
   * READY_WAIT_MS at most. A follower awaits it after subscribing, before its first read.
   */
  ready(): Promise<void>;
  /** Ends the store registration at once (server shutdown). */
  close(): void;
}

export interface LogNotifierOptions {
  /** Store.followLogs: called when the first subscription starts; its release after the last ends. */
  follow?: () => Promise<() => void>;
  /** How long the registration outlives the last subscription (a reconnecting follower keeps it). */
  lingerMs?: number;
}

/** The longest a follower waits for the store registration before it reads anyway. */
export const READY_WAIT_MS = 1_000;
/** Default of LogNotifierOptions.lingerMs. */
export const FOLLOW_LINGER_MS = 30_000;

/**
 * After a log write or mark the store accepted: wakes this replica's followers of the job and
 * announces the write to the other replicas (a store shared by several, see Store.announceLogWrite).
 */
export function logWritten(
  deps: { logNotifier: LogNotifier; store: { announceLogWrite?(jobId: number): void } },
  jobId: number,
): void {
  deps.logNotifier.notify(jobId);
  deps.store.announceLogWrite?.(jobId);
}

export function createLogNotifier(opts: LogNotifierOptions = {}): LogNotifier {
  const byJob = new Map<number, Set<() => void>>();
  let count = 0;
  const registration = createRegistration(opts);
  return {
    notify(jobId) {
      const set = byJob.get(jobId);
      if (!set) return;
      for (const wake of [...set]) wake();
    },
    subscribe(jobId, wake) {
      let set = byJob.get(jobId);
      if (!set) {
        set = new Set();
        byJob.set(jobId, set);
      }
      // One function may subscribe twice; each subscription is its own entry.
      const entry = () => wake();
      set.add(entry);
      if (count++ === 0) registration.start();
      let done = false;
      return () => {
        if (done) return;
        done = true;
        if (--count === 0) registration.linger();
        const s = byJob.get(jobId);
        s?.delete(entry);
        if (s && s.size === 0) byJob.delete(jobId);
      };
    },
    subscribers: () => count,
    ready: () => registration.ready(),
    close: () => registration.end(),
  };
}

/** The store registration of a replica's followers: held while any follow, and a while after. */
function createRegistration(opts: LogNotifierOptions) {
  let held: Promise<(() => void) | undefined> | undefined;
  let lingering: NodeJS.Timeout | undefined;
  const end = () => {
    clearTimeout(lingering);
    lingering = undefined;
    const h = held;
    held = undefined;
    void h?.then((release) => release?.());
  };
  return {
    start() {
      clearTimeout(lingering);
      lingering = undefined;
      held ??= opts.follow?.().catch(() => undefined);
    },
    linger() {
      if (!held) return;
      lingering = setTimeout(end, opts.lingerMs ?? FOLLOW_LINGER_MS);
      lingering.unref();
    },
    ready(): Promise<void> {
      if (!held) return Promise.resolve();
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((r) => {
        timer = setTimeout(r, READY_WAIT_MS);
        timer.unref();
      });
      return Promise.race([held.then(() => {}), waited]).finally(() => clearTimeout(timer));
    },
    end,
  };
}

/**
 * A follower's side of the notifier: `wait` resolves at the next wake-up since the last `wait`
 * began (at once if one came in between), after `timeoutMs`, or when `signal` aborts.
 */
export interface LogWaker {
  wait(timeoutMs: number, signal: AbortSignal): Promise<void>;
  /** How many waits ended by a wake-up rather than by the timer (for tests). */
  woken(): number;
  close(): void;
}

export function createLogWaker(notifier: LogNotifier, jobId: number): LogWaker {
  let pending = false;
  let wakes = 0;
  let resolveWait: (() => void) | undefined;
  const unsubscribe = notifier.subscribe(jobId, () => {
    pending = true;
    resolveWait?.();
  });
  return {
    wait(timeoutMs, signal) {
      return new Promise<void>((resolve) => {
        if (pending || signal.aborted) {
          if (pending) wakes++;
          pending = false;
          resolve();
          return;
        }
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolveWait = undefined;
          if (pending) wakes++;
          pending = false;
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        signal.addEventListener('abort', done, { once: true });
        resolveWait = done;
      });
    },
    woken: () => wakes,
    close: unsubscribe,
  };
}
