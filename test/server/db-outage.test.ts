/**
 * `executor server` on PostgreSQL survives losing its database. The real CLI runs as a child process
 * with DATABASE_URL pointing at a loopback TCP proxy in front of the real PostgreSQL; the test cuts
 * the proxy (every connection dropped, new ones refused) and restores it. While cut: 503 from
 * /healthz, the user API (code UNAVAILABLE) and the executor API. After: 200 again without a
 * restart, and the LISTEN connections are back, so a long-poll on a proxied replica is woken by a job
 * submitted through a directly connected one. Replicas: A is the CLI process (proxied), B is
 * in-process and direct, C is in-process and proxied (its parked long-polls can be counted).
 * Needs TEST_DATABASE_URL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/server.js';
import { systemClock } from '../../src/lib/clock.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import { LONG_POLL_HEADER } from '../../src/protocol/capabilities.js';
import { createServer, type Listening, listen, type ServerApp } from '../../src/server/index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { postgresUrl, requireOrSkip, waitFor } from '../helpers/env.js';
import { createFreshDatabase, type FreshDatabase, hostPort } from '../helpers/postgres-db.js';
import { type CliProcess, spawnCli } from '../helpers/spawn-cli.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const EXECUTOR_TOKEN = 'outage-executor-secret-0123456789';
const API_TOKEN = 'outage-api-token-0123456789abcdef';
const adminUrl = postgresUrl();

describe.skipIf(!requireOrSkip('PostgreSQL (TEST_DATABASE_URL)', adminUrl !== undefined))(
  'executor server: database outage',
  () => {
    let db: FreshDatabase;
    let dir: string;
    let proxy: TcpProxy;
    let cli: CliProcess;
    let a = ''; // the CLI server, through the proxy
    type InProcess = { url: string; app: ServerApp; store: Store; server: Listening };
    let b: InProcess;
    let c: InProcess;

    const api = (base: string, method: string, p: string, body?: unknown) =>
      fetch(`${base}/api/v1${p}`, {
        method,
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const dequeue = (base: string, queue: string, longPollMs = 0) =>
      fetch(`${base}/.executors/queue/${queue}/dequeue`, {
        method: 'POST',
        headers: {
          authorization: `token-executor ${EXECUTOR_TOKEN}`,
          'content-type': 'application/json',
          ...(longPollMs > 0 ? { [LONG_POLL_HEADER]: String(longPollMs) } : {}),
        },
        body: JSON.stringify({ executorName: 'exec-outage', version: '5.3.0' }),
      });
    const submit = (base: string, queue: string) =>
      api(base, 'POST', '/jobs', { queue, steps: [{ image: 'busybox', run: 'true' }] });
    /** Sessions holding LISTEN on the test database (one per replica when all is well). */
    const listeners = async () =>
      (
        await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND query ILIKE 'LISTEN %' AND pid <> pg_backend_pid()`,
        )
      )[0]!.n;

    beforeAll(async () => {
      db = await createFreshDatabase(adminUrl!);
      dir = mkdtempSync(path.join(os.tmpdir(), 'executor-db-outage-'));
      proxy = await startTcpProxy(hostPort(db.url));
      const proxied = new URL(db.url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(proxy.port);

      cli = spawnCli(['server', '--listen', '127.0.0.1:0', '--data', path.join(dir, 'a')], {
        DATABASE_URL: proxied.toString(),
        EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
        EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
      });
      const line = await waitFor(() => /queue server listening .*/.exec(cli.output())?.[0], {
        timeoutMs: 60_000,
        what: 'the CLI server to listen',
      });
      expect(line).toContain('store=postgres');
      a = /url=(\S+)/.exec(line)![1]!;

      const inProcess = async (name: string, databaseUrl: string): Promise<InProcess> => {
        const config = loadServerConfig({
          env: {
            EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
            EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
            DATABASE_URL: databaseUrl,
          },
          flags: { data: path.join(dir, name), listen: '127.0.0.1:0' },
        });
        const store = openStore(config.databaseUrl);
        await store.migrate();
        const app = createServer({ store, config, clock: systemClock, logger: createMemoryLogger() });
        const server = await listen(app, '127.0.0.1', 0);
        return { url: server.url, app, store, server };
      };
      b = await inProcess('b', db.url);
      c = await inProcess('c', proxied.toString());
    }, 90_000);

    afterAll(async () => {
      if (cli && cli.child.exitCode === null) {
        cli.child.kill('SIGKILL');
        await cli.exited;
      }
      for (const r of [b, c]) {
        if (!r) continue;
        await r.server.close();
        await r.store.close();
      }
      await proxy?.close();
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('answers 503 while the database is cut off and recovers without a restart', async () => {
      // Healthy through the proxy, both replicas listening.
      expect((await fetch(`${a}/healthz`)).status).toBe(200);
      expect((await submit(a, 'before')).status).toBe(201);
      await waitFor(async () => (await listeners()) === 3, { what: 'the three replicas to LISTEN' });

      await proxy.cut();

      const health = await fetch(`${a}/healthz`);
      expect(health.status).toBe(503);
      const list = await api(a, 'GET', '/jobs?limit=5');
      expect(list.status).toBe(503);
      expect(list.headers.get('retry-after')).toBe('1');
      expect(((await list.json()) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
      expect((await submit(a, 'during')).status).toBe(503);
      const exec = await dequeue(a, 'before');
      expect(exec.status).toBe(503);
      expect(((await exec.json()) as { error: string }).error).toMatch(/database is unavailable/);
      // The directly connected replica is unaffected and still takes jobs.
      expect((await fetch(`${c.url}/healthz`)).status).toBe(503);
      expect((await submit(b.url, 'during')).status).toBe(201);
      await waitFor(async () => (await listeners()) === 1, {
        what: "the cut replicas' LISTEN sessions to end",
      });
      expect(cli.child.exitCode).toBeNull();

      await proxy.restore();

      await waitFor(async () => (await fetch(`${a}/healthz`)).status === 200, {
        timeoutMs: 15_000,
        what: '/healthz to recover',
      });
      const jobs = await api(a, 'GET', '/jobs?limit=5');
      expect(jobs.status).toBe(200);
      // The job submitted through the other replica during the cut is there.
      expect(((await jobs.json()) as { total: number }).total).toBe(2);
      const claimed = await dequeue(a, 'during');
      expect(claimed.status).toBe(200);

      // The LISTEN connections are back: long-polls on the proxied replicas wake on a job from B.
      await waitFor(async () => (await listeners()) === 3, {
        timeoutMs: 15_000,
        what: 'the LISTEN sessions to reconnect',
      });
      const polled = dequeue(c.url, 'after', 10_000);
      await waitFor(() => c.app.waiting() === 1, { what: 'a long-poll parked on C' });
      const sent = performance.now();
      const sub = await submit(b.url, 'after');
      const committed = performance.now();
      expect(sub.status).toBe(201);
      const res = await polled;
      const woke = performance.now();
      expect(res.status).toBe(200);
      expect(((await res.json()) as { id: number }).id).toBe(((await sub.json()) as { id: number }).id);
      console.log(
        `after reconnect: long-poll woke ${(woke - committed).toFixed(1)} ms after the submit returned ` +
          `(${(woke - sent).toFixed(1)} ms after it was sent; fallback re-check 1000 ms)`,
      );
      expect(woke - committed).toBeLessThan(500);
      // And on the CLI process: its long-poll receives a job submitted through B.
      const polledA = dequeue(a, 'after-a', 10_000);
      const subA = await submit(b.url, 'after-a');
      const resA = await polledA;
      expect(resA.status).toBe(200);
      expect(((await resA.json()) as { id: number }).id).toBe(((await subA.json()) as { id: number }).id);

      cli.child.kill('SIGTERM');
      expect(await cli.exited).toBe(0);
    }, 120_000);
  },
);
