/**
 * The PostgreSQL store in its production clock mode ('database'): every time written or compared
 * comes from the database's now(), and the `now` a caller passes is ignored. The callers here pass
 * absurd times (0, or a year ahead) on purpose: a store that used them would fail every test.
 * Needs TEST_DATABASE_URL (a fresh database is created and dropped).
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { AttemptFence, ExecutorHeartbeat, NewJob, Store } from '../../src/store/types.js';
import { postgresUrl, requireOrSkip, waitFor } from '../helpers/env.js';
import { createFreshDatabase, type FreshDatabase } from '../helpers/postgres-db.js';

const adminUrl = postgresUrl();
const YEAR_AHEAD = Date.now() + 365 * 24 * 3_600_000;
const STEP = 60_000;

/** The one executor of these tests, as a heartbeat writes its row. */
const EXECUTOR_ROW: ExecutorHeartbeat = {
  name: 'exec-1',
  hostname: 'h',
  queueName: 'clock',
  queueNames: null,
  os: 'linux',
  architecture: 'amd64',
  dockerVersion: '',
  executorVersion: '',
  gitVersion: '',
  igniteVersion: '',
  srcCliVersion: '',
  metrics: '',
};

const newJob = (over: Partial<NewJob> = {}): NewJob => ({
  queue: 'clock',
  spec: { queue: 'clock', steps: [{ image: 'busybox', run: 'true' }] },
  repositoryName: '',
  commit: '',
  priority: 0,
  maxAttempts: 3,
  timeoutMs: 3_600_000,
  ...over,
});
const hash = () => createHash('sha256').update(randomBytes(20)).digest('hex');

