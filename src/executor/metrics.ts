/**
 * A small Prometheus registry of our own: counters, gauges and histograms with labels, rendered in
 * the text exposition format (version 0.0.4). Sent in every heartbeat as `prometheusMetrics` and
 * served on EXECUTOR_METRICS_ADDR when set. Metric names follow Sourcegraph's executor so existing
 * dashboards keep working.
 */
import http from 'node:http';
import type { Logger } from '../lib/logger.js';

type Labels = Record<string, string>;

export interface Counter {
  inc(labels?: Labels, by?: number): void;
  get(labels?: Labels): number;
}
export interface Gauge {
  set(labels: Labels, value: number): void;
  inc(labels?: Labels, by?: number): void;
  dec(labels?: Labels, by?: number): void;
  get(labels?: Labels): number;
}
export interface Histogram {
  observe(labels: Labels, value: number): void;
  count(labels?: Labels): number;
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelKey = (labels: Labels = {}) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k]!)}"`)
    .join(',');
const fmt = (n: number) => (Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(15))));

export interface MetricsRegistry {
  counter(name: string, help: string): Counter;
  gauge(name: string, help: string): Gauge;
  histogram(name: string, help: string, buckets: number[]): Histogram;
  /** Text exposition of every family, in registration order. */
  render(): string;
}

export function createMetricsRegistry(): MetricsRegistry {
  const families: Family[] = [];
  const byName = new Map<string, unknown>();

  function scalar(name: string, help: string, type: 'counter' | 'gauge') {
    const values = new Map<string, number>();
    families.push({
      name,
      help,
      type,
      render: () => [...values].map(([k, v]) => `${name}${k ? `{${k}}` : ''} ${fmt(v)}`),
    });
    return values;
  }

  const reg: MetricsRegistry = {
    counter(name, help) {
      const existing = byName.get(name);
      if (existing) return existing as Counter;
      const values = scalar(name, help, 'counter');
      const c: Counter = {
        inc(labels, by = 1) {
          if (by < 0) throw new Error('counters only go up');
          const k = labelKey(labels);
          values.set(k, (values.get(k) ?? 0) + by);
        },
        get: (labels) => values.get(labelKey(labels)) ?? 0,
      };
      byName.set(name, c);
      return c;
    },
    gauge(name, help) {
      const existing = byName.get(name);
      if (existing) return existing as Gauge;
      const values = scalar(name, help, 'gauge');
      const g: Gauge = {
        set: (labels, value) => void values.set(labelKey(labels), value),
        inc(labels, by = 1) {
          const k = labelKey(labels);
          values.set(k, (values.get(k) ?? 0) + by);
        },
        dec(labels, by = 1) {
          const k = labelKey(labels);
          values.set(k, (values.get(k) ?? 0) - by);
        },
        get: (labels) => values.get(labelKey(labels)) ?? 0,
      };
      byName.set(name, g);
      return g;
    },
    histogram(name, help, buckets) {
      const existing = byName.get(name);
      if (existing) return existing as Histogram;
      const bounds = [...buckets].sort((a, b) => a - b);
      const series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
      families.push({
        name,
        help,
        type: 'histogram',
        render: () => {
          const lines: string[] = [];
          for (const s of series.values()) {
            bounds.forEach((b, i) => {
              lines.push(`${name}_bucket{${labelKey({ ...s.labels, le: fmt(b) })}} ${s.counts[i]}`);
            });
            lines.push(`${name}_bucket{${labelKey({ ...s.labels, le: '+Inf' })}} ${s.count}`);
            const k = labelKey(s.labels);
            lines.push(`${name}_sum${k ? `{${k}}` : ''} ${fmt(s.sum)}`);
            lines.push(`${name}_count${k ? `{${k}}` : ''} ${s.count}`);
          }
          return lines;
        },
      });
      const h: Histogram = {
        observe(labels, value) {
          const k = labelKey(labels);
          let s = series.get(k);
          if (!s) {
            s = { labels: { ...labels }, counts: bounds.map(() => 0), sum: 0, count: 0 };
            series.set(k, s);
          }
          bounds.forEach((b, i) => {
            if (value <= b) s!.counts[i]!++;
          });
          s.sum += value;
          s.count++;
        },
        count: (labels) => series.get(labelKey(labels))?.count ?? 0,
      };
      byName.set(name, h);
      return h;
    },
    render() {
      const out: string[] = [];
      for (const f of families) {
        const lines = f.render();
        if (lines.length === 0) continue;
        out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
        out.push(`# TYPE ${f.name} ${f.type}`);
        out.push(...lines);
      }
      return out.length ? `${out.join('\n')}\n` : '';
    },
  };
  return reg;
}

