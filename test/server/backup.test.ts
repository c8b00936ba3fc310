/**
 * `executor backup` and `executor restore` (real CLI processes) against a real server on a SQLite
 * file, taken while a load of submissions, log appends and marks keeps writing: the copy passes
 * integrity_check, and a server started on the restored directory serves every job, log entry and
 * mark that was acknowledged before the backup began.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { waitFor } from '../helpers/env.js';
import { spawnCli } from '../helpers/spawn-cli.js';
import { type Harness, startHarness } from './harness.js';

const Q = '/.executors/queue';
const work = mkdtempSync(path.join(os.tmpdir(), 'executor-backup-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Acked {
  /** Jobs whose submission got a 201. */
  jobs: Set<number>;
  /** Output of log entries whose append got a 200, by job. */
  logs: Map<number, string>;
  /** Jobs whose markComplete got a 204. */
  completed: Set<number>;
}

/** Workers that submit, claim, log and complete jobs until `stop()`; records what was acknowledged. */
function startLoad(h: Harness, workers: number) {
  const acked: Acked = { jobs: new Set(), logs: new Map(), completed: new Set() };
  let stopped = false;
  const worker = async (w: number) => {
    for (let i = 0; !stopped; i++) {
      acked.jobs.add(await h.submit({}));
      const job = await h.dequeue('default', `load-${w}`);
      const out = `worker ${w} line ${i}\n`.repeat(20);
      const add = await h.job(`${Q}/default/addExecutionLogEntry`, job, `load-${w}`, {
        executorName: `load-${w}`,
        jobId: job.id,
        key: 'step.docker.0',
        command: ['echo'],
        startTime: '2026-01-01T00:00:00Z',
        out,
      });
      if (add.status === 200) acked.logs.set(job.id, out);
      const done = await h.job(`${Q}/default/markComplete`, job, `load-${w}`, {
        executorName: `load-${w}`,
        jobId: job.id,
      });
      if (done.status === 204) acked.completed.add(job.id);
    }
  };
  const running = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  const snapshot = (): Acked => ({
    jobs: new Set(acked.jobs),
    logs: new Map(acked.logs),
    completed: new Set(acked.completed),
  });
  return {
    snapshot,
    count: () => acked.jobs.size,
    async stop() {
      stopped = true;
      await running;
    },
  };
}

describe('executor backup / restore (SQLite)', () => {
  it('copies a server under load; the restored directory serves everything acknowledged before', async () => {
    const h = await startHarness();
    writeFileSync(path.join(h.reposDir, 'marker.txt'), 'a mirrored repository stands here\n');
    const load = startLoad(h, 3);
    try {
      await waitFor(() => load.count() >= 60, { what: '60 acknowledged submissions' });
      const before = load.snapshot();
      const out = path.join(work, 'backup.tar.gz');
      const backup = spawnCli(['backup', '--data', h.dir, '--out', out]);
      expect(await backup.exited, backup.output()).toBe(0);
      const during = load.count() - before.jobs.size;
      await load.stop();
      // The load kept writing while the backup ran (it is an online copy, not a pause).
      expect(during).toBeGreaterThan(0);
      expect(backup.output()).toMatch(/backed up \d+ jobs .* passed integrity_check/);

      // A live data directory is refused, and left as it was.
      const refused = spawnCli(['restore', '--data', h.dir, '--from', out]);
      expect(await refused.exited).toBe(2);
      expect(refused.output()).toMatch(/is not empty .*looks in use by a server.*refuses to overwrite/s);

      const target = path.join(work, 'restored');
      const restore = spawnCli(['restore', '--data', target, '--from', out]);
      expect(await restore.exited, restore.output()).toBe(0);
      expect(readdirSync(path.join(target, 'repos'))).toEqual(['marker.txt']);
      const raw = new Database(path.join(target, 'executor.db'), { readonly: true });
      expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
      raw.close();

      const h2 = await startHarness({ store: createSqliteStore({ path: path.join(target, 'executor.db') }) });
      try {
        for (const id of before.jobs) expect((await h2.api('GET', `/jobs/${id}`)).status).toBe(200);
        for (const [id, text] of before.logs) {
          const logs = (await (await h2.api('GET', `/jobs/${id}/logs`)).json()) as {
            entries: { out: string }[];
          };
          expect(logs.entries[0]?.out).toBe(text);
        }
        for (const id of before.completed) {
          const job = (await (await h2.api('GET', `/jobs/${id}`)).json()) as { state: string };
          expect(job.state).toBe('completed');
        }
        expect(before.logs.size).toBeGreaterThan(30);
      } finally {
        await h2.close();
      }
    } finally {
      await load.stop();
      await h.close();
    }
  }, 120_000);

  it('refuses a missing database, an output inside the data directory and a broken file', async () => {
    const empty = mkdtempSync(path.join(work, 'empty-'));
    const none = spawnCli(['backup', '--data', empty, '--out', path.join(work, 'x.tar.gz')]);
    expect(await none.exited).toBe(2);
    expect(none.output()).toMatch(/executor\.db does not exist/);

    const h = await startHarness();
    try {
      const inside = spawnCli(['backup', '--data', h.dir, '--out', path.join(h.dir, 'b.tar.gz')]);
      expect(await inside.exited).toBe(2);
      expect(inside.output()).toMatch(/inside the data directory/);
      expect(existsSync(path.join(h.dir, 'b.tar.gz'))).toBe(false);
    } finally {
      await h.close();
    }

    const junk = path.join(work, 'junk.tar.gz');
    writeFileSync(junk, 'not a backup');
    const target = path.join(work, 'junk-target');
    const broken = spawnCli(['restore', '--data', target, '--from', junk]);
    expect(await broken.exited).not.toBe(0);
    // Nothing half restored is left behind.
    expect(readdirSync(target)).toEqual([]);
  }, 60_000);

  it('prints the pg_dump and pg_restore commands for a PostgreSQL store', async () => {
    const url = 'postgres://exec:s3cret@db.internal:5432/executor';
    const b = spawnCli(['backup', '--out', '/backups/x.dump'], { DATABASE_URL: url });
    expect(await b.exited).toBe(2);
    expect(b.output()).toContain(
      "pg_dump --format=custom --file='/backups/x.dump' 'postgres://exec:PASSWORD@db.internal:5432/executor'",
    );
    expect(b.output()).not.toContain('s3cret');
    const r = spawnCli(['restore', '--from', '/backups/x.dump', '--database-url', url]);
    expect(await r.exited).toBe(2);
    expect(r.output()).toContain('pg_restore --no-owner');
  }, 60_000);
});
