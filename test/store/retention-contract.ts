/**
 * Retention's part of the Store contract (pruneFinishedJobs, pruneLogOutput), run against both twins
 * by sqlite.test.ts and postgres.test.ts: only terminal jobs finished before the cutoff go, in
 * batches of at most `limit`, with everything that hangs off them; a queued or processing job stays
 * whatever its age; dropped output leaves a marker and the job row.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AttemptFence, NewJob, Store } from '../../src/store/types.js';
import { PRUNED_OUTPUT_MARKER } from '../../src/store/types.js';

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const MAX_OUT = 1_000_000;

const newJob = (queue = 'ret'): NewJob => ({
  queue,
  spec: { queue, steps: [{ image: 'busybox', run: 'echo retained' }] },
  repositoryName: '',
  commit: '',
  priority: 0,
  maxAttempts: 1,
  timeoutMs: 10 * 24 * HOUR,
});

const hash = () => createHash('sha256').update(randomBytes(20)).digest('hex');

export function runRetentionContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract, retention: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await makeStore();
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
    });

    /** Submits a job at `at`, claims it, writes one entry with `out`; returns the running fence. */
    async function running(at: number, out = 'hello world\n', queue = 'ret'): Promise<AttemptFence> {
      const job = await store.enqueue(newJob(queue), at, 'alice');
      const r = await store.dequeue({
        queue,
        executorName: 'exec-1',
        now: at,
        tokenHash: hash(),
        priorityStepMs: 60_000,
      });
      expect(r?.job.id).toBe(job.id);
      const fence = { jobId: job.id, executorName: 'exec-1', attempt: r!.attempt };
      const entry = await store.addLogEntry(
        fence,
        { key: 'step.docker.0', command: ['sh', '-c', 'echo'], startTime: new Date(at).toISOString() },
        MAX_OUT,
      );
      expect(await store.appendLogOutput(fence, entry!, 0, out, {}, MAX_OUT)).toEqual({
        ok: true,
        length: Buffer.byteLength(out),
      });
      return fence;
    }
    async function completed(at: number, out?: string): Promise<number> {
      const f = await running(at, out);
      expect(await store.markComplete(f, at + 1_000)).toBe(true);
      return f.jobId;
    }

    it('deletes terminal jobs finished before the cutoff, with their entries, claims and events', async () => {
      const old = await completed(T0, 'x'.repeat(5_000));
      const f = await running(T0);
      expect(await store.markFailed(f, 'boom', T0 + 2_000)).toBe(true);
      const canceled = await store.enqueue(newJob(), T0, 'alice');
      await store.cancelJob(canceled.id, T0 + 3_000, 'bob');
      const recent = await completed(T0 + 48 * HOUR);

      const cutoff = T0 + 24 * HOUR;
      const r = await store.pruneFinishedJobs(cutoff, 100);
      expect(r.jobs).toBe(3);
      // 5,000 + 12 bytes of output and three specs of about 60 bytes each.
      expect(r.bytes).toBeGreaterThan(5_012 + 3 * 40);
      expect(r.bytes).toBeLessThan(5_012 + 3 * 200);
      for (const id of [old, f.jobId, canceled.id]) {
        expect(await store.getJob(id)).toBeNull();
        expect(await store.getLogEntries(id, { attempt: 1 })).toEqual([]);
        expect(await store.claimHistory(id)).toEqual([]);
        expect(await store.listJobEvents(id)).toEqual([]);
      }
      expect((await store.getJob(recent))?.state).toBe('completed');
      expect(await store.readLogOutput(recent, 1, 1, 0)).toBe('hello world\n');
      expect(await store.pruneFinishedJobs(cutoff, 100)).toEqual({ jobs: 0, bytes: 0 });
    });

    it('never prunes a queued or running job, whatever its age', async () => {
      const queued = await store.enqueue(newJob('other'), T0 - 1_000 * HOUR);
      const f = await running(T0 - 1_000 * HOUR);
      // A job that failed once and waits for its retry is back in the queue: not finished either.
      const retried = await store.enqueue({ ...newJob('retry'), maxAttempts: 3 }, T0 - 900 * HOUR);
      const claim = await store.dequeue({
        queue: 'retry',
        executorName: 'exec-2',
        now: T0 - 900 * HOUR,
        tokenHash: hash(),
        priorityStepMs: 60_000,
      });
      const rf = { jobId: retried.id, executorName: 'exec-2', attempt: claim!.attempt };
      expect(await store.markErrored(rf, 'flaky', T0 - 900 * HOUR, { baseMs: 1, maxMs: 1 })).toBe(true);

      expect(await store.pruneFinishedJobs(T0 + 10_000 * HOUR, 100)).toEqual({ jobs: 0, bytes: 0 });
      expect(await store.pruneLogOutput(T0 + 10_000 * HOUR, 100)).toEqual({ jobs: 0, bytes: 0 });
      expect((await store.getJob(queued.id))?.state).toBe('queued');
      expect((await store.getJob(f.jobId))?.state).toBe('processing');
      expect(await store.readLogOutput(f.jobId, 1, 1, 0)).toBe('hello world\n');
      expect((await store.getJob(retried.id))?.state).toBe('queued');
      // The running job's lease still works: nothing of it was touched.
      expect(await store.markComplete(f, T0)).toBe(true);
    });

    it('deletes in batches of at most `limit`, oldest finish first', async () => {
      const ids: number[] = [];
      for (let i = 0; i < 7; i++) ids.push(await completed(T0 + i * 60_000));
      const cutoff = T0 + HOUR;
      expect((await store.pruneFinishedJobs(cutoff, 3)).jobs).toBe(3);
      expect(await store.getJob(ids[2]!)).toBeNull();
      expect((await store.getJob(ids[3]!))?.id).toBe(ids[3]);
      expect((await store.pruneFinishedJobs(cutoff, 3)).jobs).toBe(3);
      expect((await store.pruneFinishedJobs(cutoff, 3)).jobs).toBe(1);
      expect((await store.pruneFinishedJobs(cutoff, 3)).jobs).toBe(0);
      expect((await store.listJobs({ limit: 10 })).total).toBe(0);
    });

    it('drops the output of older jobs, leaving the marker, the entries and the job', async () => {
      const out = 'line\n'.repeat(1_000);
      const a = await completed(T0, out);
      const b = await completed(T0 + 48 * HOUR, out);
      const r = await store.pruneLogOutput(T0 + 24 * HOUR, 100);
      expect(r).toEqual({ jobs: 1, bytes: out.length });
      expect((await store.getJob(a))?.state).toBe('completed');
      const [entry] = await store.getLogEntries(a, { withOutput: true });
      expect(entry).toMatchObject({
        key: 'step.docker.0',
        command: ['sh', '-c', 'echo'],
        out: PRUNED_OUTPUT_MARKER,
        outLength: Buffer.byteLength(PRUNED_OUTPUT_MARKER),
      });
      expect(await store.readLogOutput(b, 1, 1, 0)).toBe(out);
      // Done once: a second pass finds nothing more to drop.
      expect(await store.pruneLogOutput(T0 + 24 * HOUR, 100)).toEqual({ jobs: 0, bytes: 0 });
      // Deleting the job later counts only what was left (the marker).
      const gone = await store.pruneFinishedJobs(T0 + 24 * HOUR, 100);
      expect(gone.jobs).toBe(1);
      expect(await store.getJob(a)).toBeNull();
    });
  });
}
