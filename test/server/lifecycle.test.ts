import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LONG_POLL_HEADER, MAX_LONG_POLL_MS } from '../../src/protocol/capabilities.js';
import { waitFor } from '../helpers/env.js';
import { EXECUTOR_TOKEN, type Harness, startHarness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await startHarness({
    env: { EXECUTOR_SERVER_RETRY_BACKOFF_BASE: '10s', EXECUTOR_SERVER_RETRY_BACKOFF_MAX: '15s' },
  });
});
afterEach(async () => {
  await h.close();
});

const Q = '/.executors/queue';
type View = {
  state: string;
  attempts: number;
  numResets: number;
  failureMessage: string | null;
  cancelRequested: boolean;
};
const view = async (id: number) => (await (await h.api('GET', `/jobs/${id}`)).json()) as View;

describe('stalled jobs (fake clock)', () => {
  it('requeues a job unheard of for 25 s, kills its token, and fails it after 3 resets', async () => {
    const id = await h.submit({});
    let job = await h.dequeue('default', 'e1');
    h.clock.advance(20_000);
    // A heartbeat renews the lease.
    await h.exec(`${Q}/default/heartbeat`, { executorName: 'e1', jobIds: [id] });
    h.clock.advance(20_000);
    expect(await h.app.loops.resetter.runOnce(h.clock.now())).toEqual({ reset: [], failed: [] });
    h.clock.advance(6_000);
    expect(await h.app.loops.resetter.runOnce(h.clock.now())).toEqual({ reset: [id], failed: [] });
    expect(await view(id)).toMatchObject({ state: 'queued', numResets: 1 });
    const stale = await h.job(`${Q}/default/markComplete`, job, 'e1', { executorName: 'e1', jobId: id });
    expect(stale.status).toBe(401);
    for (let i = 2; i <= 3; i++) {
      job = await h.dequeue('default', 'e1');
      expect(job.attempt).toBe(i);
      h.clock.advance(26_000);
      await h.app.loops.resetter.runOnce(h.clock.now());
    }
    expect(await view(id)).toMatchObject({ state: 'queued', numResets: 3 });
    await h.dequeue('default', 'e1');
    h.clock.advance(26_000);
    expect(await h.app.loops.resetter.runOnce(h.clock.now())).toEqual({ reset: [], failed: [id] });
    expect((await view(id)).state).toBe('failed');
  });
});

describe('stalled jobs after a server restart (fake clock)', () => {
  it('gives executors a full stall window to reach a restarted server before resetting', async () => {
    const { createServer } = await import('../../src/server/index.js');
    const { createLogger } = await import('../../src/lib/logger.js');
    const id = await h.submit({});
    await h.dequeue('default', 'e1');
    // The server is down for a minute: no heartbeat can arrive. A new server starts on the store.
    h.clock.advance(60_000);
    const restarted = createServer({
      store: h.store,
      config: h.config,
      clock: h.clock,
      logger: createLogger({ level: 'error' }),
    });
    try {
      expect(await restarted.loops.resetter.runOnce(h.clock.now())).toEqual({ reset: [], failed: [] });
      h.clock.advance(24_000);
      expect(await restarted.loops.resetter.runOnce(h.clock.now())).toEqual({ reset: [], failed: [] });
      h.clock.advance(2_000);
      expect(await restarted.loops.resetter.runOnce(h.clock.now())).toEqual({ reset: [id], failed: [] });
    } finally {
      await restarted.close();
    }
  });
});

describe('retries', () => {
  it('markErrored requeues with backoff until maxAttempts, then fails', async () => {
    const id = await h.submit({ maxAttempts: 2 });
    const job = await h.dequeue('default', 'e1');
    const r = await h.job(`${Q}/default/markErrored`, job, 'e1', {
      executorName: 'e1',
      jobId: id,
      errorMessage: 'boom',
    });
    expect(r.status).toBe(204);
    expect(await view(id)).toMatchObject({ state: 'queued', failureMessage: 'boom' });
    // Not due before the 10 s backoff.
    expect((await h.exec(`${Q}/default/dequeue`, { executorName: 'e1', version: '5.3.0' })).status).toBe(204);
    h.clock.advance(10_001);
    const second = await h.dequeue('default', 'e1');
    expect(second.attempt).toBe(2);
    await h.job(`${Q}/default/markErrored`, second, 'e1', {
      executorName: 'e1',
      jobId: id,
      errorMessage: 'boom again',
    });
    expect(await view(id)).toMatchObject({ state: 'failed', attempts: 2 });
  });

  it('user retry brings a failed job back; retrying a queued job is 409 CONFLICT', async () => {
    const id = await h.submit({});
    let res = await h.api('POST', `/jobs/${id}/retry`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('CONFLICT');
    const job = await h.dequeue('default', 'e1');
    await h.job(`${Q}/default/markFailed`, job, 'e1', { executorName: 'e1', jobId: id, errorMessage: 'no' });
    res = await h.api('POST', `/jobs/${id}/retry`);
    expect(res.status).toBe(200);
    expect((await view(id)).state).toBe('queued');
  });
});

describe('cancel', () => {
  it('cancels a queued job at once', async () => {
    const id = await h.submit({});
    const res = await h.api('POST', `/jobs/${id}/cancel`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as View).state).toBe('canceled');
    expect((await h.exec(`${Q}/default/dequeue`, { executorName: 'e1', version: '5.3.0' })).status).toBe(204);
    expect((await h.api('POST', `/jobs/${id}/cancel`)).status).toBe(409);
  });

  it('flags a processing job; the heartbeat tells the executor; its markFailed ends it canceled', async () => {
    const id = await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const res = await h.api('POST', `/jobs/${id}/cancel`);
    expect(((await res.json()) as View).cancelRequested).toBe(true);
    const hb = await h.exec(`${Q}/default/heartbeat`, { executorName: 'e1', jobIds: [id] });
    expect(await hb.json()).toEqual({ knownIds: [String(id)], cancelIds: [String(id)] });
    await h.job(`${Q}/default/markFailed`, job, 'e1', {
      executorName: 'e1',
      jobId: id,
      errorMessage: 'canceled',
    });
    expect((await view(id)).state).toBe('canceled');
  });
});

