/**
 * The executor's metrics on the registry of lib/prometheus.ts: RED metrics of its calls and jobs,
 * and its gauges. Sent in every heartbeat as `prometheusMetrics` and served on EXECUTOR_METRICS_ADDR
 * when set. Metric names follow Sourcegraph's executor so existing dashboards keep working.
 */
import http from 'node:http';
import type { Logger } from '../lib/logger.js';
import {
  type Counter,
  createMetricsRegistry,
  type Gauge,
  type Labels,
  type MetricsRegistry,
} from '../lib/prometheus.js';

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
  const handlers = registry.gauge('src_executor_processor_handlers', 'Number of jobs being processed.');
  // Present from the first heartbeat: an idle executor runs 0 jobs, which is not the same as a
  // gauge that is absent (the dashboard's "Jobs running" chart and absent() alerts read it).
  handlers.set({}, 0);
  return {
    registry,
    processor: createRedMetrics(registry, 'executor_processor', 'job processor', PROCESSOR_BUCKETS),
    handlers,
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
