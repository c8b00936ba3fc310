/**
 * The long-poll wake-up on its own: events wake as many waiters as there are jobs, the
 * longest-waiting first; due times and the safety re-check wake them without a timer per waiter;
 * "known empty" can never outlive an event that came while a claim attempt ran.
 */
import { describe, expect, it } from 'vitest';
import { createEnqueueNotifier } from '../../src/server/enqueue-notifier.js';

const LONG = 60_000;

describe('enqueue notifier', () => {
  it('wakes only as many waiters as there are jobs, longest-waiting first', async () => {
    const n = createEnqueueNotifier();
    const order: number[] = [];
    const waits = [0, 1, 2, 3, 4].map(async (i) => {
      const q = await n.wait(['q'], LONG);
      order.push(i);
      return q;
    });
    expect(n.waiting()).toBe(5);
    n.notify('q', 2);
    expect(await Promise.all([waits[0], waits[1]])).toEqual(['q', 'q']);
    expect(order).toEqual([0, 1]);
    expect(n.waiting()).toBe(3);
    n.notify('other');
    n.notify('q');
    expect(await waits[2]).toBe('q');
    expect(n.waiting()).toBe(2);
    n.close();
    expect(await Promise.all([waits[3], waits[4]])).toEqual([null, null]);
    expect(n.waiting()).toBe(0);
  });

  it('a waiter on several queues is woken once, by the first event, and leaves every queue', async () => {
    const n = createEnqueueNotifier();
    const multi = n.wait(['a', 'b'], LONG);
    const onB = n.wait(['b'], LONG);
    n.notify('a');
    expect(await multi).toBe('a');
    n.notify('b');
    expect(await onB).toBe('b');
    expect(n.waiting()).toBe(0);
    n.close();
  });

  it('ends a wait on its timeout or its signal with null', async () => {
    const n = createEnqueueNotifier();
    expect(await n.wait(['q'], 1)).toBeNull();
    const ac = new AbortController();
    const w = n.wait(['q'], LONG, ac.signal);
    ac.abort();
    expect(await w).toBeNull();
    expect(n.waiting()).toBe(0);
    n.close();
  });

  it('a job that becomes due wakes one waiter at its time, with one timer per queue', async () => {
    const n = createEnqueueNotifier();
    const first = n.wait(['q'], LONG);
    const second = n.wait(['q'], LONG);
    const start = Date.now();
    n.dueAt('q', start + 200);
    n.dueAt('q', start + 50); // the earlier time replaces the later one
    n.dueAt('q', start + 400); // a later one is covered by the timer already set
    expect(await first).toBe('q');
    expect(Date.now() - start).toBeGreaterThanOrEqual(45);
    expect(n.waiting()).toBe(1);
    n.close();
    expect(await second).toBeNull();
  });

  it('the safety re-check wakes as many waiters as the store says are ready, one call for all queues', async () => {
    const calls: string[][] = [];
    let ready = new Map<string, number>();
    const n = createEnqueueNotifier({
      recheckMs: 20,
      readyCounts: async (queues) => {
        calls.push([...queues].sort());
        return ready;
      },
    });
    const a = [n.wait(['a'], LONG), n.wait(['a'], LONG), n.wait(['a'], LONG)];
    const b = n.wait(['b'], LONG);
    ready = new Map([
      ['a', 2],
      ['b', 0],
    ]);
    expect(await Promise.all([a[0], a[1]])).toEqual(['a', 'a']);
    expect(n.waiting()).toBe(2);
    expect(calls.every((c) => c.join() === 'a,b')).toBe(true);
    n.close();
    expect(await Promise.all([a[2], b])).toEqual([null, null]);
  });

  it('known empty holds until an event, and a claim attempt that raced an event cannot mark it', () => {
    const n = createEnqueueNotifier();
    expect(n.knownEmpty(['q'])).toBe(false);
    let e = n.epoch(['q']);
    n.markEmpty(['q'], e);
    expect(n.knownEmpty(['q'])).toBe(true);
    expect(n.knownEmpty(['q', 'r'])).toBe(false);
    n.notify('q');
    expect(n.knownEmpty(['q'])).toBe(false);

    // An attempt starts, an enqueue lands while it runs, the attempt (which missed it) ends empty.
    e = n.epoch(['q', 'r']);
    n.notify('r');
    n.markEmpty(['q', 'r'], e);
    expect(n.knownEmpty(['q'])).toBe(false);
    expect(n.knownEmpty(['r'])).toBe(false);

    e = n.epoch(['q']);
    n.markEmpty(['q'], e);
    n.dueAt('q', Date.now() + LONG);
    expect(n.knownEmpty(['q'])).toBe(true); // a job due later is not ready now
    n.close();
  });
});
