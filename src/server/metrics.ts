/**
 * Prometheus text exposition for GET /metrics: queue gauges (the names Sourcegraph's worker emits,
 * so autoscaling rules keep working), HTTP request counters, and the metrics executors push in their
 * heartbeats, re-labelled as Sourcegraph does (`sg_instance=<executor>`, `sg_job`).
 */
import { escapeLabel, parseLabels, SAMPLE } from '../lib/prometheus.js';
import type { ExecutorRecord, QueueStats } from '../store/types.js';

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

/**
 * Merges executors' pushed metrics into one exposition. Samples get `sg_instance=<executor name>`
 * (unless present) and `sg_job="sourcegraph-executors"` (`-registry` for the docker-registry
 * instance). HELP/TYPE lines are emitted once per family; malformed lines are dropped.
 */
export function renderExecutorMetrics(executors: ExecutorRecord[]): string {
  const families = new Map<string, { meta: string[]; samples: string[] }>();
  const familyOf = (name: string) => {
    let f = families.get(name);
    if (!f) {
      f = { meta: [], samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (const e of executors) {
    let current = '';
    for (const line of e.metrics.split('\n')) {
      const t = line.trim();
      if (t === '') continue;
      if (t.startsWith('#')) {
        const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(.*)$/.exec(t);
        if (!m) continue;
        current = m[2]!;
        const f = familyOf(current);
        if (!f.meta.some((x) => x.startsWith(`# ${m[1]} `)))
          f.meta.push(`# ${m[1]} ${m[2]} ${m[3]}`.trimEnd());
        continue;
      }
      const m = SAMPLE.exec(t);
      if (!m) continue;
      const labels = m[3] ? parseLabels(m[3]) : [];
      if (!labels) continue;
      if (!labels.some(([k]) => k === 'sg_instance')) labels.push(['sg_instance', escapeLabel(e.name)]);
      const instance = labels.find(([k]) => k === 'sg_instance')![1];
      const job = instance === 'docker-registry' ? 'sourcegraph-executors-registry' : 'sourcegraph-executors';
      const kept = labels.filter(([k]) => k !== 'sg_job');
      kept.push(['sg_job', job]);
      const name = m[1]!;
      const base = current && name.startsWith(current) ? current : name;
      familyOf(base).samples.push(
        `${name}{${kept.map(([k, v]) => `${k}="${v}"`).join(',')}} ${m[4]}${m[5] ?? ''}`,
      );
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    if (f.samples.length === 0) continue;
    out.push(...f.meta, ...f.samples);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
