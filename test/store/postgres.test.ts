/**
 * The Store contract on PostgreSQL, when TEST_DATABASE_URL names an admin connection: this file
 * creates a fresh database `executor_test_<random>`, runs the suite (tables emptied before each test)
 * and drops the database afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { FOLLOWER_CHECK_MS, LOG_ANNOUNCE_INTERVAL_MS } from '../../src/store/postgres/log-announcer.js';
import {
  createPostgresStore,
  ENQUEUE_CHANNEL,
  LOGS_CHANNEL,
} from '../../src/store/postgres/postgres-store.js';
import type { NewJob, Store } from '../../src/store/types.js';
import { postgresUrl, requireOrSkip, waitFor } from '../helpers/env.js';
import { runStoreContract } from './contract.js';
import { runHeartbeatBatchContract } from './heartbeat-batch-contract.js';
import { runJobEventsContract } from './job-events-contract.js';
import { runRepositoryContract } from './repository-contract.js';
import { runRetentionContract } from './retention-contract.js';

const adminUrl = postgresUrl();

if (requireOrSkip('PostgreSQL (TEST_DATABASE_URL)', adminUrl !== undefined)) {
  const dbName = `executor_test_${randomBytes(6).toString('hex')}`;
  // Replace the database of the admin URL, keeping credentials and query (e.g. ?host=/socket/dir).
  const dbUrl = adminUrl!.replace(/^(postgres(?:ql)?:\/\/[^/?]*)(\/[^?]*)?/, `$1/${dbName}`);

  async function admin(sql: string): Promise<void> {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  }

  let cleaner: pg.Client;
  beforeAll(async () => {
    await admin(`CREATE DATABASE ${dbName}`);
    const s = createPostgresStore({ connectionString: dbUrl });
    await s.migrate();
    await s.close();
    cleaner = new pg.Client({ connectionString: dbUrl });
    await cleaner.connect();
  });
  afterAll(async () => {
    await cleaner?.end();
    await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  const freshStore = async () => {
    await cleaner.query(
      'TRUNCATE jobs, job_tokens, job_claims, job_events, log_entries, log_chunks, executors, api_tokens, repositories RESTART IDENTITY CASCADE',
    );
    // The contract drives time by hand: the caller's clock.
    return createPostgresStore({ connectionString: dbUrl, poolSize: 8, clock: 'caller' });
  };
  runStoreContract('postgres', freshStore);
  runJobEventsContract('postgres', freshStore);
  runRetentionContract('postgres', freshStore);
  runRepositoryContract('postgres', freshStore);
  runHeartbeatBatchContract('postgres', freshStore);

  describe('postgres store specifics', () => {
    /** A job of queue `r` running `true`, one attempt. */
    const trueJob: NewJob = {
      queue: 'r',
      spec: { queue: 'r', steps: [{ image: 'busybox', run: 'true' }] },
      repositoryName: '',
      commit: '',
      priority: 0,
      maxAttempts: 1,
      timeoutMs: 1000,
    };

    it('claims exactly once across replicas sharing the database', async () => {
      await cleaner.query(
        'TRUNCATE jobs, job_tokens, job_claims, log_entries, log_chunks, executors, api_tokens, repositories RESTART IDENTITY CASCADE',
      );
      const replicas: Store[] = [0, 1, 2].map(() =>
        createPostgresStore({ connectionString: dbUrl, poolSize: 6 }),
      );
      try {
        await Promise.all(replicas.map((r) => r.migrate()));
        for (let i = 0; i < 30; i++) await replicas[0]!.enqueue(trueJob, 1_000 + i);
        const claims = await Promise.all(
          Array.from({ length: 90 }, (_, i) =>
            replicas[i % 3]!.dequeue({
              queue: 'r',
              executorName: `e${i}`,
              now: 10_000,
              tokenHash: randomBytes(32).toString('hex'),
              priorityStepMs: 60_000,
            }),
          ),
        );
        const ids = claims.filter((c) => c !== null).map((c) => c!.job.id);
        expect(ids).toHaveLength(30);
        expect(new Set(ids).size).toBe(30);
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
      }
    });

    it('a statement prepared before a schema change is prepared again, and the call succeeds', async () => {
      await cleaner.query(
        'TRUNCATE jobs, job_tokens, job_claims, log_entries, log_chunks, executors, api_tokens, repositories RESTART IDENTITY CASCADE',
      );
      // One connection, so the statement prepared by the first read is the one the second runs.
      const s = createPostgresStore({ connectionString: dbUrl, poolSize: 1 });
      try {
        const j = await s.enqueue(trueJob, 1_000);
        expect((await s.getJob(j.id))?.id).toBe(j.id);
        // Another replica migrating: `SELECT *` of the prepared read now has another result type.
        await cleaner.query('ALTER TABLE jobs ADD COLUMN prepared_statement_probe integer');
        try {
          expect((await s.getJob(j.id))?.id).toBe(j.id);
          expect((await s.getJob(j.id))?.state).toBe('queued');
        } finally {
          await cleaner.query('ALTER TABLE jobs DROP COLUMN prepared_statement_probe');
        }
        expect((await s.getJob(j.id))?.id).toBe(j.id);
      } finally {
        await s.close();
      }
    });

    it("wakes its own replica's waiters when it enqueues, once, and another replica's through NOTIFY", async () => {
      await cleaner.query(
        'TRUNCATE jobs, job_tokens, job_claims, log_entries, log_chunks, executors, api_tokens, repositories RESTART IDENTITY CASCADE',
      );
      const [a, b] = [0, 1].map(() => createPostgresStore({ connectionString: dbUrl, poolSize: 2 }));
      try {
        const heardA: string[] = [];
        const heardB: string[] = [];
        const offA = a!.onEnqueue!((q) => heardA.push(q));
        const offB = b!.onEnqueue!((q) => heardB.push(q));
        // Both listen once a probe NOTIFY from a third connection reaches both (a late probe
        // may still arrive: probes are left out below).
        await waitFor(
          async () => {
            await cleaner.query(`SELECT pg_notify('${ENQUEUE_CHANNEL}', 'probe')`);
            return heardA.includes('probe') && heardB.includes('probe');
          },
          { what: 'both replicas listening', intervalMs: 50 },
        );
        const heard = (h: string[]) => h.filter((q) => q !== 'probe');
        heardA.length = 0;
        heardB.length = 0;
        await a!.enqueue({ ...trueJob, queue: 'own' }, 1_000);
        // A's waiters were woken before its enqueue returned, without the NOTIFY round trip.
        expect(heard(heardA)).toEqual(['own']);
        // A NOTIFY sent after A's is delivered after it: once both hear it, A's own NOTIFY has
        // reached both listeners, and A did not take it for a second enqueue.
        await cleaner.query(`SELECT pg_notify('${ENQUEUE_CHANNEL}', 'after')`);
        await waitFor(() => heardA.includes('after') && heardB.includes('after'), {
          what: 'the marker after',
        });
        expect(heard(heardA)).toEqual(['own', 'after']);
        expect(heard(heardB)).toEqual(['own', 'after']);
        offA();
        offB();
      } finally {
        await Promise.all([a!.close(), b!.close()]);
      }
    });

    it('openStore picks PostgreSQL for postgres:// URLs', async () => {
      const s = openStore(dbUrl);
      await s.migrate();
      const { rows } = await cleaner.query('SELECT version, name FROM schema_migrations ORDER BY version');
      expect(rows).toEqual([
        { version: 1, name: 'jobs_tokens_logs_executors' },
        { version: 2, name: 'job_claims' },
        { version: 3, name: 'api_tokens' },
        { version: 4, name: 'log_entry_meta_bytes' },
        { version: 5, name: 'job_events' },
        { version: 6, name: 'repositories' },
        { version: 7, name: 'retention' },
        { version: 8, name: 'executors_last_seen_unindexed' },
      ]);
      expect(Array.isArray((await s.listJobs({ limit: 1 })).jobs)).toBe(true);
      expect(await s.pendingMigrations()).toEqual([]);
      await cleaner.query('DELETE FROM schema_migrations WHERE version = 7');
      expect(await s.pendingMigrations()).toEqual([7]);
      await cleaner.query("INSERT INTO schema_migrations (version, name) VALUES (7, 'retention')");
      expect(await s.pendingMigrations()).toEqual([]);
      await s.close();
    });

    it('a burst of log announcements reaches the other replica, every job, in few NOTIFY statements', async () => {
      const writer = createPostgresStore({ connectionString: dbUrl });
      const reader = createPostgresStore({ connectionString: dbUrl });
      const notifies = vi.spyOn(pg.Pool.prototype, 'query');
      const heard = new Set<number>();
      const off = reader.onLogWrite!((jobId) => heard.add(jobId));
      const release = await reader.followLogs!();
      try {
        // The reader's LISTEN may take a moment: announce until one is heard.
        await waitFor(
          () => {
            writer.announceLogWrite!(1);
            return heard.has(1);
          },
          { what: 'the first announcement', intervalMs: 50 },
        );
        notifies.mockClear();
        // One write per turn of the event loop, as marks of many executors arrive on a busy replica.
        const started = performance.now();
        for (let id = 1_000; id < 1_200; id++) {
          writer.announceLogWrite!(id);
          await new Promise((r) => setImmediate(r));
        }
        const elapsedMs = performance.now() - started;
        await waitFor(() => heard.size === 201, { what: 'every announced job' });
        expect([...heard].sort((a, b) => a - b)).toEqual([
          1,
          ...Array.from({ length: 200 }, (_, i) => 1_000 + i),
        ]);
        const statements = notifies.mock.calls.filter(([q]) =>
          String(q).includes(`pg_notify('${LOGS_CHANNEL}'`),
        );
        // One statement leaves at once, then at most one per interval (and the last, after it).
        expect(statements.length).toBeLessThanOrEqual(2 + Math.ceil(elapsedMs / LOG_ANNOUNCE_INTERVAL_MS));
        expect(statements.length).toBeLessThan(200);
      } finally {
        notifies.mockRestore();
        release();
        off();
        await writer.close();
        await reader.close();
      }
    });

    it('announces log writes only while another replica follows; a follower that starts is heard at once', async () => {
      const writer = createPostgresStore({ connectionString: dbUrl });
      const reader = createPostgresStore({ connectionString: dbUrl });
      const statements = vi.spyOn(pg.Pool.prototype, 'query');
      const logStatements = () =>
        statements.mock.calls
          .map((call, i) => ({ text: String(call[0]), i }))
          .filter(({ text }) => text.includes(`pg_notify('${LOGS_CHANNEL}'`));
      const heard = new Set<number>();
      const off = reader.onLogWrite!((jobId) => heard.add(jobId));
      // The writer follows its own logs: that is no reason to announce them.
      const ownRelease = await writer.followLogs!();
      try {
        const started = performance.now();
        for (let id = 1; id <= 200; id++) {
          writer.announceLogWrite!(id);
          await new Promise((r) => setImmediate(r));
        }
        // The first announcement looks at pg_locks in the statement that would notify: nobody else
        // holds the lock (the writer's own is not counted), so it notified nobody.
        await waitFor(() => logStatements().length >= 1, { what: 'the first check' });
        const check = (await statements.mock.results[logStatements()[0]!.i]!.value) as pg.QueryResult;
        expect(check.rows).toEqual([{ others: false, sent: 0 }]);
        // Later ones within FOLLOWER_CHECK_MS trust it and send no statement at all.
        expect(logStatements().length).toBeLessThanOrEqual(
          1 + Math.ceil((performance.now() - started) / FOLLOWER_CHECK_MS),
        );

        // The reader starts following: its notice reaches the writer, which announces from then on.
        const release = await reader.followLogs!();
        await waitFor(
          () => {
            writer.announceLogWrite!(1_000);
            return heard.has(1_000);
          },
          { what: 'an announcement after the reader follows', intervalMs: 20 },
        );

        // A writer that starts after the follower finds its lock on its first announcement.
        const late = createPostgresStore({ connectionString: dbUrl });
        try {
          late.announceLogWrite!(2_000);
          await waitFor(() => heard.has(2_000), { what: "the late writer's first announcement" });
        } finally {
          await late.close();
        }
        release();
      } finally {
        statements.mockRestore();
        ownRelease();
        off();
        await writer.close();
        await reader.close();
      }
    });

    it('on the database clock, an event takes the time of the change it records', async () => {
      const s = createPostgresStore({ connectionString: dbUrl });
      try {
        const j = await s.enqueue(trueJob, 0, 'alice');
        const canceled = await s.cancelJob(j.id, 0, 'bob');
        const events = await s.listJobEvents(j.id);
        expect(events.map((e) => e.at)).toEqual([j.createdAt, canceled!.finishedAt]);
        expect(j.createdAt).toBeGreaterThan(Date.UTC(2020, 0, 1));
      } finally {
        await s.close();
      }
    });
  });
} else {
  // Reached only outside CI (requireOrSkip throws under CI=true): vitest refuses a file that
  // registers no test, so the missing database shows up as one skipped placeholder.
  describe.skip('Store contract: postgres', () => {
    it('needs TEST_DATABASE_URL', () => {});
  });
}
