/**
 * Two server replicas (createServer + listen twice, each with its own PostgreSQL store) on one fresh
 * database: a long-poll dequeue parked on one replica is woken by a job submitted through the other
 * replica's user API (LISTEN/NOTIFY), well before the 1 s fallback re-check would find it; and an
 * API token revoked through one replica is refused by the other from its next request on.
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
import { createFreshDatabase, type FreshDatabase } from '../helpers/postgres-db.js';

const EXECUTOR_TOKEN = 'replica-executor-secret-0123456789';
const API_TOKEN = 'replica-api-token-0123456789abcdef';
/** The long-poll's fallback re-check (executor-api/routes.ts): a wake-up must beat it by far. */
const FALLBACK_MS = 1_000;
const adminUrl = postgresUrl();

interface Replica {
  name: string;
  url: string;
  app: ServerApp;
  store: Store;
  server: Listening;
}

describe.skipIf(!requireOrSkip('PostgreSQL (TEST_DATABASE_URL)', adminUrl !== undefined))(
  'server replicas on one PostgreSQL database',
  () => {
    let db: FreshDatabase;
    let dir: string;
    const replicas: Replica[] = [];

    async function startReplica(name: string): Promise<Replica> {
      const config = loadServerConfig({
        env: {
          EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
          EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
          DATABASE_URL: db.url,
        },
        flags: { data: path.join(dir, name), listen: '127.0.0.1:0' },
      });
      const store = openStore(config.databaseUrl);
      await store.migrate();
      const app = createServer({ store, config, clock: systemClock, logger: createMemoryLogger() });
      const server = await listen(app, '127.0.0.1', 0);
      return { name, url: server.url, app, store, server };
    }

    beforeAll(async () => {
      db = await createFreshDatabase(adminUrl!);
      dir = mkdtempSync(path.join(os.tmpdir(), 'executor-replicas-'));
      replicas.push(await startReplica('a'), await startReplica('b'));
    });
    afterAll(async () => {
      for (const r of replicas) {
        await r.server.close();
        await r.store.close();
      }
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** Parks a long-poll dequeue on `waiter`, submits through `submitter`, and times the wake-up. */
    async function wakeAcross(waiter: Replica, submitter: Replica, queue: string) {
      const polled = fetch(`${waiter.url}/.executors/queue/${queue}/dequeue`, {
        method: 'POST',
        headers: {
          authorization: `token-executor ${EXECUTOR_TOKEN}`,
          'content-type': 'application/json',
          [LONG_POLL_HEADER]: '10000',
        },
        body: JSON.stringify({ executorName: `exec-${queue}`, version: '5.3.0' }),
      });
      let answeredAt = 0;
      const answered = polled.then((res) => {
        answeredAt = performance.now();
        return res;
      });
      await waitFor(() => waiter.app.waiting() === 1, {
        what: `a long-poll parked on replica ${waiter.name}`,
      });
      const submittedAt = performance.now();
      const sub = await fetch(`${submitter.url}/api/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ queue, steps: [{ image: 'busybox', run: 'true' }] }),
      });
      const committedAt = performance.now();
      expect(sub.status).toBe(201);
      const { id } = (await sub.json()) as { id: number };
      const res = await answered;
      expect(res.status).toBe(200);
      const job = (await res.json()) as { id: number };
      expect(job.id).toBe(id);
      return {
        /** From the submit request to the dequeue answer (includes the submit's own round trip). */
        submitToDelivery: answeredAt - submittedAt,
        /** From the submitted job being committed (submit answered) to the dequeue answer. */
        commitToDelivery: Math.max(0, answeredAt - committedAt),
      };
    }

    it('a long-poll on one replica receives a job enqueued through the other in milliseconds', async () => {
      const [a, b] = replicas as [Replica, Replica];
      const rounds: { submitToDelivery: number; commitToDelivery: number }[] = [];
      for (let i = 0; i < 6; i++) {
        rounds.push(i % 2 === 0 ? await wakeAcross(a, b, `q${i}`) : await wakeAcross(b, a, `q${i}`));
      }
      const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(', ');
      console.log(
        `cross-replica wake-up (ms): submit->delivery [${fmt(rounds.map((r) => r.submitToDelivery))}], ` +
          `commit->delivery [${fmt(rounds.map((r) => r.commitToDelivery))}] (fallback re-check ${FALLBACK_MS} ms)`,
      );
      for (const r of rounds) expect(r.commitToDelivery).toBeLessThan(FALLBACK_MS / 2);
      const claims = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM job_claims');
      expect(claims[0]!.n).toBe(rounds.length);
    });

    it('a token revoked through one replica is refused by the other within a second', async () => {
      const [a, b] = replicas as [Replica, Replica];
      const as = (token: string) => ({
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
      });
      const made = await fetch(`${a.url}/api/v1/tokens`, {
        method: 'POST',
        headers: as(API_TOKEN),
        body: JSON.stringify({ name: 'replicated', scope: 'read' }),
      });
      expect(made.status).toBe(201);
      const { token } = (await made.json()) as { token: string };
      const before = await fetch(`${b.url}/api/v1/whoami`, { headers: as(token) });
      expect(await before.json()).toEqual({ name: 'replicated', scope: 'read' });
      const revoked = await fetch(`${a.url}/api/v1/tokens/replicated`, {
        method: 'DELETE',
        headers: as(API_TOKEN),
      });
      expect(revoked.status).toBe(200);
      const revokedAt = performance.now();
      // No cache: the very next request on the other replica is refused.
      const after = await fetch(`${b.url}/api/v1/jobs`, { headers: as(token) });
      const refusedAfterMs = performance.now() - revokedAt;
      console.log(`revoke on replica a -> refused on replica b: ${refusedAfterMs.toFixed(1)} ms`);
      expect(after.status).toBe(401);
      expect(((await after.json()) as { error: { message: string } }).error.message).toMatch(/revoked/);
      expect(refusedAfterMs).toBeLessThan(1_000);
    });
  },
);
