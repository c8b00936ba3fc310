/**
 * How fast the server answers, on GET /metrics (server/metrics.ts): a duration histogram per route
 * and method, and the delay of the server's event loop. Real server on SQLite; the store's
 * heartbeat write is held for a measured time so that the histogram has something to place.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { parseLabels, SAMPLE } from '../../src/lib/prometheus.js';
import { createHttpMetrics, LOOP_DELAY_BUCKETS, REQUEST_DURATION_BUCKETS } from '../../src/server/metrics.js';
import type { Store } from '../../src/store/types.js';
import { type Harness, startHarness } from './harness.js';

/** The samples of one histogram family: bucket counts by `le`, with sum and count, per label set. */
function histogram(text: string, name: string, match: Record<string, string> = {}) {
  const buckets = new Map<string, number>();
  let sum = Number.NaN;
  let count = Number.NaN;
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (!m?.[1]?.startsWith(name)) continue;
    const labels = new Map(parseLabels(m[3] ?? '') ?? []);
    if (Object.entries(match).some(([k, v]) => labels.get(k) !== v)) continue;
    const value = Number(m[4]);
    if (m[1] === `${name}_bucket`) buckets.set(labels.get('le')!, value);
    else if (m[1] === `${name}_sum`) sum = value;
    else if (m[1] === `${name}_count`) count = value;
  }
  return { buckets, sum, count };
}

describe('request and event-loop metrics (unit)', () => {
  it('renders cumulative buckets, +Inf, sum and count per route and method', () => {
    const m = createHttpMetrics();
    try {
      m.observe('/a/:x', 'POST', 200, 0.003);
      m.observe('/a/:x', 'POST', 500, 0.2);
      m.observe('/a/:x', 'POST', 200, 400);
      m.observe('/b', 'GET', 200, 0.0005);
      const text = m.render();
      const a = histogram(text, 'src_executor_server_http_request_duration_seconds', { route: '/a/:x' });
      expect(a.buckets.get('0.0025')).toBe(0);
      expect(a.buckets.get('0.005')).toBe(1);
      expect(a.buckets.get('0.1')).toBe(1);
      expect(a.buckets.get('0.25')).toBe(2);
      expect(a.buckets.get('300')).toBe(2);
      expect(a.buckets.get('+Inf')).toBe(3);
      expect(a.count).toBe(3);
      expect(a.sum).toBeCloseTo(400.203, 6);
      expect(a.buckets.size).toBe(REQUEST_DURATION_BUCKETS.length + 1);
      // The status is in the counter only.
      expect(text).toContain(
        'src_executor_server_http_requests_total{route="/a/:x",method="POST",code="500"} 1',
      );
      expect(text).not.toMatch(/duration_seconds_bucket\{[^}]*code=/);
      const b = histogram(text, 'src_executor_server_http_request_duration_seconds', { route: '/b' });
      expect([b.buckets.get('0.001'), b.count]).toEqual([1, 1]);
      // Every line is a sample or a comment the text format allows.
      for (const line of text.trim().split('\n'))
        expect(line.startsWith('#') || SAMPLE.test(line)).toBe(true);
    } finally {
      m.close();
    }
  });

  it('records how late its timer ran after the event loop was blocked', async () => {
    const m = createHttpMetrics({ loopSampleMs: 10 });
    try {
      const busyUntil = performance.now() + 150;
      while (performance.now() < busyUntil) {
        // blocks the event loop, as a long synchronous task on the server would
      }
      // The sampler's timer was due before this one: it has run when this resolves.
      await delay(20);
      const loop = histogram(m.render(), 'src_executor_server_event_loop_delay_seconds');
      expect(loop.count).toBeGreaterThan(0);
      expect(loop.buckets.size).toBe(LOOP_DELAY_BUCKETS.length + 1);
      // At least one sample saw most of the 150 ms.
      expect(loop.buckets.get('0.1')!).toBeLessThan(loop.count);
      expect(loop.sum).toBeGreaterThan(0.1);
    } finally {
      m.close();
    }
  });
});

describe('request durations on a real server', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('places a heartbeat whose store write took 120 ms above the 0.1 s bucket', async () => {
    const HOLD_MS = 120;
    h = await startHarness({
      wrapStore: (inner: Store) =>
        new Proxy(inner, {
          get(target, prop, receiver) {
            if (prop === 'recordHeartbeats')
              return async (...args: Parameters<Store['recordHeartbeats']>) => {
                await delay(HOLD_MS);
                return target.recordHeartbeats(...args);
              };
            const v = Reflect.get(target, prop, receiver);
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }),
    });
    const route = '/.executors/queue/:queue/heartbeat';
    const before = histogram(
      await (await fetch(`${h.url}/metrics`)).text(),
      'src_executor_server_http_request_duration_seconds',
      { route },
    );
    const started = performance.now();
    const res = await h.exec('/.executors/queue/default/heartbeat', {
      executorName: 'slow-store',
      executorVersion: '5.3.0',
      jobIds: [],
    });
    expect(res.status).toBe(200);
    const seen = (performance.now() - started) / 1000;
    const after = histogram(
      await (await fetch(`${h.url}/metrics`)).text(),
      'src_executor_server_http_request_duration_seconds',
      { route, method: 'POST' },
    );
    expect((after.count || 0) - (before.count || 0)).toBe(1);
    // Above 0.1 s, and no longer than the client saw it.
    expect(after.buckets.get('0.1')).toBe(before.buckets.get('0.1') ?? 0);
    expect(after.buckets.get('+Inf')).toBe((before.buckets.get('+Inf') ?? 0) + 1);
    const took = after.sum - (Number.isNaN(before.sum) ? 0 : before.sum);
    expect(took).toBeGreaterThanOrEqual(HOLD_MS / 1000);
    expect(took).toBeLessThanOrEqual(seen);
  });
});
