/**
 * queue: dequeue + markComplete cycles per second with 16 concurrent clients.
 *
 * Ours: 16 real executor queue clients (createQueueClient) over HTTP against the real server:
 * dequeue with the shared executor token, markComplete with the issued job token (Bearer + job id
 * + executor name headers), exactly as an executor does them.
 * Floors, measured in the same run against the same kind of Store:
 *   - store: the same two Store operations (dequeue with a token hash, markComplete with the
 *     fence) called in-process by 16 concurrent loops;
 *   - http: two no-op POSTs per cycle (bodies of the same size, 204 answers) to a bare node:http
 *     server, the framework our server is built on, with the same 16 clients' fetch.
 * Target: ours >= 0.5 x the lower floor (`queue.<kind>`).
 * The bare server (see bareServer) does only the two Store calls over node:http: the most any
 * implementation can reach on this machine in this setup. `queue.<kind>.vs_bare` is ours against
 * it, in the same slices (target >= 0.9).
 * With the clients in this process, they and the server share one thread, which caps the ratio to
 * the lower floor near 0.5 even for the bare server. So every server is also driven by the same
 * clients in a process of their own (bench/queue-clients.ts), in slices interleaved with the
 * others: `queue.<kind>.procs` (ours against the lower of the store floor and the no-op server
 * driven from that process) and `queue.<kind>.procs.vs_bare` (ours against the bare server, both
 * driven from that process).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeJob } from '../src/protocol/job.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { newJobToken } from '../src/server/executor-api/auth.js';
import { buildJob } from '../src/server/executor-api/build-job.js';
import { openStore } from '../src/store/index.js';
import type { ExecutorHeartbeat, NewJob, Store } from '../src/store/types.js';
import { emptyTelemetry, startBenchServer } from './cluster.js';
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  freshDatabase,
  median,
  result,
  tempDir,
} from './lib.js';
import {
  bareCycle,
  CLIENTS,
  type ClientsProcess,
  type Driven,
  drive,
  executorNameOf,
  noopCycle,
  oursClients,
  oursCycle,
  QUEUE,
  SLICE_MS,
  startClientsProcess,
  type Target,
} from './queue-drive.js';

const ROUNDS = 5;

const newJob: NewJob = {
  queue: QUEUE,
  spec: { queue: QUEUE, steps: [{ image: 'busybox', run: 'true' }] } as JobSpec,
  repositoryName: '',
  commit: '',
  priority: 0,
  maxAttempts: 1,
  timeoutMs: 60_000,
};

async function fill(store: Store, n: number): Promise<void> {
  const now = Date.now();
  // A few writers at a time: enough for PostgreSQL's pool, harmless for SQLite.
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < n) {
        next++;
        await store.enqueue(newJob, now);
      }
    }),
  );
}

type StoreKind = { label: string; open(): Promise<{ url: string; drop(): Promise<void> }> };

/**
 * Keeps `perSlice` ready jobs in a contender's queue: topped up before each slice (dequeued jobs
 * are completed at once, so the rest are ready).
 */
function readyJobs(store: Store, perSlice: number) {
  let enqueued = 0;
  let done = 0;
  return {
    async fill() {
      const missing = perSlice - (enqueued - done);
      if (missing > 0) await fill(store, missing);
      enqueued = Math.max(enqueued, done + perSlice);
    },
    completed(cycles = 1) {
      done += cycles;
    },
  };
}

interface Contender {
  /** Cycles per second over one slice of the clients in this process. */
  slice(): Promise<number>;
  close(): Promise<void>;
}

/** A server under test: also driven by the clients' process. */
interface Served extends Contender {
  url: string;
  /** Cycles per second over one slice of the clients' process against this server. */
  remoteSlice(clients: ClientsProcess): Promise<number>;
}

/** In-process and remote slices of a server whose queue `ready` keeps filled. */
function served(
  target: Target,
  url: string,
  ready: ReturnType<typeof readyJobs> | undefined,
  cycle: (i: number) => Promise<boolean>,
  close: () => Promise<void>,
): Served {
  const counted = (d: Driven) => {
    ready?.completed(d.cycles);
    return d.perSecond;
  };
  return {
    url,
    async slice() {
      await ready?.fill();
      return counted(await drive(cycle));
    },
    async remoteSlice(clients) {
      await ready?.fill();
      return counted(await clients.slice(target));
    },
    close,
  };
}

