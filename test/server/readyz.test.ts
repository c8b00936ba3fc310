/**
 * GET /readyz (readiness) next to /healthz (liveness), on a real server and SQLite file: ready when
 * the store answers and every migration of this build is applied; not ready while the schema is
 * behind, once shutdown began, or with the store gone.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

const get = async (p: string) => {
  const res = await fetch(h.url + p);
  return { status: res.status, text: await res.text() };
};

describe('/readyz', () => {
  it('is ready when the store answers and the schema is current', async () => {
    expect(await get('/readyz')).toEqual({ status: 200, text: 'ready' });
    expect(await h.store.pendingMigrations()).toEqual([]);
  });

  it('is not ready while a migration of this build is not applied; /healthz stays 200', async () => {
    const raw = new Database(path.join(h.dir, 'executor.db'));
    const row = raw.prepare('SELECT * FROM schema_migrations WHERE version = 7').get();
    raw.prepare('DELETE FROM schema_migrations WHERE version = 7').run();
    try {
      expect(await get('/readyz')).toEqual({
        status: 503,
        text: 'not ready: schema migrations 7 not applied\n',
      });
      expect((await get('/healthz')).status).toBe(200);
    } finally {
      raw.prepare('INSERT INTO schema_migrations VALUES (@version, @name, @applied_at)').run(row);
      raw.close();
    }
    expect((await get('/readyz')).status).toBe(200);
  });

  it('is not ready once shutdown began', async () => {
    await h.app.close();
    expect(await get('/readyz')).toEqual({ status: 503, text: 'not ready: shutting down\n' });
  });

  it('is not ready when the store does not answer', async () => {
    await h.store.close();
    expect(await get('/readyz')).toEqual({ status: 503, text: 'not ready: store unavailable\n' });
    expect((await get('/healthz')).status).toBe(503);
  });
});
