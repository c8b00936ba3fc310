/**
 * Heartbeats written together (executor-api/heartbeat-writer.ts): concurrent heartbeats go to the
 * store as one batch and each still gets its exact answer, marks and cancels committed before the
 * batch included; an unchanged executor row is written again only once it has aged; a row the
 * store refuses costs no other heartbeat anything, nor its own executor its jobs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createFakeTimers, type FakeTimers } from '../../src/lib/clock.js';
import {
  EXECUTOR_ROW_REFRESH_MS,
  HEARTBEAT_TOUCH_INTERVAL_MS,
} from '../../src/server/executor-api/heartbeat-writer.js';
import type { ExecutorSeen, HeartbeatWrite, Store } from '../../src/store/types.js';
import { waitFor } from '../helpers/env.js';
import { type Harness, startHarness } from './harness.js';

const Q = '/.executors/queue';

/** The server's store, with its heartbeat batches and touches recorded, batches held while `hold` is set. */
function gated(inner: Store) {
  const batches: HeartbeatWrite[][] = [];
  const touches: ExecutorSeen[][] = [];
  let release: (() => void) | null = null;
  let held: Promise<void> | null = null;
  let refuse = (_w: HeartbeatWrite[]) => false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'recordHeartbeats') {
        return async (batch: HeartbeatWrite[], now: number) => {
          batches.push(batch);
          if (held) await held;
          if (refuse(batch)) throw new Error('the store refuses this batch');
          return target.recordHeartbeats(batch, now);
        };
      }
      if (prop === 'touchExecutors') {
        return (seen: ExecutorSeen[]) => {
          touches.push(seen);
          return target.touchExecutors(seen);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return {
    store,
    batches,
    touches,
    hold() {
      held = new Promise((r) => {
        release = r;
      });
    },
    release() {
      held = null;
      release?.();
    },
    refuseWhen(f: (w: HeartbeatWrite[]) => boolean) {
      refuse = f;
    },
  };
}

let h: Harness;
afterEach(async () => {
  await h?.close();
});

async function start(timers?: FakeTimers) {
  let g: ReturnType<typeof gated> | undefined;
  h = await startHarness({
    timers,
    wrapStore: (s) => {
      g = gated(s);
      return g.store;
    },
  });
  return g!;
}

/** The heartbeat counters of /metrics. */
async function heartbeatCounters() {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
  return {
    writes: value('src_executor_server_heartbeat_writes_total'),
    batches: value('src_executor_server_heartbeat_batches_total'),
    touches: value('src_executor_server_heartbeat_touches_total'),
    touchWrites: value('src_executor_server_heartbeat_touch_writes_total'),
  };
}

const beat = (executor: string, jobIds: number[], extra: Record<string, unknown> = {}) =>
  h.exec(`${Q}/default/heartbeat`, { executorName: executor, executorVersion: '5.3.0', jobIds, ...extra });

describe('coalesced heartbeats', () => {
  it('answers each heartbeat of a batch exactly, with marks and cancels committed before it', async () => {
    const g = await start();
    const names = ['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7'];
    const jobs = new Map<string, { id: number; token: string }>();
    for (const name of names) {
      await h.submit({});
      jobs.set(name, await h.dequeue('default', name));
    }
    const id = (name: string) => jobs.get(name)!.id;
    // Committed before any heartbeat: e2's job completed, e3's canceled.
    const done = await h.job(`${Q}/default/markComplete`, jobs.get('e2')!, 'e2', {
      executorName: 'e2',
      jobId: id('e2'),
    });
    expect(done.status).toBe(204);
    expect((await h.api('POST', `/jobs/${id('e3')}/cancel`)).status).toBe(200);

    h.clock.advance(1_000);
    const counters = await heartbeatCounters();
    g.hold();
    g.batches.length = 0;
    // e0's batch is held in the store; the others arrive meanwhile and wait for the next batch.
    const first = beat('e0', [id('e0')]);
    await waitFor(() => h.app.heartbeatsPending() === 1, { what: 'the first batch held' });
    const rest = names.slice(1).map((name) =>
      name === 'e5'
        ? h.exec(`${Q}/heartbeat`, {
            executorName: 'e5',
            queueNames: ['default'],
            jobIdsByQueue: [{ queueName: 'default', jobIds: [String(id('e5')), '999999'] }],
          })
        : beat(name, [id(name)]),
    );
    await waitFor(() => h.app.heartbeatsPending() === names.length, { what: 'every heartbeat waiting' });
    // Committed after e4's heartbeat arrived and before its batch: its answer has it too.
    expect((await h.api('POST', `/jobs/${id('e4')}/cancel`)).status).toBe(200);
    g.release();

    const answers = await Promise.all([first, ...rest].map(async (r) => (await r).json()));
    const answer = (name: string) => answers[names.indexOf(name)];
    expect(answer('e0')).toEqual({ knownIds: [String(id('e0'))], cancelIds: [] });
    expect(answer('e1')).toEqual({ knownIds: [String(id('e1'))], cancelIds: [] });
    expect(answer('e2')).toEqual({ knownIds: [], cancelIds: [] });
    expect(answer('e3')).toEqual({ knownIds: [String(id('e3'))], cancelIds: [String(id('e3'))] });
    expect(answer('e4')).toEqual({ knownIds: [String(id('e4'))], cancelIds: [String(id('e4'))] });
    expect(answer('e5')).toEqual({ knownIds: [`${id('e5')}-default`], cancelIds: [] });
    expect(answer('e6')).toEqual({ knownIds: [String(id('e6'))], cancelIds: [] });
    // Two store writes for eight heartbeats, and /metrics counts them so.
    expect(g.batches.map((b) => b.map((w) => w.executorName))).toEqual([['e0'], names.slice(1)]);
    const after = await heartbeatCounters();
    expect([after.writes - counters.writes, after.batches - counters.batches]).toEqual([8, 2]);
    // Every lease was renewed.
    for (const name of names.filter((n) => n !== 'e2'))
      expect((await h.store.getJob(id(name)))?.lastHeartbeatAt).toBe(h.clock.now());
  });

  it('writes an unchanged executor row again only once it is EXECUTOR_ROW_REFRESH_MS old', async () => {
    const g = await start(createFakeTimers());
    await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const t0 = h.clock.now();
    g.batches.length = 0;
    h.clock.advance(1_000);
    // The harness's dequeue pinged with this same body at t0: nothing to write, nothing asked.
    expect(await (await beat('e1', [])).json()).toEqual({ knownIds: [], cancelIds: [] });
    expect(g.batches).toEqual([]);
    // Job ids are written with no row.
    expect(await (await beat('e1', [job.id])).json()).toEqual({ knownIds: [String(job.id)], cancelIds: [] });
    expect(g.batches.map((b) => b.map((w) => w.row))).toEqual([[null]]);
    expect((await h.store.getJob(job.id))?.lastHeartbeatAt).toBe(t0 + 1_000);
    expect((await h.store.getExecutor('e1'))?.lastSeenAt).toBe(t0);
    // Other telemetry, or other metrics, is written at once.
    await beat('e1', [], { gitVersion: '2.44.0' });
    expect((await h.store.getExecutor('e1'))?.gitVersion).toBe('2.44.0');
    await beat('e1', [], { gitVersion: '2.44.0', prometheusMetrics: 'up 1\n' });
    expect((await h.store.getExecutor('e1'))?.metrics).toContain('up{');
    expect(g.batches).toHaveLength(3);
    // The same again: not written until the row has aged.
    h.clock.advance(EXECUTOR_ROW_REFRESH_MS - 1);
    await beat('e1', [], { gitVersion: '2.44.0', prometheusMetrics: 'up 1\n' });
    expect(g.batches).toHaveLength(3);
    h.clock.advance(1);
    await beat('e1', [], { gitVersion: '2.44.0', prometheusMetrics: 'up 1\n' });
    expect(g.batches).toHaveLength(4);
    expect((await h.store.getExecutor('e1'))?.lastSeenAt).toBe(h.clock.now());
  });

  it('touches the last-seen time of executors whose rows it does not write, one store write a second', async () => {
    const timers = createFakeTimers();
    const g = await start(timers);
    for (const name of ['e1', 'e2']) await h.ping('default', name);
    const t0 = h.clock.now();
    const rowBefore = await h.store.getExecutor('e1');
    g.batches.length = 0;
    h.clock.advance(1_000);
    await beat('e1', []);
    h.clock.advance(1_000);
    await beat('e1', []);
    await beat('e2', []);
    // Nothing written while the heartbeats are answered.
    expect([g.batches, g.touches]).toEqual([[], []]);
    const before = await heartbeatCounters();
    // The touch, once the interval is up: both in one write, each at its latest heartbeat (not the
    // time the touch runs).
    h.clock.advance(30_000);
    timers.advance(HEARTBEAT_TOUCH_INTERVAL_MS);
    await waitFor(async () => (await h.store.getExecutor('e2'))?.lastSeenAt === t0 + 2_000, {
      what: 'the touch written',
    });
    expect(g.touches).toEqual([
      [
        { name: 'e1', at: t0 + 2_000 },
        { name: 'e2', at: t0 + 2_000 },
      ],
    ]);
    expect(await h.store.getExecutor('e1')).toEqual({ ...rowBefore, lastSeenAt: t0 + 2_000 });
    const after = await heartbeatCounters();
    expect([after.touches - before.touches, after.touchWrites - before.touchWrites]).toEqual([2, 1]);
    // A row that is gone (the janitor took it) is not touched back: the next heartbeat writes it.
    await h.store.deleteExecutorsSeenBefore(h.clock.now() + 1);
    await beat('e1', []);
    timers.advance(HEARTBEAT_TOUCH_INTERVAL_MS);
    await waitFor(() => g.touches.length === 2, { what: 'the second touch' });
    await waitFor(
      async () => {
        await beat('e1', []);
        return g.batches.length === 1;
      },
      { what: 'the row written again' },
    );
    expect((await h.store.getExecutor('e1'))?.lastSeenAt).toBe(h.clock.now());
    expect(g.batches.flat().map((w) => w.row?.name)).toEqual(['e1']);
  });

  it('fails no other heartbeat when the store refuses a row, and keeps that executor its jobs', async () => {
    const g = await start();
    await h.submit({});
    await h.submit({});
    const good = await h.dequeue('default', 'good');
    const poison = await h.dequeue('default', 'poison');
    g.refuseWhen((batch) => batch.some((w) => w.row?.name === 'poison'));
    g.hold();
    g.batches.length = 0;
    const first = beat('other', []);
    await waitFor(() => h.app.heartbeatsPending() === 1, { what: 'the first batch held' });
    const a = beat('good', [good.id], { os: 'plan9' });
    const b = beat('poison', [poison.id], { os: 'plan9' });
    await waitFor(() => h.app.heartbeatsPending() === 3, { what: 'every heartbeat waiting' });
    g.release();
    expect((await first).status).toBe(200);
    expect(await (await a).json()).toEqual({ knownIds: [String(good.id)], cancelIds: [] });
    expect(await (await b).json()).toEqual({ knownIds: [String(poison.id)], cancelIds: [] });
    expect((await h.store.getExecutor('good'))?.os).toBe('plan9');
    expect((await h.store.getExecutor('poison'))?.os).not.toBe('plan9');
    expect(
      h.logs.some((l) => l.includes('upserting executor heartbeat failed') && l.includes('poison')),
    ).toBe(true);
    // The batch of two, then each on its own, then poison's leases without its row.
    expect(
      g.batches.slice(1).map((b) => b.map((w) => `${w.executorName}:${w.row ? 'row' : 'no row'}`)),
    ).toEqual([['good:row', 'poison:row'], ['good:row'], ['poison:row'], ['poison:no row']]);
  });
});
