/**
 * Upgrades: a database written by an earlier release (test/store/fixtures/schema-<N>.*, made with
 * make-upgrade-fixture.ts at that release) is migrated by this code, on SQLite and on PostgreSQL,
 * with its data intact and usable: the running attempt of the old server carries on under the new
 * one (its token, its log, its mark), queued work is dequeued, history stays. Every fixture in the
 * folder is tested, so each new migration must pass all of them.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/types.js';
import { commandAvailable, postgresUrl, requireOrSkip } from '../helpers/env.js';
import { createFreshDatabase } from '../helpers/postgres-db.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const T0 = Date.UTC(2026, 0, 1);
const versions = readdirSync(FIXTURES)
  .flatMap((f) => /^schema-(\d+)\.sqlite$/.exec(f)?.[1] ?? [])
  .map(Number)
  .sort((a, b) => a - b);
const work = mkdtempSync(path.join(tmpdir(), 'executor-upgrade-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What make-upgrade-fixture.ts wrote (jobs 1..4), checked after the upgrade. */
async function checkUpgraded(s: Store, from: number, known: readonly { version: number }[]): Promise<void> {
  // Exactly the migrations newer than the fixture's schema are pending.
  expect(await s.pendingMigrations()).toEqual(known.map((m) => m.version).filter((n) => n > from));
  await s.migrate();
  expect(await s.pendingMigrations()).toEqual([]);

  const done = await s.getJob(1);
  expect(done).toMatchObject({ state: 'completed', queue: 'batches', finishedAt: T0 + 20 });
  expect(done!.spec.files).toEqual({ 'note.txt': 'kept across upgrades\n' });
  const [entry] = await s.getLogEntries(1, { withOutput: true });
  expect(entry).toMatchObject({ key: 'step.docker.0', exitCode: 0, out: 'done\nstill done\n' });
  expect((await s.claimHistory(1)).map((c) => c.outcome)).toEqual(['completed']);
  expect((await s.listJobEvents(4)).map((e) => [e.actor, e.action])).toEqual([
    ['bob', 'submitted'],
    ['carol', 'canceled'],
  ]);
  expect(await s.findApiTokenByHash('f'.repeat(64), T0)).toMatchObject({ name: 'ci', scope: 'submit' });
  expect((await s.getExecutor('exec-a'))?.hostname).toBe('host-a');

  // The attempt the old server handed out goes on under the new one: token, log append, mark.
  const auth = await s.lookupTokenFor('b'.repeat(64), 'exec-a');
  expect(auth).toMatchObject({ executorKnown: true, token: { jobId: 2, attempt: 1 } });
  const fence = { jobId: 2, executorName: 'exec-a', attempt: 1 };
  expect(await s.appendLogOutput(fence, 1, 8, 'finished\n', { exitCode: 0 }, 1 << 20)).toEqual({
    ok: true,
    length: 17,
  });
  expect(await s.markComplete(fence, T0 + 40)).toBe(true);
  // Queued work is dequeued, and the new schema's features work on old rows.
  const next = await s.dequeue({
    queue: 'batches',
    executorName: 'exec-a',
    now: T0 + 50,
    tokenHash: 'c'.repeat(64),
    priorityStepMs: 60_000,
  });
  expect(next?.job.id).toBe(3);
  expect((await s.pruneFinishedJobs(T0 + 35, 10)).jobs).toBe(2);
  expect(await s.getJob(1)).toBeNull();
  expect((await s.getJob(2))?.state).toBe('completed');
}

describe('upgrade from the schema of an earlier release', () => {
  it('has at least one fixture', () => {
    expect(versions).toContain(5);
  });

  for (const v of versions) {
    it(`SQLite: schema ${v} -> current`, async () => {
      const file = path.join(work, `schema-${v}.sqlite`);
      copyFileSync(path.join(FIXTURES, `schema-${v}.sqlite`), file);
      const s = createSqliteStore({ path: file });
      try {
        await checkUpgraded(s, v, SQLITE_MIGRATIONS);
      } finally {
        await s.close();
      }
    });
  }

  const adminUrl = postgresUrl();
  const pgOk = requireOrSkip(
    'PostgreSQL (TEST_DATABASE_URL) and psql',
    adminUrl !== undefined && commandAvailable('psql'),
  );
  for (const v of versions) {
    it.skipIf(!pgOk)(`PostgreSQL: schema ${v} -> current`, async () => {
      const db = await createFreshDatabase(adminUrl!, 'executor_upgrade');
      try {
        execFileSync(
          'psql',
          ['-q', '-v', 'ON_ERROR_STOP=1', '-f', path.join(FIXTURES, `schema-${v}.pg.sql`), db.url],
          {
            stdio: 'pipe',
          },
        );
        const s = createPostgresStore({ connectionString: db.url, clock: 'caller' });
        try {
          await checkUpgraded(s, v, POSTGRES_MIGRATIONS);
        } finally {
          await s.close();
        }
      } finally {
        await db.drop();
      }
    });
  }
});
