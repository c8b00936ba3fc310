/**
 * Server-side faults with jobs running: the queue server restarted (every connection dropped, a
 * new server on the same store) during many running jobs, on SQLite and on PostgreSQL; and
 * PostgreSQL cut away from the server under load (a TCP proxy between them, cut and healed, so the
 * machine's shared cluster is never touched). Executors run as separate processes.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireOrSkip, waitFor } from '../helpers/env.js';
import {
  type ChaosExecutor,
  type ChaosServer,
  countingJob,
  createDatabase,
  kill9,
  portOf,
  postgresAdminUrl,
  spawnExecutor,
  startChaosServer,
  submitAll,
  TIMING,
} from './harness.js';
import { checkInvariants } from './invariants.js';
import { CHAOS_SEED, publish, scaled } from './scale.js';
import { startTcpProxy } from './tcp-proxy.js';

const RUNNING = scaled(20, 200);
const EXECUTORS = scaled(2, 4);
// Each job prints LINES lines, DELAY seconds apart. At full scale the jobs are fewer lines further
// apart and last longer: 200 jobs forking a `sleep` every 0.15 s is over 1,300 forks a second, which
// on a 2-core machine starves every process of the test (the server's event loop lagged by 0.1 to
// 1 s), and the executors, starved too, start about 5 jobs a second between them, so 160 jobs are
// running at once only if each lasts well over 30 s.
const LINES = scaled(40, 20);
const DELAY = scaled('0.15', '2');
const pgAdmin = await postgresAdminUrl();

async function allEnded(server: ChaosServer, ids: number[]): Promise<boolean> {
  for (const id of ids) {
    const j = await server.store.getJob(id);
    if (!j || !['completed', 'failed', 'canceled'].includes(j.state)) return false;
  }
  return true;
}

async function processingCount(server: ChaosServer): Promise<number> {
  return (await server.store.listJobs({ state: 'processing', limit: 1 })).total;
}

/**
 * Starts executors with RUNNING slots in all, submits RUNNING jobs, waits until at least 80% of
 * them run, applies `fault`, then waits for every job to end and checks the invariants.
 */
async function underLoad(
  name: string,
  server: ChaosServer,
  dir: string,
  fault: () => Promise<Record<string, unknown>>,
): Promise<void> {
  const ws = join(dir, 'ws');
  const executors: ChaosExecutor[] = [];
  try {
    for (let i = 0; i < EXECUTORS; i++) {
      executors.push(
        spawnExecutor(server, {
          name: `${name.replace(/\W+/g, '-')}-${CHAOS_SEED}-${i}`,
          workspaceRoot: ws,
          maxJobs: Math.ceil(RUNNING / EXECUTORS),
        }),
      );
    }
    await Promise.all(executors.map((e) => e.ready));
    // Long enough that the fault lands while they run: LINES lines, DELAY seconds apart.
    const jobs = await submitAll(
      server,
      Array.from({ length: RUNNING }, () => countingJob(LINES, { delaySeconds: DELAY })),
      { concurrency: 8 },
    );
    const ids = jobs.map((j) => j.id);
    await waitFor(async () => (await processingCount(server)) >= RUNNING * 0.8, {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: 'the jobs to run',
    });
    const running = await processingCount(server);
    const t0 = Date.now();
    const faultFigures = await fault();
    await waitFor(() => allEnded(server, ids), {
      timeoutMs: 300_000,
      intervalMs: 500,
      what: 'every job to end',
    });
    const drainMs = Date.now() - t0;
    await waitFor(
      async () =>
        (
          await checkInvariants({
            store: server.store,
            auditFile: server.auditFile,
            jobIds: ids,
            maxResets: TIMING.maxResets,
            workspaceRoots: [ws],
          })
        ).violations.length === 0,
      { timeoutMs: 4 * TIMING.cleanupMs + 30_000, intervalMs: 250 },
    ).catch(() => undefined);
    const report = await checkInvariants({
      store: server.store,
      auditFile: server.auditFile,
      jobIds: ids,
      countLines: new Map(ids.map((id) => [id, LINES])),
      maxResets: TIMING.maxResets,
      workspaceRoots: [ws],
    });
    publish(name, {
      jobs: ids.length,
      runningAtFault: running,
      ...faultFigures,
      states: report.states,
      failures: report.failures,
      resets: report.resets,
      attempts: report.attempts,
      endedWithinMsOfFault: drainMs,
      violations: report.violations.length,
    });
    expect(report.violations).toEqual([]);
    expect(report.states.completed).toBe(ids.length);
  } finally {
    for (const e of executors) await kill9(e);
  }
}

describe('server restart during running jobs', () => {
  it(`SQLite: ${RUNNING} running jobs survive a server restart`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chaos-restart-sqlite-'));
    const server = await startChaosServer({ dir: join(dir, 'server') });
    try {
      await underLoad('server restart (SQLite)', server, dir, async () => {
        const t = Date.now();
        await server.restart();
        return { downtimeMs: Date.now() - t };
      });
    } finally {
      await server.stop();
    }
  }, 600_000);

  const pgOk = requireOrSkip('PostgreSQL', pgAdmin !== undefined);
  it.skipIf(!pgOk)(
    `PostgreSQL: ${RUNNING} running jobs survive a server restart`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'chaos-restart-pg-'));
      const db = await createDatabase(pgAdmin!);
      const server = await startChaosServer({ dir: join(dir, 'server'), databaseUrl: db.url });
      try {
        await underLoad('server restart (PostgreSQL)', server, dir, async () => {
          const t = Date.now();
          await server.restart();
          return { downtimeMs: Date.now() - t };
        });
      } finally {
        await server.stop();
        await db.drop();
      }
    },
    600_000,
  );

  it.skipIf(!pgOk)(
    'PostgreSQL unreachable under load for a few seconds, then back',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'chaos-pg-outage-'));
      const db = await createDatabase(pgAdmin!);
      const pgProxy = await startTcpProxy(portOf(pgAdmin!));
      const server = await startChaosServer({
        dir: join(dir, 'server'),
        databaseUrl: db.viaPort(pgProxy.port),
      });
      try {
        const outageMs = 3000;
        await underLoad('PostgreSQL outage under load', server, dir, async () => {
          pgProxy.cut();
          const t = Date.now();
          await waitFor(() => Date.now() - t >= outageMs, { timeoutMs: outageMs + 1000, intervalMs: 50 });
          pgProxy.heal();
          return { outageMs };
        });
      } finally {
        await server.stop();
        await pgProxy.close();
        await db.drop();
      }
    },
    600_000,
  );
});
