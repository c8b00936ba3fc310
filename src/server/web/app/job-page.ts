/**
 * One job: summary, cancel and retry, spec (secrets are names only: the API never sends values),
 * attempts, a timeline of its log entries, and each entry's output streaming live (ANSI rendered,
 * follow-tail, search, download as text, truncation marker).
 */

import type { JobDetailView, JobLogsView, JobView, LogEntryView } from '../../../protocol/user-api.js';
import { type AnsiSegment, type AnsiState, createAnsiState, parseAnsi, stripAnsi } from './ansi.js';
import { ApiError, apiGet, apiPost, followStream } from './api.js';
import { clear, h } from './dom.js';
import { formatAge, formatDuration } from './format.js';
import { jobDuration } from './jobs-page.js';
import { every, type PageContext, stateBadge } from './shared.js';

const ENDED = ['completed', 'failed', 'canceled'];
const TRUNCATION = /\[output truncated: [^\]\n]*\]/;

interface EntryView {
  entry: LogEntryView;
  raw: string;
  ansi: AnsiState;
  section: HTMLElement;
  pre: HTMLElement;
  head: HTMLElement;
}

function segmentNode(seg: AnsiSegment, term: string): Node {
  const s = seg.style;
  const classes: string[] = [];
  if (s.bold) classes.push('ansi-bold');
  if (s.dim) classes.push('ansi-dim');
  if (s.italic) classes.push('ansi-italic');
  if (s.underline) classes.push('ansi-underline');
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) [fg, bg] = [bg ?? 'inv-fg', fg ?? 'inv-bg'];
  const span = document.createElement('span');
  if (typeof fg === 'number') classes.push(`ansi-fg-${fg}`);
  else if (fg === 'inv-fg') classes.push('ansi-inv-fg');
  else if (fg) span.style.color = fg;
  if (typeof bg === 'number') classes.push(`ansi-bg-${bg}`);
  else if (bg === 'inv-bg') classes.push('ansi-inv-bg');
  else if (bg) span.style.backgroundColor = bg;
  const target: Node = classes.length || span.style.length ? span : document.createDocumentFragment();
  if (span === target) span.className = classes.join(' ');
  appendText(target, seg.text, term);
  return target;
}

/** Appends text, wrapping search hits in <mark> and the server's truncation marker in a banner class. */
function appendText(target: Node, text: string, term: string): void {
  const m = TRUNCATION.exec(text);
  if (m) {
    appendText(target, text.slice(0, m.index), term);
    const mark = document.createElement('strong');
    mark.className = 'truncation-marker';
    mark.textContent = m[0];
    target.appendChild(mark);
    appendText(target, text.slice(m.index + m[0].length), term);
    return;
  }
  if (!term) {
    target.appendChild(document.createTextNode(text));
    return;
  }
  const lower = text.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(term); i >= 0; i = lower.indexOf(term, at)) {
    target.appendChild(document.createTextNode(text.slice(at, i)));
    const mk = document.createElement('mark');
    mk.textContent = text.slice(i, i + term.length);
    target.appendChild(mk);
    at = i + term.length;
  }
  target.appendChild(document.createTextNode(text.slice(at)));
}

function entryLabel(e: LogEntryView): string {
  return e.key.replace(/^step\.(docker|kubernetes|shell)\./, 'step ');
}

