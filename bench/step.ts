/**
 * step: a job with one Docker step running `true` (no repository), from the moment the executor's
 * dequeue returns to the moment its markComplete returns, against creating, starting, waiting for
 * and removing the same container through the Engine API alone. Runs alternate (job, raw, job,
 * raw, ...) so load elsewhere on the machine hits both alike; medians are compared.
 */
import Dockerode from 'dockerode';
import { createApiClient } from '../src/cli/api-client.js';
import { startExecutor } from '../src/executor/index.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { type BenchServer, executorConfig, executorEnv, startBenchServer } from './cluster.js';
import { recordContainerCreates, recordedCreates, replayOptions, runRaw } from './docker-baseline.js';
import { type Bench, type BenchContext, median, result, tempDir, waitFor } from './lib.js';

const RUNS = 10;

/** A fetch that notes when dequeues (with a job) and markCompletes return. */
export function stampingFetch(stamps: { dequeued: number[]; completed: number[] }): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    const url = String(input instanceof Request ? input.url : input);
    if (url.endsWith('/dequeue') && res.status === 200) stamps.dequeued.push(performance.now());
    if (url.endsWith('/markComplete')) stamps.completed.push(performance.now());
    return res;
  };
}

/** Runs one `true` job through an in-process executor so its container options are recorded. */
export async function recordTemplate(ctx: BenchContext): Promise<void> {
  await runSteps(ctx, 0);
}

export const step: Bench = async (ctx) => {
  const { ours, raw } = await runSteps(ctx, RUNS);
  return [
    result({
      name: 'step',
      ours: median(ours),
      baseline: median(raw),
      unit: 'ms',
      target: 'ratio <= 1.5',
      met: (_o, ratio) => ratio <= 1.5,
      note: `medians of ${RUNS} alternating runs; ours: dequeue returned -> markComplete returned; baseline: create+start+wait+remove of the executor's recorded container`,
    }),
  ];
};

/**
 * Waits until the job is completed and `stamped()` (its markComplete has returned); a job that ends
 * otherwise throws with its message and log.
 */
export async function waitForCompletion(
  server: Pick<BenchServer, 'store'>,
  id: number,
  stamped: () => boolean,
): Promise<void> {
  await waitFor(
    `job ${id}`,
    async () => {
      const j = await server.store.getJob(id);
      const s = j?.state;
      if (s && s !== 'queued' && s !== 'processing' && s !== 'completed') {
        const log = (await server.store.getLogEntries(id, { withOutput: true }))
          .map((e) => `${e.key}: ${e.out}`)
          .join('\n');
        throw new Error(`job ${id} ${s}: ${j?.failureMessage}\n${log}`);
      }
      return stamped() && s === 'completed';
    },
    60_000,
    5,
  );
}

async function runSteps(ctx: BenchContext, runs: number): Promise<{ ours: number[]; raw: number[] }> {
  recordContainerCreates();
  const docker = new Dockerode();
  const server = await startBenchServer({ logger: ctx.logger });
  const work = tempDir('step');
  const stamps = { dequeued: [] as number[], completed: [] as number[] };
  const config = executorConfig(
    executorEnv(server, {
      EXECUTOR_RUNTIME: 'docker',
      EXECUTOR_WORKSPACE_ROOT: `${work.path}/ws`,
      // This machine's daemon may have no docker0 bridge; `none` is the stricter setting anyway.
      EXECUTOR_JOB_NETWORK: process.env.BENCH_JOB_NETWORK ?? 'none',
      // The step path as it was before workspace quotas; step.isolated measures what they add.
      EXECUTOR_JOB_DISK_SPACE: '0',
    }),
  );
  const executor = await startExecutor(config, { logger: ctx.logger, fetch: stampingFetch(stamps) });
  const api = createApiClient({ server: server.url, token: server.apiToken });
  const spec = { queue: 'bench', steps: [{ image: ctx.dockerImage, run: 'true' }] } as JobSpec;
  const ours: number[] = [];
  const raw: number[] = [];
  try {
    for (let i = 0; i <= runs; i++) {
      const job = await api.submit(spec);
      await waitForCompletion(server, job.id, () => stamps.completed.length > i);
      const template = recordedCreates.at(-1);
      if (!template) throw new Error('the docker runtime created no container');
      if (i === 0) continue; // warm-up: image cache, first connections
      const rawMs = await runRaw(docker, replayOptions(template, 'true', `${work.path}/raw`));
      ours.push(stamps.completed[i]! - stamps.dequeued[i]!);
      raw.push(rawMs);
    }
  } finally {
    await executor.drain();
    await server.close();
    work.remove();
  }
  return { ours, raw };
}
