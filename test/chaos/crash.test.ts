/**
 * Crash chaos over the shell runtime (fast) unless containers matter: kill -9 of an executor at
 * random points from clone to final flush; SIGSTOP past the stall window then SIGCONT (Docker: the
 * zombie's container must stop); the server failing after assigning a job; graceful drain. Every
 * scenario ends with the invariant checker.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable, requireOrSkip, waitFor } from '../helpers/env.js';
import { makeDemoRepo } from '../helpers/repos.js';
import { type AuditEvent, readAudit } from './audit-store.js';
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
import { checkInvariants, leftoverContainers } from './invariants.js';
import { CHAOS_SEED, createRandom, publish, scaled } from './scale.js';

const KILLS = scaled(5, 50);
/** From a kill to the job's next attempt: the last heartbeat may precede the kill by up to H. */
const BOUND_FROM_FAULT_MS = TIMING.heartbeatMs + RECOVERY_BOUND_MS;
/** Scheduling slack on a loaded 2-core machine (process start, event-loop delays). */
const SLACK_MS = 1500;

/** Time from a fault to the interrupted attempt being taken back (requeued or failed). */
function recoveryAfter(
  audit: AuditEvent[],
  job: number,
  attempt: number,
  afterT: number,
): number | undefined {
  const next = audit.find((e) => e.op === 'end' && e.job === job && e.attempt === attempt && e.t1 > afterT);
  return next ? next.t1 - afterT : undefined;
}

function openAttemptsOf(
  audit: AuditEvent[],
  executor: string,
  atT: number,
): { job: number; attempt: number }[] {
  const open: { job: number; attempt: number }[] = [];
  for (const s of audit) {
    if (s.op !== 'start' || s.executor !== executor || s.t1 > atT) continue;
    const ended = audit.some(
      (e) => e.op === 'end' && e.job === s.job && e.attempt === s.attempt && e.t0 < atT,
    );
    if (!ended) open.push({ job: s.job, attempt: s.attempt });
  }
  return open;
}

