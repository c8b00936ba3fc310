/** The Store contract on SQLite: a fresh database file per test. */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { runStoreContract } from './contract.js';
import { runHeartbeatBatchContract } from './heartbeat-batch-contract.js';
import { runJobEventsContract } from './job-events-contract.js';
import { runRepositoryContract } from './repository-contract.js';
import { runRetentionContract } from './retention-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'executor-sqlite-store-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runStoreContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));
runJobEventsContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));
runRetentionContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));
runRepositoryContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));
runHeartbeatBatchContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));

describe('sqlite store specifics', () => {
  it('uses WAL on a file and keeps data across reopen', async () => {
    const path = join(dir, 'reopen.db');
    const a = createSqliteStore({ path });
    await a.migrate();
    const job = await a.enqueue(
      {
        queue: 'q',
        spec: { queue: 'q', steps: [{ image: 'busybox', run: 'true' }] },
        repositoryName: '',
        commit: '',
        priority: 0,
        maxAttempts: 1,
        timeoutMs: 1000,
      },
      1,
    );
    await a.close();
    const b = openStore(`sqlite:${path}`);
    await b.migrate();
    expect((await b.getJob(job.id))?.queue).toBe('q');
    await b.close();
    const Database = (await import('better-sqlite3')).default;
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.prepare('SELECT version, name FROM schema_migrations').all()).toEqual([
      { version: 1, name: 'jobs_tokens_logs_executors' },
      { version: 2, name: 'job_claims' },
      { version: 3, name: 'api_tokens' },
      { version: 4, name: 'log_entry_meta_bytes' },
      { version: 5, name: 'job_events' },
      { version: 6, name: 'repositories' },
      { version: 7, name: 'retention' },
      { version: 8, name: 'job_claims_ended_only' },
      { version: 9, name: 'executors_last_seen_unindexed' },
    ]);
    raw.close();
  });

  it('upgrades a database whose claims were written at dequeue: ended rows kept, open rows read from the job', async () => {
    const path = join(dir, 'claims-v5.db');
    const Database = (await import('better-sqlite3')).default;
    const old = new Database(path);
    old.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    for (const m of SQLITE_MIGRATIONS.filter((m) => m.version <= 5)) {
      old.exec(m.sql);
      old.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.version, m.name);
    }
    old.close();
    // As the previous schema left them: job 1 on its second attempt (one ended claim, one open
    // claim), job 2 completed (one ended claim).
    const raw = new Database(path);
    const job = raw.prepare(
      `INSERT INTO jobs (id, queue, state, spec, max_attempts, attempts, worker_hostname, timeout_ms,
         created_at, queued_at, started_at, last_heartbeat_at, finished_at, rank_key)
       VALUES (?, 'q', ?, '{}', 3, ?, 'exec-b', 1000, 1, 1, ?, ?, ?, 1)`,
    );
    job.run(1, 'processing', 2, 20, 20, null);
    job.run(2, 'completed', 1, 5, 5, 6);
    const claim = raw.prepare(
      'INSERT INTO job_claims (job_id, attempt, executor_name, claimed_at, ended_at, outcome) VALUES (?, ?, ?, ?, ?, ?)',
    );
    claim.run(1, 1, 'exec-a', 10, 11, 'errored');
    claim.run(2, 1, 'exec-a', 5, 6, 'completed');
    claim.run(1, 2, 'exec-b', 20, null, null);
    raw.close();

    const s = createSqliteStore({ path });
    await s.migrate();
    const record = (
      jobId: number,
      attempt: number,
      executorName: string,
      claimedAt: number,
      endedAt: number | null,
      outcome: string | null,
    ) => ({ jobId, attempt, executorName, claimedAt, endedAt, outcome });
    expect(await s.claimHistory(1)).toEqual([
      record(1, 1, 'exec-a', 10, 11, 'errored'),
      record(1, 2, 'exec-b', 20, null, null),
    ]);
    expect(await s.claimHistory(2)).toEqual([record(2, 1, 'exec-a', 5, 6, 'completed')]);
    // The open attempt ends as any other: its one row is written then, after the older ones.
    expect(await s.markComplete({ jobId: 1, executorName: 'exec-b', attempt: 2 }, 30)).toBe(true);
    expect(await s.claimHistory(1)).toEqual([
      record(1, 1, 'exec-a', 10, 11, 'errored'),
      record(1, 2, 'exec-b', 20, 30, 'completed'),
    ]);
    await s.close();
  });

  it('works in memory', async () => {
    const s = openStore(':memory:');
    await s.migrate();
    expect(await s.listJobs({ limit: 5 })).toEqual({ jobs: [], total: 0 });
    await s.close();
  });

  it('gives the space of pruned jobs back to the file system (incremental vacuum)', async () => {
    const path = join(dir, 'shrink.db');
    const s = createSqliteStore({ path });
    await s.migrate();
    const out = 'y'.repeat(64 * 1024);
    for (let i = 0; i < 60; i++) {
      const job = await s.enqueue(
        {
          queue: 'q',
          spec: { queue: 'q', steps: [{ image: 'busybox', run: 'true' }] },
          repositoryName: '',
          commit: '',
          priority: 0,
          maxAttempts: 1,
          timeoutMs: 1000,
        },
        1,
      );
      await s.dequeue({ queue: 'q', executorName: 'e', now: 1, tokenHash: `h${i}`, priorityStepMs: 1 });
      const fence = { jobId: job.id, executorName: 'e', attempt: 1 };
      const entry = await s.addLogEntry(fence, { key: 'k', command: null, startTime: 'now' }, 1 << 20);
      await s.appendLogOutput(fence, entry!, 0, out, {}, 1 << 20);
      await s.markComplete(fence, 2);
    }
    const Database = (await import('better-sqlite3')).default;
    const checkpoint = () => {
      const raw = new Database(path);
      raw.pragma('wal_checkpoint(TRUNCATE)');
      raw.close();
    };
    checkpoint();
    const full = statSync(path).size;
    expect(full).toBeGreaterThan(60 * 64 * 1024);
    let pruned = 0;
    for (let r = await s.pruneFinishedJobs(10, 16); r.jobs > 0; r = await s.pruneFinishedJobs(10, 16))
      pruned += r.jobs;
    expect(pruned).toBe(60);
    let pages = 0;
    for (let n = await s.reclaimSpace(100); n > 0; n = await s.reclaimSpace(100)) pages += n;
    expect(pages).toBeGreaterThan(900);
    checkpoint();
    expect(statSync(path).size).toBeLessThan(full / 4);
    await s.close();
  });

  it('converts a file made before incremental vacuum once, at migrate', async () => {
    const path = join(dir, 'old-mode.db');
    const Database = (await import('better-sqlite3')).default;
    const raw = new Database(path);
    raw.exec('CREATE TABLE t (x INTEGER)');
    expect(raw.pragma('auto_vacuum', { simple: true })).toBe(0);
    raw.close();
    const s = createSqliteStore({ path });
    await s.migrate();
    await s.close();
    const after = new Database(path, { readonly: true });
    expect(after.pragma('auto_vacuum', { simple: true })).toBe(2);
    after.close();
  });
});
