/**
 * Shared pieces of the benchmarks: the result shape, statistics, /proc readings, a PostgreSQL
 * database per run, a timed HTTP front for the server, and a quiet logger.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createLogger, type Logger } from '../src/lib/logger.js';
import { CAPABILITIES_HEADER } from '../src/protocol/capabilities.js';

/** One figure: ours against the baseline measured in the same run. */
export interface BenchResult {
  name: string;
  ours: number;
  baseline: number;
  /** ours / baseline. */
  ratio: number;
  unit: string;
  /** The target, in words ("p50 <= 10 ms", "ratio <= 1.5"). */
  target: string;
  met: boolean;
  /** What the baseline is, and anything needed to read the figure. */
  note?: string;
}

export interface BenchContext {
  logger: Logger;
  /** Admin URL of a PostgreSQL server, or undefined when none answers. */
  postgresUrl?: string;
  dockerImage: string;
  /** Prints a progress line. */
  say(text: string): void;
}

export type Bench = (ctx: BenchContext) => Promise<BenchResult[]>;

/**
 * A benchmark that could not run all of its parts, with the figures of those that did: the run
 * records them and still counts the benchmark as failed.
 */
export class PartialResults extends Error {
  constructor(
    message: string,
    readonly results: BenchResult[],
  ) {
    super(message);
    this.name = 'PartialResults';
  }
}

export function result(
  r: Omit<BenchResult, 'ratio' | 'met'> & { met: (ours: number, ratio: number) => boolean },
): BenchResult {
  const ratio = r.baseline === 0 ? Number.POSITIVE_INFINITY : r.ours / r.baseline;
  return {
    ...r,
    ratio: round(ratio, 3),
    ours: round(r.ours, 3),
    baseline: round(r.baseline, 3),
    met: r.met(r.ours, ratio),
  };
}

export const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

export const median = (samples: readonly number[]) => percentile(samples, 50);

export const MiB = 1024 * 1024;

/** VmRSS and VmHWM (peak) of a process, in bytes. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rss: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime of a process, in seconds. */
export function cpuSecondsOf(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `bench-${prefix}-`));
  return { path: dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Waits until `cond()` is true, polling every `everyMs`, at most `timeoutMs`. */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  everyMs = 1,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function quietLogger(): Logger {
  return createLogger({ level: 'error' });
}

/** True when a PostgreSQL server answers at `url`. */
export async function postgresAnswers(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/** A fresh database on the server of `adminUrl`; `drop()` removes it. */
export async function freshDatabase(
  adminUrl: string,
  tag: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `bench_${tag}_${process.pid}_${Date.now()}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

export interface TimedFront {
  url: string;
  port: number;
  /** performance.now() when a response to a route ending in `suffix` finished, per job id. */
  stamps: Map<string, number[]>;
  close(): Promise<void>;
}

/**
 * Serves `handle` (the server app's request handler) on loopback, optionally hiding the
 * capabilities header so executors see a server without our extensions (the classic polling
 * baseline runs the same server code with long-poll simply not advertised).
 */
export async function serveTimed(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  opts: { hideCapabilities?: boolean; onFinish?: (req: IncomingMessage, res: ServerResponse) => void } = {},
): Promise<{ url: string; port: number; server: http.Server; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (opts.hideCapabilities) {
      const set = res.setHeader.bind(res);
      res.setHeader = ((name: string, value: number | string | readonly string[]) =>
        name.toLowerCase() === CAPABILITIES_HEADER ? res : set(name, value)) as typeof res.setHeader;
    }
    if (opts.onFinish) res.on('finish', () => opts.onFinish!(req, res));
    handle(req, res);
  });
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Runs a command to completion; rejects on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`)),
    );
  });
}
