/**
 * The pruner in a real server (SQLite file, fake clock): old finished jobs disappear from the user
 * API, older output is replaced by the marker earlier, running and queued jobs stay, and /metrics
 * counts what went.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PRUNED_OUTPUT_MARKER } from '../../src/store/types.js';
import { type Harness, startHarness } from './harness.js';

const Q = '/.executors/queue';
const HOUR = 3_600_000;

let h: Harness;
beforeEach(async () => {
  h = await startHarness({
    env: {
      EXECUTOR_SERVER_JOB_RETENTION: '48h',
      EXECUTOR_SERVER_LOG_RETENTION: '2h',
      EXECUTOR_SERVER_DEFAULT_JOB_TIMEOUT: '1000h',
    },
  });
});
afterEach(async () => {
  await h.close();
});

/** Submits, runs and completes one job with `out` as its only entry's output. */
async function finished(out: string): Promise<number> {
  const id = await h.submit({});
  const job = await h.dequeue('default', 'e1');
  const add = await h.job(`${Q}/default/addExecutionLogEntry`, job, 'e1', {
    executorName: 'e1',
    jobId: id,
    key: 'step.docker.0',
    command: ['sh', '-c', 'x'],
    startTime: '2026-01-01T00:00:00Z',
    out,
  });
  expect(add.status).toBe(200);
  const done = await h.job(`${Q}/default/markComplete`, job, 'e1', { executorName: 'e1', jobId: id });
  expect(done.status).toBe(204);
  return id;
}

const logsOf = async (id: number) =>
  (await (await h.api('GET', `/jobs/${id}/logs`)).json()) as { entries: { out: string }[] };

describe('retention (pruner)', () => {
  it('drops old output first, then old jobs; never a running or queued one', async () => {
    const old = await finished('old output\n');
    const running = await h.submit({});
    await h.dequeue('default', 'e2');
    const queued = await h.submit({ queue: 'elsewhere' });
    h.clock.advance(3 * HOUR);
    const young = await finished('young output\n');

    expect(await h.app.loops.pruner.runOnce(h.clock.now())).toEqual({
      jobs: 0,
      logJobs: 1,
      bytes: 'old output\n'.length,
    });
    expect((await logsOf(old)).entries[0]!.out).toBe(PRUNED_OUTPUT_MARKER);
    expect((await logsOf(young)).entries[0]!.out).toBe('young output\n');
    expect(((await (await h.api('GET', `/jobs/${old}`)).json()) as { state: string }).state).toBe(
      'completed',
    );

    h.clock.advance(46 * HOUR);
    const pass = (await h.app.loops.pruner.runOnce(h.clock.now())) as { jobs: number; logJobs: number };
    expect(pass).toMatchObject({ jobs: 1, logJobs: 1 });
    expect((await h.api('GET', `/jobs/${old}`)).status).toBe(404);
    expect((await h.api('GET', `/jobs/${running}`)).status).toBe(200);
    expect((await h.api('GET', `/jobs/${queued}`)).status).toBe(200);
    expect((await logsOf(young)).entries[0]!.out).toBe(PRUNED_OUTPUT_MARKER);

    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/^src_executor_server_pruned_jobs_total 1$/m);
    expect(metrics).toMatch(/^src_executor_server_pruned_log_jobs_total 2$/m);
    expect(metrics).toMatch(/^src_executor_server_pruned_bytes_total \d{2,}$/m);
  });

  it('with a retention of 0 keeps everything', async () => {
    await h.close();
    h = await startHarness({ env: { EXECUTOR_SERVER_JOB_RETENTION: '0' } });
    const id = await finished('kept\n');
    h.clock.advance(100_000 * HOUR);
    expect(await h.app.loops.pruner.runOnce(h.clock.now())).toEqual({ jobs: 0, logJobs: 0, bytes: 0 });
    expect((await logsOf(id)).entries[0]!.out).toBe('kept\n');
  });
});
