/**
 * Short in-memory history for the dashboard's charts: per queue (depth, processing, oldest wait,
 * jobs started and finished in each interval, median dispatch latency) and per executor (a few
 * numeric series parsed from the Prometheus text it pushes in heartbeats).
 *
 * The sampler sees dispatches and finishes by wrapping the Store (`observe`): every dequeue and
 * every successful mark that goes through this server process is counted. With several server
 * replicas on one PostgreSQL database each replica counts its own traffic only; depth and
 * processing come from the database and are global. Nothing is persisted: a restart starts the
 * charts empty.
 */

import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { promValue } from '../lib/prometheus.js';
import type { ExecutorSeries, QueueSample } from '../protocol/user-api.js';
import type { AttemptFence, Store } from '../store/types.js';
import { type BackgroundLoop, createLoop } from './background/loop.js';

/**
 * Gauges charted as they are, and counters (`_total`) charted as per-second rates. Summed over
 * label sets. The process_* ones are what stock Sourcegraph executors push; ours push the src_* ones.
 */
export { promValue };

export const EXECUTOR_GAUGES = [
  'src_executor_processor_handlers',
  'src_executor_workspace_free_bytes',
  'process_resident_memory_bytes',
] as const;
export const EXECUTOR_COUNTERS = [
  'src_executor_processor_total',
  'src_executor_processor_errors_total',
  'process_cpu_seconds_total',
] as const;

/** Executors are sampled while their last heartbeat is this recent (the /metrics window). */
const EXECUTOR_FRESH_MS = 30_000;

/** Executors' metrics are read this many at a time (see sampleExecutors). */
const EXECUTOR_PAGE = 500;

export interface QueueHistoryOptions {
  clock: Clock;
  logger: Logger;
  /** Default 10 s. */
  intervalMs?: number;
  /** Samples kept per queue and per executor series; default 360 (an hour at 10 s). */
  keep?: number;
}

export interface QueueHistory {
  /** A Store that behaves exactly like `store` and reports dequeues and marks to the sampler. */
  observe(store: Store): Store;
  /** The sampling loop (reads `store`, the unwrapped one is fine). */
  loop(store: Store): BackgroundLoop<void>;
  readonly intervalMs: number;
  queues(): Record<string, QueueSample[]>;
  /**
   * Each executor's series; with a range, those named after `after` up to and including `through`
   * (byte order, as `GET /api/v1/executors` pages): the dashboard's page of executors.
   */
  executors(range?: NameRange): Record<string, ExecutorSeries>;
}

/** Names after `after` (exclusive) up to `through` (inclusive), in byte order; either end open. */
export interface NameRange {
  after?: string;
  through?: string;
}

