/**
 * Metrics executors push with their heartbeats are bounded (a per-executor size cap; beyond it the
 * metrics are dropped and the heartbeat still succeeds), labelled by the server (an executor cannot
 * pose as another), merged without spreading unbounded arrays, and /metrics can require a token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPushedMetricsRenderer, normalizePushedMetrics } from '../../src/server/pushed-metrics.js';
import { type Harness, startHarness } from './harness.js';

const Q = '/.executors/queue';

describe('normalizePushedMetrics and the renderer', () => {
  it('drops a text over the cap, naming it', () => {
    const r = normalizePushedMetrics('e1', `up 1\n${'#'.repeat(2000)}\n`, 1024);
    expect(r).toEqual({
      ok: false,
      reason: '2006 bytes, more than 1024 bytes (EXECUTOR_SERVER_MAX_EXECUTOR_METRICS)',
    });
  });

  it('merges one family of 30 executors x 5,000 samples into one block', () => {
    const renderer = createPushedMetricsRenderer();
    const executors = Array.from({ length: 30 }, (_, i) => {
      const lines = ['# TYPE jobs_total counter'];
      for (let k = 0; k < 5000; k++) lines.push(`jobs_total{k="${k}"} ${k}`);
      const r = normalizePushedMetrics(`e${i}`, `${lines.join('\n')}\n`, 256 * 1024);
      if (!r.ok) throw new Error(r.reason);
      return { name: `e${i}`, metrics: r.text };
    });
    const text = renderer.render(executors);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + 30 * 5000);
    expect(lines[0]).toBe('# TYPE jobs_total counter');
    expect(lines[1]).toBe('jobs_total{k="0",sg_instance="e0",sg_job="sourcegraph-executors"} 0');
    expect(lines.at(-1)).toBe('jobs_total{k="4999",sg_instance="e29",sg_job="sourcegraph-executors"} 4999');
    // A second scrape of the same texts gives the same answer (from the kept grouping).
    expect(renderer.render(executors)).toBe(text);
  });

  it('lets a real TYPE win over the untyped one of an executor that sent none', () => {
    const a = normalizePushedMetrics('a', 'jobs_total 1\n', 1024);
    const b = normalizePushedMetrics('b', '# TYPE jobs_total counter\njobs_total 2\n', 1024);
    if (!a.ok || !b.ok) throw new Error('dropped');
    const text = createPushedMetricsRenderer().render([
      { name: 'a', metrics: a.text },
      { name: 'b', metrics: b.text },
    ]);
    expect(text).toBe(
      '# TYPE jobs_total counter\njobs_total{sg_instance="a",sg_job="sourcegraph-executors"} 1\n' +
        'jobs_total{sg_instance="b",sg_job="sourcegraph-executors"} 2\n',
    );
  });
});

describe('pushed metrics over HTTP', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ env: { EXECUTOR_SERVER_MAX_EXECUTOR_METRICS: '4Ki' } });
  });
  afterAll(async () => {
    await h?.close();
  });

  const heartbeat = (executorName: string, prometheusMetrics: string) =>
    h.exec(`${Q}/default/heartbeat`, { executorName, executorVersion: '5.3.0', prometheusMetrics });

  it('drops metrics over EXECUTOR_SERVER_MAX_EXECUTOR_METRICS; the heartbeat still succeeds', async () => {
    const big = `# TYPE big_total counter\n${Array.from({ length: 400 }, (_, i) => `big_total{i="${i}"} 1`).join('\n')}\n`;
    expect(Buffer.byteLength(big)).toBeGreaterThan(4096);
    const res = await heartbeat('e-big', big);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ knownIds: [], cancelIds: [] });
    expect(h.logs.some((l) => l.includes('executor metrics dropped') && l.includes('e-big'))).toBe(true);
    expect(await (await fetch(`${h.url}/metrics`)).text()).not.toContain('big_total');
    // The next heartbeat within the cap is served again.
    expect((await heartbeat('e-big', 'small_total 2\n')).status).toBe(200);
    expect(await (await fetch(`${h.url}/metrics`)).text()).toContain(
      'small_total{sg_instance="e-big",sg_job="sourcegraph-executors"} 2',
    );
  });

  it('refuses a heartbeat far over the cap (cap + 1 MiB) with 413 before reading it', async () => {
    const huge = `huge_total 1\n${'#'.repeat(4096 + 1024 * 1024)}\n`;
    const res = await heartbeat('e-huge', huge);
    expect(res.status).toBe(413);
    expect(await res.text()).toContain(`limit ${4096 + 1024 * 1024} bytes`);
    expect(await h.store.getExecutor('e-huge')).toBeNull();
  });

  it('sets sg_instance and sg_job itself: an executor cannot pose as another', async () => {
    await heartbeat('e-honest', 'spoof_probe 1\n');
    await heartbeat(
      'e-spoof',
      'spoof_probe{sg_instance="e-honest",sg_job="prometheus"} 666\nregistry_up{sg_instance="docker-registry"} 1\n',
    );
    const text = await (await fetch(`${h.url}/metrics`)).text();
    const probes = text.split('\n').filter((l) => l.startsWith('spoof_probe'));
    expect(probes.sort()).toEqual([
      'spoof_probe{sg_instance="e-honest",sg_job="sourcegraph-executors"} 1',
      'spoof_probe{sg_instance="e-spoof",sg_job="sourcegraph-executors"} 666',
    ]);
    expect(text).toContain('registry_up{sg_instance="e-spoof",sg_job="sourcegraph-executors-registry"} 1');
  });
});

describe('EXECUTOR_SERVER_METRICS_TOKEN', () => {
  let h: Harness;
  const TOKEN = 'metrics-token-0123456789abcdef';

  beforeAll(async () => {
    h = await startHarness({ env: { EXECUTOR_SERVER_METRICS_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('requires Authorization: Bearer <token> on /metrics', async () => {
    const none = await fetch(`${h.url}/metrics`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
    const wrong = await fetch(`${h.url}/metrics`, { headers: { authorization: 'Bearer not-the-token' } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('# TYPE src_executor_total gauge');
    // /healthz stays open for load balancers.
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });
});
