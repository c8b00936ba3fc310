/**
 * The periodic sync: each pass re-reads the repositories file (when one is configured) and fetches
 * every repository whose interval (scaled by its jitter factor) has passed, whose mirror is missing,
 * or that was never fetched; at most PASS_CONCURRENCY at once. The first pass also deletes first
 * fetches a previous run left unfinished.
 */
import type { ServerConfig } from '../../config/server.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { RepositoryRecord, Store } from '../../store/types.js';
import { type BackgroundLoop, createLoop } from '../background/loop.js';
import { findRepository } from '../user-api/resolve-commit.js';
import type { Fetcher, Reason } from './fetcher.js';
import { cleanTemporary, removeMirror } from './mirror.js';
import { readRepositoryFile } from './repository-file.js';

/** How many repositories one sync pass fetches at once. */
const PASS_CONCURRENCY = 4;

/** Spreads periodic syncs: each repository's interval is scaled by a fixed factor in [0.9, 1.1). */
export function jitterFactor(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return 0.9 + (h % 1000) / 5000;
}

export function createRepoSyncLoop(deps: {
  store: Store;
  config: ServerConfig;
  clock: Clock;
  logger: Logger;
  log: Logger;
  fetcher: Fetcher;
  syncRecorded(r: RepositoryRecord, reason: Reason, updateHead: boolean): Promise<unknown>;
  unregister(name: string): Promise<void>;
}): BackgroundLoop<number> {
  const { store, config, clock, logger, log, fetcher, syncRecorded, unregister } = deps;
  /** Applies the repositories file: registers and replaces its entries, drops the ones it no longer lists. */
  async function applyFile(now: number): Promise<RepositoryRecord[]> {
    const entries = readRepositoryFile(config.repositoriesFile, config.allowLocalRepositories);
    const listed = new Set(entries.map((e) => e.name));
    for (const e of entries) {
      const before = await store.getRepository(e.name);
      if (
        before &&
        before.source === 'file' &&
        before.url === e.url &&
        JSON.stringify(before.credential) === JSON.stringify(e.credential)
      )
        continue;
      if (before && before.url !== e.url) {
        // Another URL is another repository: its old objects go.
        await fetcher.stop(e.name);
        await removeMirror(config.reposDir, e.name);
      }
      await store.addRepository(e, now, { replace: true });
    }
    for (const r of await store.listRepositories()) {
      if (r.source === 'file' && !listed.has(r.name)) await unregister(r.name);
    }
    return store.listRepositories();
  }

  let cleaned = false;
  return createLoop<number>({
    name: 'repository-sync',
    intervalMs: Math.max(1_000, Math.min(30_000, Math.floor(config.repoSyncIntervalMs / 10))),
    clock,
    logger,
    describe: (n) => (n > 0 ? { synced: n } : undefined),
    async runOnce(now) {
      if (!cleaned) {
        cleaned = true;
        await cleanTemporary(config.reposDir);
      }
      let repos: RepositoryRecord[];
      if (config.repositoriesFile) {
        try {
          repos = await applyFile(now);
        } catch (e) {
          log.error('repositories file not applied', { error: (e as Error).message });
          repos = await store.listRepositories();
        }
      } else repos = await store.listRepositories();
      const due = repos.filter(
        (r) =>
          !fetcher.running(r.name) &&
          (r.lastSyncAt === null ||
            r.lastSyncAt + config.repoSyncIntervalMs * jitterFactor(r.name) <= now ||
            !findRepository(config.reposDir, r.name)),
      );
      let next = 0;
      const worker = async () => {
        while (next < due.length) {
          const r = due[next++]!;
          await syncRecorded(r, 'interval', true).catch(() => {});
        }
      };
      await Promise.all(Array.from({ length: Math.min(PASS_CONCURRENCY, due.length) }, worker));
      return due.length;
    },
  });
}
