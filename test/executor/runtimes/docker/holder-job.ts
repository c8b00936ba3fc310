/**
 * Jobs through the docker runtime on an isolated network with network holders, for the tests of
 * the holders and of the isolated network: a runtime, a job of shell steps run as the handler runs
 * it (setup, each step, teardown), and the holders a runtime has.
 */
import Dockerode from 'dockerode';
import {
  createDockerRuntime,
  type DockerRuntimeOptions,
} from '../../../../src/executor/runtimes/docker/docker-runtime.js';
import type { Runner, Runtime } from '../../../../src/executor/runtimes/types.js';
import { createMemoryLogger } from '../../../../src/lib/logger.js';
import { TEST_IMAGE } from '../../../helpers/env.js';
import { createTestContext, makeJob, makeWorkspace, type RecordedEntry } from '../recording-logger.js';

export const docker = new Dockerode();

export function holderRuntime(opts: {
  kind: 'docker' | 'gvisor';
  executorName: string;
  network: string;
  slots: number;
}): Runtime {
  const options: DockerRuntimeOptions = {
    kind: opts.kind,
    docker,
    executorName: opts.executorName,
    workspaceRoot: '',
    keepWorkspaces: false,
    frontendUrl: 'http://127.0.0.1:1',
    frontendPassword: '',
    // Not used: workspaces are made by hand and prepareWorkspace is never called.
    files: undefined as unknown as DockerRuntimeOptions['files'],
    cpus: 1,
    memory: '256m',
    pidsLimit: 1024,
    network: opts.network,
    networkHolders: opts.slots,
    additionalMounts: [],
    addHostGateway: false,
    logger: createMemoryLogger(),
  };
  return createDockerRuntime(options);
}

export interface StartedJob {
  runner: Runner;
  /** Runs every step, then tears down; returns the steps' log entries. */
  finish(): Promise<RecordedEntry[]>;
}

/** A job of `scripts` (one step each) with its setup done: its holder is taken. */
export async function startJob(
  runtime: Runtime,
  executorName: string,
  scripts: string[],
): Promise<StartedJob> {
  const ws = await makeWorkspace(scripts);
  const job = makeJob(scripts.map(() => ({ image: TEST_IMAGE })));
  const t = createTestContext(executorName);
  const runner = await runtime.newRunner(job, ws, t.ctx);
  try {
    await runner.setup();
  } catch (e) {
    await runner.teardown();
    await ws.remove();
    throw e;
  }
  return {
    runner,
    async finish() {
      try {
        for (const spec of runtime.specs(job, ws)) {
          const out = await runner.run(spec);
          if (out.exitCode !== 0)
            throw new Error(`${spec.key} exited ${out.exitCode}: ${JSON.stringify(t.logger.entries)}`);
        }
      } finally {
        await runner.teardown();
        await ws.remove();
      }
      return t.logger.entries;
    },
  };
}

export async function runJob(
  runtime: Runtime,
  executorName: string,
  scripts: string[],
): Promise<RecordedEntry[]> {
  return (await startJob(runtime, executorName, scripts)).finish();
}

/** The holder containers labelled with this executor name, running or not. */
export async function holdersOf(executorName: string) {
  return docker.listContainers({
    all: true,
    filters: { label: [`executor.name=${executorName}`, 'executor.role=network-holder'] },
  });
}