/** RED metrics (`src_<prefix>_total`, `_duration_seconds`, `_errors_total`, label `op` + extra). */
export interface RedMetrics {
  /** Times `fn`, counting it and its error. */
  observe<T>(op: string, fn: () => Promise<T>, extra?: Labels): Promise<T>;
  record(op: string, durationSeconds: number, failed: boolean, extra?: Labels): void;
}

const API_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Sourcegraph's processor buckets (job durations). */
export const PROCESSOR_BUCKETS = [30, 60, 150, 300, 450, 600, 900, 1200, 1800, 2700, 3600];

export function createRedMetrics(
  reg: MetricsRegistry,
  prefix: string,
  what: string,
  buckets: number[] = API_BUCKETS,
): RedMetrics {
  const total = reg.counter(`src_${prefix}_total`, `Total number of ${what} operations.`);
  const dur = reg.histogram(
    `src_${prefix}_duration_seconds`,
    `Time in seconds spent performing ${what} operations.`,
    buckets,
  );
  const errors = reg.counter(
    `src_${prefix}_errors_total`,
    `Total number of errors when performing ${what} operations.`,
  );
  const red: RedMetrics = {
    record(op, seconds, failed, extra = {}) {
      const labels = { ...extra, op };
      total.inc(labels);
      dur.observe(labels, seconds);
      if (failed) errors.inc(labels);
    },
    async observe(op, fn, extra) {
      const start = performance.now();
      try {
        const v = await fn();
        red.record(op, (performance.now() - start) / 1000, false, extra);
        return v;
      } catch (e) {
        red.record(op, (performance.now() - start) / 1000, true, extra);
        throw e;
      }
    },
  };
  return red;
}

/** Every executor metric, registered in one place. */
export interface ExecutorMetrics {
  registry: MetricsRegistry;
  processor: RedMetrics;
  handlers: Gauge;
  queueClient: RedMetrics;
  filesClient: RedMetrics;
  command: RedMetrics;
  /** 1 while dequeuing is paused because the workspace disk is below EXECUTOR_MIN_FREE_DISK. */
  diskLow: Gauge;
  freeDiskBytes: Gauge;
  janitorRemoved: Counter;
  janitorErrors: Counter;
}

export function createExecutorMetrics(registry: MetricsRegistry = createMetricsRegistry()): ExecutorMetrics {
  return {
    registry,
    processor: createRedMetrics(registry, 'executor_processor', 'job processor', PROCESSOR_BUCKETS),
    handlers: registry.gauge('src_executor_processor_handlers', 'Number of jobs being processed.'),
    queueClient: createRedMetrics(registry, 'apiworker_apiclient_queue', 'queue API client'),
    filesClient: createRedMetrics(registry, 'apiworker_apiclient_files', 'files API client'),
    command: createRedMetrics(registry, 'apiworker_command', 'command', [1, 5, 10, 30, 60, 300, 600, 1800]),
    diskLow: registry.gauge(
      'src_executor_disk_space_low',
      '1 when dequeuing is paused because free disk in the workspace root is below EXECUTOR_MIN_FREE_DISK.',
    ),
    freeDiskBytes: registry.gauge('src_executor_workspace_free_bytes', 'Free bytes in the workspace root.'),
    janitorRemoved: registry.counter(
      'src_executor_janitor_removed_total',
      'Orphaned containers and workspaces removed by the janitor.',
    ),
    janitorErrors: registry.counter('src_executor_janitor_errors_total', 'Janitor runs that failed.'),
  };
}

/** Serves `GET /metrics` on addr. Resolves once listening; close() stops it. */
export async function serveMetrics(
  registry: MetricsRegistry,
  addr: { host: string; port: number },
  logger: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(registry.render());
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  logger.info('serving metrics', { addr: `${addr.host}:${port}`, path: '/metrics' });
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
