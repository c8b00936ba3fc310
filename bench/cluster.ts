/**
 * The real queue server (createServer over a Store), served through serveTimed so a benchmark can
 * time responses or hide the capabilities header; and executor configurations pointing at it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { newToken } from '../src/cli/local-cluster.js';
import { type ExecutorConfig, loadExecutorConfig } from '../src/config/executor.js';
import { loadServerConfig, type ServerConfig } from '../src/config/server.js';
import type { Runtime, Workspace } from '../src/executor/runtimes/types.js';
import { systemClock } from '../src/lib/clock.js';
import type { Logger } from '../src/lib/logger.js';
import type { Job } from '../src/protocol/job.js';
import { createServer, type ServerApp } from '../src/server/index.js';
import { openStore } from '../src/store/index.js';
import type { Store } from '../src/store/types.js';
import { serveTimed, tempDir } from './lib.js';

export interface BenchServer {
  url: string;
  store: Store;
  app: ServerApp;
  config: ServerConfig;
  apiToken: string;
  executorsToken: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function startBenchServer(opts: {
  logger: Logger;
  databaseUrl?: string;
  hideCapabilities?: boolean;
  onFinish?: (req: IncomingMessage, res: ServerResponse) => void;
  env?: Record<string, string>;
}): Promise<BenchServer> {
  const data = tempDir('server');
  const apiToken = newToken();
  const executorsToken = newToken();
  const config = loadServerConfig({
    env: {
      ...opts.env,
      ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
      EXECUTORS_ACCESS_TOKEN: executorsToken,
      EXECUTOR_SERVER_API_TOKEN: apiToken,
    },
    flags: { data: data.path, listen: '127.0.0.1:0' },
  });
  const store = openStore(config.databaseUrl);
  await store.migrate();
  const app = createServer({ store, config, clock: systemClock, logger: opts.logger });
  const front = await serveTimed((req, res) => app.handle(req, res), {
    hideCapabilities: opts.hideCapabilities,
    onFinish: opts.onFinish,
  });
  app.startBackground();
  return {
    url: front.url,
    store,
    app,
    config,
    apiToken,
    executorsToken,
    dataDir: data.path,
    async close() {
      await app.close();
      await front.close();
      await store.close();
      data.remove();
    },
  };
}

export function executorEnv(
  server: Pick<BenchServer, 'url' | 'executorsToken'>,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    EXECUTOR_FRONTEND_URL: server.url,
    EXECUTOR_FRONTEND_PASSWORD: server.executorsToken,
    EXECUTOR_QUEUE_NAME: 'bench',
    EXECUTOR_MAXIMUM_NUM_JOBS: '1',
    EXECUTOR_LOG_LEVEL: 'error',
    ...extra,
  };
}

export function executorConfig(env: Record<string, string>): ExecutorConfig {
  const loaded = loadExecutorConfig(env);
  if (!loaded.ok) throw new Error(`executor configuration: ${loaded.problems.join('; ')}`);
  return loaded.config;
}

/**
 * A runtime that runs nothing: the job reaches the handler (stamped with `onJob`) and completes
 * with no steps. It isolates the queue path from any sandbox cost.
 */
export function createStampRuntime(onJob: (job: Job) => void): Runtime {
  const ws: Workspace = { path: '', scriptNames: [], remove: async () => {} };
  return {
    name: 'shell',
    stepKeyPrefix: 'step.docker',
    validate: async () => [],
    version: async () => '',
    async prepareWorkspace(job) {
      onJob(job);
      return ws;
    },
    newRunner: async () => ({
      setup: async () => {},
      run: async () => ({ exitCode: 0 }),
      teardown: async () => {},
    }),
    specs: () => [],
    cleanupOrphans: async () => [],
  };
}

export const emptyTelemetry = {
  os: 'linux',
  architecture: 'x86_64',
  dockerVersion: '',
  executorVersion: '',
  gitVersion: '',
  igniteVersion: '',
  srcCliVersion: '',
};
