/**
 * Small inline-SVG line charts. Each chart is a <figure> with a caption, an SVG labelled with its
 * latest values (screen readers get the numbers, not the drawing), min/max and time labels, and a
 * legend. Colours come from CSS classes (series-0, series-1, ...).
 */
import { h, svg } from './dom.js';

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

const W = 360;
const H = 120;
const PAD = { l: 44, r: 8, t: 8, b: 18 };

function timeLabel(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}`;
}

export interface ChartOptions {
  /** The time axis [from, to] in ms, shared by charts drawn side by side; default: the points' span. */
  timeRange?: readonly [number, number];
}

/**
 * Later series are drawn thinner and dashed over the earlier ones, so a series that equals another
 * (started = finished) stays visible under it.
 */
export function lineChart(
  title: string,
  series: Series[],
  fmt: (v: number) => string,
  opts: ChartOptions = {},
): HTMLElement {
  const all = series.flatMap((s) => s.points);
  const fig = h('figure', { className: 'chart' }, h('figcaption', {}, title));
  if (all.length === 0) {
    fig.append(h('p', { className: 'muted' }, 'No samples yet.'));
    return fig;
  }
  const t0 = opts.timeRange?.[0] ?? Math.min(...all.map((p) => p[0]));
  const t1 = opts.timeRange?.[1] ?? Math.max(...all.map((p) => p[0]));
  const vmax = Math.max(0, ...all.map((p) => p[1]));
  const vmin = Math.min(0, ...all.map((p) => p[1]));
  const span = vmax - vmin || 1;
  const x = (t: number) =>
    PAD.l + (t1 === t0 ? W - PAD.l - PAD.r : ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r));
  const y = (v: number) => H - PAD.b - ((v - vmin) / span) * (H - PAD.t - PAD.b);
  const latest = series
    .map((s) => {
      const p = s.points[s.points.length - 1];
      return p ? `${s.name} ${fmt(p[1])}` : `${s.name} no data`;
    })
    .join(', ');
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': `${title}: latest ${latest}; maximum ${fmt(vmax)} over ${series[0]?.points.length ?? 0} samples`,
    class: 'chart-svg',
  });
  root.append(
    svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y(vmin), y2: y(vmin), class: 'axis' }),
    svg('line', { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b, class: 'axis' }),
    svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y(vmax), y2: y(vmax), class: 'grid' }),
  );
  const label = (text: string, ax: number, ay: number, anchor: string) => {
    const t = svg('text', { x: ax, y: ay, 'text-anchor': anchor, class: 'tick' });
    t.textContent = text;
    return t;
  };
  root.append(
    label(fmt(vmax), PAD.l - 4, y(vmax) + 4, 'end'),
    label(fmt(vmin), PAD.l - 4, y(vmin) + 4, 'end'),
    label(timeLabel(t0), PAD.l, H - 4, 'start'),
    label(timeLabel(t1), W - PAD.r, H - 4, 'end'),
  );
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points
      .map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
      .join(' ');
    root.append(svg('path', { d, class: `line series-${i}` }));
    if (s.points.length === 1) {
      const p = s.points[0]!;
      root.append(svg('circle', { cx: x(p[0]), cy: y(p[1]), r: 2.5, class: `dot series-${i}` }));
    }
  });
  fig.append(root);
  const legend = h('ul', { className: 'legend' });
  series.forEach((s, i) => {
    const p = s.points[s.points.length - 1];
    legend.append(
      h(
        'li',
        {},
        h('span', { className: `swatch series-${i}`, 'aria-hidden': 'true' }),
        `${s.name}: ${p ? fmt(p[1]) : '—'}`,
      ),
    );
  });
  fig.append(legend);
  return fig;
}
