/** Shared setup for executor tests: a config against the fake frontend, and an executor on the shell runtime. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ExecutorConfig, loadExecutorConfig } from '../../src/config/executor.js';
import { createFilesClient } from '../../src/executor/client/files-client.js';
import { type ExecutorDeps, startExecutor } from '../../src/executor/index.js';
import { createShellRuntime } from '../../src/executor/runtimes/shell/shell-runtime.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import type { FakeFrontend } from './fake-sourcegraph-frontend.js';

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function testConfig(
  fe: Pick<FakeFrontend, 'url'>,
  workspaceRoot: string,
  env: Record<string, string> = {},
): ExecutorConfig {
  const r = loadExecutorConfig({
    EXECUTOR_FRONTEND_URL: fe.url,
    EXECUTOR_FRONTEND_PASSWORD: 'hunter2',
    EXECUTOR_QUEUE_NAME: 'test_queue',
    EXECUTOR_QUEUE_POLL_INTERVAL: '20ms',
    EXECUTOR_WORKSPACE_ROOT: workspaceRoot,
    EXECUTOR_RUNTIME: 'shell',
    EXECUTOR_MIN_FREE_DISK: '0',
    EXECUTOR_NAME: 'test-executor',
    SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: '1',
    ...env,
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

export const TELEMETRY = {
  os: 'linux',
  architecture: 'amd64',
  dockerVersion: '',
  executorVersion: 'test',
  gitVersion: '',
  igniteVersion: '',
  srcCliVersion: '',
};

/** Starts an executor with the shell runtime against the fake frontend, with fast loops. */
export async function startShellExecutor(config: ExecutorConfig, extra: Partial<ExecutorDeps> = {}) {
  const logger = createMemoryLogger();
  const files = createFilesClient({
    frontendUrl: config.frontendUrl,
    password: config.frontendPassword,
    executorName: config.executorName,
    retry: config.httpRetry,
  });
  const runtime = createShellRuntime({
    executorName: config.executorName,
    workspaceRoot: config.workspaceRoot,
    keepWorkspaces: config.keepWorkspaces,
    frontendUrl: config.frontendUrl,
    frontendPassword: config.frontendPassword,
    files: (job) => files.forJob(job),
    logger,
    graceMs: 200,
  });
  const ex = await startExecutor(config, {
    logger,
    runtime,
    telemetry: TELEMETRY,
    ...extra,
    worker: { heartbeatIntervalMs: 50, pingIntervalMs: 20, logSyncIntervalMs: 20, ...extra.worker },
  });
  return { ex, logger };
}
