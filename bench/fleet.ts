/**
 * fleet: what idle executors cost one server replica. The server runs as its own process (the
 * compiled CLI, `executor server`); the fleet is simulated in another (bench/fleet-sim.ts: real
 * queue clients, long-poll dequeue loop, heartbeat every 5 s, jobs held 2 s so heartbeats carry
 * ids). For each size (FLEET_SIZES, default 1000,5000,10000) and store (SQLite; PostgreSQL when
 * one answers), over a WINDOW_MS window once every client is parked:
 *   - server CPU (% of one core) and RSS;
 *   - on PostgreSQL, the database's transactions per second (pg_stat_database xact_commit +
 *     xact_rollback: every statement the server sends outside a transaction is one) and the CPU
 *     of the postgres processes;
 *   - heartbeat p99 (as the clients saw it) and dispatch p50/p99 of jobs submitted during the
 *     window (the submit sent → a client holds the job).
 * The anchor, in the same run against the same kind of server: a Sourcegraph-style fleet of the
 * same size (no long-poll; an empty dequeue every second). Target: ours >= 5x cheaper in server
 * CPU (and, on PostgreSQL, in statements per second). An anchor whose server answered fewer
 * requests than are due (10,000 on two cores) keeps its measured figures, and the notes add what
 * the rate due would cost at its cost per request (a model); the jobs of its window that its
 * server did not take or no client held within 30 s are counted, not a failure. The note of the
 * CPU figure also gives it per
 * heartbeat: the server's CPU over the window over the heartbeats it answered in it (its /metrics
 * request counters; size / 5 s when the fleet keeps up), so it includes the rest of an idle fleet's
 * traffic (re-parked long-polls, the window's jobs).
 *
 * The floor, in the same run, once per size (FLEET_FLOOR=0 leaves it out): a bare node:http server
 * (bench/floor-server.ts: canned answers, no store, no auth) under the same fleet. The row
 * `.cpu.vs_floor` gives ours over its CPU: what one Node process pays for the requests alone, so
 * whether a CPU target is in reach of a Node process at all. The notes also give the server's open
 * file descriptors against its limit: each parked long-poll holds a connection and each heartbeat
 * beside it another, and a server at its limit closes the connections beyond it. With the floor
 * comes the raw floor (`fleet.floor_raw.N.cpu`): the same canned answers over node:net with a
 * hand-written HTTP/1.1 reader (bench/floor-raw-server.ts), against the node:http floor: the most
 * that leaving node:http for the two hot routes could save. And the kernel floor
 * (`fleet.floor_kernel.N.cpu`): the same answers from one C thread on epoll
 * (bench/floor-c-server.c, compiled with cc; left out with a line when there is no cc): what the
 * kernel charges the server for the fleet's requests, which no server here can go below.
 *
 * The simulated fleet can be the limit before the server is (it spends two to three times the
 * server's CPU for the same traffic), so every run also reports, over the same window, the
 * simulator's own CPU (% of one core, all its processes) and its event-loop delay p99 (the worst
 * of its processes), in the notes of the cpu and heartbeat_p99 rows, and the anchor's dequeues
 * answered a second against the size (one per client per second due). A simulator near 100 % of a
 * core per process, or with an event-loop delay near the latencies, means the latencies are its
 * own and the anchor's cost is clipped. The heartbeat_p99 note gives the server's side from its
 * /metrics histograms over the window: its heartbeats' p99 from arrival to answer, and its event
 * loop's delay p99 (what a request waited before the server could read it). FLEET_SIM_PROCS=N spreads each fleet over N simulator
 * processes (default 2, which got 2.6 times the heartbeats of one through at 5,000 on two cores;
 * docs/benchmarks.md). The simulated clients send through a hand-written HTTP/1.1 exchange over
 * node:net with pooled kept-alive connections (bench/raw-fetch.ts); FLEET_TRANSPORT=http gives them
 * node:http with a keep-alive agent (the executor's own pool for ping, heartbeats and dequeues,
 * src/executor/client/control-transport.ts; about 1.6 times the simulator's CPU) and
 * FLEET_TRANSPORT=fetch the global fetch (about twice that again). Ping, heartbeats and dequeues
 * have a pool of their own and marks another, as in an executor's client (FLEET_POOL=shared: one
 * pool for everything). The server is started with this process's
 * environment, so EXECUTOR_SERVER_HEARTBEAT_LANE=false and the like reach it.
 *
 * FLEET_METRICS_BYTES=N makes each simulated executor push about N bytes of metrics that change at
 * every heartbeat, as real executors' do (default none). FLEET_ANCHOR=0 leaves the anchor out (its
 * baseline is then NaN), for comparing builds of ours quickly; when the anchor cannot come up or
 * run, ours' rows are kept with a NaN baseline and a note, and the size is reported as failed.
 * BENCH_CHILD_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the server (and the fleet); the
 * window's bounds are then printed on the monotonic clock the profiles use, for
 * bench/cpuprofile-summary.ts.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createApiClient } from '../src/cli/api-client.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { maxOpenFiles } from '../src/server/process-metrics.js';
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  cpuSecondsOf,
  freshDatabase,
  MiB,
  memoryOf,
  PartialResults,
  percentile,
  result,
  sleep,
  tempDir,
  waitFor,
} from './lib.js';
import { type Proc, spawnCli, spawnNode, spawnProgram } from './procs.js';

const SIM = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fleet-sim.ts');
const FLOOR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'floor-server.ts');
const RAW_FLOOR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'floor-raw-server.ts');
const KERNEL_FLOOR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'floor-c-server.c');
const WINDOW_MS = Number(process.env.FLEET_WINDOW_MS ?? 20_000);
const JOBS_IN_WINDOW = 20;
const SIM_PROCS = Math.max(1, Math.floor(Number(process.env.FLEET_SIM_PROCS ?? 2)) || 1);
const PROFILING = (process.env.BENCH_CHILD_NODE_ARGS ?? '').includes('--cpu-prof');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * `fn`, tried up to 5 times, 200 ms apart: a server at its descriptor limit closes new connections
 * at once, and the bench's own requests are new connections like any other. Its figures then
 * carry the mark of the limit (see `descriptors`) rather than no figures at all.
 */
