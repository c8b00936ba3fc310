/**
 * The worker, heartbeat and lifecycle against the fake frontend, with the shell runtime running real
 * `/bin/sh` steps: ping first, unknown jobs aborted, server cancel -> markFailed, drain, forced stop,
 * timeout, NumTotalJobs, disk-space pause.
 */
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createExecutorMetrics } from '../../src/executor/metrics.js';
import { waitFor } from '../helpers/env.js';
import { type FakeFrontend, startFakeSourcegraphFrontend } from './fake-sourcegraph-frontend.js';
import { startShellExecutor, tempDir, testConfig } from './harness.js';

let fe: FakeFrontend;
let ws: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  fe = await startFakeSourcegraphFrontend();
  ws = await tempDir('executor-worker-test-');
});
afterEach(async () => {
  await fe.close();
  await ws.cleanup();
});

const sleepJob = (id: number, seconds = 30) => ({
  id,
  token: `tok-${id}`,
  dockerSteps: [{ key: 'wait', image: 'ignored', commands: [`sleep ${seconds}`], dir: '', env: [] }],
});
const quickJob = (id: number) => ({
  id,
  token: `tok-${id}`,
  dockerSteps: [{ image: 'ignored', commands: ['echo done'], dir: '', env: [] }],
});
const queue = (...jobs: Record<string, unknown>[]) => fe.jobs.set('test_queue', jobs);
const markFor = (id: number) => fe.marks.find((m) => m.jobId === id);
const jobCalls = () =>
  fe.requests.filter((r) => /dequeue|mark|LogEntry/.test(r.path) || r.path.startsWith('/.executors/files'));

