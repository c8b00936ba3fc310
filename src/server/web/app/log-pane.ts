/**
 * The log pane of a job page: search, follow-tail and download tools, the steps timeline, and one
 * section per log entry whose output is appended live (ANSI rendered, search hits marked, the
 * server's truncation marker shown as a banner). The page feeds it entries and output.
 */
import type { LogEntryView } from '../../../protocol/user-api.js';
import { type AnsiSegment, type AnsiState, createAnsiState, parseAnsi, stripAnsi } from './ansi.js';
import { clear, h } from './dom.js';
import { formatDuration } from './format.js';

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

/** The steps timeline: one bar per entry, placed and sized on the attempt's time span. */
function drawTimeline(timeline: HTMLElement, views: Map<number, EntryView>, jobId: number, attempt: number) {
  clear(timeline);
  const list = [...views.values()].map((v) => v.entry);
  const starts = list.map((e) => Date.parse(e.startTime)).filter(Number.isFinite);
  // reduce, not a spread: an argument list has a size limit and entries have none here.
  const t0 = starts.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
  const ends = list.map(
    (e) => Date.parse(e.startTime) + (e.durationMs ?? Date.now() - Date.parse(e.startTime)),
  );
  const span = Math.max(1, ends.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY) - t0);
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
            href: `#/jobs/${jobId}?attempt=${attempt}`,
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
}

/** Saves every entry's command and output, ANSI stripped, as one text file. */
function downloadLog(views: Map<number, EntryView>, jobId: number, attempt: number) {
  const text = [...views.values()]
    .map(
      (v) =>
        `### ${v.entry.key}${v.entry.command ? `\n$ ${v.entry.command.join(' ')}` : ''}\n${stripAnsi(v.raw)}${v.entry.exitCode === null ? '' : `\n(exit ${v.entry.exitCode})`}\n`,
    )
    .join('\n');
  const a = h('a', {
    href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })),
    download: `job-${jobId}-attempt-${attempt}.log`,
  });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** `live`: the attempt is running, so the pane starts following the tail (else it stays put). */
export function createLogPane(jobId: number, attempt: number, startLive: boolean) {
  let live = startLive;
  const search = h('input', { id: 'log-search', type: 'search', autocomplete: 'off' });
  const hits = h('span', { className: 'muted', 'aria-live': 'polite' });
  const follow = h('input', { id: 'log-follow', type: 'checkbox', checked: startLive });
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

  const renderTimeline = () => drawTimeline(timeline, views, jobId, attempt);

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
      const cmd = e.command
        ? h(
            'code',
            { className: 'command' },
            `$ ${e.command.join(' ')}${e.commandTruncated ? ' … (shortened)' : ''}`,
          )
        : null;
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
    if (follow.checked || (stick && live)) scrollTail();
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
  download.addEventListener('click', () => downloadLog(views, jobId, attempt));

  /** The attempt ended: no more output to follow. */
  const stopFollowing = () => {
    live = false;
    follow.checked = false;
  };

  return { tools, timeline, logs, views, upsertEntry, appendOutput, stopFollowing };
}
