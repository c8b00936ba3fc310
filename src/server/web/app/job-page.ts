/**
 * One job: summary, cancel and retry, its history (who submitted, canceled, retried it), spec (secrets are names only: the API never sends values),
 * attempts, a timeline of its log entries, and each entry's output streaming live (ANSI rendered,
 * follow-tail, search, download as text, truncation marker).
 */

import type {
  JobDetailView,
  JobEventView,
  JobLogsView,
  JobView,
  LogEntryView,
} from '../../../protocol/user-api.js';
import { ApiError, apiGet, apiPost, followStream, may } from './api.js';
import { clear, h } from './dom.js';
import { formatAge, formatDuration } from './format.js';
import { jobDuration } from './jobs-page.js';
import { createLogPane } from './log-pane.js';
import { every, type PageContext, stateBadge } from './shared.js';

const ENDED = ['completed', 'failed', 'canceled'];
/** The job's history: who submitted, canceled and retried it, oldest first. */
function renderHistory(list: HTMLElement, events: JobEventView[]): void {
  clear(list);
  for (const e of events) {
    list.append(
      h(
        'li',
        {},
        h('time', { datetime: e.at }, `${e.at} (${formatAge(e.at)})`),
        ` ${e.action} by `,
        h('strong', {}, e.actor),
      ),
    );
  }
  if (events.length === 0) list.append(h('li', { className: 'muted' }, 'No recorded actions.'));
}

