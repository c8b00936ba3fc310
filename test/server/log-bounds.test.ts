/**
 * Everything a job sends to its log counts against a bound: the number of entries per attempt,
 * each entry's command and key, and the per-attempt cap over keys, commands and output together.
 * Beyond one, a 413 whose text names the bound, and nothing stored. On SQLite, and on PostgreSQL
 * when TEST_DATABASE_URL is set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { truncationMarker } from '../../src/store/log-output.js';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { postgresUrl, requireOrSkip } from '../helpers/env.js';
import { createFreshDatabase, type FreshDatabase } from '../helpers/postgres-db.js';
import { type Harness, startHarness } from './harness.js';

const Q = '/.executors/queue';
const adminUrl = postgresUrl();

logBoundsSuite('SQLite', true);
logBoundsSuite('PostgreSQL', requireOrSkip('PostgreSQL (TEST_DATABASE_URL)', adminUrl !== undefined));

function logBoundsSuite(name: 'SQLite' | 'PostgreSQL', available: boolean): void {
  describe.skipIf(!available)(`log bounds over the executor API (${name})`, () => {
    let h: Harness;
    let db: FreshDatabase | undefined;

    beforeAll(async () => {
      if (name === 'PostgreSQL') db = await createFreshDatabase(adminUrl!);
      h = await startHarness({
        env: {
          EXECUTOR_SERVER_MAX_LOG_ENTRIES: '3',
          EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES: '1Ki',
          EXECUTOR_SERVER_MAX_LOG_BYTES: '4Ki',
        },
        store: db ? createPostgresStore({ connectionString: db.url, clock: 'caller' }) : undefined,
      });
    });
    afterAll(async () => {
      await h?.close();
      await db?.drop();
    });

    const started = async (executor: string) => {
      const id = await h.submit({});
      const job = await h.dequeue('default', executor);
      expect(job.id).toBe(id);
      const add = (entry: Record<string, unknown>) =>
        h.job(`${Q}/default/addExecutionLogEntry`, job, executor, {
          executorName: executor,
          jobId: id,
          startTime: '2026-01-01T00:00:00Z',
          command: ['true'],
          ...entry,
        });
      const update = (entryId: number, entry: Record<string, unknown>) =>
        h.job(`${Q}/default/updateExecutionLogEntry`, job, executor, {
          executorName: executor,
          jobId: id,
          entryId,
          startTime: '2026-01-01T00:00:00Z',
          command: ['true'],
          ...entry,
        });
      return { id, add, update };
    };

    it('refuses an entry beyond EXECUTOR_SERVER_MAX_LOG_ENTRIES with 413', async () => {
      const { id, add } = await started('e-count');
      for (const n of [1, 2, 3]) {
        const r = await add({ key: `step.docker.${n}` });
        expect(r.status).toBe(200);
        expect(await r.json()).toBe(n);
      }
      const over = await add({ key: 'step.docker.4' });
      expect(over.status).toBe(413);
      expect(await over.text()).toContain('already has 3 log entries');
      expect((await h.store.getLogEntries(id)).map((e) => e.key)).toEqual([
        'step.docker.1',
        'step.docker.2',
        'step.docker.3',
      ]);
    });

    it('refuses a command over EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES, on add and on update', async () => {
      const { id, add, update } = await started('e-command');
      // 1024 bytes in all (ä is 2 bytes) is the most; one byte more is refused.
      const fits = ['sh', '-c', 'ä'.repeat(510)];
      expect((await add({ key: 'a', command: fits })).status).toBe(200);
      const over = await add({ key: 'b', command: ['sh', '-c', `${'ä'.repeat(510)}x`] });
      expect(over.status).toBe(413);
      expect(await over.text()).toContain(
        'log entry command is 1025 bytes, more than 1024 bytes (EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES)',
      );
      const upd = await update(1, { key: 'a', command: ['x'.repeat(2000)] });
      expect(upd.status).toBe(413);
      const entries = await h.store.getLogEntries(id);
      expect(entries.map((e) => e.command)).toEqual([fits]);
    });

    it('refuses a key longer than 256 bytes', async () => {
      const { id, add } = await started('e-key');
      expect((await add({ key: 'k'.repeat(256) })).status).toBe(200);
      const over = await add({ key: 'k'.repeat(257) });
      expect(over.status).toBe(413);
      expect(await over.text()).toContain('log entry key is 257 bytes, longer than 256 bytes');
      expect(await h.store.getLogEntries(id)).toHaveLength(1);
    });

    it('counts commands against the per-job cap (EXECUTOR_SERVER_MAX_LOG_BYTES)', async () => {
      const { id, add } = await started('e-cap');
      // Three 1000-byte commands fill 3 of the 4 KiB; output then gets what is left.
      const command = ['y'.repeat(1000)];
      for (const key of ['a', 'b']) expect((await add({ key, command })).status).toBe(200);
      const third = await add({ key: 'c', command, out: 'z'.repeat(5000) });
      expect(third.status).toBe(200);
      const entries = await h.store.getLogEntries(id, { withOutput: true });
      expect(entries[2]!.truncated).toBe(true);
      // 4096 - 3 * 1001 bytes of output fit, then the marker.
      expect(entries[2]!.out).toBe(`${'z'.repeat(4096 - 3003)}${truncationMarker(4096)}`);
    });

    it('refuses an entry once keys, commands and output filled the cap', async () => {
      const { add } = await started('e-full');
      expect((await add({ key: 'a', command: ['y'.repeat(1000)], out: 'z'.repeat(5000) })).status).toBe(200);
      const over = await add({ key: 'b' });
      expect(over.status).toBe(413);
      expect(await over.text()).toContain(
        "the job's log is full: its keys, commands and output reached 4096 bytes (EXECUTOR_SERVER_MAX_LOG_BYTES)",
      );
    });
  });
}
