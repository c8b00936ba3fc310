/**
 * Prometheus text exposition for GET /metrics: queue gauges (the names Sourcegraph's worker emits,
 * so autoscaling rules keep working), HTTP request counters and durations, and the delay of the
 * server's event loop. The metrics executors push in their heartbeats are in pushed-metrics.ts.
 */
import { performance } from 'node:perf_hooks';
import { byCodeUnits } from '../lib/order.js';
import { escapeLabel } from '../lib/prometheus.js';
import type { QueuePollers, QueueStats } from '../store/types.js';

/**
 * Upper bounds of the request duration histogram, in seconds: from a heartbeat's milliseconds to a
 * held long-poll's 30 s and a large upload's minutes.
 */
export const REQUEST_DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

/** Upper bounds of the event-loop delay histogram, in seconds. */
export const LOOP_DELAY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * How often the event loop is sampled: a sample is how much later than asked a timer of this
 * interval ran, which is how long everything queued behind the work before it waited.
 */
export const LOOP_SAMPLE_MS = 50;

export interface HttpMetrics {
  /** A request answered: its route pattern, method, status, and seconds from arrival to the answer's end. */
  observe(route: string, method: string, status: number, seconds: number): void;
  render(): string;
  /** Stops sampling the event loop. */
  close(): void;
}

/** Counts per bucket (not cumulative; the rendering sums them), with the sum and count. */
interface Buckets {
  counts: number[];
  sum: number;
  count: number;
}

const newBuckets = (bounds: number[]): Buckets => ({ counts: bounds.map(() => 0), sum: 0, count: 0 });

function record(b: Buckets, bounds: number[], value: number): void {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  if (i < bounds.length) b.counts[i]!++;
  b.sum += value;
  b.count++;
}

/** Histogram lines of one series; `labels` is the label set body without `le` ('' for none). */
function histogramLines(name: string, labels: string, bounds: number[], b: Buckets): string[] {
  const sep = labels === '' ? '' : ',';
  const lines: string[] = [];
  let cumulative = 0;
  bounds.forEach((bound, i) => {
    cumulative += b.counts[i]!;
    lines.push(`${name}_bucket{${labels}${sep}le="${bound}"} ${cumulative}`);
  });
  lines.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${b.count}`);
  const set = labels === '' ? '' : `{${labels}}`;
  lines.push(`${name}_sum${set} ${Number(b.sum.toPrecision(15))}`, `${name}_count${set} ${b.count}`);
  return lines;
}

export function createHttpMetrics(opts: { loopSampleMs?: number } = {}): HttpMetrics {
  // By route and method, found by a plain key: the labels are escaped once per series, not per
  // request. Durations are not split by status, which would multiply the series for nothing a
  // latency alert needs.
  const routes = new Map<string, { labels: string; codes: Map<number, number>; durations: Buckets }>();
  const loop = newBuckets(LOOP_DELAY_BUCKETS);
  const sampleMs = opts.loopSampleMs ?? LOOP_SAMPLE_MS;
  let due = performance.now() + sampleMs;
  const sampler = setInterval(() => {
    const now = performance.now();
    record(loop, LOOP_DELAY_BUCKETS, Math.max(0, now - due) / 1000);
    due = now + sampleMs;
  }, sampleMs);
  sampler.unref();
  return {
    observe(route, method, status, seconds) {
      const key = `${route}\0${method}`;
      let r = routes.get(key);
      if (!r) {
        const labels = `route="${escapeLabel(route)}",method="${escapeLabel(method)}"`;
        r = { labels, codes: new Map(), durations: newBuckets(REQUEST_DURATION_BUCKETS) };
        routes.set(key, r);
      }
      r.codes.set(status, (r.codes.get(status) ?? 0) + 1);
      record(r.durations, REQUEST_DURATION_BUCKETS, seconds);
    },
    render() {
      const lines = [
        '# HELP src_executor_server_http_requests_total HTTP requests served, by route pattern, method and status.',
        '# TYPE src_executor_server_http_requests_total counter',
      ];
      const counts: [string, number][] = [];
      for (const r of routes.values())
        for (const [code, n] of r.codes) counts.push([`${r.labels},code="${code}"`, n]);
      for (const [k, v] of counts.sort((a, b) => byCodeUnits(a[0], b[0])))
        lines.push(`src_executor_server_http_requests_total{${k}} ${v}`);
      lines.push(
        '# HELP src_executor_server_http_request_duration_seconds Time from a request arriving to the end of its answer, by route pattern and method (a long-poll dequeue includes its wait).',
        '# TYPE src_executor_server_http_request_duration_seconds histogram',
      );
      const byLabels = [...routes.values()].sort((a, b) => byCodeUnits(a.labels, b.labels));
      for (const r of byLabels) {
        const name = 'src_executor_server_http_request_duration_seconds';
        lines.push(...histogramLines(name, r.labels, REQUEST_DURATION_BUCKETS, r.durations));
      }
      lines.push(
        `# HELP src_executor_server_event_loop_delay_seconds How much later than due a timer of ${sampleMs} ms ran on the server's event loop: the wait of everything queued behind the work before it.`,
        '# TYPE src_executor_server_event_loop_delay_seconds histogram',
        ...histogramLines('src_executor_server_event_loop_delay_seconds', '', LOOP_DELAY_BUCKETS, loop),
      );
      return `${lines.join('\n')}\n`;
    },
    close: () => clearInterval(sampler),
  };
}

/**
 * The queue gauges. `src_executor_queue_pollers` covers every queue with jobs or pollers, so a queue
 * whose jobs nobody polls has a series at 0 to alert on (`src_executor_total > 0 and
 * src_executor_queue_pollers == 0`).
 */
export function renderQueueMetrics(stats: QueueStats[], now: number, pollers: QueuePollers[] = []): string {
  const lines: string[] = [];
  const family = (name: string, help: string, type: string, value: (s: QueueStats) => number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const s of stats) lines.push(`${name}{queue="${escapeLabel(s.queue)}"} ${value(s)}`);
  };
  family(
    'src_executor_total',
    'Jobs waiting in the queue (queued or errored and due).',
    'gauge',
    (s) => s.queued,
  );
  family(
    'src_executor_queued_duration_seconds_total',
    'Age of the oldest waiting job, in seconds.',
    'gauge',
    (s) => (s.oldestQueuedAt === null ? 0 : Math.max(0, (now - s.oldestQueuedAt) / 1000)),
  );
  family('src_executor_processing', 'Jobs being processed.', 'gauge', (s) => s.processing);
  const polledBy = new Map(stats.map((s) => [s.queue, 0]));
  for (const p of pollers) polledBy.set(p.queue, p.executors);
  lines.push(
    '# HELP src_executor_queue_pollers Executors seen within the last 15 s that poll the queue.',
    '# TYPE src_executor_queue_pollers gauge',
  );
  for (const [queue, n] of [...polledBy].sort((a, b) => byCodeUnits(a[0], b[0])))
    lines.push(`src_executor_queue_pollers{queue="${escapeLabel(queue)}"} ${n}`);
  return `${lines.join('\n')}\n`;
}
