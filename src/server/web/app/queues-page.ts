/**
 * Queues: depth, processing, oldest waiting job, the active executors polling each, and charts of
 * depth, throughput and dispatch latency.
 */
import type { QueueHistoryView, QueueListView, QueueSample } from '../../../protocol/user-api.js';
import { apiGet } from './api.js';
import { lineChart } from './charts.js';
import { clear, h } from './dom.js';
import { formatDuration, formatNumber } from './format.js';
import { every, type PageContext } from './shared.js';

function pollersText(n: number): string {
  return n === 1 ? '1 executor' : `${formatNumber(n)} executors`;
}

export async function renderQueuesPage(ctx: PageContext): Promise<void> {
  const tbody = h('tbody');
  const charts = h('div', { className: 'queue-charts' });
  const note = h('p', { className: 'muted' });
  ctx.main.append(
    h('h1', { tabindex: '-1' }, 'Queues'),
    h(
      'div',
      { className: 'table-wrap' },
      h(
        'table',
        { className: 'queues' },
        h('caption', { className: 'visually-hidden' }, 'Queues now'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Queue', 'Waiting', 'Processing', 'Oldest waiting', 'Polled by'].map((c) =>
              h('th', { scope: 'col' }, c),
            ),
          ),
        ),
        tbody,
      ),
    ),
    h('h2', {}, 'Over time'),
    note,
    charts,
  );
  const load = async () => {
    const [now, hist] = await Promise.all([
      apiGet<QueueListView>('/api/v1/queues', ctx.signal),
      apiGet<QueueHistoryView>('/api/v1/queues/history', ctx.signal),
    ]);
    clear(tbody);
    if (now.queues.length === 0)
      tbody.append(
        h('tr', {}, h('td', { colspan: 5 }, 'No queues yet: submit a job, or start an executor.')),
      );
    for (const q of now.queues) {
      tbody.append(
        h(
          'tr',
          { 'data-queue': q.queue },
          h('th', { scope: 'row' }, q.queue),
          h('td', {}, String(q.depth)),
          h('td', {}, String(q.processing)),
          h('td', {}, q.oldestAgeSeconds === null ? '—' : formatDuration(q.oldestAgeSeconds * 1000)),
          h(
            'td',
            // Jobs waiting that no active executor polls wait until one does: said, not only shown.
            q.pollers === 0 && q.depth > 0 ? { className: 'unpolled' } : {},
            q.pollers === 0 ? (q.depth > 0 ? 'no active executor' : '0') : pollersText(q.pollers),
          ),
        ),
      );
    }
    note.textContent = `One sample every ${formatDuration(hist.intervalMs)}, kept in the server's memory.`;
    clear(charts);
    for (const [queue, samples] of Object.entries(hist.queues)) {
      // Counts per interval become per-minute rates over the real spacing of the samples.
      const perMin = (i: number) =>
        60_000 / Math.max(1, i > 0 ? samples[i]!.at - samples[i - 1]!.at : hist.intervalMs);
      const rate = (f: (s: QueueSample) => number) =>
        samples.map((s, i) => [s.at, f(s) * perMin(i)] as [number, number]);
      const pts = (f: (s: QueueSample) => number | null) =>
        samples.flatMap((s) => {
          const v = f(s);
          return v === null ? [] : [[s.at, v] as [number, number]];
        });
      // One time axis for the three charts, though latency has no point where nothing was dispatched.
      const timeRange = [samples[0]?.at ?? 0, samples[samples.length - 1]?.at ?? 0] as const;
      charts.append(
        h(
          'section',
          { className: 'card', 'aria-label': `Charts of queue ${queue}` },
          h('h3', {}, queue),
          h(
            'div',
            { className: 'chart-grid' },
            lineChart(
              'Depth',
              [
                { name: 'waiting', points: pts((s) => s.depth) },
                { name: 'processing', points: pts((s) => s.processing) },
              ],
              formatNumber,
              { timeRange },
            ),
            lineChart(
              'Throughput (jobs per minute)',
              [
                { name: 'started', points: rate((s) => s.started) },
                { name: 'finished', points: rate((s) => s.finished) },
              ],
              formatNumber,
              { timeRange },
            ),
            lineChart(
              'Dispatch latency (median)',
              [{ name: 'p50', points: pts((s) => s.dispatchP50Ms) }],
              (v) => formatDuration(v),
              { timeRange },
            ),
          ),
        ),
      );
    }
  };
  await load();
  every(ctx.signal, 5000, load, ctx.report);
}
