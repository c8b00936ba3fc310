/**
 * Executors: identity, versions, compatibility, liveness, running jobs, and their pushed metrics,
 * a page of EXECUTOR_PAGE_SIZE at a time by name (a fleet of thousands is not read whole every 5 s).
 */
import {
  EXECUTOR_PAGE_SIZE,
  type ExecutorHistoryView,
  type ExecutorListView,
  type JobListView,
} from '../../../protocol/user-api.js';
import { apiGet } from './api.js';
import { lineChart, type Series } from './charts.js';
import { clear, h } from './dom.js';
import { formatAge, formatBytes, formatNumber } from './format.js';
import { every, type PageContext } from './shared.js';

const COMPAT: Record<string, [string, string]> = {
  UP_TO_DATE: ['Up to date', 'ok'],
  OUTDATED: ['Outdated', 'bad'],
  VERSION_AHEAD: ['Ahead of server', 'warn'],
};

const CHARTS: Array<{ title: string; series: Array<[string, string]>; fmt: (v: number) => string }> = [
  { title: 'Jobs running', series: [['src_executor_processor_handlers', 'handlers']], fmt: formatNumber },
  {
    title: 'Jobs processed per second',
    series: [
      ['src_executor_processor_total', 'processed'],
      ['src_executor_processor_errors_total', 'errors'],
    ],
    fmt: formatNumber,
  },
  { title: 'Free workspace disk', series: [['src_executor_workspace_free_bytes', 'free']], fmt: formatBytes },
  { title: 'Resident memory', series: [['process_resident_memory_bytes', 'rss']], fmt: formatBytes },
  { title: 'CPU (cores)', series: [['process_cpu_seconds_total', 'cpu']], fmt: formatNumber },
];

