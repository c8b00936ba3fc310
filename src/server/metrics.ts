/**
 * Prometheus text exposition for GET /metrics: queue gauges (the names Sourcegraph's worker emits,
 * so autoscaling rules keep working) and HTTP request counters. The metrics executors push in their
 * heartbeats are in pushed-metrics.ts.
 */
import { escapeLabel } from '../lib/prometheus.js';
import type { QueueStats } from '../store/types.js';

export interface HttpMetrics {
  count(route: string, method: string, status: number): void;
  render(): string;
}

export function createHttpMetrics(): HttpMetrics {
  const counts = new Map<string, number>();
  return {
    count(route, method, status) {
      const key = `route="${escapeLabel(route)}",method="${escapeLabel(method)}",code="${status}"`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    },
    render() {
      const lines = [
        '# HELP src_executor_server_http_requests_total HTTP requests served, by route pattern, method and status.',
        '# TYPE src_executor_server_http_requests_total counter',
      ];
      for (const [k, v] of [...counts].sort())
        lines.push(`src_executor_server_http_requests_total{${k}} ${v}`);
      return `${lines.join('\n')}\n`;
    },
  };
}

export function renderQueueMetrics(stats: QueueStats[], now: number): string {
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
  return `${lines.join('\n')}\n`;
}
