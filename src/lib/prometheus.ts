/**
 * Prometheus text exposition (version 0.0.4), written and read: a small registry of counters,
 * gauges and histograms with labels (the executor's metrics), the label escaping every writer uses,
 * and the few readers the server needs (a sample line, a label set, the sum of a metric). Both
 * processes use this one implementation. prom-client (15.1) was measured and not taken: loading it
 * costs 11.5 MiB of RSS, and the executor's idle footprint (72-79 MiB) has an 80 MiB target.
 * Node built-ins only.
 */

/** A label value as the text format wants it: backslash, newline and double quote escaped. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export type Labels = Record<string, string>;

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
        for (const l of lines) out.push(l);
      }
      return out.length ? `${out.join('\n')}\n` : '';
    },
  };
  return reg;
}

/** A sample line: name, the label set body (without braces), the value and an optional timestamp. */
export const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?\s*$/;

/** Splits a label set body (`a="x",b="y"`) into pairs; undefined when malformed. */
export function parseLabels(body: string): [string, string][] | undefined {
  const out: [string, string][] = [];
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let i = 0;
  while (i < body.length) {
    re.lastIndex = i;
    const m = re.exec(body);
    if (!m) return undefined;
    out.push([m[1]!, m[2]!]);
    i = re.lastIndex;
  }
  return out;
}

/** Sums every sample of `name` (any labels) in Prometheus text format; undefined when absent. */
export function promValue(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const valueText = rest[0] === '{' ? rest.slice(rest.lastIndexOf('}') + 1) : rest;
    const v = Number(valueText.trim().split(/\s+/)[0]);
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}
