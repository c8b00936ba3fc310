/**
 * footprint, everything in its own process, read from /proc:
 *   - an idle executor's RSS against a bare Node process under the same loader;
 *   - its CPU over 30 s with long-poll against the same executor polling every 1 s (a server that
 *     does not advertise long-poll);
 *   - the server's CPU over 30 s with 200 simulated executors (real queue clients) heartbeating
 *     every 5 s and long-polling, against a bare node:http server answering the same traffic.
 * All of them run in the same 30 s window.
 */
import { setMaxListeners } from 'node:events';
import { fileURLToPath } from 'node:url';
import { newToken } from '../src/cli/local-cluster.js';
import { createQueueClient, type QueueClient } from '../src/executor/client/queue-client.js';
import { LONG_POLL_MS } from '../src/executor/index.js';
import { executorVersion } from '../src/protocol/version.js';
import { emptyTelemetry, executorEnv, startBenchServer } from './cluster.js';
import {
  type Bench,
  type BenchContext,
  cpuSecondsOf,
  MiB,
  memoryOf,
  result,
  sleep,
  tempDir,
  waitFor,
} from './lib.js';
import { type Proc, spawnCli, spawnIdleNode, spawnNode } from './procs.js';

const WINDOW_MS = 30_000;
const EXECUTORS = 200;
const HEARTBEAT_MS = 5_000;

async function urlOf(p: Proc, re: RegExp): Promise<string> {
  await waitFor('a child to listen', () => re.test(p.output()), 60_000, 20);
  return re.exec(p.output())![1]!;
}

/** 200 executors: ping, then long-poll dequeues in a loop, heartbeats every 5 s. */
function simulate(ctx: BenchContext, url: string, token: string, signal: AbortSignal): Promise<void>[] {
  return Array.from({ length: EXECUTORS }, async (_, i) => {
    const c: QueueClient = createQueueClient({
      frontendUrl: url,
      password: token,
      executorName: `bench-sim-${i}`,
      queueName: 'bench',
      version: executorVersion(),
      telemetry: () => emptyTelemetry,
      longPollMs: LONG_POLL_MS,
      logger: ctx.logger,
    });
    await sleep(Math.random() * HEARTBEAT_MS); // spread, as executors started at different times are
    await c.ping();
    const beats = (async () => {
      while (!signal.aborted) {
        await sleep(HEARTBEAT_MS);
        if (!signal.aborted) await c.heartbeat([]).catch(() => {});
      }
    })();
    while (!signal.aborted) await c.dequeue(signal).catch(() => {});
    await beats;
  });
}

export const footprint: Bench = async (ctx) => {
  // Servers the executors talk to (in this process: their CPU is not measured).
  const lp = await startBenchServer({ logger: ctx.logger });
  const polled = await startBenchServer({ logger: ctx.logger, hideCapabilities: true });
  const work = tempDir('footprint');
  const env = (s: typeof lp, name: string) =>
    executorEnv(s, {
      EXECUTOR_RUNTIME: 'docker',
      EXECUTOR_WORKSPACE_ROOT: `${work.path}/${name}`,
      EXECUTOR_QUEUE_POLL_INTERVAL: '1s',
      EXECUTOR_LOG_LEVEL: 'warn',
    });
  const exLp = spawnCli(['run'], env(lp, 'lp'));
  const exPoll = spawnCli(['run'], env(polled, 'poll'));
  const bare = spawnIdleNode();

  // The server under load, and its floor.
  const execToken = newToken();
  const srv = spawnCli(['server'], {
    EXECUTORS_ACCESS_TOKEN: execToken,
    EXECUTOR_SERVER_API_TOKEN: newToken(),
    EXECUTOR_SERVER_DATA: `${work.path}/server`,
    EXECUTOR_SERVER_LISTEN: '127.0.0.1:0',
    EXECUTOR_LOG_LEVEL: 'info',
  });
  const floor = spawnNode([fileURLToPath(new URL('./floor-server.ts', import.meta.url))]);
  const stop = new AbortController();
  // 400 simulated executors wait on this one signal at once (a real executor has one dequeue in
  // flight on its stop signal); that many listeners is expected here, not a leak.
  setMaxListeners(0, stop.signal);
  const sims: Promise<void>[] = [];
  try {
    const srvUrl = await urlOf(srv, /url=(http:\/\/[^\s]+)/);
    const floorUrl = `http://127.0.0.1:${await urlOf(floor, /listening (\d+)/)}`;
    await waitFor('executors to long-poll', () => lp.app.waiting() >= 1, 60_000, 20);
    await waitFor(
      'the polling executor',
      async () => (await polled.store.listExecutors()).length > 0,
      60_000,
      20,
    );
    ctx.say(`footprint: ${EXECUTORS} simulated executors on the server and on its floor`);
    sims.push(
      ...simulate(ctx, srvUrl, execToken, stop.signal),
      ...simulate(ctx, floorUrl, execToken, stop.signal),
    );
    await sleep(HEARTBEAT_MS + 2_000); // all connected, first heartbeats sent; startup CPU excluded
    const pids = { exLp: exLp.pid, exPoll: exPoll.pid, srv: srv.pid, floor: floor.pid };
    const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSecondsOf(p)]));
    ctx.say('footprint: 30 s window');
    await sleep(WINDOW_MS);
    const share = (k: keyof typeof pids) => ((cpuSecondsOf(pids[k]) - before[k]!) / (WINDOW_MS / 1000)) * 100;
    const cpu = { exLp: share('exLp'), exPoll: share('exPoll'), srv: share('srv'), floor: share('floor') };
    const rss = {
      ex: memoryOf(exLp.pid).rss,
      bare: memoryOf(bare.pid).rss,
      polled: memoryOf(exPoll.pid).rss,
    };
    return [
      result({
        name: 'footprint.executor_rss',
        ours: rss.ex / MiB,
        baseline: rss.bare / MiB,
        unit: 'MiB',
        target: '<= 80 MiB',
        met: (o) => o <= 80,
        note: `idle executor (docker runtime, long-poll) vs a bare Node process (both compiled JS, no loader); the polling executor: ${(rss.polled / MiB).toFixed(1)} MiB`,
      }),
      result({
        name: 'footprint.executor_cpu',
        ours: cpu.exLp,
        baseline: cpu.exPoll,
        unit: '% of a core',
        target: '<= 1%',
        met: (o) => o <= 1,
        note: 'idle executor over 30 s: long-poll vs classic 1 s polling',
      }),
      result({
        name: 'footprint.server_cpu',
        ours: cpu.srv,
        baseline: cpu.floor,
        unit: '% of a core',
        target: '<= 10%',
        met: (o) => o <= 10,
        note: `${EXECUTORS} simulated executors (heartbeat every 5 s, long-poll dequeue) over 30 s, SQLite; baseline: bare node:http with canned answers`,
      }),
    ];
  } finally {
    stop.abort();
    await Promise.race([Promise.allSettled(sims), sleep(5_000)]);
    await Promise.all([exLp.stop(), exPoll.stop(), bare.stop(), srv.stop(), floor.stop()]);
    await lp.close();
    await polled.close();
    work.remove();
  }
};