async function patiently<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt === 5) throw e;
      await sleep(200);
    }
  }
}

/** CPU seconds of each postgres process (the database's own work), by pid. */
function postgresCpuSeconds(): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres')
        out.set(Number(pid), cpuSecondsOf(Number(pid)));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * The postgres processes' CPU between two readings: what each process present at the end spent
 * since the first (all of it for one started meanwhile). A backend that exited meanwhile (another
 * client's, on a shared server) is left out rather than subtracted, so the figure never goes
 * negative; it counts every database of the server, not only the bench's.
 */
function postgresCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, s] of after) {
    const b = before.get(pid);
    // Less than before: the pid went to a new process meanwhile.
    total += b !== undefined && s >= b ? s - b : s;
  }
  return total;
}

async function transactions(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query(
      'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
    );
    return Number(r.rows[0].n);
  } finally {
    await c.end();
  }
}

/** A histogram's cumulative bucket counts by upper bound (seconds; +Inf last), summed over its series. */
type Buckets = Map<number, number>;

function bucketsOf(text: string, name: string, series: RegExp = /.*/): Buckets {
  const out: Buckets = new Map();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{(.*)le="([^"]+)"\\} (\\d+)$`, 'gm'))) {
    if (!series.test(m[1]!)) continue;
    const le = m[2] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[2]);
    out.set(le, (out.get(le) ?? 0) + Number(m[3]));
  }
  return out;
}

/**
 * The q-quantile of what a histogram counted between two scrapes, as the upper bound of the bucket
 * it falls in (ms): "p99 <= this". NaN without samples or buckets.
 */
export function bucketQuantileMs(before: Buckets, after: Buckets, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const delta = (le: number) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const total = bounds.length === 0 ? 0 : delta(bounds[bounds.length - 1]!);
  if (total <= 0) return Number.NaN;
  const le = bounds.find((b) => delta(b) >= q * total)!;
  return le * 1000;
}

/**
 * From the server's /metrics: heartbeats and dequeues answered, heartbeats that wrote to the store
 * and the store writes they took, and the histograms of its heartbeats' durations and of its event
 * loop's delay (NaN and empty where a server has no such metric).
 */
async function heartbeatCounters(url: string): Promise<Counters> {
  const text = await patiently(async () => (await fetch(`${url}/metrics`)).text());
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
  const answered = (route: string) =>
    [
      ...text.matchAll(
        new RegExp(`^src_executor_server_http_requests_total\\{route="[^"]*${route}",[^}]*\\} (\\d+)$`, 'gm'),
      ),
    ].reduce((sum, m) => sum + Number(m[1]), 0);
  return {
    served: answered('heartbeat'),
    dequeues: answered('dequeue'),
    writes: value('src_executor_server_heartbeat_writes_total'),
    batches: value('src_executor_server_heartbeat_batches_total'),
    laneAnswers: value('src_executor_server_lane_answers_total\\{route="heartbeat"\\}'),
    heartbeatSeconds: bucketsOf(
      text,
      'src_executor_server_http_request_duration_seconds',
      /route="[^"]*heartbeat"/,
    ),
    loopDelay: bucketsOf(text, 'src_executor_server_event_loop_delay_seconds'),
  };
}

interface Counters {
  served: number;
  dequeues: number;
  writes: number;
  batches: number;
  /** Heartbeats the heartbeat lane answered (NaN without one). */
  laneAnswers: number;
  heartbeatSeconds: Buckets;
  loopDelay: Buckets;
}

const noCounters: Counters = {
  served: Number.NaN,
  dequeues: Number.NaN,
  writes: Number.NaN,
  batches: Number.NaN,
  laneAnswers: Number.NaN,
  heartbeatSeconds: new Map(),
  loopDelay: new Map(),
};