describe('worker', () => {
  it('pings until the server answers before any other call, then runs a job to markComplete', async () => {
    fe.script.push({ status: 502 }, { status: 502 });
    queue(quickJob(1));
    const { ex } = await startShellExecutor(testConfig(fe, ws.dir, { EXECUTOR_NUM_TOTAL_JOBS: '1' }));
    await ex.done;
    const firstJobCall = fe.requests.indexOf(jobCalls()[0]!);
    const pings = fe.requests.slice(0, firstJobCall);
    expect(pings.length).toBeGreaterThanOrEqual(3);
    expect(pings.every((r) => r.path === '/.executors/queue/test_queue/heartbeat')).toBe(true);
    expect(markFor(1)).toMatchObject({ route: 'markComplete', queue: 'test_queue' });
  });

  it('aborts a job missing from knownIds and removes it from the running set (markErrored)', async () => {
    queue(sleepJob(2));
    const { ex } = await startShellExecutor(testConfig(fe, ws.dir, { EXECUTOR_NUM_TOTAL_JOBS: '1' }));
    await waitFor(() => ex.worker.running.has('2'), { what: 'job 2 running' });
    fe.forgetIds.add('2');
    await waitFor(() => !ex.worker.running.has('2'), { what: 'job 2 removed' });
    await ex.done;
    expect(markFor(2)).toMatchObject({
      route: 'markErrored',
      errorMessage: 'job is no longer known to the server',
    });
  });

  it('a cancelIds entry aborts the job and marks it failed', async () => {
    queue(sleepJob(3));
    const { ex } = await startShellExecutor(testConfig(fe, ws.dir, { EXECUTOR_NUM_TOTAL_JOBS: '1' }));
    await waitFor(() => fe.entriesFor(3).some((e) => e.key === 'step.docker.wait'), { what: 'step started' });
    fe.cancelIds.add('3');
    await ex.done;
    expect(markFor(3)).toMatchObject({ route: 'markFailed', errorMessage: 'job canceled' });
  });

  it('times out a job: markErrored "job exceeded maximum execution time of ..."', async () => {
    queue(sleepJob(4));
    const { ex } = await startShellExecutor(
      testConfig(fe, ws.dir, { EXECUTOR_NUM_TOTAL_JOBS: '1', EXECUTOR_MAXIMUM_RUNTIME_PER_JOB: '300ms' }),
    );
    await ex.done;
    expect(markFor(4)).toMatchObject({
      route: 'markErrored',
      errorMessage: 'job exceeded maximum execution time of 300ms',
    });
  });

  it('drain: no new dequeues, the running job finishes and is marked complete, heartbeats go on', async () => {
    queue(sleepJob(5, 1), quickJob(6));
    const { ex } = await startShellExecutor(testConfig(fe, ws.dir));
    await waitFor(() => ex.worker.running.has('5'), { what: 'job 5 running' });
    const draining = ex.drain();
    const beatsAtDrain = fe.requests.filter((r) => r.path.endsWith('/heartbeat')).length;
    await draining;
    expect(markFor(5)).toMatchObject({ route: 'markComplete' });
    expect(markFor(6)).toBeUndefined();
    expect(fe.jobs.get('test_queue')).toHaveLength(1);
    // The 1 s job outlives several 50 ms heartbeat periods; the loop kept beating meanwhile.
    expect(fe.requests.filter((r) => r.path.endsWith('/heartbeat')).length).toBeGreaterThan(beatsAtDrain + 2);
  });

  it("waiting for a free slot leaves no listener behind on the worker's stop signal", async () => {
    // Every abort listener added while the executor runs, on whatever signal: a busy executor waits
    // for a slot once per job, and a listener left each time would grow for the executor's lifetime.
    const signals = new Set<AbortSignal>();
    const original = EventTarget.prototype.addEventListener;
    const spy = vi.spyOn(EventTarget.prototype, 'addEventListener').mockImplementation(function (
      this: EventTarget,
      ...args: Parameters<EventTarget['addEventListener']>
    ) {
      if (this instanceof AbortSignal && args[0] === 'abort') signals.add(this);
      return original.apply(this, args);
    });
    try {
      const jobs = 8;
      queue(...Array.from({ length: jobs }, (_, i) => quickJob(100 + i)));
      const { ex } = await startShellExecutor(
        testConfig(fe, ws.dir, { EXECUTOR_MAXIMUM_NUM_JOBS: '1', EXECUTOR_NUM_TOTAL_JOBS: String(jobs) }),
      );
      await waitFor(() => fe.marks.length === jobs, { what: `${jobs} jobs marked` });
      const most = Math.max(...[...signals].map((s) => getEventListeners(s, 'abort').length));
      await ex.done;
      expect(fe.marks.filter((m) => m.route === 'markComplete')).toHaveLength(jobs);
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      spy.mockRestore();
    }
  });

  it('a second stop aborts running jobs: markErrored "executor shutting down"', async () => {
    queue(sleepJob(7), sleepJob(8));
    const { ex } = await startShellExecutor(testConfig(fe, ws.dir, { EXECUTOR_MAXIMUM_NUM_JOBS: '2' }));
    await waitFor(() => ex.worker.running.size() === 2, { what: 'two jobs running' });
    void ex.drain();
    await ex.forceStop();
    expect(markFor(7)).toMatchObject({ route: 'markErrored', errorMessage: 'executor shutting down' });
    expect(markFor(8)).toMatchObject({ route: 'markErrored', errorMessage: 'executor shutting down' });
  });

  it('pauses dequeuing while free disk is below EXECUTOR_MIN_FREE_DISK, and reports it in metrics', async () => {
    queue(quickJob(9));
    let free = 10;
    const metrics = createExecutorMetrics();
    const { ex, logger } = await startShellExecutor(
      testConfig(fe, ws.dir, { EXECUTOR_NUM_TOTAL_JOBS: '1', EXECUTOR_MIN_FREE_DISK: '1MiB' }),
      { metrics, worker: { freeDiskBytes: async () => free } },
    );
    await waitFor(() => logger.lines.some((l) => l.includes('EXECUTOR_MIN_FREE_DISK')), {
      what: 'disk warning',
    });
    await waitFor(
      () =>
        fe.requests.some(
          (r) =>
            r.path.endsWith('/heartbeat') &&
            String((r.json as { prometheusMetrics?: string }).prometheusMetrics).includes(
              'src_executor_disk_space_low 1',
            ),
        ),
      { what: 'gauge in heartbeat' },
    );
    expect(fe.requests.some((r) => r.path.endsWith('/dequeue'))).toBe(false);
    free = 2 ** 30;
    await ex.done;
    expect(markFor(9)).toMatchObject({ route: 'markComplete' });
    expect(metrics.diskLow.get()).toBe(0);
  });

  it('heartbeats carry Prometheus metrics with Sourcegraph names', async () => {
    // A job that outlives a few heartbeats, so a heartbeat after the dequeue is sure to happen.
    queue({ ...quickJob(10), dockerSteps: [{ image: 'ignored', commands: ['sleep 30'], dir: '', env: [] }] });
    const { ex } = await startShellExecutor(testConfig(fe, ws.dir));
    try {
      const body = await waitFor(() =>
        fe.requests
          .filter((r) => r.path.endsWith('/heartbeat'))
          .map((r) => (r.json as { prometheusMetrics: string }).prometheusMetrics)
          .find((m) => m.includes('src_apiworker_apiclient_queue_total')),
      );
      expect(body).toMatch(/src_apiworker_apiclient_queue_total\{op="Dequeue"\} \d+/);
    } finally {
      await ex.forceStop();
      await ex.done;
    }
  });

  it('an idle executor reports 0 jobs running from its first heartbeat, not no gauge', async () => {
    const before = fe.requests.length;
    const { ex } = await startShellExecutor(testConfig(fe, ws.dir));
    try {
      const first = await waitFor(() =>
        fe.requests
          .slice(before)
          .filter((r) => r.path.endsWith('/heartbeat'))
          .map((r) => r.json as { prometheusMetrics?: string })
          // The first request to the heartbeat route is the ping, which carries no metrics.
          .at(1),
      );
      expect(first.prometheusMetrics).toMatch(/^src_executor_processor_handlers 0$/m);
    } finally {
      await ex.forceStop();
      await ex.done;
    }
  });
});
