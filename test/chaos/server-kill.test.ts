/**
 * SIGKILL of the queue server process (not an in-process restart) under load, on SQLite and on
 * PostgreSQL: jobs running on executor processes, submissions and log appends in flight. A new
 * server process starts on the same data; the executors are not restarted. Afterwards every
 * submission that got a 201 is there and completes, every mark acknowledged before the kill is
 * still in effect, and the invariant checker (which replays every accepted write) finds nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createApiClient } from '../../src/cli/api-client.js';
import { loadServerConfig } from '../../src/config/server.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { requireOrSkip, waitFor } from '../helpers/env.js';
import { readAudit } from './audit-store.js';
import {
  type ChaosExecutor,
  type ChaosServer,
  countingJob,
  createDatabase,
  kill9,
  postgresAdminUrl,
  spawnExecutor,
  TIMING,
} from './harness.js';
import { checkInvariants } from './invariants.js';
import { CHAOS_SEED, publish, scaled } from './scale.js';
import { startTcpProxy } from './tcp-proxy.js';

const RUNNING = scaled(20, 200);
const EXECUTORS = scaled(2, 4);
const LINES = scaled(40, 20);
const DELAY = scaled('0.15', '2');
const CHILD = fileURLToPath(new URL('./server-child.ts', import.meta.url));
const pgAdmin = await postgresAdminUrl();

interface ServerProcess {
  child: ChildProcess;
  port: number;
  exited: Promise<unknown>;
}

function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let out = '';
  return new Promise((resolve, reject) => {
    const take = (d: Buffer) => {
      out += d.toString();
      const m = /chaos-server listening (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), exited });
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${out}`)));
  });
}

async function scenario(name: string, databaseUrl?: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-server-kill-'));
  const data = join(dir, 'server');
  mkdirSync(data, { recursive: true });
  const executorsAccessToken = randomBytes(20).toString('hex');
  const apiToken = randomBytes(20).toString('hex');
  const env: Record<string, string> = {
    EXECUTOR_SERVER_DATA: data,
    EXECUTOR_SERVER_STALLED_AFTER: `${TIMING.stalledAfterMs}ms`,
    EXECUTOR_SERVER_RESET_INTERVAL: `${TIMING.resetIntervalMs}ms`,
    EXECUTOR_SERVER_DEADLINE_INTERVAL: '500ms',
    EXECUTOR_SERVER_MAX_RESETS: String(TIMING.maxResets),
    EXECUTOR_SERVER_RETRY_BACKOFF_BASE: '100ms',
    EXECUTOR_SERVER_RETRY_BACKOFF_MAX: '1s',
    EXECUTORS_ACCESS_TOKEN: executorsAccessToken,
    EXECUTOR_SERVER_API_TOKEN: apiToken,
    CHAOS_AUDIT_FILE: join(data, 'audit.jsonl'),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  };
  const config = loadServerConfig({ env });
  let server = await spawnServer(env);
  const proxy = await startTcpProxy(server.port);
  // The test reads the store through a connection of its own (the server is another process).
  const store: Store = openStore(config.databaseUrl);
  const api = createApiClient({ server: proxy.url, token: apiToken });
  const target = { url: proxy.url, executorsAccessToken } as ChaosServer;
  const ws = join(dir, 'ws');
  const executors: ChaosExecutor[] = [];
  try {
    for (let i = 0; i < EXECUTORS; i++) {
      executors.push(
        spawnExecutor(target, {
          name: `kill-${CHAOS_SEED}-${i}`,
          workspaceRoot: ws,
          maxJobs: Math.ceil((RUNNING + 20) / EXECUTORS),
        }),
      );
    }
    await Promise.all(executors.map((e) => e.ready));
    const acked: number[] = [];
    const submit = async () => {
      try {
        acked.push((await api.submit(countingJob(LINES, { delaySeconds: DELAY }))).id);
      } catch {
        // Refused or cut by the kill: not acknowledged, so nothing is owed.
      }
    };
    for (let i = 0; i < RUNNING; i += 8) await Promise.all(Array.from({ length: 8 }, submit));
    await waitFor(
      async () => (await store.listJobs({ state: 'processing', limit: 1 })).total >= RUNNING * 0.8,
      {
        timeoutMs: 120_000,
        intervalMs: 200,
        what: 'the jobs to run',
      },
    );
    const running = (await store.listJobs({ state: 'processing', limit: 1 })).total;
    // Some jobs have finished, so acknowledged marks are among what the kill must not lose.
    await waitFor(async () => (await store.listJobs({ state: 'completed', limit: 1 })).total >= 2, {
      timeoutMs: 120_000,
      intervalMs: 100,
      what: 'the first jobs to complete',
    });
    // Submissions keep arriving while the server dies.
    let submitting = true;
    const submitter = (async () => {
      while (submitting) await submit();
    })();
    await waitFor(() => acked.length >= RUNNING + 5, { what: 'submissions in flight' });
    const killedAt = Date.now();
    server.child.kill('SIGKILL');
    await server.exited;
    const ackedAtKill = acked.length;
    // Marks the killed process's store accepted (its audit lines are written after each commit).
    const marksBeforeKill = readAudit(env.CHAOS_AUDIT_FILE!).flatMap((e) =>
      e.op === 'write' && e.kind === 'complete' ? [e.job] : [],
    );
    server = await spawnServer(env);
    proxy.retarget(server.port);
    const downtimeMs = Date.now() - killedAt;
    await waitFor(() => acked.length >= ackedAtKill + 3, { what: 'submissions after the restart' });
    submitting = false;
    await submitter;

    expect(marksBeforeKill.length).toBeGreaterThanOrEqual(2);
    for (const id of marksBeforeKill) expect((await store.getJob(id))?.state).toBe('completed');
    await waitFor(
      async () => {
        for (const id of acked) {
          const j = await store.getJob(id);
          if (!j || !['completed', 'failed', 'canceled'].includes(j.state)) return false;
        }
        return true;
      },
      { timeoutMs: 300_000, intervalMs: 500, what: 'every acknowledged job to end' },
    );
    const endedMs = Date.now() - killedAt;
    const report = await checkInvariants({
      store,
      auditFile: env.CHAOS_AUDIT_FILE!,
      jobIds: acked,
      countLines: new Map(acked.map((id) => [id, LINES])),
      maxResets: TIMING.maxResets,
    });
    publish(name, {
      jobs: acked.length,
      runningAtKill: running,
      acknowledgedSubmissionsAtKill: ackedAtKill,
      marksBeforeKill: marksBeforeKill.length,
      downtimeMs,
      endedWithinMsOfKill: endedMs,
      states: report.states,
      resets: report.resets,
      attempts: report.attempts,
      violations: report.violations.length,
    });
    expect(report.violations).toEqual([]);
    expect(report.states.completed).toBe(acked.length);
    // The executors were never restarted: each is the process it was.
    for (const e of executors) expect(e.child.exitCode).toBeNull();
  } finally {
    for (const e of executors) await kill9(e);
    if (server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    await store.close();
    await proxy.close();
  }
}

describe('SIGKILL of the server process under load', () => {
  it(`SQLite: ${RUNNING} running jobs and submissions in flight survive kill -9 of the server`, async () => {
    await scenario('server SIGKILL (SQLite)');
  }, 600_000);

  const pgOk = requireOrSkip('PostgreSQL', pgAdmin !== undefined);
  it.skipIf(!pgOk)(
    `PostgreSQL: ${RUNNING} running jobs and submissions in flight survive kill -9 of the server`,
    async () => {
      const db = await createDatabase(pgAdmin!);
      try {
        await scenario('server SIGKILL (PostgreSQL)', db.url);
      } finally {
        await db.drop();
      }
    },
    600_000,
  );
});
