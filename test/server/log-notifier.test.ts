/**
 * The log notifier and a follower's waker: a wake-up reaches the followers of that job only; one
 * that comes while the follower is reading (not waiting) is kept for its next wait; unsubscribing
 * stops them.
 */
import { describe, expect, it } from 'vitest';
import { createLogNotifier, createLogWaker } from '../../src/server/log-notifier.js';
import { waitFor } from '../helpers/env.js';

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

  it('registers with the store while anyone follows, and a while after (Store.followLogs)', async () => {
    const events: string[] = [];
    let finishRegistration = () => {};
    const follow = () => {
      events.push('follow');
      return new Promise<() => void>((resolve) => {
        finishRegistration = () => resolve(() => events.push('release'));
      });
    };
    const n = createLogNotifier({ follow, lingerMs: 20 });
    await n.ready(); // nobody follows: nothing to wait for
    const a = createLogWaker(n, 1);
    const b = createLogWaker(n, 2);
    expect(events).toEqual(['follow']); // one registration for all followers
    let ready = false;
    const readyNow = n.ready().then(() => {
      ready = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(ready).toBe(false); // a follower waits for the registration before its first read
    finishRegistration();
    await readyNow;
    a.close();
    b.close();
    // A follower that comes back within the linger keeps the registration.
    const c = createLogWaker(n, 3);
    c.close();
    await waitFor(() => events.includes('release'), { what: 'the release after the linger' });
    expect(events).toEqual(['follow', 'release']);
    // The next follower registers again.
    const d = createLogWaker(n, 4);
    expect(events).toEqual(['follow', 'release', 'follow']);
    finishRegistration();
    n.close();
    await waitFor(() => events.length === 4, { what: 'the release at close' });
    d.close();
  });

  it('a registration that fails or never settles does not hold a follower back for long', async () => {
    const failing = createLogNotifier({ follow: () => Promise.reject(new Error('database away')) });
    const f = createLogWaker(failing, 1);
    await failing.ready();
    f.close();
    failing.close();
    const stuck = createLogNotifier({ follow: () => new Promise<() => void>(() => {}) });
    const s = createLogWaker(stuck, 1);
    await stuck.ready(); // settles after READY_WAIT_MS (the test times out if it never does)
    s.close();
    stuck.close();
  });
});
