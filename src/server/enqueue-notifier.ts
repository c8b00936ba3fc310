/**
 * In-process wake-up for long-poll dequeues and log followers. `notify(queue)` wakes every waiter
 * of that queue at once; waiters then race for the job through the Store, which lets exactly one
 * win. Missed notifications are harmless: waiters also re-check on a slow timer.
 */
export interface EnqueueNotifier {
  notify(queue: string): void;
  /**
   * Resolves when a job is enqueued in one of `queues`, when `timeoutMs` passes, or when `signal`
   * aborts, whichever comes first. Never rejects.
   */
  wait(queues: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Number of current waiters (for tests and metrics). */
  waiting(): number;
}

export function createEnqueueNotifier(): EnqueueNotifier {
  const waiters = new Map<string, Set<() => void>>();
  let count = 0;
  return {
    notify(queue) {
      const set = waiters.get(queue);
      if (!set) return;
      for (const wake of [...set]) wake();
    },
    wait(queues, timeoutMs, signal) {
      return new Promise<void>((resolve) => {
        if (signal?.aborted) {
          resolve();
          return;
        }
        let timer: NodeJS.Timeout | undefined;
        const done = () => {
          if (timer === undefined) return;
          clearTimeout(timer);
          timer = undefined;
          count--;
          for (const q of queues) {
            const set = waiters.get(q);
            set?.delete(done);
            if (set && set.size === 0) waiters.delete(q);
          }
          signal?.removeEventListener('abort', done);
          resolve();
        };
        count++;
        timer = setTimeout(done, Math.max(0, timeoutMs));
        for (const q of queues) {
          let set = waiters.get(q);
          if (!set) {
            set = new Set();
            waiters.set(q, set);
          }
          set.add(done);
        }
        signal?.addEventListener('abort', done, { once: true });
      });
    },
    waiting: () => count,
  };
}
