/**
 * A batch of heartbeats (`recordHeartbeats`), part of the Store contract run against both twins by
 * sqlite.test.ts and postgres.test.ts: it writes and answers what the heartbeats one by one would
 * (`upsertExecutor`, then `heartbeat` per job list), sees marks and cancels committed before it,
 * and writes nothing when it fails.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExecutorHeartbeat, NewJob, Store } from '../../src/store/types.js';

const T0 = Date.UTC(2026, 0, 1);

const newJob = (queue = 'default'): NewJob => ({
  queue,
  spec: { queue, steps: [{ image: 'busybox', run: 'true' }] },
  repositoryName: '',
  commit: '',
  priority: 0,
  maxAttempts: 1,
  timeoutMs: 3_600_000,
});

const row = (name: string, over: Partial<ExecutorHeartbeat> = {}): ExecutorHeartbeat => ({
  name,
  hostname: name,
  queueName: 'default',
  queueNames: null,
  os: 'linux',
  architecture: 'amd64',
  dockerVersion: '24.0.7',
  executorVersion: '5.3.0',
  gitVersion: '2.43.0',
  igniteVersion: '',
  srcCliVersion: '',
  metrics: '',
  ...over,
});

export function runHeartbeatBatchContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract, heartbeat batches: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await makeStore();
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
    });

    /** A job of `queue` claimed by `executor` at T0. */
    async function running(executor: string, queue = 'default') {
      const job = await store.enqueue(newJob(queue), T0);
      const tokenHash = createHash('sha256').update(randomBytes(20)).digest('hex');
      const r = await store.dequeue({
        queue,
        executorName: executor,
        now: T0,
        tokenHash,
        priorityStepMs: 60_000,
      });
      expect(r?.job.id).toBe(job.id);
      return { id: job.id, fence: { jobId: job.id, executorName: executor, attempt: r!.attempt } };
    }

    it('writes and answers what the heartbeats one by one would', async () => {
      const a1 = await running('a');
      const a2 = await running('a');
      const aOther = await running('a', 'other');
      const b1 = await running('b');
      const queued = await store.enqueue(newJob(), T0);
      await store.upsertExecutor(row('b', { executorVersion: '5.2.0' }), T0);
      await store.cancelJob(a2.id, T0 + 1);

      const answers = await store.recordHeartbeats(
        [
          {
            executorName: 'a',
            row: row('a', { queueName: null, queueNames: ['default', 'other'], metrics: 'up 1\n' }),
            // b's job, a queued job and an unknown id are not a's; a job of another queue is
            // known under its own queue only; a repeated id is answered once.
            jobs: [
              { queue: 'default', jobIds: [a2.id, a1.id, b1.id, queued.id, 999_999, a1.id, aOther.id] },
              { queue: 'other', jobIds: [aOther.id] },
            ],
          },
          { executorName: 'b', row: null, jobs: [{ queue: 'default', jobIds: [b1.id, a1.id] }] },
          { executorName: 'c', row: row('c'), jobs: [] },
          { executorName: 'c', row: row('c', { gitVersion: '2.44.0' }), jobs: [] },
        ],
        T0 + 5_000,
      );
      expect(answers).toEqual([
        [
          { knownIds: [a1.id, a2.id], cancelIds: [a2.id] },
          { knownIds: [aOther.id], cancelIds: [] },
        ],
        [{ knownIds: [b1.id], cancelIds: [] }],
        [],
        [],
      ]);
      for (const id of [a1.id, a2.id, aOther.id, b1.id])
        expect((await store.getJob(id))?.lastHeartbeatAt).toBe(T0 + 5_000);
      expect((await store.getJob(queued.id))?.lastHeartbeatAt).toBeNull();

      expect(await store.getExecutor('a')).toEqual({
        ...row('a', { queueName: null, queueNames: ['default', 'other'], metrics: 'up 1\n' }),
        firstSeenAt: T0 + 5_000,
        lastSeenAt: T0 + 5_000,
      });
      // No row given: the row stays as it was.
      expect(await store.getExecutor('b')).toMatchObject({ executorVersion: '5.2.0', lastSeenAt: T0 });
      // Two rows of one name: the later wins.
      expect(await store.getExecutor('c')).toMatchObject({ gitVersion: '2.44.0', lastSeenAt: T0 + 5_000 });

      // A later batch keeps firstSeenAt and moves lastSeenAt.
      await store.recordHeartbeats([{ executorName: 'a', row: row('a'), jobs: [] }], T0 + 10_000);
      expect(await store.getExecutor('a')).toMatchObject({
        queueName: 'default',
        queueNames: null,
        metrics: '',
        firstSeenAt: T0 + 5_000,
        lastSeenAt: T0 + 10_000,
      });
      expect(await store.recordHeartbeats([], T0 + 11_000)).toEqual([]);
    });

    it('sees marks and cancels committed before it', async () => {
      const done = await running('a');
      const canceled = await running('a');
      const live = await running('b');
      expect(await store.markComplete(done.fence, T0 + 1)).toBe(true);
      await store.cancelJob(canceled.id, T0 + 2);
      const answers = await store.recordHeartbeats(
        [
          { executorName: 'a', row: null, jobs: [{ queue: 'default', jobIds: [done.id, canceled.id] }] },
          { executorName: 'b', row: null, jobs: [{ queue: 'default', jobIds: [live.id] }] },
        ],
        T0 + 3,
      );
      expect(answers).toEqual([
        [{ knownIds: [canceled.id], cancelIds: [canceled.id] }],
        [{ knownIds: [live.id], cancelIds: [] }],
      ]);
    });

    it('writes nothing of a batch that fails', async () => {
      const job = await running('a');
      const bad = { ...row('bad'), os: null } as unknown as ExecutorHeartbeat;
      await expect(
        store.recordHeartbeats(
          [
            { executorName: 'a', row: row('a'), jobs: [{ queue: 'default', jobIds: [job.id] }] },
            { executorName: 'bad', row: bad, jobs: [] },
          ],
          T0 + 5_000,
        ),
      ).rejects.toThrow();
      expect(await store.getExecutor('a')).toBeNull();
      expect(await store.getExecutor('bad')).toBeNull();
      expect((await store.getJob(job.id))?.lastHeartbeatAt).toBe(T0);
    });

    it('touches last-seen times forward only, leaves the rest of the row, and answers who has a row', async () => {
      await store.upsertExecutor(row('a', { metrics: 'm 1\n' }), T0);
      await store.upsertExecutor(row('b'), T0 + 10_000);
      const before = await store.getExecutor('a');
      expect(
        (
          await store.touchExecutors([
            { name: 'a', at: T0 + 5_000 },
            { name: 'ghost', at: T0 + 5_000 },
            // Of two entries of one name the later wins, in whatever order they come.
            { name: 'a', at: T0 + 7_000 },
            { name: 'a', at: T0 + 6_000 },
            // Never back: b was seen later than this already.
            { name: 'b', at: T0 + 1_000 },
          ])
        ).sort(),
      ).toEqual(['a', 'b']);
      expect(await store.getExecutor('a')).toEqual({ ...before, lastSeenAt: T0 + 7_000 });
      expect((await store.getExecutor('b'))?.lastSeenAt).toBe(T0 + 10_000);
      // A name without a row is not created.
      expect(await store.getExecutor('ghost')).toBeNull();
      expect(await store.touchExecutors([])).toEqual([]);
      // What /metrics serves follows the touched time.
      expect((await store.recentExecutorMetrics(T0 + 20_000, 13_000)).map((m) => m.name)).toEqual(['a']);
    });
  });
}