/** A test of whether a name is in `range`, comparing as the stores order names (bytes of UTF-8). */
function inRange(range: NameRange): (name: string) => boolean {
  const after = range.after === undefined ? undefined : Buffer.from(range.after);
  const through = range.through === undefined ? undefined : Buffer.from(range.through);
  return (name) => {
    const n = Buffer.from(name);
    return (
      (after === undefined || Buffer.compare(n, after) > 0) &&
      (through === undefined || Buffer.compare(n, through) <= 0)
    );
  };
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Appends `v`, keeping the last `keep` entries. */
function keepLast<T>(list: T[], v: T, keep: number): void {
  list.push(v);
  if (list.length > keep) list.splice(0, list.length - keep);
}

/** The executors' series of the dashboard, from the metrics they push. */
function createExecutorSampler(keep: number, intervalMs: number) {
  const execSeries = new Map<string, ExecutorSeries>();
  const lastCounter = new Map<string, { at: number; value: number }>();
  const push = (list: Array<[number, number]>, v: [number, number]) => keepLast(list, v, keep);
  const seriesOf = (series: ExecutorSeries, name: string) => {
    let list = series[name];
    if (!list) {
      list = [];
      series[name] = list;
    }
    return list;
  };

  const sampleExecutor = (e: { name: string; metrics: string }, now: number) => {
    let series = execSeries.get(e.name);
    if (!series) {
      series = {};
      execSeries.set(e.name, series);
    }
    for (const name of EXECUTOR_GAUGES) {
      const v = promValue(e.metrics, name);
      if (v !== undefined) push(seriesOf(series, name), [now, v]);
    }
    for (const name of EXECUTOR_COUNTERS) {
      const v = promValue(e.metrics, name);
      if (v === undefined) continue;
      const key = `${e.name}\0${name}`;
      const prev = lastCounter.get(key);
      lastCounter.set(key, { at: now, value: v });
      // A counter that went down restarted with its executor: no rate for this interval.
      if (prev && now > prev.at && v >= prev.value) {
        push(seriesOf(series, name), [now, (v - prev.value) / ((now - prev.at) / 1000)]);
      }
    }
  };

  /** The newest point of any of an executor's series (-Infinity when it has none). */
  const newestOf = (series: ExecutorSeries) =>
    Math.max(...Object.values(series).map((points) => points.at(-1)?.[0] ?? Number.NEGATIVE_INFINITY));

  const sampleExecutors = async (store: Store, now: number) => {
    // The executors seen lately that push metrics, a page at a time with a turn of the event loop
    // between pages: one read of every executor row held the loop for 100 ms and more at 10,000
    // executors, at every interval, and every request arriving meanwhile waited.
    let after: string | undefined;
    for (;;) {
      const page = await store.recentExecutorMetrics(now, EXECUTOR_FRESH_MS, { after, limit: EXECUTOR_PAGE });
      for (const e of page) sampleExecutor(e, now);
      if (page.length < EXECUTOR_PAGE) break;
      after = page[page.length - 1]!.name;
      await new Promise((resolve) => setImmediate(resolve));
    }
    // An executor no longer sampled keeps its series until its newest point is older than the
    // kept window: nothing of it would show any more.
    const horizon = now - keep * intervalMs;
    for (const [name, series] of execSeries) if (newestOf(series) < horizon) execSeries.delete(name);
    for (const [key, c] of lastCounter) if (c.at < horizon) lastCounter.delete(key);
  };

  const series = (range?: NameRange) => {
    if (!range) return Object.fromEntries(execSeries);
    const within = inRange(range);
    return Object.fromEntries([...execSeries].filter(([name]) => within(name)));
  };
  return { sample: sampleExecutors, series };
}

export function createQueueHistory(opts: QueueHistoryOptions): QueueHistory {
  const intervalMs = opts.intervalMs ?? 10_000;
  const keep = opts.keep ?? 360;
  const samples = new Map<string, QueueSample[]>();
  const pending = new Map<string, { latencies: number[]; finished: number }>();
  /** Queue of each job dequeued here, so a mark can be attributed without a query. */
  const jobQueue = new Map<number, string>();
  const executors = createExecutorSampler(keep, intervalMs);

  const bucket = (queue: string) => {
    let p = pending.get(queue);
    if (!p) {
      p = { latencies: [], finished: 0 };
      pending.set(queue, p);
    }
    return p;
  };
  const push = (list: QueueSample[], v: QueueSample) => keepLast(list, v, keep);

  const observe = (store: Store): Store => {
    const finished = async (fence: AttemptFence, ok: boolean) => {
      if (!ok) return;
      let queue = jobQueue.get(fence.jobId);
      jobQueue.delete(fence.jobId);
      if (queue === undefined) queue = (await store.getJob(fence.jobId))?.queue;
      if (queue !== undefined) bucket(queue).finished++;
    };
    const wrapped: Partial<Store> = {
      async dequeue(o) {
        const r = await store.dequeue(o);
        if (r) {
          const ready = Math.max(r.job.queuedAt, r.job.processAfter ?? 0);
          const started = r.job.startedAt ?? o.now;
          bucket(r.job.queue).latencies.push(Math.max(0, started - ready));
          jobQueue.set(r.job.id, r.job.queue);
        }
        return r;
      },
      async markComplete(fence, now) {
        const ok = await store.markComplete(fence, now);
        await finished(fence, ok);
        return ok;
      },
      async markCompleteByToken(t, now) {
        const fence = await store.markCompleteByToken(t, now);
        if (fence) await finished(fence, true);
        return fence;
      },
      async markErrored(fence, message, now, retry) {
        const ok = await store.markErrored(fence, message, now, retry);
        await finished(fence, ok);
        return ok;
      },
      async markFailed(fence, message, now) {
        const ok = await store.markFailed(fence, message, now);
        await finished(fence, ok);
        return ok;
      },
    };
    return new Proxy(store, {
      get(target, prop, receiver) {
        if (Object.hasOwn(wrapped, prop)) return wrapped[prop as keyof Store];
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  };

  const runOnce = async (store: Store, now: number) => {
    const stats = await store.queueStats(now);
    const names = new Set([...stats.map((s) => s.queue), ...pending.keys()]);
    for (const queue of names) {
      const s = stats.find((x) => x.queue === queue);
      const p = pending.get(queue) ?? { latencies: [], finished: 0 };
      pending.delete(queue);
      let list = samples.get(queue);
      if (!list) {
        list = [];
        samples.set(queue, list);
      }
      push(list, {
        at: now,
        depth: s?.queued ?? 0,
        processing: s?.processing ?? 0,
        oldestAgeSeconds: s?.oldestQueuedAt == null ? null : Math.max(0, (now - s.oldestQueuedAt) / 1000),
        started: p.latencies.length,
        finished: p.finished,
        dispatchP50Ms: median(p.latencies),
      });
    }
    // Jobs dequeued here but finished elsewhere (reset, deadline) must not pile up.
    if (jobQueue.size > 100_000) jobQueue.clear();
    await executors.sample(store, now);
  };

  return {
    intervalMs,
    observe,
    loop: (store) =>
      createLoop({
        name: 'history',
        intervalMs,
        clock: opts.clock,
        logger: opts.logger,
        runOnce: (now) => runOnce(store, now),
      }),
    queues: () => Object.fromEntries(samples),
    executors: executors.series,
  };
}
