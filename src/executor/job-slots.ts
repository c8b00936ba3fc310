/**
 * The executor's job slots (EXECUTOR_MAXIMUM_NUM_JOBS): the dequeue loop takes a slot before it asks
 * for a job and each handler gives it back when it ends. One waiter at a time (the dequeue loop).
 */
export interface JobSlots {
  /** Resolves true with a slot taken, or false when the signal ended the wait. */
  acquire(signal: AbortSignal): Promise<boolean>;
  release(): void;
}

export function createJobSlots(count: number): JobSlots {
  let freeSlots = count;
  let slotWaiter: (() => void) | undefined;
  return {
    async acquire(signal: AbortSignal): Promise<boolean> {
      while (freeSlots === 0) {
        if (signal.aborted) return false;
        // The listener goes when the wait ends either way: a busy executor waits here once per job,
        // and listeners left on the worker's long-lived signal would pile up for its lifetime.
        await new Promise<void>((resolve) => {
          const done = () => {
            signal.removeEventListener('abort', done);
            if (slotWaiter === done) slotWaiter = undefined;
            resolve();
          };
          slotWaiter = done;
          signal.addEventListener('abort', done, { once: true });
        });
      }
      if (signal.aborted) return false;
      freeSlots--;
      return true;
    },
    release() {
      freeSlots++;
      const w = slotWaiter;
      slotWaiter = undefined;
      w?.();
    },
  };
}
