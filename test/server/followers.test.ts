/**
 * Log followers read only what lies after their position, are limited per job and per server,
 * and the memory guard refuses new work with 503.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type LogStreamEvent, readLogStreamEvents } from '../../src/protocol/user-api.js';
import { createMemoryGuard } from '../../src/server/memory-guard.js';
import { createFollowerLimits, FOLLOWER_POLLS_AT_ONCE } from '../../src/server/user-api/follower-limits.js';
import type { AttemptFence, Store } from '../../src/store/types.js';
import { waitFor } from '../helpers/env.js';
import { API_TOKEN, type Harness, startHarness } from './harness.js';

let h: Harness | undefined;
const streams: AbortController[] = [];
afterEach(async () => {
  for (const s of streams.splice(0)) s.abort();
  await h?.close();
  h = undefined;
});

const MAX = 64 * 1024 * 1024;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const entry = (key: string, out = '') => ({ key, command: ['sh'], startTime: 't', out });

async function runningJob(hh: Harness): Promise<{ id: number; fence: AttemptFence }> {
  const id = await hh.submit({});
  await hh.dequeue('default', 'e1');
  return { id, fence: { jobId: id, executorName: 'e1', attempt: 1 } };
}

/** Opens a follow stream; resolves with the response once its headers arrived. */
async function follow(hh: Harness, id: number): Promise<Response> {
  const ac = new AbortController();
  streams.push(ac);
  return fetch(`${hh.url}/api/v1/jobs/${id}/logs?follow=1`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
    signal: ac.signal,
  });
}

/** What the server's store handed out: entries returned and output bytes read. */
function countingStore(counts: { entries: number; bytes: number }) {
  return (inner: Store): Store =>
    new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'getLogEntries') {
          return async (...args: Parameters<Store['getLogEntries']>) => {
            const r = await target.getLogEntries(...args);
            counts.entries += r.length;
            return r;
          };
        }
        if (prop === 'readLogOutput') {
          return async (...args: Parameters<Store['readLogOutput']>) => {
            const r = await target.readLogOutput(...args);
            counts.bytes += Buffer.byteLength(r);
            return r;
          };
        }
        return Reflect.get(target, prop, receiver);
      },
    });
}

describe('a follower reads after its position', () => {
  it('after catching up on 1,000 entries, a new entry costs a handful of entry reads and its own bytes', async () => {
    const counts = { entries: 0, bytes: 0 };
    h = await startHarness({ wrapStore: countingStore(counts) });
    const { id, fence } = await runningJob(h);
    for (let i = 1; i <= 1000; i++) {
      const n = await h.store.addLogEntry(fence, entry(`step.${i}`, `output ${i}\n`), MAX);
      await h.store.appendLogOutput(fence, n!, Buffer.byteLength(`output ${i}\n`), '', { exitCode: 0 }, MAX);
    }
    const res = await follow(h, id);
    expect(res.status).toBe(200);
    const events = readLogStreamEvents(res.body!);
    const received: LogStreamEvent[] = [];
    const until = async (cond: () => boolean) => {
      while (!cond()) {
        const { value, done } = await events.next();
        if (done) throw new Error('stream ended');
        received.push(value);
      }
    };
    const outputs = () => received.filter((e) => e.event === 'output').length;
    await until(() => outputs() === 1000);
    expect(received.filter((e) => e.event === 'entry')).toHaveLength(1000);

    // Caught up: from here on each poll should read (almost) nothing.
    counts.entries = 0;
    counts.bytes = 0;
    await h.store.addLogEntry(fence, entry('step.new', 'the new output\n'), MAX);
    await until(() => received.some((e) => e.event === 'output' && e.data.data === 'the new output\n'));
    // The old follower read all 1,000 entries on every 250 ms poll; this one reads the new entry,
    // then re-reads it while it is open, a few times at most during this wait.
    expect(counts.entries).toBeGreaterThanOrEqual(1);
    expect(counts.entries).toBeLessThan(50);
    expect(counts.bytes).toBe(Buffer.byteLength('the new output\n'));
  });

  it('a big output arrives whole, in bounded reads', async () => {
    h = await startHarness();
    const { id, fence } = await runningJob(h);
    const big = 'ü'.repeat(1_500_000);
    await h.store.addLogEntry(fence, entry('big', big), MAX);
    const res = await follow(h, id);
    let got = '';
    let largest = 0;
    for await (const e of readLogStreamEvents(res.body!)) {
      if (e.event !== 'output') continue;
      largest = Math.max(largest, Buffer.byteLength(e.data.data));
      got += e.data.data;
      if (got.length >= big.length) break;
    }
    expect(got).toBe(big);
    expect(largest).toBeLessThanOrEqual(256 * 1024);
  });
});