async function oursOverHttp(
  ctx: BenchContext,
  url: string,
  perSlice: number,
): Promise<Served & { token: string }> {
  const server = await startBenchServer({ logger: ctx.logger, databaseUrl: url });
  const clients = await oursClients(server.url, server.executorsToken, ctx.logger);
  const ready = readyJobs(server.store, perSlice);
  return {
    ...served('ours', server.url, ready, oursCycle(clients), () => server.close()),
    token: server.executorsToken,
  };
}

async function storeFloor(url: string, perSlice: number): Promise<Contender> {
  const store = openStore(url);
  await store.migrate();
  const ready = readyJobs(store, perSlice);
  return {
    async slice() {
      await ready.fill();
      const d = await drive(async (i) => {
        const executorName = executorNameOf(i);
        const tokenHash = createHash('sha256').update(randomBytes(20)).digest('hex');
        const claimed = await store.dequeue({
          queue: QUEUE,
          executorName,
          now: Date.now(),
          tokenHash,
          priorityStepMs: 60_000,
        });
        if (!claimed) return false;
        const ok = await store.markComplete(
          { jobId: claimed.job.id, executorName, attempt: claimed.attempt },
          Date.now(),
        );
        if (!ok) throw new Error('markComplete fenced out');
        return true;
      });
      ready.completed(d.cycles);
      return d.perSecond;
    },
    close: () => store.close(),
  };
}

/**
 * Not a floor but a bound: the least any server can do per cycle here. A bare node:http server
 * that parses each body and calls the same two Store operations (dequeue with a token hash, then
 * markCompleteByToken with the hash of the token it returned), answering with the job encoded as
 * ours encodes it; bare fetch clients. No routing, authentication of the queue routes, validation,
 * metrics or retries. The basis of the `vs_bare` figures.
 */
async function bareServer(url: string, perSlice: number): Promise<Served> {
  const store = openStore(url);
  await store.migrate();
  for (let i = 0; i < CLIENTS; i++) await store.upsertExecutor(heartbeatOf(executorNameOf(i)), Date.now());
  const ready = readyJobs(store, perSlice);
  const readJson = (req: http.IncomingMessage) =>
    new Promise<{ executorName: string; jobId?: number }>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      req.on('error', reject);
    });
  const server = http.createServer((req, res) => {
    void (async () => {
      const body = await readJson(req);
      if (req.url!.endsWith('/dequeue')) {
        const { token, hash } = newJobToken();
        const claimed = await store.dequeue({
          queue: QUEUE,
          executorName: body.executorName,
          now: Date.now(),
          tokenHash: hash,
          priorityStepMs: 60_000,
        });
        if (!claimed) {
          res.writeHead(204);
          res.end();
          return;
        }
        // The job as our server encodes it: any server has to send the job.
        const job = buildJob(claimed.job, claimed.attempt, token, { fileInlineLimitBytes: 1 << 20 });
        const payload = Buffer.from(`${JSON.stringify(encodeJob(job, 2))}\n`);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(payload.length) });
        res.end(payload);
        return;
      }
      const token = (req.headers.authorization ?? '').slice('Bearer '.length);
      const fence = await store.markCompleteByToken(
        {
          tokenHash: createHash('sha256').update(Buffer.from(token, 'hex')).digest('hex'),
          jobId: body.jobId!,
          executorName: body.executorName,
          queue: QUEUE,
        },
        Date.now(),
      );
      res.writeHead(fence ? 204 : 404);
      res.end();
    })().catch((e) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return served('bare', base, ready, bareCycle(base), async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await store.close();
  });
}

const heartbeatOf = (name: string): ExecutorHeartbeat => ({
  name,
  hostname: name,
  queueName: QUEUE,
  queueNames: null,
  ...emptyTelemetry,
  metrics: '',
});

async function httpFloor(): Promise<Served> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return served('http', base, undefined, noopCycle(base), async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
}

const SLICES = ['http', 'store', 'bare', 'ours', 'http.procs', 'bare.procs', 'ours.procs'] as const;
type Slices = Record<(typeof SLICES)[number], number[]>;

