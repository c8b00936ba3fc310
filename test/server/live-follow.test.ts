/**
 * Followers are woken by the writes themselves: an accepted append (and the final mark) reaches a
 * follower whose fallback timer is set far beyond the test's timeout, so only the wake-up can have
 * delivered it. On PostgreSQL, a follower on one replica is woken by an append accepted by another
 * (NOTIFY on `executor_logs`). The replica part needs TEST_DATABASE_URL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/server.js';
import { systemClock } from '../../src/lib/clock.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import { type LogStreamEvent, readLogStreamEvents } from '../../src/protocol/user-api.js';
import { createServer, type Listening, listen, type ServerApp } from '../../src/server/index.js';
import { openStore } from '../../src/store/index.js';
import { FOLLOW_LOCK } from '../../src/store/postgres/log-announcer.js';
import { LOGS_CHANNEL } from '../../src/store/postgres/postgres-store.js';
import type { Store } from '../../src/store/types.js';
import { postgresUrl, requireOrSkip, waitFor } from '../helpers/env.js';
import { createFreshDatabase, type FreshDatabase } from '../helpers/postgres-db.js';
import { API_TOKEN, EXECUTOR_TOKEN, type Harness, startHarness } from './harness.js';

/** Ten minutes: no follower in this file reads on its timer. */
const NEVER_MS = 600_000;
const Q = '/.executors/queue';

/** The events of a follow stream, read on demand. */
function eventsOf(res: Response) {
  const it = readLogStreamEvents(res.body!);
  const seen: LogStreamEvent[] = [];
  return {
    seen,
    async until(cond: (e: LogStreamEvent) => boolean): Promise<LogStreamEvent> {
      for (;;) {
        const { value, done } = await it.next();
        if (done) throw new Error(`stream ended; seen ${JSON.stringify(seen)}`);
        seen.push(value);
        if (cond(value)) return value;
      }
    },
  };
}

const outputIs = (data: string) => (e: LogStreamEvent) => e.event === 'output' && e.data.data === data;

