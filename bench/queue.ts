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
 * Target: ours >= 0.5 x the lower floor.
 * Also measured, for the note: a bare server doing only the two Store calls over node:http (see
 * bareServer), the most any implementation can reach on this machine in this setup.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createQueueClient } from '../src/executor/client/queue-client.js';
import { encodeJob } from '../src/protocol/job.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { executorVersion } from '../src/protocol/version.js';
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

const CLIENTS = 16;
const SLICE_MS = 2_000;
const ROUNDS = 5;
const QUEUE = 'bench';

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

/** Runs `cycle` in CLIENTS loops for SLICE_MS (or until one returns false); cycles per second. */
async function drive(cycle: (client: number) => Promise<boolean>): Promise<number> {
  const until = performance.now() + SLICE_MS;
  let count = 0;
  const start = performance.now();
  let end = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      while (performance.now() < until) {
        if (!(await cycle(i))) break;
        count++;
      }
      end = Math.max(end, performance.now());
    }),
  );
  return count / ((end - start) / 1000);
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
    completed() {
      done++;
    },
  };
}

interface Contender {
  /** Cycles per second over one slice. */
  slice(): Promise<number>;
  close(): Promise<void>;
}

async function oursOverHttp(ctx: BenchContext, url: string, perSlice: number): Promise<Contender> {
  const server = await startBenchServer({ logger: ctx.logger, databaseUrl: url });
  const ready = readyJobs(server.store, perSlice);
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const c = createQueueClient({
        frontendUrl: server.url,
        password: server.executorsToken,
        executorName: `bench-queue-${i}`,
        queueName: QUEUE,
        version: executorVersion(),
        telemetry: () => emptyTelemetry,
        longPollMs: 0,
        logger: ctx.logger,
      });
      await c.ping(); // registers the executor, as the worker does before its first dequeue
      return c;
    }),
  );
  return {
    async slice() {
      await ready.fill();
      return drive(async (i) => {
        const c = clients[i]!;
        const job = await c.dequeue();
        if (!job) return false;
        await c.markComplete(job);
        ready.completed();
        return true;
      });
    },
    close: () => server.close(),
  };
}

async function storeFloor(url: string, perSlice: number): Promise<Contender> {
  const store = openStore(url);
  await store.migrate();
  const ready = readyJobs(store, perSlice);
  return {
    async slice() {
      await ready.fill();
      return drive(async (i) => {
        const executorName = `bench-queue-${i}`;
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
        ready.completed();
        return true;
      });
    },
    close: () => store.close(),
  };
}

/**
 * Not a floor but a bound: the least any server can do per cycle here. A bare node:http server
 * that parses each body and calls the same two Store operations (dequeue with a token hash, then
 * markCompleteByToken with the hash of the token it returned), answering with the job encoded as
 * ours encodes it; bare fetch clients. No routing, authentication of the queue routes, validation,
 * metrics or retries. Reported in the note, to show how much of the floor the target leaves.
 */