describe('follower limits', () => {
  it('429 TOO_MANY_FOLLOWERS per job, 503 OVERLOADED per server, with Retry-After; a leaving follower frees its slot', async () => {
    h = await startHarness({
      env: { EXECUTOR_SERVER_MAX_FOLLOWERS_PER_JOB: '2', EXECUTOR_SERVER_MAX_FOLLOWERS: '3' },
    });
    const hh = h;
    const a = await hh.submit({});
    const b = await hh.submit({});
    const c = await hh.submit({});
    expect((await follow(hh, a)).status).toBe(200);
    expect((await follow(hh, a)).status).toBe(200);
    const third = await follow(hh, a);
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('5');
    const body = (await third.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('TOO_MANY_FOLLOWERS');
    expect(body.error.message).toContain('EXECUTOR_SERVER_MAX_FOLLOWERS_PER_JOB=2');

    expect((await follow(hh, b)).status).toBe(200);
    const full = await follow(hh, c);
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('5');
    expect(((await full.json()) as { error: { code: string } }).error.code).toBe('OVERLOADED');

    // The first follower of job a leaves: its slot is free again once the server sees the close.
    streams[0]!.abort();
    const again = await waitFor(
      async () => {
        const r = await follow(hh, c);
        if (r.status === 200) return r;
        await r.body?.cancel();
        return undefined;
      },
      { what: 'a free follower slot' },
    );
    expect(again.status).toBe(200);
  });
});

describe('follower poll slots', () => {
  it('at most FOLLOWER_POLLS_AT_ONCE polls run at once; the next waits for a release, in order', async () => {
    const limits = createFollowerLimits({ perJob: 10, total: 10 });
    const held = await Promise.all(range(FOLLOWER_POLLS_AT_ONCE).map(() => limits.pollSlot()));
    const order: number[] = [];
    const waiting = [1, 2].map((n) =>
      limits.pollSlot().then((release) => {
        order.push(n);
        return release;
      }),
    );
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    held[0]!();
    held[0]!(); // a second release of the same slot frees nothing more
    const first = await waiting[0]!;
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([1]);
    first();
    await waiting[1];
    expect(order).toEqual([1, 2]);
  });
});

describe('memory guard', () => {
  it('over a tiny limit: submissions, dequeues and follows get 503 with Retry-After; reads and heartbeats go on', async () => {
    h = await startHarness({ env: { EXECUTOR_SERVER_MEMORY_LIMIT: '1Mi' } });
    let res = await h.api('POST', '/jobs', { queue: 'default', steps: [{ image: 'a', run: 'true' }] });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    const err = (await res.json()) as { error: { code: string; message: string } };
    expect(err.error.code).toBe('OVERLOADED');
    expect(err.error.message).toContain('EXECUTOR_SERVER_MEMORY_LIMIT');

    res = await h.exec('/.executors/queue/default/heartbeat', {
      executorName: 'e1',
      executorVersion: '5.3.0',
    });
    expect(res.status).toBe(200);
    res = await h.exec('/.executors/queue/default/dequeue', { executorName: 'e1', version: '5.3.0' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(((await res.json()) as { error: string }).error).toContain('memory');

    res = await fetch(`${h.url}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/^memory above limit/);

    expect((await h.api('GET', '/jobs')).status).toBe(200);
  });

  it('refuses while above the limit and admits again below it (RSS sampled at most once a second)', async () => {
    let rss = 100;
    let now = 0;
    const guard = createMemoryGuard({ limitBytes: 1000, rss: () => rss, now: () => now });
    expect(guard.refusal()).toBeNull();
    rss = 5000;
    expect(guard.refusal()).toBeNull(); // the sample is less than a second old
    now += 1000;
    expect(guard.refusal()).toMatch(/above its limit/);
    rss = 10;
    now += 999;
    expect(guard.refusal()).not.toBeNull();
    now += 1;
    expect(guard.refusal()).toBeNull();
    expect(createMemoryGuard({ limitBytes: 0, rss: () => 1e12 }).refusal()).toBeNull();
  });

  it('a sample that cannot be read (EMFILE) keeps the last one, and is reported once per streak', () => {
    let rss: number | Error = 5000;
    let now = 0;
    const errors: unknown[] = [];
    const guard = createMemoryGuard({
      limitBytes: 1000,
      rss: () => {
        if (rss instanceof Error) throw rss;
        return rss;
      },
      now: () => now,
      onError: (e) => errors.push(e),
    });
    expect(guard.refusal()).toMatch(/above its limit/);
    rss = Object.assign(new Error('EMFILE: too many open files, uv_resident_set_memory'), { code: 'EMFILE' });
    for (let i = 0; i < 3; i++) {
      now += 1000;
      expect(guard.refusal()).toMatch(/above its limit/);
    }
    expect(errors).toHaveLength(1);
    expect(guard.state().rssBytes).toBe(5000);
    rss = 10;
    now += 1000;
    expect(guard.refusal()).toBeNull();
    rss = new Error('EMFILE again');
    now += 1000;
    expect(guard.refusal()).toBeNull();
    expect(errors).toHaveLength(2);
  });

  it('an injected guard over its limit refuses a follow with 503 OVERLOADED', async () => {
    h = await startHarness({ memory: createMemoryGuard({ limitBytes: 1, rss: () => 2 }) });
    const id = (
      await h.store.enqueue(
        {
          queue: 'default',
          spec: { queue: 'default', steps: [{ image: 'a', run: 'true' }] },
          repositoryName: '',
          commit: '',
          priority: 0,
          maxAttempts: 1,
          timeoutMs: 60_000,
        },
        h.clock.now(),
      )
    ).id;
    const res = await follow(h, id);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('OVERLOADED');
  });
});