interface Measured {
  /**
   * Jobs of the window that no client held within 30 s after it, or whose submit the server did
   * not take (the anchor's only: ours fails the run).
   */
  undispatched: number;
  /** Heartbeats that wrote per store write of heartbeats, over the window. */
  batchMean: number;
  /** The share of the window's heartbeats the server's heartbeat lane answered (NaN without). */
  laneShare: number;
  cpuPct: number;
  rssMiB: number;
  /** The server's open file descriptors at the window's end (its connections, mostly). */
  fds: number;
  /** Its limit (`ulimit -n`). */
  fdMax: number;
  heartbeatP99: number;
  /** At the server (arrival to the answer's end), and its event-loop delay: bucket bounds, ms. */
  serverHeartbeatP99: number;
  serverLoopDelayP99: number;
  /** The longest stall: one sample however long it lasted, so p99 can hide it. */
  serverLoopDelayMax: number;
  heartbeatsPerSec: number;
  dispatchP50: number;
  dispatchP99: number;
  /** From the submit sent to the server's claim (the job's startedAt), ms. */
  claimP50: number;
  claimP99: number;
  statementsPerSec: number;
  dbCpuPct: number;
  /** Dequeues answered a second (long-polls answered or re-parked, for ours). */
  dequeuesPerSec: number;
  /** The simulator's CPU, all its processes, and its busiest process's (% of one core). */
  simCpuPct: number;
  simBusiestPct: number;
  simProcs: number;
  /** The worst p99 of its processes' event-loop delay, ms. */
  simLoopDelayP99: number;
  /**
   * Over the window, the machine's connections refused for a full accept queue and its SYNs sent
   * again (/proc/net/netstat, TcpExt): a client whose SYN was dropped waits 1 s, then 3 s, to retry.
   */
  listenOverflows: number;
  synRetransmits: number;
}

/** The TcpExt counters of /proc/net/netstat by name (the machine's, not one process's). */
function tcpExt(): Map<string, number> {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith('TcpExt:'));
  const names = lines[i]?.split(' ').slice(1) ?? [];
  const values = lines[i + 1]?.split(' ').slice(1) ?? [];
  return new Map(names.map((n, k) => [n, Number(values[k])]));
}

interface Server {
  url: string;
  proc: Proc;
  apiToken: string;
  executorsToken: string;
  stop(): Promise<void>;
}

async function startServer(databaseUrl: string | undefined): Promise<Server> {
  const data = tempDir('fleet-server');
  const port = await freePort();
  const apiToken = `api-${Math.random().toString(36).slice(2)}${Date.now()}`;
  const executorsToken = `exec-${Math.random().toString(36).slice(2)}${Date.now()}`;
  const proc = spawnCli(['server', '--data', data.path, '--listen', `127.0.0.1:${port}`], {
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    EXECUTORS_ACCESS_TOKEN: executorsToken,
    EXECUTOR_SERVER_API_TOKEN: apiToken,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'the fleet server to answer',
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`the server exited: ${proc.output().slice(-500)}`);
      try {
        return (await fetch(`${url}/healthz`)).ok;
      } catch {
        return false;
      }
    },
    30_000,
    50,
  );
  return {
    url,
    proc,
    apiToken,
    executorsToken,
    async stop() {
      await proc.stop();
      data.remove();
    },
  };
}

/**
 * The floor: a bare node:http server (bench/floor-server.ts) answering the same fleet with canned
 * answers, no store, no auth, no metrics. What one Node process pays for the requests alone. The
 * raw floor (bench/floor-raw-server.ts) gives the same answers over node:net; the kernel floor
 * (bench/floor-c-server.c, compiled) from C on epoll.
 */
async function startFloor(start: () => Proc): Promise<Server> {
  const proc = start();
  await waitFor(
    'the floor server to listen',
    () => {
      if (proc.child.exitCode !== null) throw new Error(`the floor exited: ${proc.output().slice(-500)}`);
      return /listening \d+/.test(proc.output());
    },
    60_000,
    20,
  );
  const port = /listening (\d+)/.exec(proc.output())![1];
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    apiToken: '',
    executorsToken: 'floor',
    stop: () => proc.stop(),
  };
}

type Got = { got: number; at: number };
type SimWindow = { heartbeatMs: number[]; dequeues: number; loopDelayP99Ms: number };

/** The simulated fleet: `size` clients spread over SIM_PROCS processes of bench/fleet-sim.ts. */
interface Fleet {
  procs: Proc[];
  /** Every job a client received, and when (epoch ms). */
  got(): Got[];
  /** Throws when a simulator exited. */
  check(): void;
  /** Clears every simulator's samples and counters: the window starts. */
  startWindow(): void;
  /** Every simulator's figures since startWindow. */
  endWindow(): Promise<SimWindow[]>;
  stop(): Promise<void>;
}

