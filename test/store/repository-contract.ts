/**
 * The repositories part of the Store contract, run against both twins by sqlite.test.ts and
 * postgres.test.ts: registration once per name (or replaced by the repositories file), sync
 * records that keep what they do not name, listing by name and removal.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewRepository, Store } from '../../src/store/types.js';

const T0 = Date.UTC(2026, 0, 1);

const repo = (name: string, url = `https://git.example.com/${name}.git`): NewRepository => ({
  name,
  url,
  credential: { username: 'ci', passwordEnv: 'GIT_PASSWORD' },
  source: 'api',
});

export function runRepositoryContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract, repositories: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await makeStore();
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
    });

    it('registers a name once and returns the existing row to a second registration', async () => {
      const first = await store.addRepository(repo('org/app'), T0);
      expect(first.created).toBe(true);
      expect(first.repository).toEqual({
        ...repo('org/app'),
        state: 'new',
        createdAt: T0,
        lastSyncAt: null,
        lastSyncDurationMs: null,
        lastError: null,
        sizeBytes: null,
        defaultBranch: null,
      });
      const again = await store.addRepository(repo('org/app', 'https://other.example.com/app.git'), T0 + 5);
      expect(again.created).toBe(false);
      expect(again.repository.url).toBe('https://git.example.com/org/app.git');
      expect(again.repository.createdAt).toBe(T0);
    });

    it('replaces URL, credential and source with replace, keeping the sync record', async () => {
      await store.addRepository(repo('org/app'), T0);
      await store.recordRepositorySync('org/app', { state: 'ready', lastSyncAt: T0 + 1, sizeBytes: 10 });
      const r = await store.addRepository(
        { name: 'org/app', url: 'https://new.example.com/app.git', credential: null, source: 'file' },
        T0 + 2,
        { replace: true },
      );
      expect(r.created).toBe(false);
      expect(r.repository).toMatchObject({
        url: 'https://new.example.com/app.git',
        credential: null,
        source: 'file',
        state: 'ready',
        sizeBytes: 10,
        createdAt: T0,
      });
      const fresh = await store.addRepository({ ...repo('org/new'), source: 'file' }, T0 + 3, {
        replace: true,
      });
      expect(fresh.created).toBe(true);
    });

    it('records syncs, keeping fields a record leaves out and clearing an error on success', async () => {
      await store.addRepository(repo('org/app'), T0);
      expect(await store.recordRepositorySync('org/none', { state: 'syncing' })).toBeNull();
      await store.recordRepositorySync('org/app', {
        state: 'failed',
        lastSyncAt: T0 + 10,
        lastSyncDurationMs: 7,
        lastError: 'authentication refused',
      });
      const syncing = await store.recordRepositorySync('org/app', { state: 'syncing' });
      expect(syncing).toMatchObject({
        state: 'syncing',
        lastSyncAt: T0 + 10,
        lastError: 'authentication refused',
      });
      const ok = await store.recordRepositorySync('org/app', {
        state: 'ready',
        lastSyncAt: T0 + 20,
        lastSyncDurationMs: 3,
        lastError: null,
        sizeBytes: 4096,
        defaultBranch: 'main',
      });
      expect(ok).toMatchObject({
        state: 'ready',
        lastSyncAt: T0 + 20,
        lastSyncDurationMs: 3,
        lastError: null,
        sizeBytes: 4096,
        defaultBranch: 'main',
      });
      expect(await store.getRepository('org/app')).toEqual(ok);
    });

    it('lists by name and removes', async () => {
      for (const n of ['b/two', 'a/one', 'c/three']) await store.addRepository(repo(n), T0);
      expect((await store.listRepositories()).map((r) => r.name)).toEqual(['a/one', 'b/two', 'c/three']);
      expect(await store.removeRepository('b/two')).toBe(true);
      expect(await store.removeRepository('b/two')).toBe(false);
      expect(await store.getRepository('b/two')).toBeNull();
      expect((await store.listRepositories()).map((r) => r.name)).toEqual(['a/one', 'c/three']);
    });
  });
}