/** ROUNDS rounds of one slice of every contender, in the same order each round. */
async function measure(ctx: BenchContext, kind: StoreKind & { perSlice: number }): Promise<Slices> {
  const dbs = [await kind.open(), await kind.open(), await kind.open()];
  const closers: (() => Promise<void>)[] = [];
  const rates = Object.fromEntries(SLICES.map((n) => [n, [] as number[]])) as Slices;
  try {
    const keep = <T extends { close(): Promise<void> }>(c: T) => {
      closers.push(() => c.close());
      return c;
    };
    const http = keep(await httpFloor());
    const store = keep(await storeFloor(dbs[0]!.url, kind.perSlice));
    const bare = keep(await bareServer(dbs[1]!.url, kind.perSlice));
    const ours = keep(await oursOverHttp(ctx, dbs[2]!.url, kind.perSlice));
    const clients = await startClientsProcess({
      QUEUE_OURS_URL: ours.url,
      QUEUE_OURS_TOKEN: ours.token,
      QUEUE_BARE_URL: bare.url,
      QUEUE_NOOP_URL: http.url,
    });
    closers.unshift(() => clients.stop());
    const slices: Record<(typeof SLICES)[number], () => Promise<number>> = {
      http: () => http.slice(),
      store: () => store.slice(),
      bare: () => bare.slice(),
      ours: () => ours.slice(),
      'http.procs': () => http.remoteSlice(clients),
      'bare.procs': () => bare.remoteSlice(clients),
      'ours.procs': () => ours.remoteSlice(clients),
    };
    // Interleaved slices, so a burst of load elsewhere on the machine hits all of them alike.
    for (let round = 0; round < ROUNDS; round++) {
      ctx.say(`queue: ${kind.label} round ${round + 1}/${ROUNDS}`);
      for (const name of SLICES) rates[name].push(await slices[name]());
    }
  } finally {
    for (const close of closers) await close();
    for (const db of dbs) await db.drop();
  }
  return rates;
}

function figures(label: string, rates: Slices): BenchResult[] {
  const m = Object.fromEntries(SLICES.map((n) => [n, median(rates[n])])) as Record<keyof Slices, number>;
  const lower = Math.min(m.store, m.http);
  const lowerProcs = Math.min(m.store, m['http.procs']);
  const how = `${CLIENTS} clients, medians of ${ROUNDS} rounds of interleaved ${SLICE_MS / 1000} s slices`;
  const r = (x: number) => Math.round(x);
  return [
    result({
      name: `queue.${label}`,
      ours: m.ours,
      baseline: lower,
      unit: 'cycles/s',
      target: 'ratio >= 0.5 (of the lower floor)',
      met: (_o, ratio) => ratio >= 0.5,
      note: `${how}; clients in the server's process; floors: store in-process ${r(m.store)}/s, no-op HTTP (2 requests) ${r(m.http)}/s; baseline is the lower; the bare server ${r(m.bare)}/s (${(m.bare / lower).toFixed(2)} of the lower floor)`,
    }),
    result({
      name: `queue.${label}.vs_bare`,
      ours: m.ours,
      baseline: m.bare,
      unit: 'cycles/s',
      target: 'ratio >= 0.9 (of the bare server)',
      met: (_o, ratio) => ratio >= 0.9,
      note: `${how}; clients in the server's process; baseline: a bare server (node:http, the same two Store calls, nothing else) driven by bare fetch`,
    }),
    result({
      name: `queue.${label}.procs`,
      ours: m['ours.procs'],
      baseline: lowerProcs,
      unit: 'cycles/s',
      target: 'ratio >= 0.5 (of the lower floor)',
      met: (_o, ratio) => ratio >= 0.5,
      note: `${how}; clients in a process of their own; floors: store in-process ${r(m.store)}/s, no-op HTTP (2 requests, clients in their process) ${r(m['http.procs'])}/s; baseline is the lower; the bare server ${r(m['bare.procs'])}/s (${(m['bare.procs'] / lowerProcs).toFixed(2)} of the lower floor)`,
    }),
    result({
      name: `queue.${label}.procs.vs_bare`,
      ours: m['ours.procs'],
      baseline: m['bare.procs'],
      unit: 'cycles/s',
      target: 'ratio >= 0.9 (of the bare server)',
      met: (_o, ratio) => ratio >= 0.9,
      note: `${how}; clients in a process of their own, driving ours and the bare server alike`,
    }),
  ];
}

export const queue: Bench = async (ctx) => {
  const kinds: (StoreKind & { perSlice: number })[] = [
    {
      label: 'sqlite',
      perSlice: 30_000,
      open: async () => {
        const dir = tempDir('queue-sqlite');
        return { url: `sqlite:${dir.path}/executor.db`, drop: async () => dir.remove() };
      },
    },
  ];
  if (ctx.postgresUrl) {
    const admin = ctx.postgresUrl;
    kinds.push({ label: 'postgres', perSlice: 6_000, open: () => freshDatabase(admin, 'queue') });
  } else ctx.say('queue: PostgreSQL does not answer; its figures are skipped');

  const out: BenchResult[] = [];
  for (const kind of kinds) out.push(...figures(kind.label, await measure(ctx, kind)));
  return out;
};