async function startFleet(server: Server, size: number, mode: 'longpoll' | 'poll'): Promise<Fleet> {
  const n = Math.min(SIM_PROCS, size);
  const windows: (SimWindow | undefined)[] = [];
  const procs = Array.from({ length: n }, (_, k) => {
    const proc = spawnNode(
      [SIM],
      {
        FLEET_URL: server.url,
        FLEET_TOKEN: server.executorsToken,
        FLEET_SIZE: String(Math.floor(size / n) + (k < size % n ? 1 : 0)),
        FLEET_MODE: mode,
        FLEET_PREFIX: `${mode}-${size}-${k}`,
        FLEET_RAMP_WAVE: String(Math.ceil(200 / n)),
      },
      { ipc: true },
    );
    proc.child.on('message', (raw) => {
      const m = raw as { window?: SimWindow };
      if (m.window) windows[k] = m.window;
    });
    return proc;
  });
  const check = () => {
    for (const p of procs)
      if (p.child.exitCode !== null) throw new Error(`the fleet exited: ${p.output().slice(-500)}`);
  };
  const fleet: Fleet = {
    procs,
    got: () =>
      procs.flatMap((p) =>
        p
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{"got"'))
          .map((l) => JSON.parse(l) as Got),
      ),
    check,
    startWindow() {
      check();
      for (const p of procs) p.child.send({ window: 'start' });
    },
    async endWindow() {
      check();
      windows.length = 0;
      for (const p of procs) p.child.send({ window: 'end' });
      await waitFor(
        "the simulators' figures",
        () => {
          check();
          return procs.every((_, k) => windows[k] !== undefined);
        },
        30_000,
        20,
      );
      return windows as SimWindow[];
    },
    stop: async () => {
      await Promise.all(procs.map((p) => p.stop()));
    },
  };
  try {
    await waitFor(
      'the simulated fleet to come up',
      () => {
        check();
        return procs.every((p) => p.output().includes('"ready"'));
      },
      300_000,
      100,
    );
  } catch (e) {
    await fleet.stop();
    throw e;
  }
  return fleet;
}

/** Microseconds on the monotonic clock, the clock of --cpu-prof's timestamps. */
const monotonicUs = () => process.hrtime.bigint() / 1000n;

async function measure(
  server: Server,
  size: number,
  mode: 'longpoll' | 'poll',
  pgUrl: string | undefined,
  say: (text: string) => void,
  floor = false,
): Promise<Measured> {
  const fleet = await startFleet(server, size, mode);
  try {
    // Let every client reach its steady state (parked, heartbeats spread over 5 s).
    await sleep(6_000);
    const api = createApiClient({ server: server.url, token: server.apiToken });
    // The floor has no /metrics and no jobs: its counts are the simulators'.
    const counters = () => (floor ? Promise.resolve(noCounters) : heartbeatCounters(server.url));
    // A saturated server (the anchor's) can take seconds to answer /metrics: the CPU readings
    // start after it has, and its counters are rated over the time between the two answers, so
    // that neither counts a wait the other does not (CPU was once read before the first answer
    // and divided by the window alone, which put a saturated server at over 300 % of a core).
    const hb0 = await counters();
    const counted0 = performance.now();
    fleet.startWindow();
    const pids = fleet.procs.map((p) => p.pid);
    const sim0 = pids.map(cpuSecondsOf);
    const cpu0 = cpuSecondsOf(server.proc.pid);
    const db0 = pgUrl ? { tx: await transactions(pgUrl), cpu: postgresCpuSeconds() } : undefined;
    const tcp0 = tcpExt();
    const mono0 = monotonicUs();
    const t0 = performance.now();
    const submitted = new Map<number, number>();
    let unsubmitted = 0;
    // A Sourcegraph-style fleet its server cannot keep up with (10,000 on two cores: its
    // heartbeats come late and the resetter takes its jobs back; a submit can find no connection
    // taken) is measured all the same: what fails of the anchor's jobs is counted, not fatal.
    const orForAnchor = <T>(work: Promise<T>, instead: () => T): Promise<T> =>
      mode === 'poll' ? work.catch(instead) : work;
    for (let i = 0; i < JOBS_IN_WINDOW; i++) {
      await sleep(WINDOW_MS / JOBS_IN_WINDOW);
      if (floor) continue;
      // From the submit's start: on a busy server its answer can reach us after a client holds
      // the job, which measured from the answer gave negative dispatch times.
      const at = Date.now();
      const job = await orForAnchor(
        patiently(() => api.submit({ queue: 'fleet', steps: [{ image: 'none', run: 'true' }] } as JobSpec)),
        () => {
          unsubmitted++;
          return undefined;
        },
      );
      if (job) submitted.set(job.id, at);
    }
    const seconds = (performance.now() - t0) / 1000;
    const mono1 = monotonicUs();
    const tcp1 = tcpExt();
    const cpu = cpuSecondsOf(server.proc.pid) - cpu0;
    const sim = pids.map((pid, k) => cpuSecondsOf(pid) - sim0[k]!);
    const db1 = pgUrl ? { tx: await transactions(pgUrl), cpu: postgresCpuSeconds() } : undefined;
    const hb1 = await counters();
    const countedSeconds = (performance.now() - counted0) / 1000;
    const rss = memoryOf(server.proc.pid).rss;
    const fds = readdirSync(`/proc/${server.proc.pid}/fd`).length;
    const fdMax = maxOpenFiles(readFileSync(`/proc/${server.proc.pid}/limits`, 'utf8')) ?? Number.NaN;
    const windows = await fleet.endWindow();
    if (PROFILING)
      say(`window: ${mono0} to ${mono1} us (monotonic), server pid ${server.proc.pid}, fleet pids ${pids}`);
    const dispatched = () => fleet.got().filter((g) => submitted.has(g.got)).length;
    await orForAnchor(
      waitFor(
        'every submitted job dispatched',
        () => {
          fleet.check();
          return dispatched() === submitted.size;
        },
        30_000,
        20,
      ),
      // The wait ran out; a simulator that exited still fails the run.
      () => fleet.check(),
    );
    const undispatched = submitted.size - dispatched() + unsubmitted;
    const dispatch = fleet
      .got()
      .filter((g) => submitted.has(g.got))
      .map((g) => g.at - submitted.get(g.got)!);
    // When the server claimed each (its startedAt, the same machine's clock): the rest of a
    // dispatch is the answer's way to the client and the simulator's own delay.
    const claimed = await Promise.all(
      [...submitted].map(async ([id, at]) => {
        const job = await orForAnchor<{ startedAt: string | null }>(
          patiently(() => api.getJob(id)),
          () => ({ startedAt: null }),
        );
        return job.startedAt === null ? Number.NaN : Date.parse(job.startedAt) - at;
      }),
    );
    return {
      undispatched,
      batchMean: (hb1.writes - hb0.writes) / (hb1.batches - hb0.batches),
      laneShare: (hb1.laneAnswers - hb0.laneAnswers) / (hb1.served - hb0.served),
      cpuPct: (cpu / seconds) * 100,
      rssMiB: rss / MiB,
      fds,
      fdMax,
      heartbeatP99: percentile(
        windows.flatMap((w) => w.heartbeatMs),
        99,
      ),
      serverHeartbeatP99: bucketQuantileMs(hb0.heartbeatSeconds, hb1.heartbeatSeconds, 0.99),
      serverLoopDelayP99: bucketQuantileMs(hb0.loopDelay, hb1.loopDelay, 0.99),
      serverLoopDelayMax: bucketQuantileMs(hb0.loopDelay, hb1.loopDelay, 1),
      heartbeatsPerSec: floor
        ? windows.reduce((n, w) => n + w.heartbeatMs.length, 0) / seconds
        : (hb1.served - hb0.served) / countedSeconds,
      dispatchP50: percentile(dispatch, 50),
      dispatchP99: percentile(dispatch, 99),
      claimP50: percentile(claimed, 50),
      claimP99: percentile(claimed, 99),
      statementsPerSec: db0 && db1 ? (db1.tx - db0.tx) / seconds : Number.NaN,
      dbCpuPct: db0 && db1 ? (postgresCpuBetween(db0.cpu, db1.cpu) / seconds) * 100 : Number.NaN,
      dequeuesPerSec: floor
        ? windows.reduce((n, w) => n + w.dequeues, 0) / seconds
        : (hb1.dequeues - hb0.dequeues) / countedSeconds,
      simCpuPct: (sim.reduce((a, b) => a + b, 0) / seconds) * 100,
      simBusiestPct: (Math.max(...sim) / seconds) * 100,
      simProcs: pids.length,
      simLoopDelayP99: Math.max(...windows.map((w) => w.loopDelayP99Ms)),
      listenOverflows: (tcp1.get('ListenOverflows') ?? 0) - (tcp0.get('ListenOverflows') ?? 0),
      synRetransmits: (tcp1.get('TCPSynRetrans') ?? 0) - (tcp0.get('TCPSynRetrans') ?? 0),
    };
  } finally {
    await fleet.stop();
  }
}

/**
 * The server's descriptors against its limit. At the limit, the event loop accepts and closes the
 * connections beyond it: the fleet's requests fail and are retried, and the figures are not a
 * steady state.
 */
const descriptors = (m: Measured) =>
  `${m.fds} of ${m.fdMax} file descriptors open${m.fds >= m.fdMax - 64 ? ' (AT ITS LIMIT: connections beyond it were closed)' : ''}`;

/** A server's CPU over the heartbeats it answered, in whole microseconds. */
const usPerHeartbeat = (m: Measured) => (((m.cpuPct / 100) * 1e6) / m.heartbeatsPerSec).toFixed(0);

/** How many of the heartbeats the lane answered rather than node:http (server/lane). */
const laneSays = (m: Measured) =>
  Number.isNaN(m.laneShare)
    ? 'no heartbeat lane'
    : `the heartbeat lane answered ${(m.laneShare * 100).toFixed(0)} % of the heartbeats`;

/** The simulated fleet's own load, which its latencies include. */
const simSays = (m: Measured) =>
  `simulator ${m.simCpuPct.toFixed(0)} % core in ${m.simProcs} process${m.simProcs === 1 ? '' : 'es'} (busiest ${m.simBusiestPct.toFixed(0)} %), its event-loop delay p99 ${m.simLoopDelayP99.toFixed(0)} ms`;

/** The machine's TCP trouble over the window: refused connections make 1 s waits. */
const tcpSays = (m: Measured) =>
  `On the machine over the window: ${m.listenOverflows} connections refused for a full accept queue, ${m.synRetransmits} SYNs sent again (each a wait of 1 s or more)`;

/** The anchor's figures when it is left out (FLEET_ANCHOR=0) or could not run. */
const unmeasured: Measured = {
  undispatched: Number.NaN,
  batchMean: Number.NaN,
  laneShare: Number.NaN,
  cpuPct: Number.NaN,
  rssMiB: Number.NaN,
  fds: Number.NaN,
  fdMax: Number.NaN,
  heartbeatP99: Number.NaN,
  serverHeartbeatP99: Number.NaN,
  serverLoopDelayP99: Number.NaN,
  serverLoopDelayMax: Number.NaN,
  heartbeatsPerSec: Number.NaN,
  dispatchP50: Number.NaN,
  dispatchP99: Number.NaN,
  claimP50: Number.NaN,
  claimP99: Number.NaN,
  statementsPerSec: Number.NaN,
  dbCpuPct: Number.NaN,
  dequeuesPerSec: Number.NaN,
  simCpuPct: Number.NaN,
  simBusiestPct: Number.NaN,
  simProcs: 0,
  simLoopDelayP99: Number.NaN,
  listenOverflows: Number.NaN,
  synRetransmits: Number.NaN,
};

async function oneStore(
  ctx: BenchContext,
  label: string,
  size: number,
  pgAdmin: string | undefined,
  floor: Measured | undefined,
): Promise<{ rows: BenchResult[]; anchorFailure?: string }> {
  const rows: BenchResult[] = [];
  const run = async (mode: 'longpoll' | 'poll') => {
    const db = pgAdmin ? await freshDatabase(pgAdmin, 'fleet') : undefined;
    const server = await startServer(db?.url);
    try {
      ctx.say(
        `fleet.${label}: ${size} ${mode === 'longpoll' ? 'long-polling' : 'Sourcegraph-style'} executors`,
      );
      return await measure(server, size, mode, db?.url, (t) => ctx.say(`fleet.${label}: ${t}`));
    } catch (err) {
      // Whether the server was still up, and what it last said, is most of the diagnosis.
      const exit = server.proc.child.exitCode;
      const state = exit === null ? 'the server was running' : `the server had exited (${exit})`;
      const tail = server.proc.output().trim().split('\n').slice(-5).join(' | ');
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}; ${state}; its output ends: ${tail}`,
      );
    } finally {
      await server.stop();
      await db?.drop();
    }
  };
  const ours = await run('longpoll');
  // Ours measured, an anchor that cannot come up or run does not throw its figures away.
  let anchor = unmeasured;
  let anchorFailure: string | undefined;
  if (process.env.FLEET_ANCHOR !== '0') {
    try {
      anchor = await run('poll');
    } catch (err) {
      anchorFailure = err instanceof Error ? err.message : String(err);
    }
  }
  /** What the anchor's figures say, or why there are none. */
  const anchorSays = (text: () => string) =>
    anchorFailure !== undefined
      ? `anchor could not run: ${anchorFailure}`
      : process.env.FLEET_ANCHOR === '0'
        ? 'anchor left out (FLEET_ANCHOR=0)'
        : text();
  const name = `fleet.${label}.${size}`;
  const cpuTarget = label === 'sqlite' ? 20 : 30;
  // The anchor's requests due a second (a dequeue per executor a second, a heartbeat per 5 s) and
  // those its server answered. A server that answered fewer while its simulator had room (its
  // busiest process under 90 % of a core) could not keep up: its baselines stay as measured, and
  // the notes add what the rate due would cost at the cost per request it showed (a model).
  const anchorDue = size + size / 5;
  const anchorAnswered = anchor.dequeuesPerSec + anchor.heartbeatsPerSec;
  const anchorShort = anchorAnswered < 0.95 * anchorDue && anchor.simBusiestPct < 90;
  const anchorModel = (what: string, measured: number, ours: number, unit: string) =>
    anchorShort
      ? ` IT COULD NOT KEEP UP: it answered ${anchorAnswered.toFixed(0)} of ${anchorDue} requests due a second; at its cost per request, the rate due would take ${((measured * anchorDue) / anchorAnswered).toFixed(1)} ${unit} of ${what}, ${((measured * anchorDue) / anchorAnswered / ours).toFixed(1)}x ours (a model, not measured).`
      : '';
  rows.push(
    result({
      name: `${name}.cpu`,
      ours: ours.cpuPct,
      baseline: anchor.cpuPct,
      unit: '% core',
      target: `<= ${cpuTarget} % at 10,000; anchor >= 5x ours`,
      met: (o, r) => (size < 10_000 || o <= cpuTarget) && r <= 0.2,
      note: `server CPU (${usPerHeartbeat(ours)} us per heartbeat; heartbeats that wrote per store write ${ours.batchMean.toFixed(1)}; ${laneSays(ours)}); ${simSays(ours)}. Baseline: the same server under a Sourcegraph-style fleet (dequeue every 1 s); ${anchorSays(() => `it answered ${anchor.dequeuesPerSec.toFixed(0)} dequeues/s of ${size}/s due, ${simSays(anchor)}.${anchorModel('server CPU', anchor.cpuPct, ours.cpuPct, '%')}`)} RSS ${ours.rssMiB.toFixed(0)} MiB (anchor ${anchor.rssMiB.toFixed(0)} MiB); ${descriptors(ours)}`,
    }),
    result({
      name: `${name}.rss`,
      ours: ours.rssMiB,
      baseline: 400,
      unit: 'MiB',
      target: '<= 400 MiB',
      met: (o) => o <= 400,
    }),
    result({
      name: `${name}.heartbeat_p99`,
      ours: ours.heartbeatP99,
      baseline: 50,
      unit: 'ms',
      target: '<= 50 ms',
      met: (o) => o <= 50,
      note: `${ours.heartbeatsPerSec.toFixed(0)} heartbeats/s answered (${size / 5}/s due); as the clients saw it, so it includes the ${simSays(ours)}. At the server (its /metrics histograms, bucket bounds): heartbeat p99 <= ${ours.serverHeartbeatP99} ms from arrival to answer, its event-loop delay p99 <= ${ours.serverLoopDelayP99} ms and worst <= ${ours.serverLoopDelayMax} ms (a stall is one sample however long it lasts, and delays every request arriving in it). ${tcpSays(ours)}`,
    }),
    result({
      name: `${name}.dispatch_p50`,
      ours: ours.dispatchP50,
      baseline: 10,
      unit: 'ms',
      target: '<= 10 ms',
      met: (o) => o <= 10,
      note: `p99 ${ours.dispatchP99.toFixed(1)} ms (target <= 50 ms); claimed at the server (the job's startedAt) p50 ${ours.claimP50.toFixed(0)} ms, p99 ${ours.claimP99.toFixed(0)} ms after the submit was sent; ${anchorSays(() => `anchor p50 ${anchor.dispatchP50.toFixed(0)} ms${anchor.undispatched > 0 ? `, ${anchor.undispatched} of its ${JOBS_IN_WINDOW} jobs not submitted (its server took no connection) or never held by a client within 30 s` : ''}`)}`,
    }),
  );
  if (floor) {
    rows.push(
      result({
        name: `${name}.cpu.vs_floor`,
        ours: ours.cpuPct,
        baseline: floor.cpuPct,
        unit: '% core',
        target: 'none (reported)',
        met: () => true,
        note: `ours / a bare node:http server (bench/floor-server.ts: canned answers, no store, no auth) under the same fleet, in the same run: what one Node process pays for the requests alone. Floor: ${usPerHeartbeat(floor)} us per heartbeat, ${floor.heartbeatsPerSec.toFixed(0)} heartbeats/s and ${floor.dequeuesPerSec.toFixed(0)} dequeues/s answered, RSS ${floor.rssMiB.toFixed(0)} MiB, ${descriptors(floor)}; ${simSays(floor)}. Ours: ${usPerHeartbeat(ours)} us, ${ours.heartbeatsPerSec.toFixed(0)} heartbeats/s and ${ours.dequeuesPerSec.toFixed(0)} dequeues/s`,
      }),
    );
  }
  if (pgAdmin) {
    rows.push(
      result({
        name: `${name}.statements`,
        ours: ours.statementsPerSec,
        baseline: anchor.statementsPerSec,
        unit: 'stmt/s',
        target: `<= 1.1 x heartbeats (${(1.1 * ours.heartbeatsPerSec).toFixed(0)}/s); anchor >= 5x ours`,
        met: (o, r) => o <= 1.1 * ours.heartbeatsPerSec && r <= 0.2,
        note: `database CPU ${ours.dbCpuPct.toFixed(1)} %; ${anchorSays(() => `anchor: database CPU ${anchor.dbCpuPct.toFixed(1)} %, ${anchor.dequeuesPerSec.toFixed(0)} dequeues/s answered of ${size}/s due.${anchorModel('statements', anchor.statementsPerSec, ours.statementsPerSec, '/s')}`)}`,
      }),
    );
  }
  return { rows, anchorFailure };
}