export async function renderJobPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0]!;
  // The entries come from the log pane (logs and follow), not from the job view.
  let job = await apiGet<JobDetailView>(`/api/v1/jobs/${id}?limit=1`, ctx.signal);
  const wanted = Number(ctx.query.get('attempt') ?? '') || job.attempts;
  const attempt = Math.max(0, Math.min(wanted, job.attempts));

  const title = h('h1', { tabindex: '-1' }, `Job #${job.id} `);
  const badgeSlot = h('span', { className: 'job-state', 'aria-live': 'polite' });
  title.append(badgeSlot);
  const status = h('p', { className: 'status', role: 'status' });
  const cancelBtn = h('button', { type: 'button', className: 'danger' }, 'Cancel job');
  const retryBtn = h('button', { type: 'button' }, 'Retry job');
  // A read-scoped token cannot cancel or retry: the buttons are not shown at all.
  cancelBtn.hidden = retryBtn.hidden = !may('submit');
  const facts = h('dl', { className: 'facts' });
  const history = h('ol', { className: 'history', 'aria-label': 'History' });

  const renderSummary = () => {
    clear(badgeSlot);
    badgeSlot.append(stateBadge(job.state));
    if (job.cancelRequested && !ENDED.includes(job.state))
      badgeSlot.append(' ', h('span', { className: 'muted' }, '(cancel requested)'));
    cancelBtn.disabled = ENDED.includes(job.state) || job.cancelRequested;
    retryBtn.disabled = !['failed', 'errored', 'canceled'].includes(job.state);
    clear(facts);
    const row = (k: string, v: Node | string) => facts.append(h('dt', {}, k), h('dd', {}, v));
    row('Queue', job.queue);
    row('Repository', job.repositoryName ? `${job.repositoryName} @ ${job.commit ?? ''}` : '—');
    row('Executor', job.executor ?? '—');
    row(
      'Attempt',
      `${job.attempts} of ${job.maxAttempts} (failures ${job.numFailures}, resets ${job.numResets})`,
    );
    row('Created', h('time', { datetime: job.createdAt }, `${job.createdAt} (${formatAge(job.createdAt)})`));
    row('Started', job.startedAt ?? '—');
    row('Finished', job.finishedAt ?? '—');
    row('Duration', jobDuration(job));
    row('Priority / timeout', `${job.priority} / ${formatDuration(job.timeoutMs)}`);
    if (job.failureMessage) row('Failure', h('span', { className: 'failure' }, job.failureMessage));
    renderHistory(history, job.events);
  };

  const act = async (what: 'cancel' | 'retry') => {
    try {
      job = { ...job, ...(await apiPost<JobView>(`/api/v1/jobs/${job.id}/${what}`)) };
      status.textContent =
        what === 'cancel' ? `Cancel requested for job #${job.id}.` : `Job #${job.id} queued again.`;
      renderSummary();
      if (what === 'retry') location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      status.textContent = e instanceof ApiError ? e.message : String(e);
    }
  };
  cancelBtn.addEventListener('click', () => act('cancel'));
  retryBtn.addEventListener('click', () => act('retry'));

  // Attempts
  const attemptNav = h('nav', { className: 'attempts', 'aria-label': 'Attempts' });
  for (let n = 1; n <= job.attempts; n++) {
    attemptNav.append(
      h(
        'a',
        { href: `#/jobs/${job.id}?attempt=${n}`, 'aria-current': n === attempt ? 'page' : null },
        `Attempt ${n}`,
      ),
    );
  }
  if (job.attempts === 0) attemptNav.append(h('span', { className: 'muted' }, 'Not started yet.'));

  // Follow the tail only while this attempt runs: a finished job's page opens at its top.
  const live = attempt === job.attempts && !ENDED.includes(job.state);
  const { tools, timeline, logs, views, upsertEntry, appendOutput, stopFollowing } = createLogPane(
    job.id,
    attempt,
    live,
  );

  const specPre = h(
    'pre',
    { className: 'spec', tabindex: '0', 'aria-label': 'Job spec' },
    JSON.stringify(job.spec, null, 2),
  );

  ctx.main.append(
    h('p', {}, h('a', { href: '#/jobs' }, '← All jobs')),
    title,
    h('div', { className: 'actions' }, cancelBtn, retryBtn),
    status,
    facts,
    h('h2', {}, 'History'),
    history,
    h('details', { className: 'spec-box' }, h('summary', {}, 'Spec (secrets shown by name only)'), specPre),
    h('h2', {}, 'Attempts'),
    attemptNav,
    h('h2', {}, 'Steps'),
    timeline,
    h('h2', {}, 'Logs'),
    tools,
    logs,
  );
  renderSummary();

  // Job state refresh (the log follow also reports the end).
  every(ctx.signal, 2000, async () => {
    // limit=1: the page needs the job's state and history here, not its entries (the log pane has those).
    job = { ...job, ...(await apiGet<JobDetailView>(`/api/v1/jobs/${id}?limit=1`, ctx.signal)) };
    renderSummary();
    if (job.attempts > 0 && attempt === 0) ctx.refresh();
  });

  if (attempt === 0) return;
  const stream = async () => {
    if (attempt !== job.attempts || ENDED.includes(job.state)) {
      // Page by page; an entry cut at a page's end continues (same entryId) on the next.
      let query = `attempt=${attempt}`;
      for (;;) {
        const r = await apiGet<JobLogsView>(`/api/v1/jobs/${id}/logs?${query}`, ctx.signal);
        for (const e of r.entries) appendOutput(upsertEntry(e), e.out ?? '');
        if (!r.next) return;
        query = `attempt=${attempt}&entriesAfter=${r.next.entriesAfter}&outputFrom=${r.next.outputFrom}`;
      }
    }
    await followStream(
      `/api/v1/jobs/${id}/logs?follow=1&attempt=${attempt}`,
      (ev) => {
        if (ev.event === 'entry') upsertEntry(ev.data);
        else if (ev.event === 'output') {
          const { entryId, data } = ev.data;
          const v = views.get(entryId) ?? upsertEntry({ entryId, key: `entry ${entryId}` } as LogEntryView);
          appendOutput(v, data);
        } else {
          job = { ...job, ...ev.data };
          renderSummary();
          stopFollowing();
        }
      },
      ctx.signal,
    );
  };
  stream().catch((e) => {
    if (!ctx.signal.aborted) ctx.report(e);
  });
}