async function bareServer(url: string, perSlice: number): Promise<Contender> {
  const store = openStore(url);
  await store.migrate();
  for (let i = 0; i < CLIENTS; i++) await store.upsertExecutor(heartbeatOf(`bench-queue-${i}`), Date.now());
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
  return {
    async slice() {
      await ready.fill();
      return drive(async (i) => {
        const executorName = `bench-queue-${i}`;
        const res = await fetch(`${base}/.executors/queue/${QUEUE}/dequeue`, {
          method: 'POST',
          body: JSON.stringify({ executorName, version: executorVersion() }),
          headers: { 'content-type': 'application/json', authorization: 'token-executor x' },
        });
        const text = Buffer.from(await res.arrayBuffer()).toString('utf8');
        if (res.status === 204) return false;
        const job = JSON.parse(text) as { id: number; token: string };
        const mark = await fetch(`${base}/.executors/queue/${QUEUE}/markComplete`, {
          method: 'POST',
          body: JSON.stringify({ executorName, jobId: job.id }),
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${job.token}`,
            'x-sourcegraph-job-id': String(job.id),
            'x-sourcegraph-executor-name': executorName,
          },
        });
        await mark.arrayBuffer();
        if (mark.status !== 204) throw new Error(`bare server answered ${mark.status} to a mark`);
        ready.completed();
        return true;
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await store.close();
    },
  };
}

const heartbeatOf = (name: string): ExecutorHeartbeat => ({
  name,
  hostname: name,
  queueName: QUEUE,
  queueNames: null,
  ...emptyTelemetry,
  metrics: '',
});

async function httpFloor(): Promise<Contender> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Bodies of the sizes the executor sends (dequeue; markComplete).
  const dequeueBody = JSON.stringify({
    executorName: 'bench-queue-0',
    version: executorVersion(),
    numCPUs: 4,
    memory: '12G',
  });
  const markBody = JSON.stringify({ executorName: 'bench-queue-0', jobId: 123456 });
  const post = async (path: string, body: string, headers: Record<string, string>) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...headers },
    });
    await res.arrayBuffer();
    if (res.status !== 204) throw new Error(`no-op server answered ${res.status}`);
  };
  return {
    slice: () =>
      drive(async () => {
        await post('/.executors/queue/bench/dequeue', dequeueBody, { authorization: 'token-executor x' });
        await post('/.executors/queue/bench/markComplete', markBody, {
          authorization: 'Bearer 00',
          'x-sourcegraph-job-id': '123456',
          'x-sourcegraph-executor-name': 'bench-queue-0',
        });
        return true;
      }),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
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
  } else ctx.say('queue: PostgreSQL does not answer; its figure is skipped');

  const out: BenchResult[] = [];
  for (const kind of kinds) {
    const db1 = await kind.open();
    const db2 = await kind.open();
    const db3 = await kind.open();
    const contenders: Record<'http' | 'store' | 'bare' | 'ours', Contender> = {
      http: await httpFloor(),
      store: await storeFloor(db1.url, kind.perSlice),
      bare: await bareServer(db3.url, kind.perSlice),
      ours: await oursOverHttp(ctx, db2.url, kind.perSlice),
    };
    const rates: Record<keyof typeof contenders, number[]> = { http: [], store: [], bare: [], ours: [] };
    try {
      // Interleaved slices, so a burst of load elsewhere on the machine hits all three alike.
      for (let round = 0; round < ROUNDS; round++) {
        ctx.say(`queue: ${kind.label} round ${round + 1}/${ROUNDS}`);
        for (const name of ['http', 'store', 'bare', 'ours'] as const)
          rates[name].push(await contenders[name].slice());
      }
    } finally {
      for (const c of Object.values(contenders)) await c.close();
      await db1.drop();
      await db2.drop();
      await db3.drop();
    }
    const storeRate = median(rates.store);
    const httpRate = median(rates.http);
    const lower = Math.min(storeRate, httpRate);
    const bareRate = median(rates.bare);
    out.push(
      result({
        name: `queue.${kind.label}`,
        ours: median(rates.ours),
        baseline: lower,
        unit: 'cycles/s',
        target: 'ratio >= 0.5 (of the lower floor)',
        met: (_o, ratio) => ratio >= 0.5,
        note: `${CLIENTS} clients, medians of ${ROUNDS} interleaved ${SLICE_MS / 1000} s slices; floors: store in-process ${Math.round(storeRate)}/s, no-op HTTP (2 requests) ${Math.round(httpRate)}/s; baseline is the lower; a bare server (node:http, the same two Store calls, nothing else) ${Math.round(bareRate)}/s (${(bareRate / lower).toFixed(2)} of the lower floor), ours ${(median(rates.ours) / bareRate).toFixed(2)} of it`,
      }),
    );
  }
  return out;
};