export async function renderJobPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0]!;
  let job = await apiGet<JobDetailView>(`/api/v1/jobs/${id}`, ctx.signal);
  const wanted = Number(ctx.query.get('attempt') ?? '') || job.attempts;
  const attempt = Math.max(0, Math.min(wanted, job.attempts));

  const title = h('h1', { tabindex: '-1' }, `Job #${job.id} `);
  const badgeSlot = h('span', { className: 'job-state', 'aria-live': 'polite' });
  title.append(badgeSlot);
  const status = h('p', { className: 'status', role: 'status' });
  const cancelBtn = h('button', { type: 'button', className: 'danger' }, 'Cancel job');
  const retryBtn = h('button', { type: 'button' }, 'Retry job');
  const facts = h('dl', { className: 'facts' });

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

  // Log tools
  const search = h('input', { id: 'log-search', type: 'search', autocomplete: 'off' });
  const hits = h('span', { className: 'muted', 'aria-live': 'polite' });
  const follow = h('input', { id: 'log-follow', type: 'checkbox', checked: true });
  const download = h('button', { type: 'button' }, 'Download log');
  const tools = h(
    'div',
    { className: 'log-tools' },
    h('label', { for: 'log-search' }, 'Search log'),
    search,
    hits,
    h('span', { className: 'check' }, follow, h('label', { for: 'log-follow' }, 'Follow tail')),
    download,
  );
  const timeline = h('ol', { className: 'timeline', 'aria-label': 'Steps timeline' });
  const logs = h('div', { className: 'logs' });
  const views = new Map<number, EntryView>();
  let term = '';

  const renderTimeline = () => {
    clear(timeline);
    const list = [...views.values()].map((v) => v.entry);
    const starts = list.map((e) => Date.parse(e.startTime)).filter(Number.isFinite);
    const t0 = Math.min(...starts);
    const ends = list.map(
      (e) => Date.parse(e.startTime) + (e.durationMs ?? Date.now() - Date.parse(e.startTime)),
    );
    const span = Math.max(1, Math.max(...ends) - t0);
    for (const e of list) {
      const start = Date.parse(e.startTime) - t0;
      const dur = e.durationMs ?? Math.max(0, Date.now() - Date.parse(e.startTime));
      const bar = h('span', {
        className: `bar ${e.exitCode === null ? 'running' : e.exitCode === 0 ? 'ok' : 'bad'}`,
      });
      bar.style.marginLeft = `${(start / span) * 100}%`;
      bar.style.width = `${Math.max(0.5, (dur / span) * 100)}%`;
      timeline.append(
        h(
          'li',
          {},
          h(
            'a',
            {
              href: `#/jobs/${job.id}?attempt=${attempt}`,
              'data-entry': e.entryId,
              onclick: (ev: Event) => {
                ev.preventDefault();
                views.get(e.entryId)?.section.scrollIntoView({ block: 'start' });
                views.get(e.entryId)?.head.focus();
              },
            },
            entryLabel(e),
          ),
          h('span', { className: 'track', 'aria-hidden': 'true' }, bar),
          h('span', { className: 'dur' }, e.durationMs === null ? 'running' : formatDuration(e.durationMs)),
          h(
            'span',
            { className: `exit ${e.exitCode === null ? '' : e.exitCode === 0 ? 'ok' : 'bad'}` },
            e.exitCode === null ? '' : `exit ${e.exitCode}`,
          ),
        ),
      );
    }
  };

  const renderHead = (v: EntryView) => {
    const e = v.entry;
    clear(v.head);
    v.head.append(
      h('span', { className: 'key' }, entryLabel(e)),
      ' ',
      h(
        'span',
        { className: `exit ${e.exitCode === null ? '' : e.exitCode === 0 ? 'ok' : 'bad'}` },
        e.exitCode === null ? 'running' : `exit ${e.exitCode}`,
      ),
      ' ',
      h('span', { className: 'muted' }, e.durationMs === null ? '' : formatDuration(e.durationMs)),
    );
    const old = v.section.querySelector('.truncated-banner');
    if (e.truncated && !old) {
      v.pre.before(
        h(
          'p',
          { className: 'truncated-banner', role: 'note' },
          'Output truncated: the server’s per-job log cap cut this step’s output; the marker shows where.',
        ),
      );
    }
  };

  const atBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  const scrollTail = () => {
    if (follow.checked) window.scrollTo({ top: document.body.scrollHeight });
  };

  const upsertEntry = (e: LogEntryView) => {
    let v = views.get(e.entryId);
    if (!v) {
      const head = h('h3', { tabindex: '-1', id: `entry-${e.entryId}` });
      const pre = h('pre', { className: 'log', tabindex: '0', 'aria-label': `Output of ${entryLabel(e)}` });
      const cmd = e.command ? h('code', { className: 'command' }, `$ ${e.command.join(' ')}`) : null;
      const section = h(
        'section',
        { className: 'entry', 'data-key': e.key, 'aria-labelledby': `entry-${e.entryId}` },
        head,
        cmd,
        pre,
      );
      v = { entry: e, raw: '', ansi: createAnsiState(), section, pre, head };
      views.set(e.entryId, v);
      logs.append(section);
    }
    v.entry = { ...v.entry, ...e };
    renderHead(v);
    renderTimeline();
    return v;
  };

  const appendOutput = (v: EntryView, data: string) => {
    const stick = atBottom();
    v.raw += data;
    const frag = document.createDocumentFragment();
    for (const seg of parseAnsi(data, v.ansi)) frag.appendChild(segmentNode(seg, term));
    v.pre.appendChild(frag);
    if (stick || follow.checked) scrollTail();
  };

  const rerender = () => {
    let count = 0;
    for (const v of views.values()) {
      clear(v.pre);
      v.ansi = createAnsiState();
      for (const seg of parseAnsi(v.raw, v.ansi)) v.pre.appendChild(segmentNode(seg, term));
      if (term) count += stripAnsi(v.raw).toLowerCase().split(term).length - 1;
    }
    hits.textContent = term ? `${count} match${count === 1 ? '' : 'es'}` : '';
    if (term) logs.querySelector('mark')?.scrollIntoView({ block: 'center' });
  };
  search.addEventListener('input', () => {
    term = search.value.toLowerCase();
    if (term) follow.checked = false;
    rerender();
  });
  follow.addEventListener('change', scrollTail);
  download.addEventListener('click', () => {
    const text = [...views.values()]
      .map(
        (v) =>
          `### ${v.entry.key}${v.entry.command ? `\n$ ${v.entry.command.join(' ')}` : ''}\n${stripAnsi(v.raw)}${v.entry.exitCode === null ? '' : `\n(exit ${v.entry.exitCode})`}\n`,
      )
      .join('\n');
    const a = h('a', {
      href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })),
      download: `job-${job.id}-attempt-${attempt}.log`,
    });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });

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
    job = { ...job, ...(await apiGet<JobView>(`/api/v1/jobs/${id}`, ctx.signal)) };
    renderSummary();
    if (job.attempts > 0 && attempt === 0) ctx.refresh();
  });

  if (attempt === 0) return;
  const stream = async () => {
    if (attempt !== job.attempts || ENDED.includes(job.state)) {
      const r = await apiGet<JobLogsView>(`/api/v1/jobs/${id}/logs?attempt=${attempt}`, ctx.signal);
      for (const e of r.entries) appendOutput(upsertEntry(e), e.out ?? '');
      return;
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
        }
      },
      ctx.signal,
    );
  };
  stream().catch((e) => {
    if (!ctx.signal.aborted) ctx.report(e);
  });
}