describe.skipIf(!requireOrSkip('PostgreSQL (TEST_DATABASE_URL)', adminUrl !== undefined))(
  'postgres store: database clock',
  () => {
    let db: FreshDatabase;
    let store: Store;
    const dbNow = async () =>
      (await db.query<{ n: number }>('SELECT floor(extract(epoch FROM now()) * 1000)::float8 AS n'))[0]!.n;

    beforeAll(async () => {
      db = await createFreshDatabase(adminUrl!);
    });
    afterAll(async () => {
      await db?.drop();
    });
    beforeEach(async () => {
      store = createPostgresStore({ connectionString: db.url, poolSize: 4 });
      await store.migrate();
      await db.query('TRUNCATE jobs, job_tokens, job_claims, log_entries, log_chunks, executors CASCADE');
    });
    afterEach(async () => {
      await store.close();
    });

    async function claim(now: number): Promise<AttemptFence | null> {
      const r = await store.dequeue({
        queue: 'clock',
        executorName: 'exec-1',
        now,
        tokenHash: hash(),
        priorityStepMs: STEP,
      });
      return r ? { jobId: r.job.id, executorName: 'exec-1', attempt: r.attempt } : null;
    }

    it('writes the database time whatever the caller passes', async () => {
      const before = await dbNow();
      const j = await store.enqueue(newJob(), 0);
      const fence = await claim(YEAR_AHEAD);
      expect(await store.heartbeat('exec-1', 'clock', [j.id], 0)).toEqual({
        knownIds: [j.id],
        cancelIds: [],
      });
      expect(await store.markComplete(fence!, YEAR_AHEAD)).toBe(true);
      await store.upsertExecutor(EXECUTOR_ROW, 0);
      const after = await dbNow();
      const done = (await store.getJob(j.id))!;
      for (const t of [
        done.createdAt,
        done.queuedAt,
        done.startedAt,
        done.lastHeartbeatAt,
        done.finishedAt,
        (await store.getExecutor('exec-1'))!.lastSeenAt,
      ]) {
        expect(t).toBeGreaterThanOrEqual(before);
        expect(t).toBeLessThanOrEqual(after);
      }
      const claims = await db.query('SELECT job_id::int, attempt, executor_name, outcome FROM job_claims');
      expect(claims).toEqual([{ job_id: j.id, attempt: 1, executor_name: 'exec-1', outcome: 'completed' }]);
    });

    it('writes a batch of heartbeats at the database time', async () => {
      const j = await store.enqueue(newJob(), 0);
      await claim(0);
      const before = await dbNow();
      expect(
        await store.recordHeartbeats(
          [{ executorName: 'exec-1', row: EXECUTOR_ROW, jobs: [{ queue: 'clock', jobIds: [j.id] }] }],
          YEAR_AHEAD,
        ),
      ).toEqual([[{ knownIds: [j.id], cancelIds: [] }]]);
      const after = await dbNow();
      for (const t of [
        (await store.getJob(j.id))!.lastHeartbeatAt,
        (await store.getExecutor('exec-1'))!.lastSeenAt,
      ]) {
        expect(t).toBeGreaterThanOrEqual(before);
        expect(t).toBeLessThanOrEqual(after);
      }
    });

    it('touches last-seen times at the database time', async () => {
      await store.upsertExecutor(EXECUTOR_ROW, 0);
      const before = await dbNow();
      expect(await store.touchExecutors([{ name: 'exec-1', at: YEAR_AHEAD }])).toEqual(['exec-1']);
      const after = await dbNow();
      const seen = (await store.getExecutor('exec-1'))!.lastSeenAt;
      expect(seen).toBeGreaterThanOrEqual(before);
      expect(seen).toBeLessThanOrEqual(after);
    });

    it('holds a retry back for its backoff on the database clock, not the caller clock', async () => {
      const slow = await store.enqueue(newJob(), 0);
      expect((await claim(0))!.jobId).toBe(slow.id);
      expect(
        await store.markErrored({ jobId: slow.id, executorName: 'exec-1', attempt: 1 }, 'boom', 0, {
          baseMs: 60_000,
          maxMs: 60_000,
        }),
      ).toBe(true);
      // A caller a year ahead would see the backoff long over; the database says it is not.
      expect(await claim(YEAR_AHEAD)).toBeNull();
      expect((await store.readyCounts(['clock'], YEAR_AHEAD)).get('clock')).toBe(0);
      expect((await store.queueStats(YEAR_AHEAD))[0]).toMatchObject({ queued: 1, oldestQueuedAt: null });

      // A second job backs off only 300 ms: it becomes claimable, the first stays held back.
      const quick = await store.enqueue(newJob(), YEAR_AHEAD);
      const fence = (await claim(0))!;
      expect(fence.jobId).toBe(quick.id);
      const erroredAt = await dbNow();
      expect(await store.markErrored(fence, 'boom', YEAR_AHEAD, { baseMs: 300, maxMs: 300 })).toBe(true);
      expect(await claim(YEAR_AHEAD)).toBeNull();
      const again = await waitFor(() => claim(0), { what: 'the job after its backoff' });
      expect(again.jobId).toBe(quick.id);
      const job = (await store.getJob(quick.id))!;
      expect(job.processAfter! - job.queuedAt).toBe(300);
      expect(job.startedAt!).toBeGreaterThanOrEqual(job.processAfter!);
      expect(job.processAfter!).toBeGreaterThanOrEqual(erroredAt + 300);
      expect(await claim(YEAR_AHEAD)).toBeNull();
    });

    it('measures the lease on the database clock', async () => {
      const j = await store.enqueue(newJob(), 0);
      await claim(0);
      // Stale by the caller's clock (a year ahead), fresh by the database's: nothing is reset.
      expect(await store.resetStalled(YEAR_AHEAD, 60_000, 3)).toEqual({ reset: [], failed: [] });
      expect((await store.getJob(j.id))!.state).toBe('processing');
      // A 200 ms stall window does pass, by the database clock, even for a caller at time 0.
      const r = await waitFor(
        async () => {
          const x = await store.resetStalled(0, 200, 3);
          return x.reset.length > 0 ? x : null;
        },
        { what: 'the stalled reset' },
      );
      expect(r).toEqual({ reset: [j.id], failed: [] });
      const claims = await db.query('SELECT attempt, outcome FROM job_claims WHERE job_id = $1', [j.id]);
      expect(claims).toEqual([{ attempt: 1, outcome: 'stalled-reset' }]);
    });

    it('expires deadlines on the database clock', async () => {
      const j = await store.enqueue(newJob({ timeoutMs: 300 }), YEAR_AHEAD);
      await claim(YEAR_AHEAD);
      // The caller at time 0 would never see the deadline pass; a year ahead it would at once.
      expect(await store.expireDeadlines(YEAR_AHEAD, { baseMs: 1, maxMs: 1 })).toEqual([]);
      const expired = await waitFor(
        async () => {
          const x = await store.expireDeadlines(0, { baseMs: 1, maxMs: 1 });
          return x.length > 0 ? x : null;
        },
        { what: 'the deadline' },
      );
      expect(expired).toEqual([j.id]);
      const job = (await store.getJob(j.id))!;
      expect(job.state).toBe('queued');
      expect(job.failureMessage).toContain('timeout');
    });
  },
);
