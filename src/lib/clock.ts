/**
 * Time source. Everything that compares times (leases, deadlines, backoff, log timestamps) takes a
 * Clock, so lease tests run on fake time without sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface FakeClock extends Clock {
  advance(ms: number): void;
  set(ms: number): void;
}

export function createFakeClock(startMs = Date.UTC(2026, 0, 1)): FakeClock {
  let t = startMs;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
    set(ms) {
      t = ms;
    },
  };
}

/** A one-shot timer set by `Timers.set`. */
export interface Timer {
  /** Stops the timer; nothing happens when it already fired or was cancelled. */
  cancel(): void;
}

/**
 * One-shot timers, injectable like the clock, so that tests fire them by hand instead of sleeping.
 * A pending timer never keeps the process alive.
 */
export interface Timers {
  /** Calls `fn` once, `ms` from now. */
  set(fn: () => void, ms: number): Timer;
}

export const systemTimers: Timers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface FakeTimers extends Timers {
  /** Moves time on by `ms`, firing every timer that falls due, in the order they fall due. */
  advance(ms: number): void;
  /** Timers neither fired nor cancelled. */
  pending(): number;
}

export function createFakeTimers(): FakeTimers {
  let now = 0;
  let seq = 0;
  const due = new Map<number, { at: number; fn: () => void }>();
  return {
    set(fn, ms) {
      const id = seq++;
      due.set(id, { at: now + Math.max(0, ms), fn });
      return { cancel: () => due.delete(id) };
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        // The earliest due (ties in the order they were set); a timer set by one that fires counts.
        let first: number | undefined;
        for (const [id, t] of due)
          if (t.at <= end && (first === undefined || t.at < due.get(first)!.at)) first = id;
        if (first === undefined) break;
        const t = due.get(first)!;
        due.delete(first);
        now = t.at;
        t.fn();
      }
      now = end;
    },
    pending: () => due.size,
  };
}
