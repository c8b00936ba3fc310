/**
 * The jobs list: filter by state and queue, pages of PAGE_SIZE rows fetched from the server
 * (`limit` + `before` cursor), refreshed every few seconds while shown.
 */
import type { JobListView, JobView } from '../../../protocol/user-api.js';
import { apiGet } from './api.js';
import { clear, h } from './dom.js';
import { formatAge, formatDuration, shortSha } from './format.js';
import { every, type PageContext, stateBadge } from './shared.js';

export const PAGE_SIZE = 50;
const STATES = ['queued', 'processing', 'completed', 'errored', 'failed', 'canceled'];

export function jobDuration(job: JobView, now = Date.now()): string {
  if (!job.startedAt) return '—';
  const end = job.finishedAt ? Date.parse(job.finishedAt) : now;
  return formatDuration(end - Date.parse(job.startedAt));
}

export async function renderJobsPage(ctx: PageContext): Promise<void> {
  const q = ctx.query;
  const state = q.get('state') ?? '';
  const queue = q.get('queue') ?? '';
  const before = q.get('before') ?? '';
  // Cursors of the pages before this one, so "Newer" can go back.
  const trail = (q.get('trail') ?? '').split(',').filter(Boolean);

  const go = (params: Record<string, string>) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) p.set(k, v);
    const s = p.toString();
    location.hash = `#/jobs${s ? `?${s}` : ''}`;
  };

  const stateSel = h(
    'select',
    { id: 'filter-state', name: 'state' },
    h('option', { value: '' }, 'Any state'),
    ...STATES.map((s) => h('option', { value: s, selected: s === state }, s)),
  );
  const queueIn = h('input', {
    id: 'filter-queue',
    name: 'queue',
    type: 'text',
    value: queue,
    autocomplete: 'off',
  });
  const form = h(
    'form',
    {
      className: 'filters',
      role: 'search',
      'aria-label': 'Filter jobs',
      onsubmit: (e: Event) => {
        e.preventDefault();
        go({ state: stateSel.value, queue: queueIn.value.trim() });
      },
    },
    h('label', { for: 'filter-state' }, 'State'),
    stateSel,
    h('label', { for: 'filter-queue' }, 'Queue'),
    queueIn,
    h('button', { type: 'submit' }, 'Apply'),
  );
  stateSel.addEventListener('change', () => go({ state: stateSel.value, queue: queueIn.value.trim() }));

  const tbody = h('tbody');
  const summary = h('p', { className: 'summary', id: 'jobs-summary' });
  const table = h(
    'table',
    { className: 'jobs', 'aria-describedby': 'jobs-summary' },
    h('caption', { className: 'visually-hidden' }, 'Jobs, newest first'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Job', 'State', 'Queue', 'Repository', 'Executor', 'Attempt', 'Age', 'Duration', 'Failure'].map(
          (c) => h('th', { scope: 'col' }, c),
        ),
      ),
    ),
    tbody,
  );
  const newer = h('button', { type: 'button', disabled: trail.length === 0 && !before }, '← Newer');
  const older = h('button', { type: 'button', disabled: true }, 'Older →');
  newer.addEventListener('click', () => {
    const prev = trail.slice(0, -1);
    const cursor = trail[trail.length - 1] ?? '';
    go({ state, queue, before: cursor === 'top' ? '' : cursor, trail: prev.join(',') });
  });
  let nextBefore: number | null = null;
  older.addEventListener('click', () => {
    if (nextBefore === null) return;
    go({ state, queue, before: String(nextBefore), trail: [...trail, before || 'top'].join(',') });
  });

  ctx.main.append(
    h('h1', { tabindex: '-1' }, 'Jobs'),
    form,
    summary,
    h('div', { className: 'table-wrap' }, table),
    h('nav', { className: 'pager', 'aria-label': 'Pages' }, newer, older),
  );

  const load = async () => {
    const p = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state) p.set('state', state);
    if (queue) p.set('queue', queue);
    if (before) p.set('before', before);
    const r = await apiGet<JobListView>(`/api/v1/jobs?${p}`, ctx.signal);
    nextBefore = r.nextBefore;
    older.disabled = r.nextBefore === null;
    const first = trail.length * PAGE_SIZE + 1;
    summary.textContent =
      r.jobs.length === 0
        ? `No jobs${state || queue ? ' match the filter' : ''}.`
        : `Jobs ${first}–${first + r.jobs.length - 1} of ${r.total}`;
    const now = Date.now();
    clear(tbody);
    for (const job of r.jobs) {
      tbody.append(
        h(
          'tr',
          { 'data-job-id': job.id },
          h('td', {}, h('a', { href: `#/jobs/${job.id}` }, `#${job.id}`)),
          h('td', {}, stateBadge(job.state)),
          h('td', {}, job.queue),
          h(
            'td',
            { className: 'repo' },
            job.repositoryName
              ? `${job.repositoryName}@${shortSha(job.commit)}`
              : h('span', { className: 'muted' }, '—'),
          ),
          h('td', {}, job.executor ?? '—'),
          h('td', {}, `${job.attempts}/${job.maxAttempts}`),
          h('td', {}, h('time', { datetime: job.createdAt }, formatAge(job.createdAt, now))),
          h('td', {}, jobDuration(job, now)),
          h(
            'td',
            { className: 'failure', title: job.failureMessage ?? '' },
            job.failureMessage ?? h('span', { className: 'muted' }, '—'),
          ),
        ),
      );
    }
  };
  await load();
  every(ctx.signal, 3000, load, ctx.report);
}
