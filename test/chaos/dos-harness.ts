/**
 * The `dos` scenarios' harness: a queue server in its own process (`executor server`, default
 * limits, SQLite, loopback), so that its resident memory can be read from /proc without the
 * attacking clients in it; a /healthz prober that records latencies while an attack runs; an
 * ordinary job driven through the executor protocol, which must still complete; and raw-socket
 * requests for bodies sent partly or slowly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const DOS_EXECUTOR_TOKEN = 'dos-executor-token-0123456789abcdef';
export const DOS_API_TOKEN = 'dos-api-token-0123456789abcdefghij';
export const DOS_QUEUE = 'dos';

export interface DosServer {
  url: string;
  pid: number;
  /** The server process's resident set, bytes (VmRSS). */
  rss(): number;
  /** Stderr and stdout of the server so far. */
  output(): string;
  stop(): Promise<void>;
}

export async function startDosServer(env: Record<string, string> = {}): Promise<DosServer> {
  const dir = mkdtempSync(join(tmpdir(), 'chaos-dos-'));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', MAIN, 'server'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      EXECUTORS_ACCESS_TOKEN: DOS_EXECUTOR_TOKEN,
      EXECUTOR_SERVER_API_TOKEN: DOS_API_TOKEN,
      EXECUTOR_SERVER_LISTEN: '127.0.0.1:0',
      EXECUTOR_SERVER_DATA: join(dir, 'data'),
      EXECUTOR_LOG_FORMAT: 'json',
      EXECUTOR_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const take = (d: Buffer) => {
      out += d.toString();
      const m = /"msg":"queue server listening"[^\n]*"url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${out}`)));
  });
  return {
    url,
    pid: child.pid!,
    rss: () => {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return Number(m![1]) * 1024;
    },
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });

export interface Res {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One HTTP request on a pooled connection. */
export function request(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
  agent: http.Agent = keepAlive,
): Promise<Res> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(parts).toString('utf8'),
          headers: res.headers,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.setHeader('content-length', String(Buffer.byteLength(body)));
    req.end(body);
  });
}

export const executorHeaders = {
  authorization: `token-executor ${DOS_EXECUTOR_TOKEN}`,
  'content-type': 'application/json',
};
export const apiHeaders = { authorization: `Bearer ${DOS_API_TOKEN}`, 'content-type': 'application/json' };
export const jobHeaders = (job: { id: number; token: string }, executor: string) => ({
  authorization: `Bearer ${job.token}`,
  'x-sourcegraph-job-id': String(job.id),
  'x-sourcegraph-executor-name': executor,
  'content-type': 'application/json',
});

/** Submits a job and dequeues it as `executor`: the job id and its token. */
export async function claimJob(base: string, executor: string): Promise<{ id: number; token: string }> {
  const sub = await request(
    base,
    'POST',
    '/api/v1/jobs',
    apiHeaders,
    JSON.stringify({ queue: DOS_QUEUE, steps: [{ image: 'alpine', run: 'true' }] }),
  );
  if (sub.status !== 201) throw new Error(`submit: ${sub.status} ${sub.body}`);
  const hb = await request(
    base,
    'POST',
    `/.executors/queue/${DOS_QUEUE}/heartbeat`,
    executorHeaders,
    JSON.stringify({ executorName: executor, executorVersion: '5.3.0', jobIds: [] }),
  );
  if (hb.status !== 200) throw new Error(`heartbeat: ${hb.status} ${hb.body}`);
  const dq = await request(
    base,
    'POST',
    `/.executors/queue/${DOS_QUEUE}/dequeue`,
    executorHeaders,
    JSON.stringify({ executorName: executor, version: '5.3.0' }),
  );
  if (dq.status !== 200) throw new Error(`dequeue: ${dq.status} ${dq.body}`);
  return JSON.parse(dq.body) as { id: number; token: string };
}

/**
 * Heartbeats `jobId` as `executor` every 2 s until stopped, as a real executor would: without it
 * the resetter requeues a job held longer than the stall window (25 s) and its token dies.
 */
export function keepJobAlive(base: string, executor: string, jobId: number): () => Promise<void> {
  let running = true;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (running) {
      await request(
        base,
        'POST',
        `/.executors/queue/${DOS_QUEUE}/heartbeat`,
        executorHeaders,
        JSON.stringify({ executorName: executor, executorVersion: '5.3.0', jobIds: [jobId] }),
      ).catch(() => undefined);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 2_000);
      });
    }
  })();
  return async () => {
    running = false;
    wake();
    await loop;
  };
}

/**
 * An ordinary job, start to end, as an executor drives it: submit, dequeue, one log entry, mark
 * complete; then the user API must show it completed with its output. Returns the time it took.
 */
