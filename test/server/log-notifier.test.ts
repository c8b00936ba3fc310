/**
 * The log notifier and a follower's waker: a wake-up reaches the followers of that job only; one
 * that comes while the follower is reading (not waiting) is kept for its next wait; unsubscribing
 * stops them.
 */
import { describe, expect, it } from 'vitest';
import { createLogNotifier, createLogWaker } from '../../src/server/log-notifier.js';

/** Far beyond the test's timeout: a wait that ends must have been woken (or aborted). */
const NEVER_MS = 600_000;

describe('log notifier', () => {
  it('wakes the waiters of that job only', async () => {
    const n = createLogNotifier();
    const a = createLogWaker(n, 1);
    const b = createLogWaker(n, 2);
    const ac = new AbortController();
    let bDone = false;
    const bWait = b.wait(NEVER_MS, ac.signal).then(() => {
      bDone = true;
    });
    const aWait = a.wait(NEVER_MS, ac.signal);
    n.notify(1);
    await aWait;
    expect(a.woken()).toBe(1);
    expect(bDone).toBe(false);
    n.notify(2);
    await bWait;
    expect(b.woken()).toBe(1);
    a.close();
    b.close();
    expect(n.subscribers()).toBe(0);
  });

  it('keeps a wake-up that came between two waits', async () => {
    const n = createLogNotifier();
    const w = createLogWaker(n, 7);
    const ac = new AbortController();
    // The follower is reading: nobody waits, the wake-up is kept.
    n.notify(7);
    await w.wait(NEVER_MS, ac.signal);
    expect(w.woken()).toBe(1);
    // Consumed: the next wait needs a new wake-up (here, the abort ends it).
    const next = w.wait(NEVER_MS, ac.signal);
    ac.abort();
    await next;
    expect(w.woken()).toBe(1);
    w.close();
  });

  it('an unsubscribed follower is not woken; closing twice is harmless', async () => {
    const n = createLogNotifier();
    const w = createLogWaker(n, 3);
    const other = createLogWaker(n, 3);
    expect(n.subscribers()).toBe(2);
    w.close();
    w.close();
    expect(n.subscribers()).toBe(1);
    n.notify(3);
    const ac = new AbortController();
    await other.wait(NEVER_MS, ac.signal);
    expect(other.woken()).toBe(1);
    const after = w.wait(NEVER_MS, ac.signal);
    ac.abort();
    await after;
    expect(w.woken()).toBe(0);
    other.close();
  });
});