describe('deadline', () => {
  it('the server ends a job past its timeout and its token dies', async () => {
    const id = await h.submit({ timeout: '1m' });
    const job = await h.dequeue('default', 'e1');
    h.clock.advance(30_000);
    await h.exec(`${Q}/default/heartbeat`, { executorName: 'e1', jobIds: [id] });
    expect(await h.app.loops.deadlines.runOnce(h.clock.now())).toEqual([]);
    h.clock.advance(31_000);
    expect(await h.app.loops.deadlines.runOnce(h.clock.now())).toEqual([id]);
    const v = await view(id);
    expect(v.state).toBe('failed');
    expect(v.failureMessage).toMatch(/1m|60|timeout|deadline/i);
    const hb = await h.exec(`${Q}/default/heartbeat`, { executorName: 'e1', jobIds: [id] });
    expect(await hb.json()).toEqual({ knownIds: [], cancelIds: [] });
    const late = await h.job(`${Q}/default/markComplete`, job, 'e1', { executorName: 'e1', jobId: id });
    expect(late.status).toBe(401);
  });
});

describe('executor janitor', () => {
  it('forgets executors unseen for 7 days', async () => {
    await h.ping('default', 'old');
    h.clock.advance(6 * 86_400_000);
    await h.ping('default', 'young');
    h.clock.advance(86_400_000 + 1);
    expect(await h.app.loops.executorJanitor.runOnce(h.clock.now())).toBe(1);
    const list = (await (await h.api('GET', '/executors')).json()) as { executors: { name: string }[] };
    expect(list.executors.map((e) => e.name)).toEqual(['young']);
  });
});

describe('long-poll dequeue', () => {
  /**
   * The longest hold the server grants, and the bound on an answer that should come at once: a
   * third of the hold, so an answer that came only when the hold ran out fails, while the scheduling
   * delays of a loaded 2-core machine (seconds) pass.
   */
  const HOLD_MS = MAX_LONG_POLL_MS;
  const ANSWERED_WITHIN_MS = HOLD_MS / 3;
  it('holds an empty dequeue and answers as soon as a job is enqueued', async () => {
    await h.ping('lp', 'e1');
    const pending = h.exec(
      `${Q}/lp/dequeue`,
      { executorName: 'e1', version: '5.3.0' },
      { [LONG_POLL_HEADER]: String(HOLD_MS) },
    );
    // Wait until the request is parked, then enqueue.
    await waitFor(() => h.app.waiting() > 0, { what: 'a parked dequeue' });
    const id = await h.submit({ queue: 'lp' });
    const enqueued = Date.now();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { id: number }).id).toBe(id);
    expect(Date.now() - enqueued).toBeLessThan(ANSWERED_WITHIN_MS);
  });

  it('a parked dequeue whose client went away claims nothing: the job waits for the next executor', async () => {
    await h.ping('lp', 'e1');
    const aborter = new AbortController();
    const pending = fetch(`${h.url}${Q}/lp/dequeue`, {
      method: 'POST',
      headers: {
        authorization: `token-executor ${EXECUTOR_TOKEN}`,
        'content-type': 'application/json',
        [LONG_POLL_HEADER]: '20000',
      },
      body: JSON.stringify({ executorName: 'e1', version: '5.3.0' }),
      signal: aborter.signal,
    }).catch((e: Error) => e);
    await waitFor(() => h.app.waiting() > 0, { what: 'a parked dequeue' });
    aborter.abort();
    expect(await pending).toBeInstanceOf(Error);
    await waitFor(() => h.app.waiting() === 0, { what: 'the parked dequeue to end' });
    const id = await h.submit({ queue: 'lp' });
    expect((await h.store.getJob(id))!.state).toBe('queued');
    const res = await h.exec(`${Q}/lp/dequeue`, { executorName: 'e1', version: '5.3.0' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { id: number }).id).toBe(id);
  });

  it('answers 204 when the wait ends with nothing, and at once when the server closes', async () => {
    let res = await h.exec(
      `${Q}/lp/dequeue`,
      { executorName: 'e1', version: '5.3.0' },
      { [LONG_POLL_HEADER]: '300' },
    );
    expect(res.status).toBe(204);
    const pending = h.exec(
      `${Q}/lp/dequeue`,
      { executorName: 'e1', version: '5.3.0' },
      { [LONG_POLL_HEADER]: String(HOLD_MS) },
    );
    await waitFor(() => h.app.waiting() > 0, { what: 'a parked dequeue' });
    const started = Date.now();
    await h.app.close();
    res = await pending;
    expect(res.status).toBe(204);
    expect(Date.now() - started).toBeLessThan(ANSWERED_WITHIN_MS);
  });
});
