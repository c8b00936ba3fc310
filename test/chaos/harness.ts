/**
 * The chaos harness: a queue server in this process (its store wrapped by the auditing decorator,
 * reachable only through a TCP proxy the test controls, restartable on the same store), executors
 * as separate processes (test/chaos/executor-child.ts, so they can be killed with -9 or stopped),
 * and helpers to submit jobs whose output is checkable line by line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { type ApiJob, createApiClient } from '../../src/cli/api-client.js';
import { loadServerConfig, type ServerConfig } from '../../src/config/server.js';
import { systemClock } from '../../src/lib/clock.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import type { JobSpec } from '../../src/protocol/job-spec.js';
import { createServer, type Listening, listen, type ServerApp } from '../../src/server/index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { postgresUrl } from '../helpers/env.js';
import { type AuditFaults, createAuditStore } from './audit-store.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/**
 * Timing of every chaos scenario. H: executor heartbeat; L: stall window; S: resetter sweep;
 * P: executor poll. The recovery bound of a job whose executor vanished is R = L + S + P (measured
 * from the executor's last heartbeat, which is at most H before the fault).
 */
export const TIMING = {
  heartbeatMs: 1000,
  stalledAfterMs: 4000,
  resetIntervalMs: 500,
  pollMs: 500,
  cleanupMs: 1000,
  maxResets: 3,
} as const;
export const RECOVERY_BOUND_MS = TIMING.stalledAfterMs + TIMING.resetIntervalMs + TIMING.pollMs;

const CHILD = fileURLToPath(new URL('./executor-child.ts', import.meta.url));

