/**
 * prune: the retention pruner deleting 100,000 finished jobs (1 KiB of output each) from a SQLite
 * server while a real executor takes jobs from it by long-poll.
 *
 * - prune.rate: jobs deleted per second by the pruner (batches of PRUNE_BATCH with a turn of the
 *   event loop between them). Baseline: the naive way, one `DELETE` of the same jobs in one
 *   statement, which holds the write lock (and, in process, the event loop) until it is done.
 * - prune.dispatch.p99: dispatch latency (submit sent -> executor handler holds the job) measured
 *   while the pruner runs. Baseline: the same server and executor before the prune started.
 *   Target: p99 <= 50 ms, the dispatch target.
 */
import Database from 'better-sqlite3';
import { createApiClient } from '../src/cli/api-client.js';
import { startExecutor } from '../src/executor/index.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { PRUNE_BATCH } from '../src/server/background/pruner.js';
import {
  type BenchServer,
  createStampRuntime,
  emptyTelemetry,
  executorConfig,
  executorEnv,
  startBenchServer,
} from './cluster.js';
import { type Bench, percentile, result, sleep, waitFor } from './lib.js';

const OLD_JOBS = 100_000;
const IDLE_DISPATCHES = 100;

const spec = { queue: 'bench', steps: [{ image: 'busybox', run: 'true' }] } as JobSpec;

/** Writes `n` completed jobs finished in 1970, each with one entry of 1 KiB output, in one transaction. */
function fillFinished(dbPath: string, n: number): void {
  const db = new Database(dbPath);
  try {
    db.pragma('busy_timeout = 10000');
    db.transaction(() => {
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO jobs (queue, state, spec, max_attempts, attempts, timeout_ms, created_at, queued_at,
           started_at, finished_at, rank_key)
         SELECT 'old', 'completed', '{"queue":"old","steps":[{"image":"busybox","run":"true"}]}', 1, 1,
           60000, i, i, i, 1000 + i, i FROM n`,
      ).run(n);
      db.exec(
        `INSERT INTO log_entries (job_id, attempt, entry_id, key, start_time, out_length)
           SELECT id, 1, 1, 'step.docker.0', '1970-01-01T00:00:01Z', 1024 FROM jobs WHERE queue = 'old';
         INSERT INTO log_chunks (job_id, attempt, entry_id, seq, byte_offset, data)
           SELECT id, 1, 1, 1, 0, randomblob(1024) FROM jobs WHERE queue = 'old';`,
      );
    })();
  } finally {
    db.close();
  }
}

export const prune: Bench = async (ctx) => {
  const server: BenchServer = await startBenchServer({ logger: ctx.logger });
  const dbPath = server.config.sqlitePath;
  const waiters = new Map<number, (t: number) => void>();
  const early = new Map<number, number>();
  const runtime = createStampRuntime((job) => {
    const t = performance.now();
    const w = waiters.get(job.id);
    if (w) w(t);
    else early.set(job.id, t);
  });
  const executor = await startExecutor(executorConfig(executorEnv(server)), {
    logger: ctx.logger,
    runtime,
    telemetry: emptyTelemetry,
  });
  const api = createApiClient({ server: server.url, token: server.apiToken });
  const dispatchOnce = async (): Promise<number> => {
    await waitFor('a parked dequeue', () => server.app.waiting() >= 1, 30_000);
    await sleep(Math.random() * 5);
    const t0 = performance.now();
    const job = await api.submit(spec);
    const t1 =
      early.get(job.id) ??
      (await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`job ${job.id} not dispatched in 10 s`)), 10_000);
        waiters.set(job.id, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      }));
    await waitFor(
      'the job to complete',
      async () => (await server.store.getJob(job.id))?.state === 'completed',
      10_000,
    );
    return t1 - t0;
  };
  try {
    ctx.say(`prune: ${OLD_JOBS} finished jobs written`);
    fillFinished(dbPath, OLD_JOBS);
    await waitFor('a long-polling dequeue', () => server.app.waiting() >= 1, 30_000, 10);
    ctx.say(`prune: ${IDLE_DISPATCHES} dispatches without pruning`);
    const idle: number[] = [];
    for (let i = 0; i < IDLE_DISPATCHES; i++) idle.push(await dispatchOnce());

    ctx.say('prune: the pruner deletes them while jobs are dispatched');
    let pruning = true;
    const t0 = performance.now();
    const pass = server.app.loops.pruner.runOnce(Date.now()).finally(() => {
      pruning = false;
    });
    const during: number[] = [];
    while (pruning) during.push(await dispatchOnce());
    const { jobs } = (await pass) as { jobs: number };
    const pruneSeconds = (performance.now() - t0) / 1000;
    if (jobs !== OLD_JOBS) throw new Error(`the pruner deleted ${jobs} jobs, not ${OLD_JOBS}`);

    ctx.say('prune: baseline, one DELETE statement of the same jobs');
    fillFinished(dbPath, OLD_JOBS);
    const raw = new Database(dbPath);
    raw.pragma('foreign_keys = ON');
    raw.pragma('busy_timeout = 10000');
    const b0 = performance.now();
    const deleted = raw.prepare(`DELETE FROM jobs WHERE state = 'completed' AND queue = 'old'`).run().changes;
    const naiveSeconds = (performance.now() - b0) / 1000;
    raw.close();
    if (deleted !== OLD_JOBS) throw new Error(`the baseline deleted ${deleted} jobs`);

    const note =
      `${OLD_JOBS} completed jobs with 1 KiB of output each, SQLite; batches of ${PRUNE_BATCH}; ` +
      `${during.length} dispatches during the prune (${pruneSeconds.toFixed(1)} s), ${idle.length} before it; ` +
      `the one-statement DELETE took ${naiveSeconds.toFixed(1)} s with the write lock held`;
    return [
      result({
        name: 'prune.rate',
        ours: jobs / pruneSeconds,
        baseline: OLD_JOBS / naiveSeconds,
        unit: 'jobs/s',
        target: 'ratio >= 0.5',
        met: (_o, r) => r >= 0.5,
        note,
      }),
      result({
        name: 'prune.dispatch.p99',
        ours: percentile(during, 99),
        baseline: percentile(idle, 99),
        unit: 'ms',
        target: 'p99 <= 50 ms',
        met: (o) => o <= 50,
        note,
      }),
    ];
  } finally {
    await executor.drain();
    await server.close();
  }
};