function jobRequest(url: string, p: string, job: { id: number; token: string }, body: unknown) {
  return fetch(url + p, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${job.token}`,
      'x-sourcegraph-job-id': String(job.id),
      'x-sourcegraph-executor-name': 'e1',
      'content-type': 'application/json',
    },
    body: JSON.stringify({ executorName: 'e1', jobId: job.id, ...(body as object) }),
  });
}

describe('followers are woken by writes, not by a timer', () => {
  let h: Harness | undefined;
  const streams: AbortController[] = [];
  afterEach(async () => {
    for (const s of streams.splice(0)) s.abort();
    await h?.close();
    h = undefined;
  });

  it('an append reaches a follower whose timer never fires; markComplete ends its stream', async () => {
    h = await startHarness({ followFallbackMs: NEVER_MS });
    const id = await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const add = await jobRequest(h.url, `${Q}/default/addExecutionLogEntry`, job, {
      key: 'step.docker.0',
      command: ['sh'],
      startTime: '2026-01-01T00:00:00Z',
      out: 'stdout: first\n',
    });
    expect(add.status).toBe(200);
    const ac = new AbortController();
    streams.push(ac);
    const res = await fetch(`${h.url}/api/v1/jobs/${id}/logs?follow=1`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
      signal: ac.signal,
    });
    const events = eventsOf(res);
    // Its first read found what was there: from now on it waits.
    await events.until(outputIs('stdout: first\n'));
    expect(h.app.following()).toBe(1);

    for (const [offset, line] of [
      [14, 'stdout: second\n'],
      [29, 'stdout: third\n'],
    ] as const) {
      const r = await jobRequest(h.url, `${Q}/default/appendExecutionLogEntry`, job, {
        entryId: 1,
        offset,
        out: line,
      });
      expect(r.status).toBe(200);
      await events.until(outputIs(line));
    }
    const done = await jobRequest(h.url, `${Q}/default/markComplete`, job, {});
    expect(done.status).toBe(204);
    const end = await events.until((e) => e.event === 'end');
    expect(end).toMatchObject({ event: 'end', data: { id, state: 'completed' } });
    await waitFor(() => h!.app.following() === 0, { what: 'the follower to unsubscribe' });
  });

  it('a cancel of a queued job through the user API ends the stream at once', async () => {
    h = await startHarness({ followFallbackMs: NEVER_MS });
    const id = await h.submit({});
    const ac = new AbortController();
    streams.push(ac);
    const res = await fetch(`${h.url}/api/v1/jobs/${id}/logs?follow=1`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
      signal: ac.signal,
    });
    const events = eventsOf(res);
    await waitFor(() => h!.app.following() === 1, { what: 'the follower' });
    expect((await h.api('POST', `/jobs/${id}/cancel`)).status).toBe(200);
    const end = await events.until((e) => e.event === 'end');
    expect(end).toMatchObject({ data: { id, state: 'canceled' } });
  });
});

const adminUrl = postgresUrl();

interface Replica {
  url: string;
  app: ServerApp;
  store: Store;
  server: Listening;
}

describe.skipIf(!requireOrSkip('PostgreSQL (TEST_DATABASE_URL)', adminUrl !== undefined))(
  'a follower on one PostgreSQL replica, an append on another',
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
      const app = createServer({
        store,
        config,
        clock: systemClock,
        logger: createMemoryLogger(),
        followFallbackMs: NEVER_MS,
      });
      const server = await listen(app, '127.0.0.1', 0);
      return { url: server.url, app, store, server };
    }

    beforeAll(async () => {
      db = await createFreshDatabase(adminUrl!);
      dir = mkdtempSync(path.join(os.tmpdir(), 'executor-live-follow-'));
      replicas.push(await startReplica('a'), await startReplica('b'));
    });
    afterAll(async () => {
      for (const r of replicas) {
        await r.app.close();
        await r.server.close();
        await r.store.close();
      }
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('NOTIFY wakes the other replica’s follower', async () => {
      const [a, b] = replicas as [Replica, Replica];
      const exec = (p: string, body: unknown) =>
        fetch(a.url + p, {
          method: 'POST',
          headers: { authorization: `token-executor ${EXECUTOR_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const submitted = await fetch(`${a.url}/api/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ queue: 'live', steps: [{ image: 'alpine', run: 'true' }] }),
      });
      expect(submitted.status).toBe(201);
      const { id } = (await submitted.json()) as { id: number };
      await exec(`${Q}/live/heartbeat`, { executorName: 'e1', executorVersion: '5.3.0' });
      const dq = await exec(`${Q}/live/dequeue`, { executorName: 'e1', version: '5.3.0' });
      expect(dq.status).toBe(200);
      const job = (await dq.json()) as { id: number; token: string };
      const add = await jobRequest(a.url, `${Q}/live/addExecutionLogEntry`, job, {
        key: 'step.docker.0',
        command: ['sh'],
        startTime: '2026-01-01T00:00:00Z',
        out: 'stdout: first\n',
      });
      expect(add.status).toBe(200);

      // Both replicas LISTEN on the log channel (each server subscribes when it starts).
      await waitFor(
        async () =>
          (
            await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE datname = current_database() AND query = $1`,
              [`LISTEN ${LOGS_CHANNEL}`],
            )
          )[0]!.n >= 2,
        { what: 'both replicas to LISTEN' },
      );

      const ac = new AbortController();
      const res = await fetch(`${b.url}/api/v1/jobs/${id}/logs?follow=1`, {
        headers: { authorization: `Bearer ${API_TOKEN}` },
        signal: ac.signal,
      });
      try {
        const events = eventsOf(res);
        await events.until(outputIs('stdout: first\n'));
        // Replica b registered its follower before the first read: it holds the followers' lock,
        // so replica a announces its writes (it announces none while nobody else follows).
        const holders = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 2`,
          [FOLLOW_LOCK[0], FOLLOW_LOCK[1]],
        );
        expect(holders[0]!.n).toBe(1);
        const r = await jobRequest(a.url, `${Q}/live/appendExecutionLogEntry`, job, {
          entryId: 1,
          offset: 14,
          out: 'stdout: from replica a\n',
        });
        expect(r.status).toBe(200);
        // Replica b's follower never reads on its timer: only a's NOTIFY can deliver this.
        await events.until(outputIs('stdout: from replica a\n'));
        expect((await jobRequest(a.url, `${Q}/live/markComplete`, job, {})).status).toBe(204);
        expect(await events.until((e) => e.event === 'end')).toMatchObject({
          data: { id, state: 'completed' },
        });
      } finally {
        ac.abort();
      }
    });
  },
);
