/**
 * The `log-append-bytes` form of appendExecutionLogEntry: the output is the raw body
 * (`application/octet-stream`), the other fields are in the query string. It answers and stores
 * exactly as the JSON form does (the same lengths, 409 on a gap, masking, the per-job cap), and
 * refuses what the JSON form could not carry: output that is not UTF-8, fields that do not check.
 * On SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { truncationMarker } from '../../src/store/log-output.js';
import { createPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { postgresUrl, requireOrSkip } from '../helpers/env.js';
import { createFreshDatabase, type FreshDatabase } from '../helpers/postgres-db.js';
import { type Harness, startHarness } from './harness.js';

const Q = '/.executors/queue';
const adminUrl = postgresUrl();

appendBytesSuite('SQLite', true);
appendBytesSuite('PostgreSQL', requireOrSkip('PostgreSQL (TEST_DATABASE_URL)', adminUrl !== undefined));

function appendBytesSuite(name: 'SQLite' | 'PostgreSQL', available: boolean): void {
  describe.skipIf(!available)(`appendExecutionLogEntry with the output as the body (${name})`, () => {
    let h: Harness;
    let db: FreshDatabase | undefined;

    beforeAll(async () => {
      if (name === 'PostgreSQL') db = await createFreshDatabase(adminUrl!);
      h = await startHarness({
        env: { EXECUTOR_SERVER_MAX_LOG_BYTES: '4Ki' },
        store: db ? createPostgresStore({ connectionString: db.url, clock: 'caller' }) : undefined,
      });
    });
    afterAll(async () => {
      await h?.close();
      await db?.drop();
    });

    /** A job dequeued by `executor` with one log entry; `append` sends bytes in the bytes form. */
    const started = async (executor: string, spec: Record<string, unknown> = {}) => {
      const id = await h.submit(spec);
      const job = await h.dequeue('default', executor);
      const added = await h.job(`${Q}/default/addExecutionLogEntry`, job, executor, {
        executorName: executor,
        jobId: id,
        key: 'step.docker.0',
        command: null,
        startTime: '2026-01-01T00:00:00Z',
      });
      expect(await added.json()).toBe(1);
      const append = (query: Record<string, string | number | undefined>, body: Buffer | string) =>
        fetch(
          `${h.url}${Q}/default/appendExecutionLogEntry?${new URLSearchParams(
            Object.entries({ executorName: executor, jobId: id, entryId: 1, ...query }).map(
              ([k, v]): [string, string] => [k, String(v)],
            ),
          )}`,
          {
            method: 'POST',
            headers: {
              authorization: `Bearer ${job.token}`,
              'x-sourcegraph-job-id': String(id),
              'x-sourcegraph-executor-name': executor,
              'content-type': 'application/octet-stream',
            },
            body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
          },
        );
      const stored = async () => (await h.store.getLogEntries(id, { withOutput: true }))[0]!;
      return { id, append, stored };
    };

    it('stores the body at the offset: 200 with the length, idempotent, 409 on a gap, fields from the query', async () => {
      const { append, stored } = await started('e-ok');
      let res = await append({ offset: 0 }, 'héllo ');
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ length: 7 });
      res = await append({ offset: 0 }, 'héllo ');
      expect(await res.json()).toEqual({ length: 7 });
      res = await append({ offset: 20 }, 'x');
      expect(res.status).toBe(409);
      expect(await res.json()).toEqual({ length: 7 });
      res = await append({ offset: 7, exitCode: 3, durationMs: 1500 }, 'wörld\n');
      expect(await res.json()).toEqual({ length: 14 });
      expect(await stored()).toEqual(
        expect.objectContaining({ out: 'héllo wörld\n', exitCode: 3, durationMs: 1500 }),
      );
    });

    it('refuses output that is not UTF-8 and fields that do not check, with 400, and stores nothing', async () => {
      const { append, stored } = await started('e-bad');
      const cut = Buffer.from('é', 'utf8').subarray(0, 1); // half a character
      let res = await append({ offset: 0 }, Buffer.concat([Buffer.from('ok '), cut]));
      expect(res.status).toBe(400);
      expect(await res.text()).toBe('Failed to unmarshal payload: the output is not valid UTF-8\n');
      for (const query of [{ offset: -1 }, { offset: 'soon' }, { offset: 0, entryId: 0 }, {}]) {
        res = await append(query, 'x');
        expect(res.status, JSON.stringify(query)).toBe(400);
        expect(await res.text()).toMatch(
          /^Failed to unmarshal payload: json: .*\(field (offset|entryId)\)\n$/,
        );
      }
      expect((await stored()).out).toBe('');
    });

    it('answers 403 when the query names another job than the token', async () => {
      const { id, append, stored } = await started('e-other');
      const res = await append({ offset: 0, jobId: id + 1000 }, 'x');
      expect(res.status).toBe(403);
      expect((await stored()).out).toBe('');
    });

    it('masks secrets in the bytes and keeps the per-job cap', async () => {
      const { append, stored } = await started('e-mask', { secrets: { TOKEN: 'hunter2hunter2' } });
      const res = await append({ offset: 0 }, 'leak: hunter2hunter2 and hunter2hunter2\n');
      expect(await res.json()).toEqual({ length: 40 });
      expect((await stored()).out).toBe('leak: ************** and **************\n');
      const big = await append({ offset: 40 }, 'z'.repeat(5000));
      expect(big.status).toBe(200);
      const entry = await stored();
      expect(entry.truncated).toBe(true);
      // The key (13 bytes) and 40 bytes of output came first; the rest of the 4 KiB is z's.
      expect(entry.out).toBe(
        `leak: ************** and **************\n${'z'.repeat(4096 - 13 - 40)}${truncationMarker(4096)}`,
      );
    });
  });
}