/** The floor's own figure, kept when ours cannot run. */
function floorRow(size: number, floor: Measured): BenchResult {
  return result({
    name: `fleet.floor.${size}.cpu`,
    ours: floor.cpuPct,
    baseline: Number.NaN,
    unit: '% core',
    target: 'none (reported)',
    met: () => true,
    note: `a bare node:http server (bench/floor-server.ts) under ${size} long-polling executors: ${usPerHeartbeat(floor)} us per heartbeat, ${floor.heartbeatsPerSec.toFixed(0)} heartbeats/s (${size / 5}/s due) and ${floor.dequeuesPerSec.toFixed(0)} dequeues/s answered, RSS ${floor.rssMiB.toFixed(0)} MiB, ${descriptors(floor)}; ${simSays(floor)}. ${tcpSays(floor)}`,
  });
}

/** What the lower floors are, as their rows' notes say it. */
const LOWER_FLOORS = {
  floor_raw:
    "the floor's canned answers over node:net with a hand-written HTTP/1.1 reader (bench/floor-raw-server.ts), against the node:http floor in the same run (the baseline): the most a hand-written HTTP path for the heartbeat and dequeue routes could save.",
  floor_kernel:
    "the floor's canned answers from one C thread on epoll (bench/floor-c-server.c), against the node:http floor in the same run (the baseline): what the kernel charges a server for the fleet's sockets, which no server here can go below.",
} as const;

