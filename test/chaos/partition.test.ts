/**
 * Partitions between one executor and the server: the executor reaches the server only through a
 * TCP proxy of its own, which the test cuts (every connection reset, new ones refused) and heals.
 *   - shorter than the stall window L: no reset, the job completes on its first attempt;
 *   - longer than L: exactly one reset, the cut-off attempt is fenced (nothing of it accepted after
 *     the reset), another executor takes the job over within the recovery bound, and the cut-off
 *     executor stops its copy once it hears the server again.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { readAudit } from './audit-store.js';
import {
  type ChaosExecutor,
  type ChaosServer,
  countingJob,
  kill9,
  RECOVERY_BOUND_MS,
  spawnExecutor,
  startChaosServer,
  submitAll,
  TIMING,
} from './harness.js';
import { checkInvariants } from './invariants.js';
import { CHAOS_SEED, publish, scaled } from './scale.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

const ROUNDS = scaled(1, 5);
const SLACK_MS = 1500;
const nowMs = () => performance.timeOrigin + performance.now();

describe('executor <-> server partitions', () => {
  let dir: string;
  let server: ChaosServer;
  const executors: ChaosExecutor[] = [];
  const proxies: TcpProxy[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaos-partition-'));
    server = await startChaosServer({ dir: join(dir, 'server') });
  });
  afterAll(async () => {
    for (const e of executors) await kill9(e);
    for (const p of proxies) await p.close();
    await server?.stop();
  });

  async function partitioned(name: string, ws: string) {
    const proxy = await startTcpProxy(server.proxy.port);
    proxies.push(proxy);
    const ex = spawnExecutor({ ...server, url: proxy.url } as ChaosServer, {
      name,
      workspaceRoot: ws,
      maxJobs: 2,
    });
    executors.push(ex);
    await ex.ready;
    return { proxy, ex };
  }

  /**
   * Waits until the executor holds the job: a write of its attempt was accepted. The attempt's
   * start alone is not enough: the store records it before the dequeue answer leaves the server,
   * and server, proxy and test share one event loop, so a cut right after the start destroyed
   * the answer in the proxy. A lost dequeue answer is a vanished executor (the job is rightly
   * reset after L), not the short partition this file is about.
   */
  async function runningOn(executor: string, jobId: number) {
    await waitFor(
      () =>
        readAudit(server.auditFile).some(
          (e) => e.op === 'write' && e.job === jobId && e.executor === executor,
        ),
      { timeoutMs: 30_000, what: `job ${jobId} to run on ${executor}` },
    );
  }

  it(`a cut shorter than the stall window: no reset (${ROUNDS} rounds)`, async () => {
    const ws = join(dir, 'ws-short');
    const { proxy, ex } = await partitioned(`short-${CHAOS_SEED}`, ws);
    const ids: number[] = [];
    const lines = 40;
    for (let r = 0; r < ROUNDS; r++) {
      const [job] = await submitAll(server, [countingJob(lines, { delaySeconds: '0.1' })]);
      ids.push(job!.id);
      await runningOn(ex.name, job!.id);
      proxy.cut();
      const t = nowMs();
      await waitFor(() => nowMs() - t >= TIMING.stalledAfterMs / 2, {
        timeoutMs: TIMING.stalledAfterMs,
        intervalMs: 20,
      });
      proxy.heal();
      await waitFor(async () => (await server.store.getJob(job!.id))?.state === 'completed', {
        timeoutMs: 60_000,
        what: 'the job to complete',
      });
    }
    // This executor must not compete for the next scenario's jobs.
    await kill9(ex);
    const report = await checkInvariants({
      store: server.store,
      auditFile: server.auditFile,
      jobIds: ids,
      countLines: new Map(ids.map((id) => [id, lines])),
      maxResets: TIMING.maxResets,
      workspaceRoots: [ws],
    });
    publish('partition shorter than L', {
      rounds: ROUNDS,
      cutMs: TIMING.stalledAfterMs / 2,
      stalledAfterMs: TIMING.stalledAfterMs,
      states: report.states,
      resets: report.resets,
      attempts: report.attempts,
      violations: report.violations.length,
    });
    expect(report.violations).toEqual([]);
    expect(report.resets).toBe(0);
    expect(report.attempts).toBe(ROUNDS);
  }, 300_000);

  it(`a cut longer than the stall window: one reset, fenced, recovered within the bound (${ROUNDS} rounds)`, async () => {
    const ws = join(dir, 'ws-long');
    const { proxy, ex } = await partitioned(`long-${CHAOS_SEED}`, ws);
    const ids: number[] = [];
    const recoveries: number[] = [];
    const lines = 60;
    let rescuer: ChaosExecutor | undefined;
    for (let r = 0; r < ROUNDS; r++) {
      const [job] = await submitAll(server, [countingJob(lines, { delaySeconds: '0.1' })]);
      const jobId = job!.id;
      ids.push(jobId);
      await runningOn(ex.name, jobId);
      proxy.cut();
      const cutAt = nowMs();
      // Another executor, on the healthy side, is there to take the job over.
      rescuer ??= spawnExecutor(server, {
        name: `rescuer-${CHAOS_SEED}`,
        workspaceRoot: join(dir, 'ws-rescue'),
        maxJobs: 2,
      });
      if (!executors.includes(rescuer)) executors.push(rescuer);
      const current = rescuer;
      const taken = await waitFor(
        () =>
          readAudit(server.auditFile).find(
            (e) => e.op === 'start' && e.job === jobId && e.executor === current.name,
          ),
        {
          timeoutMs: 2 * TIMING.stalledAfterMs + 30_000,
          intervalMs: 50,
          what: 'the rescuer to take the job',
        },
      );
      const reset = readAudit(server.auditFile).find(
        (e) => e.op === 'end' && e.job === jobId && e.how === 'reset',
      );
      recoveries.push((reset?.t1 ?? Number.POSITIVE_INFINITY) - cutAt);
      // Keep the cut for 2 L in all, then heal: the cut-off executor must give the job up.
      await waitFor(() => nowMs() - cutAt >= 2 * TIMING.stalledAfterMs, {
        timeoutMs: 3 * TIMING.stalledAfterMs,
        intervalMs: 20,
      });
      proxy.heal();
      await waitFor(async () => (await server.store.getJob(jobId))?.state === 'completed', {
        timeoutMs: 60_000,
        what: 'the job to complete',
      });
      expect(taken.attempt).toBe(2);
      // An idle rescuer would compete with the cut-off executor for the next round's job.
      await kill9(rescuer);
      rescuer = undefined;
    }
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
      countLines: new Map(ids.map((id) => [id, lines])),
      maxResets: TIMING.maxResets,
      workspaceRoots: [ws],
    });
    const bound = TIMING.heartbeatMs + TIMING.stalledAfterMs + TIMING.resetIntervalMs;
    publish('partition longer than L', {
      rounds: ROUNDS,
      cutMs: 2 * TIMING.stalledAfterMs,
      states: report.states,
      resets: report.resets,
      maxRequeueAfterCutMs: Math.round(Math.max(...recoveries)),
      requeueBoundMs: bound,
      recoveryBoundMs: TIMING.heartbeatMs + RECOVERY_BOUND_MS,
      violations: report.violations.length,
    });
    expect(report.violations).toEqual([]);
    expect(report.resets).toBe(ROUNDS);
    expect(report.states.completed).toBe(ROUNDS);
    expect(Math.max(...recoveries)).toBeLessThanOrEqual(bound + SLACK_MS);
  }, 300_000);
});
