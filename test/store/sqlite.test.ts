/** The Store contract on SQLite: a fresh database file per test. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { runStoreContract } from './contract.js';
import { runJobEventsContract } from './job-events-contract.js';
import { runRepositoryContract } from './repository-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'executor-sqlite-store-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runStoreContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));
runJobEventsContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));
runRepositoryContract('sqlite', async () => createSqliteStore({ path: join(dir, `store-${++n}.db`) }));

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
    ]);
    raw.close();
  });

  it('works in memory', async () => {
    const s = openStore(':memory:');
    await s.migrate();
    expect(await s.listJobs({ limit: 5 })).toEqual({ jobs: [], total: 0 });
    await s.close();
  });
});
