/**
 * The `dos` group: attacks on a default server (its own process, SQLite, loopback), each a
 * bounded loop that stops by itself. Each asserts the server's RSS growth during the attack, the
 * p99 of /healthz while it runs (<= 100 ms), and that ordinary jobs still complete, during the
 * attack and after it. CI scale (inside `npm test`) uses small counts; `npm run chaos` the issue's.
 *
 * Attacks: the pre-auth body hold, oversized and numerous log entries, 5,000 entries x 100
 * followers, oversized pushed metrics from 30 executors, slow bodies on every route family.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  apiHeaders,
  claimJob,
  DOS_QUEUE,
  type DosServer,
  executorHeaders,
  jobHeaders,
  keepJobAlive,
  MiB,
  ordinaryJob,
  partialRequest,
  probeHealth,
  request,
  startDosServer,
} from './dos-harness.js';
import { CHAOS_SCALE, publish, scaled } from './scale.js';

const HEALTH_P99_MS = 100;
/** A scenario's own hang detector: at full scale an attack alone runs for minutes (slow bodies: 2). */
const SCENARIO_TIMEOUT_MS = scaled(180_000, 900_000);

let server: DosServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

interface Measured<T> {
  result: T;
  rssBeforeMiB: number;
  rssGrowthMiB: number;
  healthP99Ms: number;
  healthMaxMs: number;
  healthNon200: number;
  healthSamples: number;
  ordinaryDuring: number;
  /** Why an ordinary job did not complete, during or after the attack. */
  ordinaryError?: string;
}

/**
 * Runs `attack` while sampling the server's RSS (every 100 ms), probing /healthz and running
 * ordinary jobs one after another; then one more ordinary job must complete after it.
 */
async function underAttack<T>(s: DosServer, attack: () => Promise<T>): Promise<Measured<T>> {
  await ordinaryJob(s.url, 'dos-warmup');
  const before = s.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, s.rss());
  }, 100);
  const probe = probeHealth(s.url);
  let running = true;
  let ordinaryDuring = 0;
  const ordinaryErrors: unknown[] = [];
  const ordinary = (async () => {
    while (running) {
      try {
        await ordinaryJob(s.url, 'dos-ordinary');
        ordinaryDuring++;
      } catch (e) {
        ordinaryErrors.push(e);
        break;
      }
    }
  })();
  let result: T;
  try {
    result = await attack();
  } finally {
    running = false;
    await ordinary;
    clearInterval(sampler);
  }
  peak = Math.max(peak, s.rss());
  const health = await probe.stop();
  let ordinaryError = ordinaryErrors.length > 0 ? String(ordinaryErrors[0]) : undefined;
  try {
    await ordinaryJob(s.url, 'dos-after');
  } catch (e) {
    ordinaryError ??= `after the attack: ${String(e)}`;
  }
  return {
    result,
    rssBeforeMiB: round(before / MiB),
    rssGrowthMiB: round((peak - before) / MiB),
    healthP99Ms: round(health.p99),
    healthMaxMs: round(health.max),
    healthNon200: health.statuses.filter((x) => x !== 200).length,
    healthSamples: health.latencies.length,
    ordinaryDuring,
    ...(ordinaryError ? { ordinaryError } : {}),
  };
}

const round = (n: number) => Math.round(n * 10) / 10;

function expectBounded(m: Measured<unknown>, rssGrowthMaxMiB: number): void {
  expect(m.healthSamples, '/healthz probes during the attack').toBeGreaterThanOrEqual(10);
  expect(m.healthNon200, '/healthz answered other than 200 during the attack').toBe(0);
  expect(m.healthP99Ms, '/healthz p99 during the attack (ms)').toBeLessThanOrEqual(HEALTH_P99_MS);
  expect(m.rssGrowthMiB, 'server RSS growth during the attack (MiB)').toBeLessThanOrEqual(rssGrowthMaxMiB);
  expect(m.ordinaryError, 'an ordinary job failed').toBeUndefined();
  expect(m.ordinaryDuring, 'ordinary jobs completed during the attack').toBeGreaterThanOrEqual(1);
}