describe('crash chaos (shell runtime)', () => {
  let dir: string;
  let server: ChaosServer;
  let sha: string;
  const executors: ChaosExecutor[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaos-crash-'));
    server = await startChaosServer({ dir: join(dir, 'server') });
    sha = makeDemoRepo(server.config.reposDir).first;
  });
  afterAll(async () => {
    for (const e of executors) await kill9(e);
    await server?.stop();
  });

  it(`kill -9 of an executor at random points, ${KILLS} times: nothing lost, recovery within the bound`, async () => {
    const random = createRandom(CHAOS_SEED);
    const ws = join(dir, 'ws');
    const survivor = spawnExecutor(server, { name: `survivor-${CHAOS_SEED}`, workspaceRoot: ws, maxJobs: 6 });
    executors.push(survivor);
    await survivor.ready;
    const jobIds: number[] = [];
    const countLines = new Map<number, number>();
    const kills: { t: number; name: string }[] = [];
    /** Jobs added to rounds in which the survivor had taken every job. */
    let extraJobs = 0;
    for (let k = 0; k < KILLS; k++) {
      const victim = spawnExecutor(server, {
        name: `victim-${CHAOS_SEED}-${k}`,
        workspaceRoot: ws,
        maxJobs: 3,
      });
      executors.push(victim);
      await victim.ready;
      const submit = async (n: number) => {
        const jobs = await submitAll(
          server,
          Array.from({ length: n }, () => countingJob(40, { repoCommit: sha, delaySeconds: '0.02' })),
        );
        for (const j of jobs) {
          jobIds.push(j.id);
          countLines.set(j.id, 40);
        }
      };
      await submit(3);
      // The survivor long-polls the same queue with more free slots, so now and then it may win
      // every job of a round. The victim must hold a job when it is killed: the round adds one job
      // at a time until it has one (counted in the result as extraJobs).
      const victimStart = () =>
        readAudit(server.auditFile).find((e) => e.op === 'start' && e.executor === victim.name)?.t1;
      let startedAt: number | undefined;
      for (let more = 0; startedAt === undefined; more++) {
        startedAt = await waitFor(victimStart, { timeoutMs: 5_000, what: 'the victim to dequeue' }).catch(
          (e: unknown) => {
            if (more >= 4) throw e;
            return undefined;
          },
        );
        if (startedAt === undefined) {
          extraJobs++;
          await submit(1);
        }
      }
      // A random point from the first dequeue (clone) to past the final flush (~1-2 s of work); in
      // every other round within the first second, which the job's 0.8 s of output alone outlasts,
      // so that some kills land in a running job whatever the draws (a seed whose five draws all
      // fell past 1.3 s once killed only finished victims).
      const delay = Math.floor(random() * (k % 2 === 0 ? 1000 : 2500));
      await waitFor(() => performance.timeOrigin + performance.now() >= startedAt + delay, {
        timeoutMs: 10_000,
        intervalMs: 5,
      });
      const t = performance.timeOrigin + performance.now();
      await kill9(victim);
      kills.push({ t, name: victim.name });
    }
    await waitFor(
      async () => {
        for (const id of jobIds) {
          const j = await server.store.getJob(id);
          if (!j || !['completed', 'failed', 'canceled'].includes(j.state)) return false;
        }
        return true;
      },
      { timeoutMs: 60_000 + KILLS * 5000, intervalMs: 200, what: 'every job to end' },
    );
    // The survivor's janitor removes what the victims left.
    await waitFor(
      async () =>
        (
          await checkInvariants({
            store: server.store,
            auditFile: server.auditFile,
            jobIds,
            maxResets: TIMING.maxResets,
            workspaceRoots: [ws],
          })
        ).violations.length === 0,
      {
        timeoutMs: 4 * TIMING.cleanupMs + 30_000,
        intervalMs: 250,
      },
    ).catch(() => undefined);
    const report = await checkInvariants({
      store: server.store,
      auditFile: server.auditFile,
      jobIds,
      countLines,
      maxResets: TIMING.maxResets,
      workspaceRoots: [ws],
    });
    const audit = readAudit(server.auditFile);
    const recoveries: number[] = [];
    let interrupted = 0;
    for (const k of kills) {
      for (const o of openAttemptsOf(audit, k.name, k.t)) {
        interrupted++;
        const r = recoveryAfter(audit, o.job, o.attempt, k.t);
        if (r === undefined) report.violations.push(`job ${o.job} never recovered from ${k.name}`);
        else recoveries.push(r);
      }
    }
    const maxRecovery = Math.max(0, ...recoveries);
    // The survivor must not take the next scenarios' jobs.
    await kill9(survivor);
    publish('kill -9 executor (shell)', {
      kills: KILLS,
      jobs: jobIds.length,
      interruptedAttempts: interrupted,
      extraJobs,
      states: report.states,
      failures: report.failures,
      resets: report.resets,
      maxRecoveryMs: Math.round(maxRecovery),
      boundMs: BOUND_FROM_FAULT_MS,
      violations: report.violations.length,
    });
    expect(report.violations).toEqual([]);
    expect(interrupted).toBeGreaterThan(0);
    expect(maxRecovery).toBeLessThanOrEqual(BOUND_FROM_FAULT_MS + SLACK_MS);
  }, 600_000);

  it('the server failing after assigning a job: the job is reassigned within the bound', async () => {
    const ws = join(dir, 'ws-fail');
    let inject = 0;
    const dir2 = join(dir, 'server-fail');
    const faulty = await startChaosServer({ dir: dir2, faults: { afterDequeue: () => inject-- > 0 } });
    const ex = spawnExecutor(faulty, { name: `assign-${CHAOS_SEED}`, workspaceRoot: ws, maxJobs: 2 });
    executors.push(ex);
    try {
      await ex.ready;
      inject = scaled(2, 5);
      const jobs = await submitAll(
        faulty,
        Array.from({ length: scaled(3, 10) }, () => countingJob(10)),
      );
      const jobIds = jobs.map((j) => j.id);
      await waitFor(
        async () => {
          for (const id of jobIds) {
            const j = await faulty.store.getJob(id);
            if (!j || !['completed', 'failed', 'canceled'].includes(j.state)) return false;
          }
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 200, what: 'every job to end' },
      );
      const audit = readAudit(faulty.auditFile);
      // The injected failures are the first starts; their next start is the reassignment.
      const failedStarts = audit.filter((e) => e.op === 'start').slice(0, scaled(2, 5));
      const delays = failedStarts.map((s) => {
        const next = audit.find((e) => e.op === 'start' && e.job === s.job && e.attempt > s.attempt);
        return next ? next.t1 - s.t1 : Number.POSITIVE_INFINITY;
      });
      const report = await checkInvariants({
        store: faulty.store,
        auditFile: faulty.auditFile,
        jobIds,
        countLines: new Map(jobIds.map((id) => [id, 10])),
        maxResets: TIMING.maxResets,
      });
      publish('server fails after assigning', {
        injected: failedStarts.length,
        jobs: jobIds.length,
        states: report.states,
        maxReassignMs: Math.round(Math.max(...delays)),
        boundMs: RECOVERY_BOUND_MS,
        violations: report.violations.length,
      });
      expect(report.violations).toEqual([]);
      expect(report.states.completed).toBe(jobIds.length);
      expect(Math.max(...delays)).toBeLessThanOrEqual(RECOVERY_BOUND_MS + SLACK_MS);
    } finally {
      await kill9(ex);
      await faulty.stop();
    }
  }, 120_000);

  it('graceful drain: heartbeats go on, running jobs finish on their first attempt, exit 0', async () => {
    // No executor of an earlier scenario may take this one's jobs (the kill -9 scenario stops its
    // survivor, but not when it failed half-way).
    for (const e of executors.splice(0)) await kill9(e);
    const ws = join(dir, 'ws-drain');
    const ex = spawnExecutor(server, { name: `drain-${CHAOS_SEED}`, workspaceRoot: ws, maxJobs: 3 });
    executors.push(ex);
    await ex.ready;
    // Each job runs longer than the stall window, so only heartbeats during the drain save it.
    const lines = Math.ceil((TIMING.stalledAfterMs * 1.5) / 100);
    const jobs = await submitAll(
      server,
      [0, 1, 2].map(() => countingJob(lines, { delaySeconds: '0.1' })),
    );
    const jobIds = jobs.map((j) => j.id);
    await waitFor(
      async () => {
        for (const id of jobIds) if ((await server.store.getJob(id))?.state !== 'processing') return false;
        return true;
      },
      { timeoutMs: 60_000, what: 'the jobs to run' },
    );
    // Processing on the server is not yet running on the executor: its dequeue answer may still be
    // on the way. The drain must find all three running, so wait for the executor to say so.
    await waitFor(() => ex.output().split('"dequeued job"').length - 1 >= 3, {
      timeoutMs: 60_000,
      what: 'the executor to start the three jobs',
    });
    ex.child.kill('SIGTERM');
    const code = await ex.exited;
    const report = await checkInvariants({
      store: server.store,
      auditFile: server.auditFile,
      jobIds,
      countLines: new Map(jobIds.map((id) => [id, lines])),
      maxResets: TIMING.maxResets,
      workspaceRoots: [ws],
    });
    publish('graceful drain', {
      jobs: jobIds.length,
      states: report.states,
      resets: report.resets,
      exit: code,
      violations: report.violations.length,
    });
    expect(code).toBe(0);
    expect(report.violations).toEqual([]);
    expect(report.states.completed).toBe(3);
    expect(report.attempts).toBe(3);
    expect(report.resets).toBe(0);
  }, 120_000);
});