/**
 * A lower floor's figure over the node:http floor's CPU in the same run: the raw floor (what
 * leaving node:http for the two hot routes could save at most) or the kernel floor (what the
 * kernel charges for the requests: below it, no server on this machine can go).
 */
function lowerFloorRow(
  kind: keyof typeof LOWER_FLOORS,
  size: number,
  m: Measured,
  floor: Measured | undefined,
): BenchResult {
  return result({
    name: `fleet.${kind}.${size}.cpu`,
    ours: m.cpuPct,
    baseline: floor?.cpuPct ?? Number.NaN,
    unit: '% core',
    target: 'none (reported)',
    met: () => true,
    note: `${LOWER_FLOORS[kind]} ${usPerHeartbeat(m)} us per heartbeat, ${m.heartbeatsPerSec.toFixed(0)} heartbeats/s and ${m.dequeuesPerSec.toFixed(0)} dequeues/s answered, RSS ${m.rssMiB.toFixed(0)} MiB; ${simSays(m)}. ${tcpSays(m)}`,
  });
}

type FloorKind = 'floor' | 'floor_raw' | 'floor_kernel';

/** bench/floor-c-server.c compiled into `dir`, or a reason it cannot be. */
function compileKernelFloor(dir: string): { binary: string } | { missing: string } {
  const binary = path.join(dir, 'floor-c-server');
  try {
    execFileSync('cc', ['-O2', '-o', binary, KERNEL_FLOOR], { stdio: 'pipe' });
    return { binary };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    return {
      missing:
        err.code === 'ENOENT' ? 'no C compiler (cc)' : `cc failed: ${String(err.stderr ?? err.message)}`,
    };
  }
}

