/**
 * The memory guard: while the process's resident set is above EXECUTOR_SERVER_MEMORY_LIMIT, the
 * server refuses new work (submissions, dequeues that hand out jobs, new log entries, new
 * followers) with 503 OVERLOADED and Retry-After, and /healthz answers 503, so that a load balancer
 * moves traffic away before the process runs out of memory. Work already admitted continues: the
 * marks, heartbeats and appends of running jobs are what frees the memory again.
 *
 * RSS is sampled lazily, at most once per SAMPLE_EVERY_MS, when a guarded request asks;
 * `process.memoryUsage.rss()` is one system call (about a microsecond), so the guard costs nothing
 * measurable and needs no timer. It reads /proc/self/stat, so it needs a free file descriptor: with
 * the process at its descriptor limit (EMFILE, a fleet larger than `ulimit -n` allows) the read
 * fails, and the guard keeps its last sample and says so once (`onError`) rather than failing the
 * request, which in the request listener would end the process.
 */
export const SAMPLE_EVERY_MS = 1_000;
/** Retry-After of a refusal: a garbage collection and some running work finish in it, and it stays
 * under the executor client's retryAfterMaxMs (3 s), so an executor retries rather than gives up. */
export const MEMORY_RETRY_AFTER_S = 2;

export interface MemoryGuard {
  /** The refusal's message when RSS is above the limit, else null. */
  refusal(): string | null;
  /** The last sample (bytes) and the limit (0 = disabled). */
  state(): { rssBytes: number; limitBytes: number };
}

export function createMemoryGuard(opts: {
  limitBytes: number;
  /** Monotonic milliseconds (default performance.now): the server's clock may be fake in tests. */
  now?: () => number;
  /** Resident set size in bytes (default process.memoryUsage.rss). */
  rss?: () => number;
  /** Told when a sample cannot be read (once until one can again); the last sample stands. */
  onError?: (err: unknown) => void;
}): MemoryGuard {
  const rss = opts.rss ?? (() => process.memoryUsage.rss());
  const clock = opts.now ?? (() => performance.now());
  let sampledAt = Number.NEGATIVE_INFINITY;
  let last = 0;
  let failing = false;
  const sample = (): number => {
    const now = clock();
    if (now - sampledAt >= SAMPLE_EVERY_MS || now < sampledAt) {
      sampledAt = now;
      try {
        last = rss();
        failing = false;
      } catch (err) {
        if (!failing) opts.onError?.(err);
        failing = true;
      }
    }
    return last;
  };
  return {
    refusal() {
      if (opts.limitBytes <= 0) return null;
      const bytes = sample();
      if (bytes <= opts.limitBytes) return null;
      return `The server's memory (${mib(bytes)} resident) is above its limit (${mib(opts.limitBytes)}, EXECUTOR_SERVER_MEMORY_LIMIT); it takes no new work until it is below. Retry shortly.`;
    },
    state: () => ({ rssBytes: opts.limitBytes > 0 ? sample() : last, limitBytes: opts.limitBytes }),
  };
}

const mib = (b: number) => `${Math.round(b / (1024 * 1024))} MiB`;
