/**
 * dispatch: from the moment a job is submitted (the user API POST is sent) to the moment the real
 * executor's handler holds it, over loopback. Ours: the executor long-polls. Baseline: the same
 * executor against the same server code with long-poll not advertised, so it polls every 1 s
 * (Sourcegraph's default EXECUTOR_QUEUE_POLL_INTERVAL).
 */
import { createApiClient } from '../src/cli/api-client.js';
import { startExecutor } from '../src/executor/index.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import {
  createStampRuntime,
  emptyTelemetry,
  executorConfig,
  executorEnv,
  startBenchServer,
} from './cluster.js';
import { type Bench, type BenchContext, percentile, result, sleep, waitFor } from './lib.js';

const LONG_POLL_JOBS = 200;
const POLLING_JOBS = 40;

const spec: JobSpec = {
  queue: 'bench',
  steps: [{ image: 'busybox', run: 'true' }],
} as JobSpec;

async function measure(ctx: BenchContext, longPoll: boolean, jobs: number): Promise<number[]> {
  const server = await startBenchServer({ logger: ctx.logger, hideCapabilities: !longPoll });
  const waiters = new Map<number, (t: number) => void>();
  const early = new Map<number, number>();
  const runtime = createStampRuntime((job) => {
    const t = performance.now();
    const w = waiters.get(job.id);
    if (w) w(t);
    else early.set(job.id, t);
  });
  const config = executorConfig(executorEnv(server, { EXECUTOR_QUEUE_POLL_INTERVAL: '1s' }));
  const executor = await startExecutor(config, { logger: ctx.logger, runtime, telemetry: emptyTelemetry });
  const api = createApiClient({ server: server.url, token: server.apiToken });
  const latencies: number[] = [];
  try {
    if (longPoll) await waitFor('a long-polling dequeue', () => server.app.waiting() >= 1, 30_000, 10);
    else {
      await waitFor(
        'the executor to connect',
        async () => (await server.store.getExecutor(config.executorName)) !== null,
        30_000,
        10,
      );
      await sleep(100);
      if (executor.client.capabilities().size > 0) throw new Error('capabilities were not hidden');
    }
    for (let i = 0; i < jobs; i++) {
      if (longPoll) {
        await waitFor('a parked dequeue', () => server.app.waiting() >= 1, 30_000);
        await sleep(Math.random() * 5);
      } else {
        // Any phase of the poll cycle, uniformly.
        await sleep(Math.random() * 1000);
      }
      const t0 = performance.now();
      const job = await api.submit(spec);
      const t1 =
        early.get(job.id) ??
        (await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`job ${job.id} not dispatched in 10 s`)), 10_000);
          waiters.set(job.id, (t) => {
            clearTimeout(timer);
            resolve(t);
          });
        }));
      latencies.push(t1 - t0);
      await waitFor(
        'the job to complete',
        async () => (await server.store.getJob(job.id))?.state === 'completed',
        10_000,
      );
    }
  } finally {
    await executor.drain();
    await server.close();
  }
  return latencies;
}

export const dispatch: Bench = async (ctx) => {
  ctx.say(`dispatch: ${LONG_POLL_JOBS} jobs with long-poll`);
  const ours = await measure(ctx, true, LONG_POLL_JOBS);
  ctx.say(`dispatch: ${POLLING_JOBS} jobs with 1 s polling (baseline)`);
  const base = await measure(ctx, false, POLLING_JOBS);
  const note = `submit (POST sent) -> executor handler holds the job; ours ${ours.length} jobs long-polling, baseline ${base.length} jobs polling every 1 s, same server code`;
  return [
    result({
      name: 'dispatch.p50',
      ours: percentile(ours, 50),
      baseline: percentile(base, 50),
      unit: 'ms',
      target: 'p50 <= 10 ms',
      met: (o) => o <= 10,
      note,
    }),
    result({
      name: 'dispatch.p99',
      ours: percentile(ours, 99),
      baseline: percentile(base, 99),
      unit: 'ms',
      target: 'p99 <= 50 ms',
      met: (o) => o <= 50,
      note,
    }),
  ];
};