/** A floor under a fleet of `size`, once per size (it has no store); undefined when it failed. */
async function measureFloor(
  ctx: BenchContext,
  size: number,
  failures: string[],
  kind: FloorKind = 'floor',
  binary = '',
): Promise<Measured | undefined> {
  const floor = await startFloor(() =>
    kind === 'floor_kernel' ? spawnProgram(binary) : spawnNode([kind === 'floor' ? FLOOR : RAW_FLOOR]),
  );
  try {
    const what = {
      floor: 'a bare node:http server',
      floor_raw: 'a bare node:net server',
      floor_kernel: 'a C server',
    }[kind];
    ctx.say(`fleet.${kind}: ${size} long-polling executors on ${what}`);
    return await measure(floor, size, 'longpoll', undefined, (t) => ctx.say(`fleet.${kind}: ${t}`), true);
  } catch (err) {
    failures.push(`${kind} ${size}: ${err instanceof Error ? err.message : String(err)}`);
    ctx.say(`fleet.${kind}.${size} could not run: ${failures.at(-1)}`);
    return undefined;
  } finally {
    await floor.stop();
  }
}

export const fleet: Bench = async (ctx) => {
  const sizes = (process.env.FLEET_SIZES ?? '1000,5000,10000').split(',').map(Number);
  const out: BenchResult[] = [];
  const failures: string[] = [];
  // One size that cannot run does not throw away the figures of the others.
  const one = async (label: string, size: number, pg: string | undefined, floor: Measured | undefined) => {
    try {
      const { rows, anchorFailure } = await oneStore(ctx, label, size, pg, floor);
      for (const r of rows)
        ctx.say(`${r.name}: ours ${r.ours.toFixed(1)} ${r.unit}, baseline ${r.baseline.toFixed(1)}`);
      out.push(...rows);
      if (anchorFailure !== undefined) {
        failures.push(`${label} ${size}: the anchor: ${anchorFailure}`);
        ctx.say(`fleet.${label}.${size}: the anchor could not run (ours kept): ${anchorFailure}`);
      }
    } catch (err) {
      failures.push(`${label} ${size}: ${err instanceof Error ? err.message : String(err)}`);
      ctx.say(`fleet.${label}.${size} could not run: ${failures.at(-1)}`);
    }
  };
  const floors = process.env.FLEET_FLOOR !== '0';
  const built = floors ? tempDir('fleet-floor') : undefined;
  try {
    const compiled = built ? compileKernelFloor(built.path) : undefined;
    if (compiled && 'missing' in compiled) ctx.say(`fleet.floor_kernel left out: ${compiled.missing}`);
    for (const size of sizes) {
      const floor = floors ? await measureFloor(ctx, size, failures) : undefined;
      if (floor) out.push(floorRow(size, floor));
      const raw = floors ? await measureFloor(ctx, size, failures, 'floor_raw') : undefined;
      if (raw) out.push(lowerFloorRow('floor_raw', size, raw, floor));
      if (compiled && 'binary' in compiled) {
        const kernel = await measureFloor(ctx, size, failures, 'floor_kernel', compiled.binary);
        if (kernel) out.push(lowerFloorRow('floor_kernel', size, kernel, floor));
      }
      await one('sqlite', size, undefined, floor);
      if (ctx.postgresUrl) await one('postgres', size, ctx.postgresUrl, floor);
    }
  } finally {
    built?.remove();
  }
  if (failures.length > 0) throw new PartialResults(`fleet: ${failures.join('; ')}`, out);
  return out;
};