export interface ChaosServer {
  /** The proxy's URL: what executors and the test talk to. */
  url: string;
  proxy: TcpProxy;
  /** The server's own address, bypassing the proxy (changes on restart). */
  readonly directUrl: string;
  readonly store: Store;
  auditFile: string;
  config: ServerConfig;
  executorsAccessToken: string;
  apiToken: string;
  api: ReturnType<typeof createApiClient>;
  /** The server's own log lines (JSON), across restarts. */
  logLines: string[];
  /** Drops every connection, closes the server and its store, and starts a fresh one on the same data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startChaosServer(opts: {
  dir: string;
  databaseUrl?: string;
  serverEnv?: Record<string, string>;
  faults?: AuditFaults;
}): Promise<ChaosServer> {
  mkdirSync(opts.dir, { recursive: true });
  const executorsAccessToken = randomBytes(20).toString('hex');
  const apiToken = randomBytes(20).toString('hex');
  const config = loadServerConfig({
    env: {
      EXECUTOR_SERVER_STALLED_AFTER: `${TIMING.stalledAfterMs}ms`,
      EXECUTOR_SERVER_RESET_INTERVAL: `${TIMING.resetIntervalMs}ms`,
      EXECUTOR_SERVER_DEADLINE_INTERVAL: '500ms',
      EXECUTOR_SERVER_MAX_RESETS: String(TIMING.maxResets),
      EXECUTOR_SERVER_RETRY_BACKOFF_BASE: '100ms',
      EXECUTOR_SERVER_RETRY_BACKOFF_MAX: '1s',
      ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
      ...opts.serverEnv,
      EXECUTORS_ACCESS_TOKEN: executorsAccessToken,
      EXECUTOR_SERVER_API_TOKEN: apiToken,
    },
    flags: { data: opts.dir, listen: '127.0.0.1:0' },
  });
  mkdirSync(config.reposDir, { recursive: true });
  const auditFile = join(opts.dir, 'audit.jsonl');
  const logger = createMemoryLogger();
  let store!: Store;
  let app!: ServerApp;
  let listening!: Listening;
  const boot = async () => {
    store = createAuditStore(openStore(config.databaseUrl), auditFile, opts.faults);
    await store.migrate();
    app = createServer({ store, config, clock: systemClock, logger: logger.child({ component: 'server' }) });
    listening = await listen(app, '127.0.0.1', 0);
    app.startBackground();
    return Number(new URL(listening.url).port);
  };
  const proxy = await startTcpProxy(await boot());
  const shutdown = async () => {
    proxy.cut();
    await listening.close();
    await store.close();
  };
  return {
    url: proxy.url,
    proxy,
    get store() {
      return store;
    },
    get directUrl() {
      return listening.url;
    },
    auditFile,
    config,
    executorsAccessToken,
    apiToken,
    api: createApiClient({ server: proxy.url, token: apiToken }),
    logLines: logger.lines,
    async restart() {
      await shutdown();
      proxy.retarget(await boot());
      proxy.heal();
    },
    async stop() {
      await shutdown();
      await proxy.close();
    },
  };
}

export interface ChaosExecutor {
  name: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | string>;
  ready: Promise<void>;
}

export function spawnExecutor(
  server: ChaosServer,
  opts: {
    name: string;
    workspaceRoot: string;
    runtime?: string;
    maxJobs?: number;
    env?: Record<string, string>;
  },
): ChaosExecutor {
  mkdirSync(opts.workspaceRoot, { recursive: true });
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      EXECUTOR_FRONTEND_URL: server.url,
      EXECUTOR_FRONTEND_PASSWORD: server.executorsAccessToken,
      EXECUTOR_QUEUE_NAME: 'chaos',
      EXECUTOR_NAME: opts.name,
      EXECUTOR_RUNTIME: opts.runtime ?? 'shell',
      EXECUTOR_MAXIMUM_NUM_JOBS: String(opts.maxJobs ?? 4),
      EXECUTOR_QUEUE_POLL_INTERVAL: `${TIMING.pollMs}ms`,
      EXECUTOR_CLEANUP_TASK_INTERVAL: `${TIMING.cleanupMs}ms`,
      EXECUTOR_WORKSPACE_ROOT: opts.workspaceRoot,
      EXECUTOR_MIN_FREE_DISK: '0',
      SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE: '100ms',
      CHAOS_HEARTBEAT_MS: String(TIMING.heartbeatMs),
      CHAOS_LOG_SYNC_MS: '200',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let onReady: () => void;
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  const take = (d: Buffer) => {
    out += d.toString();
    if (out.includes('chaos-executor ready')) onReady();
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  return { name: opts.name, child, output: () => out, exited, ready };
}

/** Kills an executor process with SIGKILL and waits until it is gone. */
export async function kill9(ex: ChaosExecutor): Promise<void> {
  if (ex.child.exitCode === null && ex.child.signalCode === null) ex.child.kill('SIGKILL');
  await ex.exited;
}

/**
 * A job whose only output is `line-1` .. `line-<lines>`, one every `delayMs`, so the invariant
 * checker can tell a gap-free prefix from a gap. Optionally clones the demo repository first.
 */
export function countingJob(
  lines: number,
  opts: {
    delaySeconds?: string;
    repoCommit?: string;
    maxAttempts?: number;
    image?: string;
    secrets?: Record<string, string>;
  } = {},
): JobSpec {
  const sleep = opts.delaySeconds ? `; sleep ${opts.delaySeconds}` : '';
  return {
    queue: 'chaos',
    ...(opts.repoCommit ? { repository: { name: 'demo/hello', commit: opts.repoCommit } } : {}),
    files: { 'note.txt': 'chaos\n' },
    steps: [
      {
        key: 'count',
        image: opts.image ?? 'executor-test/busybox:latest',
        run: `i=1; while [ $i -le ${lines} ]; do echo line-$i${sleep}; i=$((i+1)); done`,
      },
    ],
    ...(opts.secrets ? { secrets: opts.secrets } : {}),
    maxAttempts: opts.maxAttempts ?? 2,
    timeout: '5m',
  } as JobSpec;
}

/**
 * Submits every spec, in spec order, `concurrency` at a time. One at a time (the default) keeps
 * scenarios that need several executors to share the jobs fair: each submission wakes one waiting
 * executor. Many at a time is for scenarios that need many jobs fast (one after another, 200
 * submissions took 38 s on a loaded 2-core machine).
 */
export async function submitAll(
  server: ChaosServer,
  specs: JobSpec[],
  opts: { concurrency?: number } = {},
): Promise<ApiJob[]> {
  const out: ApiJob[] = new Array(specs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 1, specs.length)) }, async () => {
      while (next < specs.length) {
        const i = next++;
        out[i] = await server.api.submit(specs[i]!);
      }
    }),
  );
  return out;
}

/** A PostgreSQL admin URL when one answers (TEST_DATABASE_URL, else the local default). */
export async function postgresAdminUrl(): Promise<string | undefined> {
  const url = postgresUrl() ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return url;
  } catch {
    return undefined;
  }
}

/** Creates a fresh database; returns its URL (optionally via another host:port) and a dropper. */
export async function createDatabase(
  adminUrl: string,
): Promise<{ url: string; name: string; viaPort(port: number): string; drop(): Promise<void> }> {
  const name = `executor_chaos_${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = adminUrl.replace(/^(postgres(?:ql)?:\/\/[^/?]*)(\/[^?]*)?/, `$1/${name}`);
  return {
    url,
    name,
    viaPort: (port) => {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** Port of a PostgreSQL URL (default 5432). */
export function portOf(url: string): number {
  return Number(new URL(url).port || 5432);
}
