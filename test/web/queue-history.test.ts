import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFakeClock } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/logger.js';
import { createQueueHistory, promValue } from '../../src/server/queue-history.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/types.js';

const RETRY = { baseMs: 1000, maxMs: 1000 };
const newJob = (queue: string) => ({
  queue,
  spec: { queue, steps: [{ image: 'x', run: 'true' }] },
  repositoryName: '',
  commit: '',
  priority: 0,
  maxAttempts: 1,
  timeoutMs: 60_000,
});

/** A heartbeat of executor `name` that pushed `metrics`, at `t`. */
const pushMetrics = (store: Store, name: string, metrics: string, t: number) =>
  store.upsertExecutor(
    {
      name,
      hostname: name,
      queueName: 'q',
      queueNames: null,
      os: 'linux',
      architecture: 'amd64',
      dockerVersion: '',
      executorVersion: '1.0.0',
      gitVersion: '',
      igniteVersion: '',
      srcCliVersion: '',
      metrics,
    },
    t,
  );

describe('queue history sampler', () => {
  let store: Store | undefined;
  afterEach(async () => {
    await store?.close();
  });

  it('parses Prometheus text, summing label sets', () => {
    const text = [
      '# HELP src_executor_processor_handlers Number of jobs.',
      'src_executor_processor_handlers 2',
      'src_executor_processor_total{op="run"} 5',
      'src_executor_processor_total{op="x",q="a}b"} 7 1700000000',
      'src_executor_processor_total_other 100',
    ].join('\n');
    expect(promValue(text, 'src_executor_processor_handlers')).toBe(2);
    expect(promValue(text, 'src_executor_processor_total')).toBe(12);
    expect(promValue(text, 'process_cpu_seconds_total')).toBeUndefined();
  });

  it('samples depth, started, finished and median dispatch latency per interval', async () => {
    store = createSqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'history-')), 'db.sqlite') });
    await store.migrate();
    const clock = createFakeClock();
    const history = createQueueHistory({ clock, logger: createLogger({ level: 'error' }), keep: 2 });
    const observed = history.observe(store);
    const t0 = clock.now();
    for (let i = 0; i < 3; i++) await observed.enqueue(newJob('q'), t0);
    // Dispatched after 1 s, 3 s and 5 s of waiting: median 3 s.
    const fences = [];
    for (const wait of [1000, 3000, 5000]) {
      const r = await observed.dequeue({
        queue: 'q',
        executorName: 'e1',
        now: t0 + wait,
        tokenHash: `h${wait}`,
        priorityStepMs: 0,
      });
      fences.push({ jobId: r!.job.id, executorName: 'e1', attempt: r!.attempt });
    }
    expect(await observed.markComplete(fences[0]!, t0 + 6000)).toBe(true);
    expect(await observed.markErrored(fences[1]!, 'boom', t0 + 6000, RETRY)).toBe(true);
    // A fenced-out mark is not counted.
    expect(await observed.markComplete({ ...fences[2]!, attempt: 9 }, t0 + 6000)).toBe(false);
    await observed.enqueue(newJob('q'), t0 + 6000);

    const loop = history.loop(store);
    await loop.runOnce(t0 + 10_000);
    expect(history.queues().q).toEqual([
      {
        at: t0 + 10_000,
        depth: 1,
        processing: 1,
        oldestAgeSeconds: 4,
        started: 3,
        finished: 2,
        dispatchP50Ms: 3000,
      },
    ]);
    // The next interval starts from zero; only `keep` samples are kept.
    await loop.runOnce(t0 + 20_000);
    await loop.runOnce(t0 + 30_000);
    const q = history.queues().q!;
    expect(q.map((s) => s.at)).toEqual([t0 + 20_000, t0 + 30_000]);
    expect(q[1]).toMatchObject({ started: 0, finished: 0, dispatchP50Ms: null });
  });

  it('keeps executor gauges and counter rates while the executor pushes metrics', async () => {
    store = createSqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'history-')), 'db.sqlite') });
    await store.migrate();
    const clock = createFakeClock();
    const history = createQueueHistory({ clock, logger: createLogger({ level: 'error' }) });
    const loop = history.loop(store);
    const beat = (t: number, handlers: number, total: number) =>
      pushMetrics(
        store!,
        'e1',
        `src_executor_processor_handlers ${handlers}\nsrc_executor_processor_total ${total}\n`,
        t,
      );
    const t0 = clock.now();
    await beat(t0, 1, 10);
    await loop.runOnce(t0);
    await beat(t0 + 10_000, 2, 30);
    await loop.runOnce(t0 + 10_000);
    // Counter reset (executor restarted): no rate for that interval.
    await beat(t0 + 20_000, 0, 1);
    await loop.runOnce(t0 + 20_000);
    const s = history.executors().e1!;
    expect(s.src_executor_processor_handlers).toEqual([
      [t0, 1],
      [t0 + 10_000, 2],
      [t0 + 20_000, 0],
    ]);
    expect(s.src_executor_processor_total).toEqual([[t0 + 10_000, 2]]);
    // Not sampled once stale (no heartbeat for over 30 s).
    await loop.runOnce(t0 + 60_000);
    expect(history.executors().e1!.src_executor_processor_handlers).toHaveLength(3);
  });

  it('samples a fleet larger than one page, and forgets an executor once its points left the window', async () => {
    store = createSqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'history-')), 'db.sqlite') });
    await store.migrate();
    const clock = createFakeClock();
    // Three samples kept at 10 s: the window is 30 s.
    const history = createQueueHistory({ clock, logger: createLogger({ level: 'error' }), keep: 3 });
    const loop = history.loop(store);
    const t0 = clock.now();
    const beat = (name: string, handlers: number, t: number) =>
      pushMetrics(store!, name, `src_executor_processor_handlers ${handlers}\n`, t);
    const FLEET = 1_234;
    for (let i = 0; i < FLEET; i++) await beat(`e-${i}`, i, t0);
    await loop.runOnce(t0);
    const sampled = history.executors();
    expect(Object.keys(sampled)).toHaveLength(FLEET);
    for (const i of [0, 499, 500, 999, 1_000, FLEET - 1])
      expect(sampled[`e-${i}`]!.src_executor_processor_handlers).toEqual([[t0, i]]);
    // A page of the executors list by name (byte order): after one name, through another.
    expect(Object.keys(history.executors({ after: 'e-10', through: 'e-100' }))).toEqual(['e-100']);
    expect(Object.keys(history.executors({ after: 'e-998', through: 'e-999' }))).toEqual(['e-999']);
    expect(Object.keys(history.executors({ through: 'e-0' }))).toEqual(['e-0']);
    const tail = Object.keys(history.executors({ after: 'e-998' })).sort();
    expect(tail).toEqual(['e-999']);
    // Only e-7 keeps beating. The others are sampled while fresh (seen within 30 s: at t0 + 25 s
    // too), then no more, and forgotten once their newest point is older than the 30 s window.
    await beat('e-7', 70, t0 + 25_000);
    await loop.runOnce(t0 + 25_000);
    expect(history.executors()['e-8']!.src_executor_processor_handlers).toEqual([
      [t0, 8],
      [t0 + 25_000, 8],
    ]);
    await beat('e-7', 71, t0 + 45_000);
    await loop.runOnce(t0 + 45_000);
    expect(Object.keys(history.executors())).toHaveLength(FLEET);
    expect(history.executors()['e-8']!.src_executor_processor_handlers).toHaveLength(2);
    await beat('e-7', 72, t0 + 60_000);
    await loop.runOnce(t0 + 60_000);
    expect(Object.keys(history.executors())).toEqual(['e-7']);
    expect(history.executors()['e-7']!.src_executor_processor_handlers).toEqual([
      [t0 + 25_000, 70],
      [t0 + 45_000, 71],
      [t0 + 60_000, 72],
    ]);
  });
});
