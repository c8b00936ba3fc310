/**
 * A full disk under the server's database: a real SQLite file on a 8 MiB tmpfs the test mounts
 * (root only; skipped elsewhere, required under CI=true), filled to the last byte. Writes are
 * answered 503 with a message that says so (never a 500, never driver text), reads keep working,
 * nothing stored is harmed, and writes succeed again by themselves once space is freed.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { isRetryableStatus } from '../../src/executor/client/retry.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { requireOrSkip } from '../helpers/env.js';
import { startHarness } from './harness.js';

const Q = '/.executors/queue';

/** Mounts a tmpfs of `size` at a new directory; undefined when this process may not mount. */
function mountTmpfs(size: string): string | undefined {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'executor-disk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

function unmount(dir: string): void {
  execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  rmSync(dir, { recursive: true, force: true });
}

const probe = mountTmpfs('1m');
if (probe) unmount(probe);

/** Appends to `file` until the file system refuses (ENOSPC). */
function fillUp(file: string): void {
  const chunk = Buffer.alloc(64 * 1024);
  for (;;) {
    try {
      appendFileSync(file, chunk);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
      throw e;
    }
  }
  for (;;) {
    try {
      appendFileSync(file, Buffer.alloc(512));
    } catch {
      return;
    }
  }
}

if (requireOrSkip('root privileges to mount a tmpfs', probe !== undefined)) {
  describe('disk full under the SQLite database', () => {
    it('answers writes 503 with a clear message, keeps reads, and resumes when space is freed', async () => {
      const mnt = mountTmpfs('8m')!;
      const h = await startHarness({ store: createSqliteStore({ path: path.join(mnt, 'executor.db') }) });
      try {
        const id = await h.submit({});
        const job = await h.dequeue('default', 'e1');
        const entry = { key: 'step.docker.0', command: ['echo'], startTime: '2026-01-01T00:00:00Z' };
        const add = await h.job(`${Q}/default/addExecutionLogEntry`, job, 'e1', {
          executorName: 'e1',
          jobId: id,
          ...entry,
          out: 'before\n',
        });
        expect(add.status).toBe(200);

        const filler = path.join(mnt, 'filler');
        fillUp(filler);
        const big = 'x'.repeat(256 * 1024);

        const submit = await h.api('POST', '/jobs', {
          queue: 'default',
          steps: [{ image: 'alpine', run: 'true' }],
          files: { 'big.txt': big },
        });
        expect(submit.status).toBe(503);
        expect(submit.headers.get('retry-after')).toBe('1');
        const body = (await submit.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('UNAVAILABLE');
        expect(body.error.message).toMatch(/disk is full: this write was not stored/);
        expect(JSON.stringify(body)).not.toMatch(/SQLITE|sqlite/);

        const append = await h.job(`${Q}/default/updateExecutionLogEntry`, job, 'e1', {
          executorName: 'e1',
          jobId: id,
          entryId: 1,
          ...entry,
          out: `before\n${big}`,
        });
        expect(append.status).toBe(503);
        expect(((await append.json()) as { error: string }).error).toMatch(/disk is full/);
        // Our executor retries a 503 (the retry table), so its log and marks wait for space.
        expect(isRetryableStatus(append.status)).toBe(true);

        // Reads keep working, and what was stored is intact.
        expect((await h.api('GET', `/jobs/${id}`)).status).toBe(200);
        const logs = (await (await h.api('GET', `/jobs/${id}/logs`)).json()) as {
          entries: { out: string }[];
        };
        expect(logs.entries[0]!.out).toBe('before\n');
        expect(h.logs.some((l) => /internal error|handler failed/.test(l))).toBe(false);

        // Space back: the same writes succeed, with no restart.
        unlinkSync(filler);
        const again = await h.job(`${Q}/default/updateExecutionLogEntry`, job, 'e1', {
          executorName: 'e1',
          jobId: id,
          entryId: 1,
          ...entry,
          out: `before\n${big}`,
        });
        expect(again.status).toBe(204);
        const resubmit = await h.api('POST', '/jobs', {
          queue: 'default',
          steps: [{ image: 'alpine', run: 'true' }],
          files: { 'big.txt': big },
        });
        expect(resubmit.status).toBe(201);
        const done = await h.job(`${Q}/default/markComplete`, job, 'e1', { executorName: 'e1', jobId: id });
        expect(done.status).toBe(204);

        const raw = new Database(path.join(mnt, 'executor.db'), { readonly: true });
        expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
        raw.close();
      } finally {
        await h.close();
        unmount(mnt);
      }
    }, 60_000);
  });
} else {
  describe.skip('disk full', () => {
    it('needs root privileges to mount a tmpfs', () => {});
  });
}