/** Runs `fn` over `items` with `width` in flight. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe(`dos (${CHAOS_SCALE} scale)`, () => {
  it(
    'pre-auth body hold: connections with a forged job token and an almost complete 10 MiB body',
    async () => {
      const connections = scaled(8, 40);
      const holdMs = scaled(2_000, 20_000);
      server = await startDosServer();
      const s = server;
      const m = await underAttack(s, async () => {
        const held = await Promise.all(
          range(connections).map(() =>
            partialRequest(
              s.url,
              {
                method: 'POST',
                path: `/.executors/queue/${DOS_QUEUE}/markComplete`,
                headers: {
                  authorization: `Bearer ${randomBytes(32).toString('hex')}`,
                  'x-sourcegraph-job-id': '1',
                  'x-sourcegraph-executor-name': 'attacker',
                  'content-type': 'application/json',
                },
              },
              10 * MiB - 1,
              10 * MiB - 2,
            ),
          ),
        );
        await new Promise((r) => setTimeout(r, holdMs));
        for (const h of held) h.rest();
        return Promise.all(held.map((h) => h.ended));
      });
      publish('dos-preauth-hold', { connections, holdMs, ...m });
      // Every forged request is refused (or cut); none is served.
      for (const status of m.result) expect(status === 0 || (status >= 400 && status < 500)).toBe(true);
      expectBounded(m, 48);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'oversized and numerous log entries: the job view and its log still answer, quickly',
    async () => {
      const big = scaled(3, 100);
      const commandBytes = scaled(2 * MiB, 9 * MiB);
      const small = scaled(2_000, 20_000);
      server = await startDosServer();
      const s = server;
      const job = await claimJob(s.url, 'attacker');
      const stopHeartbeats = keepJobAlive(s.url, 'attacker', job.id);
      const headers = jobHeaders(job, 'attacker');
      const entry = (command: string[]) =>
        JSON.stringify({
          executorName: 'attacker',
          jobId: job.id,
          key: 'step.docker.x',
          command,
          startTime: new Date().toISOString(),
          out: 'x',
        });
      const bigBody = entry(['bash', '-c', 'y'.repeat(commandBytes)]);
      const smallBody = entry(['true']);
      const statuses = new Map<number, number>();
      const count = (st: number) => statuses.set(st, (statuses.get(st) ?? 0) + 1);
      const m = await underAttack(s, async () => {
        for (let i = 0; i < big; i++)
          count(
            (
              await request(
                s.url,
                'POST',
                `/.executors/queue/${DOS_QUEUE}/addExecutionLogEntry`,
                headers,
                bigBody,
              )
            ).status,
          );
        await pool(range(small), 4, async () => {
          count(
            (
              await request(
                s.url,
                'POST',
                `/.executors/queue/${DOS_QUEUE}/addExecutionLogEntry`,
                headers,
                smallBody,
              )
            ).status,
          );
        });
        const t0 = performance.now();
        const view = await request(s.url, 'GET', `/api/v1/jobs/${job.id}`, apiHeaders);
        const viewMs = performance.now() - t0;
        const t1 = performance.now();
        const logs = await request(s.url, 'GET', `/api/v1/jobs/${job.id}/logs`, apiHeaders);
        const logsMs = performance.now() - t1;
        return { view, viewMs, logs, logsMs };
      }).finally(stopHeartbeats);
      const { view, viewMs, logs, logsMs } = m.result;
      publish('dos-log-entries', {
        big,
        commandMiB: commandBytes / MiB,
        small,
        statuses: Object.fromEntries(statuses),
        viewMs: round(viewMs),
        viewKiB: round(view.body.length / 1024),
        logsMs: round(logsMs),
        logsKiB: round(logs.body.length / 1024),
        ...m,
        result: undefined,
      });
      for (const st of statuses.keys()) expect(st).toBeLessThan(500);
      expect(view.status).toBe(200);
      expect(logs.status).toBe(200);
      expect(viewMs).toBeLessThan(1_000);
      expect(logsMs).toBeLessThan(1_000);
      expect(view.body.length).toBeLessThan(16 * MiB);
      expectBounded(m, 256);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'many entries, many followers: a limited number follow, each reads what is new',
    async () => {
      const entries = scaled(500, 5_000);
      const followers = scaled(30, 100);
      const liveMs = scaled(3_000, 20_000);
      // The job's log may hold this many entries (the default bound, 1000, is the write side's).
      server = await startDosServer({ EXECUTOR_SERVER_MAX_LOG_ENTRIES: String(entries + 1000) });
      const s = server;
      const job = await claimJob(s.url, 'writer');
      const stopHeartbeats = keepJobAlive(s.url, 'writer', job.id);
      const headers = jobHeaders(job, 'writer');
      const add = (key: string) =>
        request(
          s.url,
          'POST',
          `/.executors/queue/${DOS_QUEUE}/addExecutionLogEntry`,
          headers,
          JSON.stringify({
            executorName: 'writer',
            jobId: job.id,
            key,
            command: ['echo', key],
            startTime: new Date().toISOString(),
            exitCode: 0,
            durationMs: 1,
            out: `${key}\n`,
          }),
        );
      await pool(range(entries), 4, async (i) => {
        const r = await add(`step.${i}`);
        if (r.status !== 200) throw new Error(`add: ${r.status}`);
      });
      const streams: AbortController[] = [];
      const m = await underAttack(s, async () => {
        const opened = await Promise.all(
          range(followers).map(async () => {
            const ac = new AbortController();
            streams.push(ac);
            const res = await fetch(`${s.url}/api/v1/jobs/${job.id}/logs?follow=1`, {
              headers: { authorization: apiHeaders.authorization },
              signal: ac.signal,
            });
            if (res.status !== 200) {
              await res.body?.cancel();
              return { status: res.status, text: Promise.resolve('') };
            }
            // Read the stream until the last entry's output arrived (or the stream is aborted).
            const text = (async () => {
              const decoder = new TextDecoder();
              const last = '"data":"step.last\\n"';
              // Only the tail is kept: the marker can span two chunks, no more.
              let seen = '';
              try {
                for await (const chunk of res.body!) {
                  seen = seen.slice(-last.length) + decoder.decode(chunk as Uint8Array, { stream: true });
                  if (seen.includes(last)) break;
                }
              } catch {
                // aborted
              }
              return seen;
            })();
            return { status: res.status, text };
          }),
        );
        // Live: new entries while the followers follow.
        const until = performance.now() + liveMs;
        for (let i = 0; performance.now() < until; i++) {
          await add(`live.${i}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        await add('step.last');
        const deadline = setTimeout(() => {
          for (const ac of streams) ac.abort();
        }, 30_000);
        const texts = await Promise.all(opened.map((o) => o.text));
        clearTimeout(deadline);
        for (const ac of streams) ac.abort();
        return { statuses: opened.map((o) => o.status), texts };
      }).finally(stopHeartbeats);
      const admitted = m.result.statuses.filter((x) => x === 200).length;
      const refused = m.result.statuses.filter((x) => x === 429).length;
      const caughtUp = m.result.texts.filter((t) => t.includes('"data":"step.last\\n"')).length;
      publish('dos-followers', {
        entries,
        followers,
        liveMs,
        admitted,
        refused,
        caughtUp,
        ...m,
        result: undefined,
      });
      expect(admitted).toBeGreaterThan(0);
      expect(admitted).toBeLessThanOrEqual(20);
      expect(admitted + refused).toBe(followers);
      expect(caughtUp).toBe(admitted);
      expectBounded(m, 256);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'oversized pushed metrics from many executors: /metrics still answers, quickly',
    async () => {
      const executors = scaled(5, 30);
      // Both scales push more than the heartbeat body limit (the 256 KiB cap + 1 MiB): the attack.
      const metricsBytes = scaled(2 * MiB, 4 * MiB - 1024);
      const scrapes = scaled(5, 20);
      server = await startDosServer();
      const s = server;
      let text = '';
      for (let i = 0; text.length < metricsBytes; i++) text += `dos_pushed_metric_${i}{label="v"} ${i}\n`;
      const heartbeatStatuses: number[] = [];
      // The pushers keep pushing (as executors beat every few seconds) and scrapers keep
      // scraping: a bounded server answers each round quickly, so there are enough rounds for
      // /healthz to be probed during the attack.
      const rounds = scaled(10, 20);
      const m = await underAttack(s, async () => {
        const times: number[] = [];
        const statuses: number[] = [];
        for (let round = 0; round < rounds; round++) {
          await pool(range(executors), 4, async (i) => {
            const r = await request(
              s.url,
              'POST',
              `/.executors/queue/${DOS_QUEUE}/heartbeat`,
              executorHeaders,
              JSON.stringify({
                executorName: `pusher-${i}`,
                executorVersion: '5.3.0',
                jobIds: [],
                prometheusMetrics: text,
              }),
            );
            heartbeatStatuses.push(r.status);
          });
          for (let i = 0; i < scrapes; i++) {
            const t0 = performance.now();
            const r = await request(s.url, 'GET', '/metrics');
            times.push(performance.now() - t0);
            statuses.push(r.status);
          }
        }
        return { times, statuses };
      });
      const scrapeMaxMs = round(Math.max(...m.result.times));
      publish('dos-pushed-metrics', {
        executors,
        rounds,
        metricsMiB: round(metricsBytes / MiB),
        scrapes,
        scrapeMaxMs,
        scrapeStatuses: [...new Set(m.result.statuses)],
        heartbeatStatuses: [...new Set(heartbeatStatuses)],
        ...m,
        result: undefined,
      });
      for (const st of heartbeatStatuses) expect(st).toBeLessThan(500);
      for (const st of m.result.statuses) expect(st).toBe(200);
      expect(scrapeMaxMs).toBeLessThan(1_000);
      expectBounded(m, 128);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'slow bodies on every route family: the server stays responsive and cuts them',
    async () => {
      const perFamily = scaled(4, 40);
      // A byte every second, for longer than any body timeout the server should allow.
      const trickleMs = scaled(3_000, 120_000);
      server = await startDosServer();
      const s = server;
      const job = await claimJob(s.url, 'slow');
      const families: { method: string; path: string; headers: Record<string, string> }[] = [
        { method: 'POST', path: `/.executors/queue/${DOS_QUEUE}/heartbeat`, headers: executorHeaders },
        {
          method: 'POST',
          path: `/.executors/queue/${DOS_QUEUE}/addExecutionLogEntry`,
          headers: jobHeaders(job, 'slow'),
        },
        {
          method: 'POST',
          path: '/.executors/git/demo/hello/git-upload-pack',
          headers: jobHeaders(job, 'slow'),
        },
        { method: 'GET', path: '/.executors/files/batch-changes/x', headers: jobHeaders(job, 'slow') },
        { method: 'POST', path: '/api/v1/jobs', headers: apiHeaders },
        { method: 'GET', path: '/metrics', headers: {} },
        { method: 'GET', path: '/', headers: {} },
      ];
      const m = await underAttack(s, async () => {
        const conns = await Promise.all(
          families.flatMap((f) => range(perFamily).map(() => partialRequest(s.url, f, 1024, 1))),
        );
        const started = performance.now();
        const endedAt: number[] = conns.map(() => Number.POSITIVE_INFINITY);
        conns.forEach((c, i) => {
          void c.ended.then(() => {
            endedAt[i] = performance.now() - started;
          });
        });
        while (
          performance.now() - started < trickleMs &&
          endedAt.some((t) => t === Number.POSITIVE_INFINITY)
        ) {
          for (const c of conns) if (!c.socket.destroyed) c.socket.write(' ');
          await new Promise((r) => setTimeout(r, 1_000));
        }
        for (const c of conns) c.socket.destroy();
        return { open: endedAt.filter((t) => t === Number.POSITIVE_INFINITY).length, total: conns.length };
      });
      publish('dos-slow-bodies', { perFamily, families: families.length, trickleMs, ...m, result: m.result });
      expectBounded(m, 64);
      // At full scale the trickle outlasts any sane body timeout: the server must have cut them all.
      if (CHAOS_SCALE === 'full') expect(m.result.open, 'slow connections the server never cut').toBe(0);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
