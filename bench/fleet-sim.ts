/**
 * A simulated fleet, in its own process (bench/fleet.ts starts it): FLEET_SIZE real queue clients
 * (createQueueClient, as the executor uses it) that ping, then loop on dequeue and heartbeat every
 * 5 s, each starting at a random offset. Their transport is a hand-written HTTP/1.1 exchange over
 * node:net (bench/raw-fetch.ts), which costs the simulator about 0.6 of what node:http's client does
 * (FLEET_TRANSPORT=http, the executor's own pool for heartbeats), itself half of the global fetch
 * (FLEET_TRANSPORT=fetch). FLEET_MODE=longpoll asks the server to hold empty
 * dequeues (30 s); FLEET_MODE=poll is a Sourcegraph-style fleet: an empty dequeue, then 1 s of
 * sleep. A dequeued job is "run" for FLEET_JOB_MS (its id in the heartbeats meanwhile), then
 * marked complete. Clients come up FLEET_RAMP_WAVE at a time (default 200). With
 * FLEET_METRICS_BYTES, each client pushes about that many bytes of Prometheus text with every
 * heartbeat (a histogram of its heartbeats, as an executor's own RED metrics are), which changes at
 * every heartbeat; without, it pushes none, as in the default run.
 *
 * Prints one JSON line per received job (`{"got":id,"at":epochMs}`), `{"ready":n}` once every
 * client has pinged and started, and on SIGTERM a summary: heartbeats sent and their latency p50
 * and p99, dequeue requests, errors, and this process's own event-loop delay p99 and max
 * (perf_hooks.monitorEventLoopDelay; ms beyond the sampling interval). A fleet that is late is a
 * simulator that cannot keep up: its clients' latencies then include its own queueing.
 *
 * Started with an IPC channel (bench/fleet.ts starts FLEET_SIM_PROCS of these, each with its share
 * of the fleet), it also answers the measuring window: `{"window":"start"}` clears the samples and
 * counters, `{"window":"end"}` is answered with `{"window":{...}}`, the summary's fields over the
 * window and every heartbeat's latency in it (ms).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Transport } from '../src/executor/client/base-client.js';
import { createControlTransport } from '../src/executor/client/control-transport.js';
import { createQueueClient } from '../src/executor/client/queue-client.js';
import type { Job } from '../src/protocol/job.js';
import { executorVersion } from '../src/protocol/version.js';
import { emptyTelemetry } from './cluster.js';
import { percentile, quietLogger } from './lib.js';
import { createRawFetch } from './raw-fetch.js';

const url = process.env.FLEET_URL!;
const token = process.env.FLEET_TOKEN!;
const size = Number(process.env.FLEET_SIZE ?? 1000);
const mode = process.env.FLEET_MODE === 'poll' ? 'poll' : 'longpoll';
const queue = process.env.FLEET_QUEUE ?? 'fleet';
const jobMs = Number(process.env.FLEET_JOB_MS ?? 2000);
const prefix = process.env.FLEET_PREFIX ?? 'sim';
const HEARTBEAT_MS = 5_000;
const metricsBytes = Number(process.env.FLEET_METRICS_BYTES ?? 0);
const wave = Math.max(1, Number(process.env.FLEET_RAMP_WAVE ?? 200));
// The clients' transport, one for the process: raw (bench/raw-fetch.ts: a hand-written HTTP/1.1
// exchange over node:net, the default), node:http (the executor's own pool for ping, heartbeats
// and dequeues, src/executor/client/control-transport.ts) or the global fetch.
const makeTransport = (): Transport =>
  process.env.FLEET_TRANSPORT === 'fetch'
    ? fetch
    : process.env.FLEET_TRANSPORT === 'http'
      ? createControlTransport().fetch
      : createRawFetch();
// As in an executor's client, ping, heartbeats and dequeues go on connections of their own (its
// control pool) and the marks of the jobs a client "runs" on others. An executor's heartbeat takes
// its free control connection, not the one its parked long-poll holds, and its next long-poll the
// one the last came back on (node:http's agent reuses the most recent): so each connection carries
// one kind of request, and its heads repeat. The simulator's pools are shared by all the clients of
// its process, so heartbeats and dequeues get one each to keep that; one pool for both would put
// them on the same connections in turn, which no executor does (FLEET_POOL=shared: one pool for
// everything).
const shared = makeTransport();
const separate = process.env.FLEET_POOL !== 'shared';
const heartbeatPool = separate ? makeTransport() : shared;
const dequeuePool = separate ? makeTransport() : shared;
const control: Transport = (url, init) => (url.endsWith('/dequeue') ? dequeuePool : heartbeatPool)(url, init);

/** About `metricsBytes` of Prometheus text whose counters move with `beats`. */
function metricsText(beats: number): string {
  if (metricsBytes <= 0) return '';
  const lines = [
    '# HELP src_apiworker_apiclient_total Total number of API client operations.',
    '# TYPE src_apiworker_apiclient_total counter',
    `src_apiworker_apiclient_total{op="Heartbeat"} ${beats}`,
    '# HELP src_apiworker_apiclient_duration_seconds Time in seconds spent performing API client operations.',
    '# TYPE src_apiworker_apiclient_duration_seconds histogram',
  ];
  let size = lines.join('\n').length;
  for (let i = 0; size < metricsBytes; i++) {
    const line = `src_apiworker_apiclient_duration_seconds_bucket{op="Heartbeat${i}",le="${(i + 1) * 0.005}"} ${beats + i}`;
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

let heartbeatMs: number[] = [];
let dequeues = 0;
let errors = 0;
let stopping = false;
// Sampled every LOOP_SAMPLE_MS; a sample is the time between two timer turns, so the delay is
// what exceeds the interval.
const LOOP_SAMPLE_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
loopDelay.enable();
const loopMs = (ns: number) => Math.max(0, ns / 1e6 - LOOP_SAMPLE_MS);

/** Since the start, or since the last `{"window":"start"}`. */
function summary() {
  return {
    heartbeats: heartbeatMs.length,
    heartbeatP50: percentile(heartbeatMs, 50),
    heartbeatP99: percentile(heartbeatMs, 99),
    dequeues,
    errors,
    loopDelayP99Ms: loopMs(loopDelay.percentile(99)),
    loopDelayMaxMs: loopMs(loopDelay.max),
  };
}
// Timers keep the process alive: in poll mode every client may be asleep at once with no socket
// in use, and an unref'd wait would let the fleet exit silently right after it reported ready.
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function simulate(i: number): Promise<void> {
  let beats = 0;
  const client = createQueueClient({
    frontendUrl: url,
    password: token,
    executorName: `${prefix}-${i}`,
    queueName: queue,
    version: executorVersion(),
    telemetry: () => emptyTelemetry,
    prometheusMetrics: () => metricsText(beats),
    longPollMs: mode === 'longpoll' ? 30_000 : 0,
    retry: { maxAttempts: 1, delayBaseMs: 100, delayMaxMs: 100, retryAfterMaxMs: 0, timeoutMs: 0 },
    logger: quietLogger(),
    fetch: shared,
    controlFetch: control,
  });
  // On a loaded machine a connection of the ramp can fail: a few tries before the fleet gives up.
  for (let attempt = 1; ; attempt++) {
    try {
      await client.ping();
      break;
    } catch (e) {
      if (attempt === 5) throw e;
      await sleep(500 * attempt);
    }
  }
  const running = new Set<string>();
  const heartbeats = async () => {
    await sleep(Math.random() * HEARTBEAT_MS);
    while (!stopping) {
      const t0 = performance.now();
      beats++;
      try {
        await client.heartbeat([...running]);
        heartbeatMs.push(performance.now() - t0);
      } catch {
        errors++;
      }
      await sleep(HEARTBEAT_MS);
    }
  };
  const work = async () => {
    if (mode === 'poll') await sleep(Math.random() * 1000);
    while (!stopping) {
      let job: Job | null = null;
      dequeues++;
      try {
        job = await client.dequeue();
      } catch {
        errors++;
        await sleep(1000);
        continue;
      }
      if (!job) {
        if (mode === 'poll') await sleep(1000);
        continue;
      }
      process.stdout.write(`${JSON.stringify({ got: job.id, at: Date.now() })}\n`);
      running.add(String(job.id));
      await sleep(jobMs);
      running.delete(String(job.id));
      await client.markComplete(job).catch(() => errors++);
    }
  };
  void heartbeats();
  void work();
}

async function main(): Promise<void> {
  // Ping in waves, as a fleet coming up would, not 10,000 at once (bench/fleet.ts divides the
  // wave among its simulators, so that the server sees the same ramp whatever their number).
  for (let i = 0; i < size; i += wave) {
    await Promise.all(Array.from({ length: Math.min(wave, size - i) }, (_, k) => simulate(i + k)));
  }
  process.stdout.write(`${JSON.stringify({ ready: size })}\n`);
}

process.on('SIGTERM', () => {
  stopping = true;
  process.stdout.write(`${JSON.stringify({ summary: summary() })}\n`, () => process.exit(0));
});

if (process.send) {
  const send = process.send.bind(process);
  process.on('message', (raw: unknown) => {
    const m = raw as { window?: string };
    if (m.window === 'start') {
      heartbeatMs = [];
      dequeues = 0;
      errors = 0;
      loopDelay.reset();
    } else if (m.window === 'end') {
      send({ window: { ...summary(), heartbeatMs } });
    }
  });
  // The parent gone, nobody reads the figures.
  process.on('disconnect', () => process.exit(0));
}

main().catch((e) => {
  // fetch's "fetch failed" says nothing without its cause (ECONNRESET, ECONNREFUSED, ...).
  const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : '';
  process.stderr.write(`fleet-sim: ${e instanceof Error ? e.message : String(e)}${cause}\n`);
  process.exit(1);
});
