/**
 * Parked long-polls cost the store nothing: idle executors do not re-run claims on a timer; an
 * enqueue of k jobs answers k of them and leaves the rest parked; a job put back with a retry
 * backoff wakes a parked executor when it becomes due; a repeated dequeue body is decoded once.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LONG_POLL_HEADER } from '../../src/protocol/capabilities.js';
import { dequeueRequestSchema } from '../../src/protocol/http.js';
import type { Store } from '../../src/store/types.js';
import { waitFor } from '../helpers/env.js';
import { type Harness, startHarness } from './harness.js';

const Q = '/.executors/queue';
const PARKED = 20;

/** Counts the store calls the server makes, by method name. */
function countingStore(counts: Map<string, number>) {
  return (inner: Store): Store =>
    new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function' || typeof prop !== 'string') return v;
        return (...args: unknown[]) => {
          counts.set(prop, (counts.get(prop) ?? 0) + 1);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
}

let h: Harness;
const counts = new Map<string, number>();
const count = (m: string) => counts.get(m) ?? 0;
beforeEach(async () => {
  counts.clear();
  h = await startHarness({ wrapStore: countingStore(counts) });
});
afterEach(async () => {
  await h.close();
});

function park(executor: string, queue = 'idle') {
  return h.exec(
    `${Q}/${queue}/dequeue`,
    { executorName: executor, version: '5.3.0' },
    { [LONG_POLL_HEADER]: '25000' },
  );
}

describe('parked long-polls', () => {
  it('cost no claim statements while idle, and k enqueued jobs answer exactly k of them', async () => {
    for (let i = 0; i < PARKED; i++) await h.ping('idle', `e${i}`);
    const pending = Array.from({ length: PARKED }, (_, i) => park(`e${i}`));
    await waitFor(() => h.app.waiting() === PARKED, { what: 'every dequeue parked' });
    // The first request found the queue empty; the others parked without asking the store.
    const claimsWhenParked = count('dequeue');
    expect(claimsWhenParked).toBeLessThan(PARKED);
    // Let the notifier's one safety re-check run a few times (it is the only store call now).
    const rechecks = count('readyCounts');
    await waitFor(() => count('readyCounts') >= rechecks + 3, { what: 'three safety re-checks' });
    expect(count('dequeue')).toBe(claimsWhenParked);

    const ids = [
      await h.submit({ queue: 'idle' }),
      await h.submit({ queue: 'idle' }),
      await h.submit({ queue: 'idle' }),
    ];
    await waitFor(() => h.app.waiting() === PARKED - 3, { what: 'three dequeues answered' });
    // Only the woken three tried to claim: no herd of twenty claims for three jobs.
    expect(count('dequeue') - claimsWhenParked).toBeLessThanOrEqual(3 + 1);
    for (const id of ids) expect((await h.store.getJob(id))!.state).toBe('processing');
    await h.app.close();
    const answers = await Promise.all(pending);
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 204)).toHaveLength(PARKED - 3);
  });

  it('a job put back with a retry backoff wakes a parked executor when it becomes due', async () => {
    await h.close();
    h = await startHarness({
      wrapStore: countingStore(counts),
      env: { EXECUTOR_SERVER_RETRY_BACKOFF_BASE: '1s', EXECUTOR_SERVER_RETRY_BACKOFF_MAX: '1s' },
    });
    const id = await h.submit({ queue: 'retry', maxAttempts: 2 });
    const claimed = await h.dequeue('retry', 'e1');
    expect(claimed.id).toBe(id);
    const res = await h.job(`${Q}/retry/markErrored`, claimed, 'e1', {
      executorName: 'e1',
      jobId: id,
      errorMessage: 'boom',
    });
    expect(res.status).toBe(204);
    const after = (await h.store.getJob(id))!;
    expect(after.state).toBe('queued');
    expect(after.processAfter).not.toBeNull();
    // The server's clock is the harness's fake one: the job becomes due when it moves on.
    const pending = park('e2', 'retry');
    await waitFor(() => h.app.waiting() === 1, { what: 'a parked dequeue' });
    h.clock.set(after.processAfter!);
    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { id: number }).id).toBe(id);
  });

  it("decode a repeated body once: an idle executor's long-polls repeat it byte for byte", async () => {
    const parse = vi.spyOn(dequeueRequestSchema, 'safeParse');
    try {
      const body = { executorName: 'decoded-once', version: '5.3.0' };
      for (let i = 0; i < 3; i++) expect((await h.exec(`${Q}/idle/dequeue`, body)).status).toBe(204);
      expect(parse).toHaveBeenCalledTimes(1);
      // Another body is decoded: what is cached is the text, not the executor.
      expect((await h.exec(`${Q}/idle/dequeue`, { ...body, numCPUs: 4 })).status).toBe(204);
      expect(parse).toHaveBeenCalledTimes(2);
    } finally {
      parse.mockRestore();
    }
  });
});
