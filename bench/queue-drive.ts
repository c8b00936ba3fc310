/**
 * The clients' side of the queue benchmark, shared by its two arrangements: in the benchmark's own
 * process (bench/queue.ts) and in a process of their own (bench/queue-clients.ts). CLIENTS loops,
 * each doing dequeue + markComplete cycles for SLICE_MS against one of three servers:
 *   - ours: real executor queue clients (createQueueClient), as an executor makes the calls;
 *   - bare: bare fetch against the bare server (queue.ts, bareServer), the same two calls;
 *   - http: two no-op POSTs of the executor's body sizes against a no-op node:http server.
 * startClientsProcess starts the clients' process and asks it for one slice at a time.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createQueueClient, type QueueClient } from '../src/executor/client/queue-client.js';
import type { Logger } from '../src/lib/logger.js';
import { executorVersion } from '../src/protocol/version.js';
import { emptyTelemetry } from './cluster.js';
import { spawnNode } from './procs.js';

export const CLIENTS = 16;
export const SLICE_MS = 2_000;
export const QUEUE = 'bench';

/** The servers a slice can drive. */
export type Target = 'ours' | 'bare' | 'http';

export const executorNameOf = (client: number) => `bench-queue-${client}`;

/** One slice: cycles done and their rate. */
export interface Driven {
  cycles: number;
  perSecond: number;
}

/** Runs `cycle` in CLIENTS loops for SLICE_MS (or until one returns false). */
export async function drive(cycle: (client: number) => Promise<boolean>): Promise<Driven> {
  const until = performance.now() + SLICE_MS;
  let cycles = 0;
  const start = performance.now();
  let end = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      while (performance.now() < until) {
        if (!(await cycle(i))) break;
        cycles++;
      }
      end = Math.max(end, performance.now());
    }),
  );
  return { cycles, perSecond: cycles / ((end - start) / 1000) };
}

/**
 * CLIENTS real queue clients of our server, registered (pinged) as the worker does first; `create`
 * is another tree's createQueueClient in bench/queue-ab.ts.
 */
export function oursClients(
  url: string,
  token: string,
  logger: Logger,
  create: typeof createQueueClient = createQueueClient,
): Promise<QueueClient[]> {
  return Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const c = create({
        frontendUrl: url,
        password: token,
        executorName: executorNameOf(i),
        queueName: QUEUE,
        version: executorVersion(),
        telemetry: () => emptyTelemetry,
        longPollMs: 0,
        logger,
      });
      await c.ping();
      return c;
    }),
  );
}

/** A cycle of client `i` against our server; false when the queue is empty. */
export function oursCycle(clients: readonly QueueClient[]): (i: number) => Promise<boolean> {
  return async (i) => {
    const c = clients[i]!;
    const job = await c.dequeue();
    if (!job) return false;
    await c.markComplete(job);
    return true;
  };
}

/** A cycle of client `i` against the bare server at `base`, with bare fetch. */
export function bareCycle(base: string): (i: number) => Promise<boolean> {
  return async (i) => {
    const executorName = executorNameOf(i);
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
    return true;
  };
}

/** A cycle against the no-op server at `base`: two POSTs with the executor's body sizes. */
export function noopCycle(base: string): () => Promise<boolean> {
  const dequeueBody = JSON.stringify({
    executorName: executorNameOf(0),
    version: executorVersion(),
    numCPUs: 4,
    memory: '12G',
  });
  const markBody = JSON.stringify({ executorName: executorNameOf(0), jobId: 123456 });
  const post = async (path: string, body: string, headers: Record<string, string>) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...headers },
    });
    await res.arrayBuffer();
    if (res.status !== 204) throw new Error(`no-op server answered ${res.status}`);
  };
  return async () => {
    await post(`/.executors/queue/${QUEUE}/dequeue`, dequeueBody, { authorization: 'token-executor x' });
    await post(`/.executors/queue/${QUEUE}/markComplete`, markBody, {
      authorization: 'Bearer 00',
      'x-sourcegraph-job-id': '123456',
      'x-sourcegraph-executor-name': executorNameOf(0),
    });
    return true;
  };
}

const CLIENTS_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'queue-clients.ts');

/** The clients in a process of their own (bench/queue-clients.ts), one slice at a time. */
export interface ClientsProcess {
  slice(target: Target): Promise<Driven>;
  stop(): Promise<void>;
}

type ClientsMessage = { ready: true } | { error: string } | ({ slice: Target } & Driven);

/** A slice takes SLICE_MS and the cycles in flight; this much longer is a hung process. */
const CLIENTS_ANSWER_MS = 60_000;

export async function startClientsProcess(env: Record<string, string>): Promise<ClientsProcess> {
  const proc = spawnNode([CLIENTS_SCRIPT], env, { ipc: true });
  const inbox: ClientsMessage[] = [];
  let waiting: ((m: ClientsMessage) => void) | undefined;
  proc.child.on('message', (raw) => {
    const m = raw as ClientsMessage;
    const w = waiting;
    waiting = undefined;
    if (w) w(m);
    else inbox.push(m);
  });
  const exited = new Promise<never>((_, reject) =>
    proc.child.once('exit', (code, signal) =>
      reject(new Error(`the clients' process exited (${code ?? signal}): ${proc.output().slice(-2000)}`)),
    ),
  );
  exited.catch(() => {}); // read by next(); stop() ends the process on purpose
  const next = async (what: string): Promise<ClientsMessage> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        new Promise<ClientsMessage>((r) => {
          const m = inbox.shift();
          if (m) r(m);
          else waiting = r;
        }),
        exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(new Error(`the clients' process did not answer ${what}: ${proc.output().slice(-2000)}`)),
            CLIENTS_ANSWER_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    const first = await next('with ready');
    if (!('ready' in first)) throw new Error(`the clients' process: ${JSON.stringify(first)}`);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return {
    async slice(target) {
      proc.child.send({ slice: target });
      const m = await next(`a ${target} slice`);
      if ('error' in m) throw new Error(`the clients' process, ${target} slice: ${m.error}`);
      if (!('slice' in m) || m.slice !== target)
        throw new Error(`the clients' process: ${JSON.stringify(m)}`);
      return { cycles: m.cycles, perSecond: m.perSecond };
    },
    stop: () => proc.stop(),
  };
}
