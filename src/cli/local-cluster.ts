/**
 * A queue server and an executor in one process, for `executor up`, `executor exec` and the
 * end-to-end tests. Both halves are the real ones (createServer + listen, startExecutor) talking
 * over loopback HTTP, exactly as separate processes would.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type ExecutorConfig, loadExecutorConfig } from '../config/executor.js';
import { loadServerConfig, type ServerConfig } from '../config/server.js';
import { type ExecutorDeps, type RunningExecutor, startExecutor } from '../executor/index.js';
import { type Clock, systemClock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { createServer, type Listening, listen, type ServerApp } from '../server/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { type ApiClient, createApiClient } from './api-client.js';

export interface LocalClusterOptions {
  dataDir: string;
  reposDir?: string;
  listen?: string;
  runtime: ExecutorConfig['runtime'];
  queue?: string;
  maxJobs?: number;
  executorsAccessToken?: string;
  apiToken?: string;
  /** Extra server settings as environment variables (EXECUTOR_SERVER_STALLED_AFTER, ...). */
  serverEnv?: Record<string, string>;
  /** Extra executor settings as environment variables (EXECUTOR_JOB_MEMORY, ...). */
  executorEnv?: Record<string, string>;
  /** Start no executor (a test may start its own). */
  noExecutor?: boolean;
  logger: Logger;
  clock?: Clock;
  executorDeps?: Partial<ExecutorDeps>;
}

export interface LocalCluster {
  url: string;
  apiToken: string;
  executorsAccessToken: string;
  store: Store;
  config: ServerConfig;
  app: ServerApp;
  server: Listening;
  executor?: RunningExecutor;
  executorConfig?: ExecutorConfig;
  api: ApiClient;
  /** Builds the executor environment for this cluster (for starting more executors). */
  executorEnv(extra?: Record<string, string>): Record<string, string>;
  /** Drains the executor (running jobs finish), then closes the server and the store. */
  stop(opts?: { force?: boolean }): Promise<void>;
}

export const newToken = () => randomBytes(20).toString('hex');

export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const executorsAccessToken = opts.executorsAccessToken ?? newToken();
  const apiToken = opts.apiToken ?? newToken();
  const config = loadServerConfig({
    env: {
      // The local trial's dashboard opens on loopback without the token (see web/loopback-access.ts);
      // `executor server` keeps it closed unless configured.
      EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN: 'true',
      ...opts.serverEnv,
      EXECUTORS_ACCESS_TOKEN: executorsAccessToken,
      EXECUTOR_SERVER_API_TOKEN: apiToken,
    },
    flags: { data: opts.dataDir, repos: opts.reposDir, listen: opts.listen ?? '127.0.0.1:0' },
  });
  mkdirSync(config.dataDir, { recursive: true });
  mkdirSync(config.reposDir, { recursive: true });
  const store = openStore(config.databaseUrl);
  await store.migrate();
  const clock = opts.clock ?? systemClock;
  const app = createServer({ store, config, clock, logger: opts.logger.child({ component: 'server' }) });
  let server: Listening;
  try {
    server = await listen(app, config.listenHost, config.listenPort);
  } catch (e) {
    await store.close();
    throw e;
  }
  app.startBackground();

  const executorEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    EXECUTOR_FRONTEND_URL: server.url,
    EXECUTOR_FRONTEND_PASSWORD: executorsAccessToken,
    EXECUTOR_QUEUE_NAME: opts.queue ?? 'default',
    EXECUTOR_RUNTIME: opts.runtime,
    EXECUTOR_MAXIMUM_NUM_JOBS: String(opts.maxJobs ?? 2),
    // The clone cache with the rest of the cluster's data, not in the host's temporary directory
    // where every cluster's entries met: keyed by server URL, a later cluster on a reused port
    // found an earlier one's checkout of a repository of the same name.
    EXECUTOR_GIT_CACHE_DIR: path.join(config.dataDir, 'git-cache'),
    ...opts.executorEnv,
    ...extra,
  });

  let executor: RunningExecutor | undefined;
  let executorConfig: ExecutorConfig | undefined;
  if (!opts.noExecutor) {
    const loaded = loadExecutorConfig(executorEnv());
    if (!loaded.ok) {
      await server.close();
      await store.close();
      throw new Error(`invalid executor configuration:\n  ${loaded.problems.join('\n  ')}`);
    }
    executorConfig = loaded.config;
    executor = await startExecutor(executorConfig, {
      logger: opts.logger.child({ component: 'executor' }),
      ...opts.executorDeps,
    });
  }

  let stopped: Promise<void> | undefined;
  return {
    url: server.url,
    apiToken,
    executorsAccessToken,
    store,
    config,
    app,
    server,
    executor,
    executorConfig,
    api: createApiClient({ server: server.url, token: apiToken }),
    executorEnv,
    stop(stopOpts = {}) {
      stopped ??= (async () => {
        if (executor) {
          if (stopOpts.force) await executor.forceStop();
          else await executor.drain();
          await executor.done;
        }
        await server.close();
        await store.close();
      })();
      return stopped;
    },
  };
}
