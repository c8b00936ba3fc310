/**
 * step.isolated: the one-step `true` job of `step` with the confinement of the defaults, the
 * isolated job network (its own Docker network and firewall chains) and a 20G workspace disk image,
 * against the same job on the step path without them (network `none`, no disk quota). Two executors
 * in this process take the two kinds of job from two queues of one server, in alternation, so load
 * elsewhere hits both alike; medians from dequeue returned to markComplete returned are compared.
 *
 * Needs root (firewall rules, loop mounts). The bench's network has its own name and subnet and is
 * removed, with its rules, afterwards.
 */
import Dockerode from 'dockerode';
import { createApiClient } from '../src/cli/api-client.js';
import { type RunningExecutor, startExecutor } from '../src/executor/index.js';
import { removeIsolation } from '../src/executor/network/job-isolation.js';
import { bridgeName } from '../src/executor/network/job-network.js';
import { isolationOptions } from '../src/executor/network/job-network-guards.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { executorConfig, executorEnv, startBenchServer } from './cluster.js';
import { type Bench, median, result, tempDir } from './lib.js';
import { stampingFetch, waitForCompletion } from './step.js';

const RUNS = 10;
const NETWORK = 'executor-bench-jobs';
const SUBNET = '10.93.0.0/24';

export const stepIsolated: Bench = async (ctx) => {
  if (process.getuid?.() !== 0) throw new Error('step.isolated needs root (firewall rules and loop mounts)');
  const server = await startBenchServer({ logger: ctx.logger });
  const work = tempDir('step-isolated');
  const kinds = {
    plain: { EXECUTOR_JOB_NETWORK: 'none', EXECUTOR_JOB_DISK_SPACE: '0' },
    isolated: {
      EXECUTOR_JOB_NETWORK: 'isolated',
      EXECUTOR_JOB_NETWORK_NAME: NETWORK,
      EXECUTOR_JOB_NETWORK_SUBNET: SUBNET,
      EXECUTOR_JOB_DISK_SPACE: '20G',
    },
  };
  const isolatedConfig = executorConfig(executorEnv(server, kinds.isolated));
  const executors: RunningExecutor[] = [];
  const times = { plain: [] as number[], isolated: [] as number[] };
  try {
    const stamps = {
      plain: { dequeued: [], completed: [] },
      isolated: { dequeued: [], completed: [] },
    } as Record<'plain' | 'isolated', { dequeued: number[]; completed: number[] }>;
    for (const kind of ['plain', 'isolated'] as const) {
      const config = executorConfig(
        executorEnv(server, {
          ...kinds[kind],
          EXECUTOR_RUNTIME: 'docker',
          EXECUTOR_QUEUE_NAME: `bench-${kind}`,
          EXECUTOR_WORKSPACE_ROOT: `${work.path}/ws-${kind}`,
        }),
      );
      executors.push(await startExecutor(config, { logger: ctx.logger, fetch: stampingFetch(stamps[kind]) }));
    }
    const api = createApiClient({ server: server.url, token: server.apiToken });
    for (let i = 0; i <= RUNS; i++) {
      for (const kind of ['plain', 'isolated'] as const) {
        const spec = { queue: `bench-${kind}`, steps: [{ image: ctx.dockerImage, run: 'true' }] } as JobSpec;
        const job = await api.submit(spec);
        const s = stamps[kind];
        await waitForCompletion(server, job.id, () => s.completed.length > i);
        // Run 0 warms up: the image cache, first connections, the network and rules installed.
        if (i > 0) times[kind].push(s.completed[i]! - s.dequeued[i]!);
      }
    }
  } finally {
    for (const e of executors) await e.drain();
    await server.close();
    work.remove();
    await removeIsolation(
      { ...isolationOptions(isolatedConfig), docker: new Dockerode() },
      bridgeName(NETWORK),
    ).catch((e) => ctx.say(`could not remove the bench network ${NETWORK}: ${e}`));
  }
  return [
    result({
      name: 'step.isolated',
      ours: median(times.isolated),
      baseline: median(times.plain),
      unit: 'ms',
      target: 'ratio <= 1.1',
      met: (_o, ratio) => ratio <= 1.1,
      note: `medians of ${RUNS} alternating runs, dequeue returned -> markComplete returned; ours: isolated network + 20G workspace disk image; baseline: network none, no disk quota`,
    }),
  ];
};
