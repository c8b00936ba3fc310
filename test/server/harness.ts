/**
 * A real queue server on 127.0.0.1 (port 0) over a real SQLite file, with a fake clock for lease
 * arithmetic, plus small request helpers for both APIs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadServerConfig, type ServerConfig } from '../../src/config/server.js';
import { createFakeClock, type FakeClock, type Timers } from '../../src/lib/clock.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import type { JobSpec } from '../../src/protocol/job-spec.js';
import { createServer, listen, type ServerApp } from '../../src/server/index.js';
import type { MemoryGuard } from '../../src/server/memory-guard.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/types.js';
import { GIT_TEST_ENV } from '../helpers/repos.js';

export const EXECUTOR_TOKEN = 'executor-shared-secret-0123456789';
export const API_TOKEN = 'api-token-abcdefghijklmnopqrstuvwxyz';

export interface Harness {
  url: string;
  dir: string;
  reposDir: string;
  store: Store;
  clock: FakeClock;
  config: ServerConfig;
  app: ServerApp;
  logs: string[];
  close(): Promise<void>;
  /** A request with the shared executor token. */
  exec(p: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** A job request (Bearer token with the job headers). */
  job(p: string, job: { id: number; token: string }, executor: string, body: unknown): Promise<Response>;
  api(method: string, p: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Submits a spec through the user API; returns the created job's id. */
  submit(spec: Partial<JobSpec> & Record<string, unknown>): Promise<number>;
  /** Heartbeats so that the executor is known, then dequeues from `queue`. */
  dequeue(
    queue: string,
    executor: string,
    version?: string,
  ): Promise<Record<string, unknown> & { id: number; token: string }>;
  ping(queue: string, executor: string): Promise<void>;
}

export async function startHarness(
  opts: {
    env?: Record<string, string>;
    random?: () => number;
    withRepo?: boolean;
    /** Wraps the store the server sees (tests that count its reads). */
    wrapStore?: (store: Store) => Store;
    memory?: MemoryGuard;
    /** Another store than the SQLite file (migrated and closed by the harness). */
    store?: Store;
    /** How long a log follower waits for a wake-up before it reads anyway. */
    followFallbackMs?: number;
    /** The heartbeat writer's touch timers (default: real ones). */
    timers?: Timers;
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'executor-server-test-'));
  const config = loadServerConfig({
    env: {
      EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
      EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
      EXECUTOR_SERVER_LISTEN: '127.0.0.1:0',
      ...opts.env,
    },
    flags: { data: dir },
  });
  mkdirSync(config.reposDir, { recursive: true });
  const store = opts.store ?? createSqliteStore({ path: path.join(dir, 'executor.db') });
  await store.migrate();
  const clock = createFakeClock();
  const logger = createMemoryLogger();
  const app = createServer({
    store: opts.wrapStore ? opts.wrapStore(store) : store,
    config,
    clock,
    logger,
    random: opts.random,
    memory: opts.memory,
    followFallbackMs: opts.followFallbackMs,
    timers: opts.timers,
  });
  const server = await listen(app, '127.0.0.1', 0);
  const base = server.url;
  const h: Harness = {
    url: base,
    dir,
    reposDir: config.reposDir,
    store,
    clock,
    config,
    app,
    logs: logger.lines,
    async close() {
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
    exec(p, body, headers = {}) {
      return fetch(base + p, {
        method: body === undefined ? 'GET' : 'POST',
        headers: {
          authorization: `token-executor ${EXECUTOR_TOKEN}`,
          'content-type': 'application/json',
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
    },
    job(p, job, executor, body) {
      return fetch(base + p, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${job.token}`,
          'x-sourcegraph-job-id': String(job.id),
          'x-sourcegraph-executor-name': executor,
          'content-type': 'application/json',
        },
        body: JSON.stringify(body),
      });
    },
    api(method, p, body, headers = {}) {
      return fetch(`${base}/api/v1${p}`, {
        method,
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    },
    async submit(spec) {
      const res = await h.api('POST', '/jobs', {
        queue: 'default',
        steps: [{ image: 'alpine', run: 'true' }],
        ...spec,
      });
      if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { id: number }).id;
    },
    async ping(queue, executor) {
      const res = await h.exec(`/.executors/queue/${queue}/heartbeat`, {
        executorName: executor,
        executorVersion: '5.3.0',
      });
      if (res.status !== 200) throw new Error(`ping: ${res.status}`);
    },
    async dequeue(queue, executor, version = '5.3.0') {
      await h.ping(queue, executor);
      const res = await h.exec(`/.executors/queue/${queue}/dequeue`, { executorName: executor, version });
      if (res.status !== 200) throw new Error(`dequeue: ${res.status} ${await res.text()}`);
      return (await res.json()) as Record<string, unknown> & { id: number; token: string };
    },
  };
  if (opts.withRepo) createRepo(config.reposDir, 'org/repo');
  return h;
}

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    stdio: 'pipe',
    env: { ...GIT_TEST_ENV, HOME: os.tmpdir() },
  })
    .toString()
    .trim();
}

/** A bare repository `<reposDir>/<name>.git` with one commit on `main` and a tag `v1`; returns the sha. */
export function createRepo(reposDir: string, name: string, content = 'hello\n'): string {
  const work = mkdtempSync(path.join(os.tmpdir(), 'executor-repo-work-'));
  git(work, 'init', '-q', '-b', 'main');
  writeFileSync(path.join(work, 'README.md'), content);
  git(work, 'add', 'README.md');
  git(work, 'commit', '-q', '-m', 'initial');
  git(work, 'tag', 'v1');
  const bare = path.join(reposDir, `${name}.git`);
  mkdirSync(path.dirname(bare), { recursive: true });
  git(work, 'clone', '-q', '--bare', work, bare);
  const sha = git(work, 'rev-parse', 'HEAD');
  rmSync(work, { recursive: true, force: true });
  return sha;
}