export async function ordinaryJob(base: string, executor = 'dos-ordinary'): Promise<number> {
  const t0 = performance.now();
  const job = await claimJob(base, executor);
  const add = await request(
    base,
    'POST',
    `/.executors/queue/${DOS_QUEUE}/addExecutionLogEntry`,
    jobHeaders(job, executor),
    JSON.stringify({
      executorName: executor,
      jobId: job.id,
      key: 'step.docker.0',
      command: ['true'],
      startTime: new Date().toISOString(),
      exitCode: 0,
      durationMs: 1,
      out: 'ordinary output\n',
    }),
  );
  if (add.status !== 200) throw new Error(`addExecutionLogEntry: ${add.status} ${add.body}`);
  const done = await request(
    base,
    'POST',
    `/.executors/queue/${DOS_QUEUE}/markComplete`,
    jobHeaders(job, executor),
    JSON.stringify({ executorName: executor, jobId: job.id }),
  );
  if (done.status !== 200 && done.status !== 204)
    throw new Error(`markComplete: ${done.status} ${done.body}`);
  const view = await request(base, 'GET', `/api/v1/jobs/${job.id}/logs`, apiHeaders);
  const logs = JSON.parse(view.body) as { entries: { out?: string }[] };
  const state = JSON.parse((await request(base, 'GET', `/api/v1/jobs/${job.id}`, apiHeaders)).body) as {
    state: string;
  };
  if (state.state !== 'completed' || logs.entries[0]?.out !== 'ordinary output\n') {
    throw new Error(`ordinary job ${job.id} ended ${state.state} with ${view.body.slice(0, 200)}`);
  }
  return performance.now() - t0;
}

export interface HealthProbe {
  /** Stops probing; resolves with the latencies (ms) and the statuses seen. */
  stop(): Promise<{ latencies: number[]; statuses: number[]; p99: number; max: number }>;
}

/**
 * The prober runs in its own process, so that the attacking clients in the test process (and its
 * event loop) do not add to the latencies it measures: GET /healthz on one keep-alive connection
 * every `everyMs` until its stdin closes, then one JSON line of [latencyMs, status] pairs.
 */
const PROBE = `
const http = require('node:http');
const [url, everyMs] = [process.argv[1], Number(process.argv[2])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const samples = [];
let running = true;
process.stdin.on('end', () => { running = false; });
process.stdin.resume();
const once = () => new Promise((resolve) => {
  const t0 = performance.now();
  const req = http.get(url + '/healthz', { agent }, (res) => {
    res.resume();
    res.on('end', () => resolve([performance.now() - t0, res.statusCode]));
  });
  req.on('error', () => resolve([performance.now() - t0, 0]));
});
(async () => {
  while (running) {
    samples.push(await once());
    await new Promise((r) => setTimeout(r, everyMs));
  }
  process.stdout.write(JSON.stringify(samples) + '\\n');
  agent.destroy();
})();
`;

/** GET /healthz every `everyMs` from a separate process until stopped. */
export function probeHealth(base: string, everyMs = 20): HealthProbe {
  const child = spawn(process.execPath, ['-e', PROBE, base, String(everyMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    async stop() {
      child.stdin!.end();
      await exited;
      const samples = JSON.parse(out || '[]') as [number, number][];
      const latencies = samples.map(([ms]) => ms);
      const statuses = samples.map(([, st]) => st);
      const sorted = [...latencies].sort((a, b) => a - b);
      const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
      return { latencies, statuses, p99, max: sorted[sorted.length - 1] ?? 0 };
    },
  };
}

/**
 * A raw request whose body is sent in part: the headers (with `contentLength`), then `prefix`
 * bytes of body. Resolves once they are written; `rest()` sends the remaining bytes; `ended`
 * resolves with the status the server answered (0 if it closed without answering).
 */
export async function partialRequest(
  base: string,
  head: { method: string; path: string; headers: Record<string, string> },
  contentLength: number,
  prefix: number,
): Promise<{ socket: net.Socket; ended: Promise<number>; rest(): void; writtenAt: number }> {
  const u = new URL(base);
  const socket = net.connect(Number(u.port), u.hostname);
  await new Promise<void>((r, j) => {
    socket.once('connect', () => r());
    socket.once('error', j);
  });
  let answer = '';
  const ended = new Promise<number>((resolve) => {
    socket.on('data', (d) => {
      answer += d.toString('latin1');
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)));
  });
  const lines = [`${head.method} ${head.path} HTTP/1.1`, `Host: ${u.host}`, `Connection: close`];
  for (const [k, v] of Object.entries({ ...head.headers, 'content-length': String(contentLength) }))
    lines.push(`${k}: ${v}`);
  await write(socket, `${lines.join('\r\n')}\r\n\r\n`);
  // A server that does not read the body (it answered, or waits for auth) stops the writes:
  // when the socket does not drain within STALL_MS the rest of the prefix is not sent.
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  for (let sent = 0; sent < prefix && !socket.destroyed; ) {
    const n = Math.min(chunk.length, prefix - sent);
    if (!(await write(socket, chunk.subarray(0, n)))) break;
    sent += n;
  }
  return {
    socket,
    ended,
    writtenAt: performance.now(),
    rest: () => {
      if (!socket.destroyed) socket.write(Buffer.alloc(contentLength - prefix, 0x20));
    },
  };
}

const STALL_MS = 2_000;

/** Writes; false when the socket closed or did not drain within STALL_MS. */
function write(socket: net.Socket, data: string | Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(false);
    if (socket.write(data)) return resolve(true);
    const finish = (ok: boolean) => {
      clearTimeout(t);
      socket.off('drain', drained);
      socket.off('close', closed);
      resolve(ok);
    };
    const drained = () => finish(true);
    const closed = () => finish(false);
    const t = setTimeout(() => finish(false), STALL_MS);
    socket.once('drain', drained);
    socket.once('close', closed);
  });
}

export const MiB = 1024 * 1024;
