/**
 * The audit trail's part of the Store contract (job_events), run against both twins by
 * sqlite.test.ts and postgres.test.ts: events written with the change they record, and only when
 * something changed; listed oldest first; gone with their job.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewJob, Store } from '../../src/store/types.js';

const T0 = Date.UTC(2026, 0, 1);

const newJob = (): NewJob => ({
  queue: 'audit',
  spec: { queue: 'audit', steps: [{ image: 'busybox', run: 'true' }] },
  repositoryName: '',
  commit: '',
  priority: 0,
  maxAttempts: 1,
  timeoutMs: 60_000,
});

export function runJobEventsContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract, audit trail: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await makeStore();
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
    });

    it('records submitted, canceled and retried with their actors, oldest first', async () => {
      const job = await store.enqueue(newJob(), T0, 'alice');
      await store.cancelJob(job.id, T0 + 10, 'bob');
      await store.retryJob(job.id, T0 + 20, 'admin');
      expect(await store.listJobEvents(job.id)).toEqual([
        { jobId: job.id, at: T0, actor: 'alice', action: 'submitted' },
        { jobId: job.id, at: T0 + 10, actor: 'bob', action: 'canceled' },
        { jobId: job.id, at: T0 + 20, actor: 'admin', action: 'retried' },
      ]);
    });

    it('without an actor nothing is recorded; a change that did not happen is not recorded', async () => {
      const quiet = await store.enqueue(newJob(), T0);
      await store.cancelJob(quiet.id, T0 + 1);
      expect(await store.listJobEvents(quiet.id)).toEqual([]);

      const job = await store.enqueue(newJob(), T0, 'alice');
      // Queued: a retry changes nothing, so there is nothing to record.
      expect(await store.retryJob(job.id, T0 + 1, 'mallory')).toMatchObject({ state: 'queued' });
      await store.cancelJob(job.id, T0 + 2, 'bob');
      // Canceled (terminal): a second cancel changes nothing.
      expect(await store.cancelJob(job.id, T0 + 3, 'carol')).toMatchObject({ state: 'canceled' });
      expect((await store.listJobEvents(job.id)).map((e) => [e.actor, e.action])).toEqual([
        ['alice', 'submitted'],
        ['bob', 'canceled'],
      ]);
      expect(await store.cancelJob(job.id + 1000, T0, 'bob')).toBeNull();
      expect(await store.listJobEvents(job.id + 1000)).toEqual([]);
    });

    it('a cancel of a processing job (the flag) is recorded too', async () => {
      const job = await store.enqueue(newJob(), T0, 'alice');
      const claimed = await store.dequeue({
        queue: 'audit',
        executorName: 'exec-1',
        now: T0 + 1,
        tokenHash: 'a'.repeat(64),
        priorityStepMs: 60_000,
      });
      expect(claimed?.job.id).toBe(job.id);
      expect(await store.cancelJob(job.id, T0 + 2, 'bob')).toMatchObject({
        state: 'processing',
        cancel: true,
      });
      expect((await store.listJobEvents(job.id)).map((e) => e.action)).toEqual(['submitted', 'canceled']);
    });

    it('addJobEvent appends to an existing job only', async () => {
      const job = await store.enqueue(newJob(), T0, 'alice');
      expect(await store.addJobEvent({ jobId: job.id, at: T0 + 5, actor: 'ops', action: 'retried' })).toBe(
        true,
      );
      expect(await store.addJobEvent({ jobId: job.id + 1000, at: T0, actor: 'ops', action: 'retried' })).toBe(
        false,
      );
      expect(await store.listJobEvents(job.id)).toEqual([
        { jobId: job.id, at: T0, actor: 'alice', action: 'submitted' },
        { jobId: job.id, at: T0 + 5, actor: 'ops', action: 'retried' },
      ]);
      // Each job has its own trail.
      const other = await store.enqueue(newJob(), T0, 'zed');
      expect((await store.listJobEvents(other.id)).map((e) => e.actor)).toEqual(['zed']);
    });
  });
}
