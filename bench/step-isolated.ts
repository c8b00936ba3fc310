/**
 * step.isolated: the one-step `true` job of `step` with the confinement of the defaults, the
 * isolated job network (its own Docker network and firewall chains; the job's steps in a network
 * holder started before the job) and a 20G workspace disk image,
 * against the same job on the step path without them (network `none`, no disk quota). Two more
 * kinds split the cost: the disk image alone (`step.isolated.disk`) and the isolated network alone
 * (`step.isolated.network`); a fifth, `step.isolated.bridge`, is the old default, Docker's default
 * bridge with no quota, so the confinement's price against it can be read off too. One executor per kind in this process takes its jobs from its own queue
 * of one server, the kinds in alternation, so load elsewhere hits all alike; medians from dequeue
 * returned to markComplete returned are compared.
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
import { type Bench, type BenchResult, median, result, tempDir, waitFor } from './lib.js';
import { stampingFetch, waitForCompletion } from './step.js';

const RUNS = 10;
const NETWORK = 'executor-bench-jobs';
const SUBNET = '10.93.0.0/24';

const isolatedNet = {
  EXECUTOR_JOB_NETWORK: 'isolated',
  EXECUTOR_JOB_NETWORK_NAME: NETWORK,
  EXECUTOR_JOB_NETWORK_SUBNET: SUBNET,
};
const KINDS = {
  plain: { EXECUTOR_JOB_NETWORK: 'none', EXECUTOR_JOB_DISK_SPACE: '0' },
  disk: { EXECUTOR_JOB_NETWORK: 'none', EXECUTOR_JOB_DISK_SPACE: '20G' },
  network: { ...isolatedNet, EXECUTOR_JOB_DISK_SPACE: '0' },
  isolated: { ...isolatedNet, EXECUTOR_JOB_DISK_SPACE: '20G' },
  // The step path's default before the isolated network: Docker's default bridge, no quota.
  bridge: { EXECUTOR_JOB_NETWORK: 'bridge', EXECUTOR_JOB_DISK_SPACE: '0' },
} as const;
type Kind = keyof typeof KINDS;

/**
 * After a job on the isolated network its executor removes the job's holder and starts the next
 * one, in the background (network-holders.ts). Waits for that (one running holder per executor on
 * the network, no other of this process), so that one kind's background work does not land on the
 * job of the kind after it, which would make the order of the kinds decide who pays for it.
 */
async function holdersReplaced(docker: Dockerode, expected: number): Promise<void> {
  await waitFor(
    'the network holders replaced',
    async () => {
      const cs = await docker.listContainers({
        all: true,
        filters: { label: ['executor.role=network-holder', `executor.pid=${process.pid}`] },
      });
      return cs.length === expected && cs.every((c) => c.State === 'running');
    },
    60_000,
    50,
  );
}

export const stepIsolated: Bench = async (ctx) => {
  if (process.getuid?.() !== 0) throw new Error('step.isolated needs root (firewall rules and loop mounts)');
  const server = await startBenchServer({ logger: ctx.logger });
  const docker = new Dockerode();
  const work = tempDir('step-isolated');
  const kinds = Object.keys(KINDS) as Kind[];
  const executors: RunningExecutor[] = [];
  /** How long after a job on the isolated network its holder was replaced, in the background. */
  const replaced: number[] = [];
  const times = Object.fromEntries(kinds.map((k) => [k, [] as number[]])) as Record<Kind, number[]>;
  try {
    const stamps = Object.fromEntries(
      kinds.map((k) => [k, { dequeued: [] as number[], completed: [] as number[] }]),
    ) as Record<Kind, { dequeued: number[]; completed: number[] }>;
    for (const kind of kinds) {
      const config = executorConfig(
        executorEnv(server, {
          ...KINDS[kind],
          EXECUTOR_RUNTIME: 'docker',
          EXECUTOR_QUEUE_NAME: `bench-${kind}`,
          EXECUTOR_WORKSPACE_ROOT: `${work.path}/ws-${kind}`,
        }),
      );
      executors.push(await startExecutor(config, { logger: ctx.logger, fetch: stampingFetch(stamps[kind]) }));
    }
    const api = createApiClient({ server: server.url, token: server.apiToken });
    for (let i = 0; i <= RUNS; i++) {
      for (const kind of kinds) {
        const spec = { queue: `bench-${kind}`, steps: [{ image: ctx.dockerImage, run: 'true' }] } as JobSpec;
        const job = await api.submit(spec);
        const s = stamps[kind];
        await waitForCompletion(server, job.id, () => s.completed.length > i);
        // Kinds on the isolated network that have run a job keep one idle holder each.
        const pools = kinds.filter(
          (k) =>
            KINDS[k].EXECUTOR_JOB_NETWORK === 'isolated' &&
            (i > 0 || kinds.indexOf(k) <= kinds.indexOf(kind)),
        );
        const t0 = performance.now();
        await holdersReplaced(docker, pools.length);
        if (i > 0 && KINDS[kind].EXECUTOR_JOB_NETWORK === 'isolated') replaced.push(performance.now() - t0);
        // Run 0 warms up: the image cache, first connections, the network and rules installed, the
        // disk image template made.
        if (i > 0) times[kind].push(s.completed[i]! - s.dequeued[i]!);
      }
    }
  } finally {
    for (const e of executors) await e.drain();
    await server.close();
    work.remove();
    const config = executorConfig(executorEnv(server, KINDS.isolated));
    await removeIsolation(
      { ...isolationOptions(config), docker: new Dockerode() },
      bridgeName(NETWORK),
    ).catch((e) => ctx.say(`could not remove the bench network ${NETWORK}: ${e}`));
  }
  const row = (name: string, kind: Kind, what: string, target = 'ratio <= 1.1'): BenchResult =>
    result({
      name,
      ours: median(times[kind]),
      baseline: median(times.plain),
      unit: 'ms',
      target,
      met: (_o, ratio) => target === 'informational' || ratio <= 1.1,
      note: `medians of ${RUNS} alternating runs, dequeue returned -> markComplete returned; ours: ${what}; baseline: network none, no disk quota`,
    });
  return [
    row('step.isolated', 'isolated', 'isolated network + 20G workspace disk image'),
    row('step.isolated.disk', 'disk', '20G workspace disk image, network none'),
    row(
      'step.isolated.network',
      'network',
      `isolated network, no disk quota; each job's holder replaced in the background within a median of ${Math.round(median(replaced))} ms after the job (waited for before the next kind's job)`,
    ),
    row(
      'step.isolated.bridge',
      'bridge',
      "Docker's default bridge, no disk quota (the old default)",
      'informational',
    ),
  ];
};
