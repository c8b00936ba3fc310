/**
 * The metrics executors push with their heartbeats (`prometheusMetrics`), bounded and parsed once
 * on receipt:
 * - larger than EXECUTOR_SERVER_MAX_EXECUTOR_METRICS, they are dropped (the heartbeat still
 *   succeeds: refusing it would cost the executor its jobs' leases);
 * - otherwise the text is parsed on receipt into what /metrics serves: malformed lines dropped,
 *   each family's HELP/TYPE lines first, and the labels the server owns set by the server,
 *   never taken from the executor: `sg_instance` is the name the executor authenticated its
 *   heartbeat with, `sg_job` is `sourcegraph-executors` (`-registry` for samples the executor
 *   marks as its docker registry's, as Sourcegraph's executor does with sg_instance="docker-registry").
 * That normalised text is what the store keeps. A scrape only groups its lines by family (each
 * block starts with a `# TYPE` line), and keeps each executor's grouping while its text is unchanged.
 */
import { escapeLabel, parseLabels, SAMPLE } from '../lib/prometheus.js';

/** Labels the server sets on every pushed sample; an executor's own values for them are dropped. */
export const SERVER_LABELS: ReadonlySet<string> = new Set(['sg_instance', 'sg_job']);

export type PushedMetrics = { ok: true; text: string } | { ok: false; reason: string };

interface FamilyLines {
  meta: string[];
  samples: string[];
}

/** Parses an executor's pushed text once: the normalised exposition to store, or why it was dropped. */
export function normalizePushedMetrics(executorName: string, text: string, maxBytes: number): PushedMetrics {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes) {
    return {
      ok: false,
      reason: `${size} bytes, more than ${maxBytes} bytes (EXECUTOR_SERVER_MAX_EXECUTOR_METRICS)`,
    };
  }
  const instance = escapeLabel(executorName);
  const families = new Map<string, FamilyLines>();
  const familyOf = (name: string) => {
    let f = families.get(name);
    if (!f) {
      f = { meta: [], samples: [] };
      families.set(name, f);
    }
    return f;
  };
  let current = '';
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '') continue;
    if (t.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(.*)$/.exec(t);
      if (!m) continue;
      current = m[2]!;
      const f = familyOf(current);
      if (!f.meta.some((x) => x.startsWith(`# ${m[1]} `))) f.meta.push(`# ${m[1]} ${m[2]} ${m[3]}`.trimEnd());
      continue;
    }
    const m = SAMPLE.exec(t);
    if (!m) continue;
    const labels = m[3] ? parseLabels(m[3]) : [];
    if (!labels) continue;
    const registry = labels.some(([k, v]) => k === 'sg_instance' && v === 'docker-registry');
    const kept = labels.filter(([k]) => !SERVER_LABELS.has(k));
    kept.push(['sg_instance', instance]);
    kept.push(['sg_job', registry ? 'sourcegraph-executors-registry' : 'sourcegraph-executors']);
    const name = m[1]!;
    const base = current && name.startsWith(current) ? current : name;
    familyOf(base).samples.push(
      `${name}{${kept.map(([k, v]) => `${k}="${v}"`).join(',')}} ${m[4]}${m[5] ?? ''}`,
    );
  }
  const out: string[] = [];
  for (const [name, f] of families) {
    if (f.samples.length === 0) continue;
    // Every block starts with its TYPE line, so a scrape finds the families without parsing.
    const type = f.meta.find((x) => x.startsWith('# TYPE ')) ?? `# TYPE ${name} untyped`;
    out.push(type);
    for (const x of f.meta) if (x !== type) out.push(x);
    for (const s of f.samples) out.push(s);
  }
  return { ok: true, text: out.length ? `${out.join('\n')}\n` : '' };
}

/** One executor's normalised text, grouped by family. */
interface Grouped {
  text: string;
  families: Map<string, FamilyLines>;
}

function group(text: string): Grouped {
  const families = new Map<string, FamilyLines>();
  let f: FamilyLines | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# TYPE ')) {
      const name = line.slice('# TYPE '.length, line.indexOf(' ', '# TYPE '.length));
      f = { meta: [line], samples: [] };
      families.set(name, f);
    } else if (line.startsWith('#')) f?.meta.push(line);
    else f?.samples.push(line);
  }
  return { text, families };
}

/**
 * Adds a HELP or TYPE line unless the family has one; a real TYPE replaces the `untyped` one
 * given to an executor's samples that came without a TYPE line.
 */
function mergeMeta(meta: string[], line: string): void {
  const kind = line.slice(0, '# TYPE '.length);
  const i = meta.findIndex((x) => x.startsWith(kind));
  if (i < 0) meta.push(line);
  else if (kind === '# TYPE ' && meta[i]!.endsWith(' untyped')) meta[i] = line;
}

export interface PushedMetricsRenderer {
  /** Merges the executors' normalised texts into one exposition, each family once. */
  render(executors: readonly { name: string; metrics: string }[]): string;
}

/**
 * Keeps each executor's grouping while its text is unchanged (executors that stop showing up are
 * forgotten at the next render), so a scrape regroups only the texts that changed.
 */
export function createPushedMetricsRenderer(): PushedMetricsRenderer {
  const cache = new Map<string, Grouped>();
  return {
    render(executors) {
      const families = new Map<string, FamilyLines>();
      const seen = new Set<string>();
      for (const e of executors) {
        if (!e.metrics) continue;
        seen.add(e.name);
        let g = cache.get(e.name);
        if (!g || g.text !== e.metrics) {
          g = group(e.metrics);
          cache.set(e.name, g);
        }
        for (const [name, f] of g.families) {
          const into = families.get(name);
          if (!into) {
            families.set(name, { meta: f.meta.slice(), samples: f.samples.slice() });
            continue;
          }
          for (const m of f.meta) mergeMeta(into.meta, m);
          for (const s of f.samples) into.samples.push(s);
        }
      }
      for (const name of cache.keys()) if (!seen.has(name)) cache.delete(name);
      const out: string[] = [];
      for (const f of families.values()) {
        for (const m of f.meta) out.push(m);
        for (const s of f.samples) out.push(s);
      }
      return out.length ? `${out.join('\n')}\n` : '';
    },
  };
}