describe('SIGSTOP past the stall window, then SIGCONT (Docker)', () => {
  const ok = requireOrSkip('Docker', dockerAvailable());
  it.skipIf(!ok)(
    'the zombie is fenced: its writes are refused and its container is stopped',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'chaos-stop-'));
      const server = await startChaosServer({ dir: join(dir, 'server') });
      const ws = join(dir, 'ws');
      const zombie = spawnExecutor(server, {
        name: `zombie-${CHAOS_SEED}`,
        workspaceRoot: ws,
        runtime: 'docker',
        maxJobs: 1,
      });
      let rescuer: ChaosExecutor | undefined;
      try {
        await zombie.ready;
        const lines = 60;
        const [job] = await submitAll(server, [countingJob(lines, { delaySeconds: '0.1' })]);
        const jobId = job!.id;
        await waitFor(
          async () =>
            (await server.store.getLogEntries(jobId, { withOutput: true })).some(
              (e) => e.key === 'step.docker.count' && (e.out ?? '').includes('line-3'),
            ),
          { timeoutMs: 90_000, what: 'the step to write' },
        ).catch((e: unknown) => {
          console.log(zombie.output().slice(-4000));
          throw e;
        });
        zombie.child.kill('SIGSTOP');
        const stoppedAt = performance.timeOrigin + performance.now();
        // A docker executor, like the zombie: its janitor removes what the zombie leaves when it is
        // killed at the end (a spare network holder of its pool, say).
        rescuer = spawnExecutor(server, {
          name: `rescuer-${CHAOS_SEED}`,
          workspaceRoot: ws,
          runtime: 'docker',
          maxJobs: 1,
        });
        await waitFor(
          () =>
            readAudit(server.auditFile).some((e) => e.op === 'end' && e.job === jobId && e.how === 'reset'),
          {
            timeoutMs: RECOVERY_BOUND_MS + TIMING.heartbeatMs + 10_000,
            what: 'the stalled reset',
          },
        );
        const resetAt = performance.timeOrigin + performance.now();
        zombie.child.kill('SIGCONT');
        // Within a couple of heartbeats the zombie learns it lost the job and stops its container.
        await waitFor(
          () =>
            execFileSync('docker', ['ps', '-q', '--filter', `label=executor.name=${zombie.name}`], {
              stdio: 'pipe',
            })
              .toString()
              .trim() === '',
          {
            timeoutMs: 3 * TIMING.heartbeatMs + 10_000,
            intervalMs: 100,
            what: "the zombie's container to stop",
          },
        );
        const containerStoppedMs = performance.timeOrigin + performance.now() - resetAt;
        await waitFor(async () => (await server.store.getJob(jobId))?.state === 'completed', {
          timeoutMs: 60_000,
          what: 'the rescuer to complete the job',
        });
        await kill9(zombie);
        await waitFor(
          async () => {
            const r = await checkInvariants({
              store: server.store,
              auditFile: server.auditFile,
              jobIds: [jobId],
              maxResets: TIMING.maxResets,
              executorNames: [zombie.name],
              workspaceRoots: [ws],
              docker: true,
            });
            return r.violations.length === 0;
          },
          { timeoutMs: 4 * TIMING.cleanupMs + 30_000, intervalMs: 250 },
        ).catch(() => undefined);
        const report = await checkInvariants({
          store: server.store,
          auditFile: server.auditFile,
          jobIds: [jobId],
          countLines: new Map([[jobId, lines]]),
          maxResets: TIMING.maxResets,
          executorNames: [zombie.name],
          workspaceRoots: [ws],
          docker: true,
        });
        const final = await server.store.getJob(jobId);
        // The fence: once the reset has ended attempt 1, nothing of attempt 1 may be accepted. Writes
        // the zombie sent before SIGSTOP can still be accepted between the stop and the reset (they
        // were in flight, and attempt 1 was current): counted apart, not a violation.
        const audit = readAudit(server.auditFile);
        const resetEnd = audit.find((e) => e.op === 'end' && e.job === jobId && e.how === 'reset');
        const zombieWrites = audit.filter(
          (e) => e.op === 'write' && e.job === jobId && e.executor === zombie.name,
        );
        const zombieWritesAfterReset = zombieWrites.filter(
          (e) => e.op === 'write' && e.attempt === resetEnd?.attempt && e.t0 > resetEnd.t1,
        ).length;
        const inFlightAtStop = zombieWrites.filter((e) => e.t0 > stoppedAt).length - zombieWritesAfterReset;
        if (zombieWritesAfterReset > 0)
          console.log(
            audit
              .filter((e) => e.job === jobId)
              .map((e) =>
                JSON.stringify({ ...e, t0: Math.round(e.t0 - stoppedAt), t1: Math.round(e.t1 - stoppedAt) }),
              )
              .join('\n'),
          );
        publish('SIGSTOP / SIGCONT zombie (docker)', {
          stoppedForMs: Math.round(resetAt - stoppedAt),
          attempts: final?.attempts,
          zombieWritesAcceptedAfterReset: zombieWritesAfterReset,
          zombieWritesInFlightAtStop: inFlightAtStop,
          containerStoppedWithinMs: Math.round(containerStoppedMs),
          violations: report.violations.length,
        });
        expect(report.violations).toEqual([]);
        expect(final?.attempts).toBe(2);
        expect(zombieWritesAfterReset).toBe(0);
      } finally {
        await kill9(zombie);
        if (rescuer) {
          await kill9(rescuer);
          // What the killed rescuer leaves (its pool's network holder) goes too: the next test's
          // checks should not meet it.
          const ids = leftoverContainers([rescuer.name]).map((c) => c.split(' ')[0]!);
          if (ids.length > 0) execFileSync('docker', ['rm', '-f', ...ids], { stdio: 'pipe' });
        }
        await server.stop();
      }
    },
    180_000,
  );
});