/** The names the pages before this one started after ("" for the first), so "Previous" can go back. */
function trailOf(q: URLSearchParams): string[] {
  try {
    const t = JSON.parse(q.get('trail') ?? '[]') as unknown;
    return Array.isArray(t) ? t.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

export async function renderExecutorsPage(ctx: PageContext): Promise<void> {
  const after = ctx.query.get('after') ?? '';
  const trail = trailOf(ctx.query);
  const go = (to: string, nextTrail: string[]) => {
    const p = new URLSearchParams();
    if (to) p.set('after', to);
    if (nextTrail.length > 0) p.set('trail', JSON.stringify(nextTrail));
    const s = p.toString();
    location.hash = `#/executors${s ? `?${s}` : ''}`;
  };
  const previous = h('button', { type: 'button', disabled: trail.length === 0 && !after }, '← Previous');
  const next = h('button', { type: 'button', disabled: true }, 'Next →');
  previous.addEventListener('click', () => go(trail[trail.length - 1] ?? '', trail.slice(0, -1)));
  let nextAfter: string | null = null;
  next.addEventListener('click', () => {
    if (nextAfter !== null) go(nextAfter, [...trail, after]);
  });
  // Shown once there is more than one page.
  const pager = h('nav', { className: 'pager', 'aria-label': 'Pages', hidden: true }, previous, next);
  const tbody = h('tbody');
  const charts = h('div', { className: 'executor-charts' });
  const summary = h('p', { className: 'summary', id: 'executors-summary' });
  ctx.main.append(
    h('h1', { tabindex: '-1' }, 'Executors'),
    summary,
    h(
      'div',
      { className: 'table-wrap' },
      h(
        'table',
        { className: 'executors', 'aria-describedby': 'executors-summary' },
        h('caption', { className: 'visually-hidden' }, 'Executors seen by this server'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...[
              'Name',
              'Hostname',
              'Queues',
              'Versions',
              'Compatibility',
              'Status',
              'Last seen',
              'Jobs running',
            ].map((c) => h('th', { scope: 'col' }, c)),
          ),
        ),
        tbody,
      ),
    ),
    pager,
    h('h2', {}, 'Pushed metrics'),
    charts,
  );

  const load = async () => {
    const page = new URLSearchParams({ limit: String(EXECUTOR_PAGE_SIZE) });
    if (after) page.set('after', after);
    const [ex, running] = await Promise.all([
      apiGet<ExecutorListView>(`/api/v1/executors?${page}`, ctx.signal),
      apiGet<JobListView>('/api/v1/jobs?state=processing&limit=500', ctx.signal),
    ]);
    // The charts of this page's executors only: the names after `after` through its last.
    const range = new URLSearchParams();
    if (after) range.set('after', after);
    const last = ex.executors[ex.executors.length - 1];
    if (last) range.set('through', last.name);
    const hist: ExecutorHistoryView = last
      ? await apiGet<ExecutorHistoryView>(`/api/v1/executors/history?${range}`, ctx.signal)
      : { intervalMs: 0, executors: {} };
    nextAfter = ex.nextAfter;
    next.disabled = ex.nextAfter === null;
    pager.hidden = next.disabled && previous.disabled;
    const counts = new Map<string, number>();
    for (const j of running.jobs) if (j.executor) counts.set(j.executor, (counts.get(j.executor) ?? 0) + 1);
    const first = trail.length * EXECUTOR_PAGE_SIZE + 1;
    const shown =
      ex.executors.length > 0 && ex.executors.length < ex.total
        ? ` Showing ${first}${ex.executors.length > 1 ? `–${first + ex.executors.length - 1}` : ''} by name.`
        : '';
    summary.textContent = `${ex.total} executor${ex.total === 1 ? '' : 's'}, ${ex.active} active.${shown}`;
    clear(tbody);
    for (const e of ex.executors) {
      const [label, cls] = e.compatibility
        ? (COMPAT[e.compatibility] ?? [e.compatibility, ''])
        : ['Unknown', 'muted'];
      const versions = h(
        'ul',
        { className: 'versions' },
        h('li', {}, `executor ${e.executorVersion}`),
        e.gitVersion ? h('li', {}, `git ${e.gitVersion}`) : null,
        e.dockerVersion ? h('li', {}, `docker ${e.dockerVersion}`) : null,
        e.srcCliVersion ? h('li', {}, `src-cli ${e.srcCliVersion}`) : null,
        h('li', { className: 'muted' }, `${e.os}/${e.architecture}`),
      );
      tbody.append(
        h(
          'tr',
          { 'data-executor': e.name },
          h('th', { scope: 'row' }, e.name),
          h('td', {}, e.hostname),
          h('td', {}, (e.queueNames ?? (e.queueName ? [e.queueName] : [])).join(', ')),
          h('td', {}, versions),
          h('td', {}, h('span', { className: `badge compat-${cls}` }, label)),
          h(
            'td',
            {},
            h(
              'span',
              { className: `badge ${e.active ? 'compat-ok' : 'compat-muted'}` },
              e.active ? 'Active' : 'Inactive',
            ),
          ),
          h('td', {}, h('time', { datetime: e.lastSeenAt }, formatAge(e.lastSeenAt))),
          h('td', {}, String(counts.get(e.name) ?? 0)),
        ),
      );
    }
    clear(charts);
    for (const e of ex.executors) {
      const series = hist.executors[e.name] ?? {};
      const card = h(
        'section',
        { className: 'card', 'aria-label': `Metrics of ${e.name}` },
        h('h3', {}, e.name),
      );
      const grid = h('div', { className: 'chart-grid' });
      for (const c of CHARTS) {
        const s: Series[] = c.series
          .filter(([metric]) => series[metric])
          .map(([metric, name]) => ({ name, points: series[metric]! }));
        if (s.length > 0) grid.append(lineChart(c.title, s, c.fmt));
      }
      if (!grid.firstChild) grid.append(h('p', { className: 'muted' }, 'No metrics pushed yet.'));
      card.append(grid);
      charts.append(card);
    }
  };
  await load();
  every(ctx.signal, 5000, load, ctx.report);
}
