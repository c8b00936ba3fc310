/**
 * Executor HTTP calls never hang on a silent connection: every attempt has a timeout (retried on a
 * fresh connection), a heartbeat gives up within its budget, and a long-poll dequeue is allowed its
 * wait plus a margin. Against a real loopback server that accepts requests and never answers; each
 * case over both transports (the global fetch, and the executor's pool for ping, heartbeats and
 * dequeues).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createBaseClient, type Transport } from '../../../src/executor/client/base-client.js';
import {
  type ControlTransport,
  createControlTransport,
} from '../../../src/executor/client/control-transport.js';
import { createHeartbeat } from '../../../src/executor/heartbeat.js';
import { createRunningJobs } from '../../../src/executor/running-jobs.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import { waitFor } from '../../helpers/env.js';

const retry = { maxAttempts: 20, delayBaseMs: 10, delayMaxMs: 50, retryAfterMaxMs: 3000, timeoutMs: 0 };

let server: http.Server | undefined;
let control: ControlTransport | undefined;
afterEach(async () => {
  control?.close();
  control = undefined;
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A server that answers the first `silent` requests never, and the rest with 200 `{}`. */
async function silentServer(silent: number): Promise<{ url: string; seen: () => number }> {
  let seen = 0;
  server = http.createServer((req, res) => {
    seen++;
    req.resume();
    if (seen <= silent) return;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, seen: () => seen };
}

const transports: [string, () => Transport][] = [
  ['the global fetch', () => fetch],
  [
    'the control transport',
    () => {
      control = createControlTransport();
      return control.fetch;
    },
  ],
];

describe.each(transports)('executor HTTP timeouts, over %s', (_name, transport) => {
  /** A client of `url` over the transport under test. */
  const clientOf = (url: string, retryConfig = retry, fetch: Transport = transport()) =>
    createBaseClient({
      baseUrl: url,
      pathPrefix: '/x',
      password: 'p',
      executorName: 'e',
      retry: retryConfig,
      fetch,
    });

  it('an attempt that gets no answer is cut at attemptTimeoutMs and retried', async () => {
    const s = await silentServer(2);
    const c = clientOf(s.url);
    const t = Date.now();
    const res = await c.request({ method: 'POST', endpoint: 'a', body: {}, attemptTimeoutMs: 200 });
    expect(res.status).toBe(200);
    expect(s.seen()).toBe(3);
    // About 3 x 200 ms; the rest is slack for a loaded machine (an uncut attempt would never end).
    expect(Date.now() - t).toBeLessThan(10_000);
  });

  it('a call gives up at its budget, retries included', async () => {
    const s = await silentServer(1000);
    // Attempts enough to take minutes, so only the budget can end the call within the bound below.
    const c = clientOf(s.url, { ...retry, maxAttempts: 1000 });
    const t = Date.now();
    await expect(
      c.request({ method: 'POST', endpoint: 'a', body: {}, attemptTimeoutMs: 150, budgetMs: 600 }),
    ).rejects.toThrow();
    const took = Date.now() - t;
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(600 + 5_000);
    expect(s.seen()).toBeGreaterThanOrEqual(2);
  });

  it('the heartbeat loop keeps its rate when beats cannot get through', async () => {
    const s = await silentServer(1000);
    const c = clientOf(s.url);
    const logger = createMemoryLogger();
    const intervalMs = 1000;
    const began: number[] = [];
    const hb = createHeartbeat({
      client: {
        heartbeat: async (_ids, o) => {
          began.push(Date.now());
          await c.request({ method: 'POST', endpoint: 'hb', body: {}, budgetMs: o?.budgetMs });
          return { knownIds: [], cancelIds: [] };
        },
      },
      running: createRunningJobs(),
      logger,
      intervalMs,
    });
    hb.start();
    const failed = () => logger.lines.filter((l) => l.includes('heartbeat failed')).length;
    await waitFor(() => failed() >= 3, { what: 'three failed beats' });
    await hb.stop();
    // Each beat is cut at its budget (the interval) and the next begins one interval after the
    // previous began: 1 s apart. Waiting for the previous beat's end would make it 2 s; the half
    // interval between is the slack for a loaded machine.
    const gaps = began.slice(1, 3).map((t, i) => t - began[i]!);
    expect(gaps).toHaveLength(2);
    for (const gap of gaps) expect(gap).toBeLessThan(1.5 * intervalMs);
  });

  it("the caller's abort cuts the wait for an answer, not the reading of one that has begun", async () => {
    // The server sends its headers, then the body only after the caller has aborted: like a drain
    // landing while a dequeue's job is on its way. The job must not be dropped.
    let sendBody: (() => void) | undefined;
    server = http.createServer((req, res) => {
      req.resume();
      if (req.url?.endsWith('/silent')) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      sendBody = () => res.end('{"id":7}');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
    let headersIn: () => void;
    const headersReceived = new Promise<void>((r) => {
      headersIn = r;
    });
    const under = transport();
    const c = clientOf(url, retry, async (input, init) => {
      const res = await under(input, init);
      headersIn();
      return res;
    });

    const answered = new AbortController();
    const call = c.request({ method: 'POST', endpoint: 'answer', body: {}, signal: answered.signal });
    await headersReceived;
    // The client's own continuation after fetch runs in microtasks; this lets it run first.
    await new Promise<void>((r) => setImmediate(r));
    answered.abort(new Error('draining'));
    sendBody!();
    const res = await call;
    expect(JSON.parse(res.body.toString())).toEqual({ id: 7 });

    // Before the headers, the abort ends the call at once with the caller's reason.
    const unanswered = new AbortController();
    const waiting = c.request({ method: 'POST', endpoint: 'silent', body: {}, signal: unanswered.signal });
    unanswered.abort(new Error('draining'));
    await expect(waiting).rejects.toThrow('draining');
  });
});
