/**
 * vm: the vm runtime against the docker runtime in the same run, on one server, each with its own
 * executor and queue; jobs alternate (docker, vm, docker, vm, ...) so load elsewhere on the machine
 * hits both alike; medians are compared.
 *   - vm.step: a step running `true`, from its log entry's opening to its closing (the entry's
 *     duration): for vm, boot of the guest kernel to the guest's exit line and the VM's end; for
 *     docker, container create to removal.
 *   - vm.job: a one-step `true` job, from the executor's dequeue returning to its markComplete
 *     returning (workspace disk, VM, teardown included).
 * Without /dev/kvm the VMs are emulated (EXECUTOR_VM_ALLOW_EMULATION=true is set here): the figures
 * are then TCG's, far above what KVM gives; no target is claimed for them.
 */
import { existsSync } from 'node:fs';
import { createApiClient } from '../src/cli/api-client.js';
import { startExecutor } from '../src/executor/index.js';
import { kvmWorks } from '../src/executor/runtimes/vm/host.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { executorConfig, executorEnv, startBenchServer } from './cluster.js';
import { type Bench, median, result, tempDir } from './lib.js';
import { stampingFetch, waitForCompletion } from './step.js';

const RUNS = Number(process.env.BENCH_VM_RUNS ?? 5);

export const vm: Bench = async (ctx) => {
  const assets = process.env.EXECUTOR_VM_ASSETS_DIR ?? '/var/lib/executor/vm';
  if (!existsSync(`${assets}/vmlinuz`)) throw new Error(`no guest assets in ${assets}: npm run vm-assets`);
  const kvm = (await kvmWorks('qemu-system-x86_64', `${assets}/vmlinuz`)).ok;
  const server = await startBenchServer({ logger: ctx.logger });
  const work = tempDir('vm');
  const stamps = {
    docker: { dequeued: [] as number[], completed: [] as number[] },
    vm: { dequeued: [] as number[], completed: [] as number[] },
  };
  const common = {
    EXECUTOR_JOB_NETWORK: 'none',
    EXECUTOR_JOB_NUM_CPUS: '1',
    EXECUTOR_JOB_MEMORY: '256M',
    EXECUTOR_MIN_FREE_DISK: '0',
  };
  const dockerEx = await startExecutor(
    executorConfig(
      executorEnv(server, {
        ...common,
        EXECUTOR_QUEUE_NAME: 'bench-docker',
        EXECUTOR_RUNTIME: 'docker',
        EXECUTOR_WORKSPACE_ROOT: `${work.path}/ws-docker`,
        EXECUTOR_JOB_DISK_SPACE: '0',
      }),
    ),
    { logger: ctx.logger, fetch: stampingFetch(stamps.docker) },
  );
  const vmEx = await startExecutor(
    executorConfig(
      executorEnv(server, {
        ...common,
        EXECUTOR_QUEUE_NAME: 'bench-vm',
        EXECUTOR_RUNTIME: 'vm',
        EXECUTOR_VM_ALLOW_EMULATION: 'true',
        EXECUTOR_VM_ASSETS_DIR: assets,
        EXECUTOR_VM_IMAGE_CACHE_DIR: `${work.path}/vm-images`,
        EXECUTOR_WORKSPACE_ROOT: `${work.path}/ws-vm`,
        EXECUTOR_JOB_DISK_SPACE: '64M',
      }),
    ),
    { logger: ctx.logger, fetch: stampingFetch(stamps.vm) },
  );
  const api = createApiClient({ server: server.url, token: server.apiToken });
  const job = { docker: [] as number[], vm: [] as number[] };
  const step = { docker: [] as number[], vm: [] as number[] };
  try {
    for (let i = 0; i <= RUNS; i++) {
      for (const kind of ['docker', 'vm'] as const) {
        const spec = { queue: `bench-${kind}`, steps: [{ image: ctx.dockerImage, run: 'true' }] } as JobSpec;
        const submitted = await api.submit(spec);
        const s = stamps[kind];
        await waitForCompletion(server, submitted.id, () => s.completed.length > i);
        if (i === 0) continue; // warm-up: image pull, root disk conversion, first connections
        job[kind].push(s.completed[i]! - s.dequeued[i]!);
        const entries = await server.store.getLogEntries(submitted.id, { withOutput: false });
        const e = entries.find((x) => x.key.startsWith('step.docker.'));
        if (e?.durationMs == null) throw new Error(`job ${submitted.id} has no timed step entry`);
        step[kind].push(e.durationMs);
        ctx.say(`run ${i} ${kind}: job ${Math.round(job[kind].at(-1)!)} ms, step ${e.durationMs} ms`);
      }
    }
  } finally {
    await Promise.all([dockerEx.drain(), vmEx.drain()]);
    await server.close();
    work.remove();
  }
  const accel = kvm ? 'KVM' : 'emulated (TCG, no /dev/kvm)';
  return [
    result({
      name: `vm.step (${kvm ? 'kvm' : 'tcg'})`,
      ours: median(step.vm),
      baseline: median(step.docker),
      unit: 'ms',
      target: 'none (reported)',
      met: () => true,
      note: `${accel}; medians of ${RUNS} alternating runs of a \`true\` step's log entry: VM boot to exit vs docker create to remove`,
    }),
    result({
      name: `vm.job (${kvm ? 'kvm' : 'tcg'})`,
      ours: median(job.vm),
      baseline: median(job.docker),
      unit: 'ms',
      target: 'none (reported)',
      met: () => true,
      note: `${accel}; medians of ${RUNS} alternating one-step \`true\` jobs, dequeue returned -> markComplete returned, vm vs docker runtime`,
    }),
  ];
};
