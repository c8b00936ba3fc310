/**
 * Mirrored repositories: registration (user API, CLI, repositories file), the fetches that keep
 * each bare mirror current (on registration, every EXECUTOR_SERVER_REPO_SYNC_INTERVAL, on demand,
 * and at submit when the job's commit is missing), and the metrics of those fetches.
 *
 * Concurrency: at most one fetch per repository runs in this process; a caller that wants one while
 * one runs waits for it and shares its outcome (fetcher.ts). A submit whose commit is still missing
 * after a fetch it joined (which may have started before the commit was pushed) starts one more.
 */
import { performance } from 'node:perf_hooks';
import type { ServerConfig } from '../../config/server.js';
import type { Clock } from '../../lib/clock.js';
import { AppError, isAppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RepositoryRecord, Store } from '../../store/types.js';
import type { BackgroundLoop } from '../background/loop.js';
import { findRepository, resolveCommit } from '../user-api/resolve-commit.js';
import { createFetcher, fetchError, type Reason } from './fetcher.js';
import { type FetchResult, mirrorPath, removeMirror } from './mirror.js';
import { parseRegistration } from './registration.js';
import { createRepoSyncLoop } from './sync-loop.js';

export interface RepositoriesDeps {
  store: Store;
  config: ServerConfig;
  clock: Clock;
  logger: Logger;
  /** Where credentials' environment variables are read (default process.env). */
  env?: Record<string, string | undefined>;
}

export interface Repositories {
  /** Validates, fetches the first mirror, then stores the registration: nothing is kept on failure. */
  register(input: unknown): Promise<{ repository: RepositoryRecord; created: boolean }>;
  list(): Promise<RepositoryRecord[]>;
  /** NOT_FOUND when not registered. */
  get(name: string): Promise<RepositoryRecord>;
  /** Unregisters and deletes the mirror (a fetch in flight is stopped first). */
  remove(name: string): Promise<void>;
  /** Fetches now (or waits for the fetch in flight) and records the outcome. */
  sync(name: string): Promise<RepositoryRecord>;
  /** Submit's resolution: sha, branch or tag -> full sha, fetching a registered mirror that lacks it. */
  resolveCommit(name: string, commit: string): Promise<string>;
  /** The periodic sync (and re-read of the repositories file). */
  readonly loop: BackgroundLoop<number>;
  renderMetrics(): string;
  /** Stops fetches in flight. */
  close(): void;
}

/** UNKNOWN_REVISION, said to hold after a fetch from the repository's URL. */
function missingAfterFetch(e: unknown, name: string, commit: string): unknown {
  if (!isAppError(e) || e.code !== 'UNKNOWN_REVISION') return e;
  return new AppError(
    'UNKNOWN_REVISION',
    `"${commit}" is not a commit, branch or tag of "${name}", even after fetching it from its URL just now.`,
    { details: e.details },
  );
}

export function createRepositories(deps: RepositoriesDeps): Repositories {
  const { store, config, clock, logger } = deps;
  const env = deps.env ?? process.env;
  const log = logger.child({ component: 'repositories' });
  const fetcher = createFetcher({ config, logger: log, env });
  const { fetchOnce } = fetcher;

  /** Fetches a registered repository and records the outcome; throws the failure as an AppError. */
  async function syncRecorded(r: RepositoryRecord, reason: Reason, updateHead: boolean) {
    const { done, joined } = fetchOnce(r, reason, updateHead);
    const started = performance.now();
    if (!joined) await store.recordRepositorySync(r.name, { state: 'syncing' });
    try {
      const result = await done;
      const rec = joined
        ? await store.getRepository(r.name)
        : await store.recordRepositorySync(r.name, {
            state: 'ready',
            lastSyncAt: clock.now(),
            lastSyncDurationMs: Math.round(performance.now() - started),
            lastError: null,
            sizeBytes: result.sizeBytes,
            ...(result.defaultBranch !== undefined ? { defaultBranch: result.defaultBranch } : {}),
          });
      return { record: rec ?? r, joined };
    } catch (e) {
      const err = fetchError(r.name, r.url, e);
      if (!joined) {
        await store.recordRepositorySync(r.name, {
          state: 'failed',
          lastSyncAt: clock.now(),
          lastSyncDurationMs: Math.round(performance.now() - started),
          lastError: (e as Error).message,
        });
      }
      throw err;
    }
  }

  async function getOr404(name: string): Promise<RepositoryRecord> {
    const r = await store.getRepository(name);
    if (!r) throw new AppError('NOT_FOUND', `No repository "${name}" is registered.`);
    return r;
  }

  async function register(input: unknown) {
    const { name, url, credential } = parseRegistration(input, config.allowLocalRepositories);
    const existing = await store.getRepository(name);
    if (existing) {
      if (existing.url === url) return { repository: existing, created: false };
      throw new AppError(
        'CONFLICT',
        `Repository "${name}" is already registered with another URL (${existing.url}).`,
      );
    }
    if (findRepository(config.reposDir, name) && !fetcher.running(name)) {
      throw new AppError(
        'CONFLICT',
        `A repository "${name}" was placed in the repositories directory by hand; remove it there or choose another name.`,
      );
    }
    const candidate = { name, url, credential };
    const started = performance.now();
    let result: FetchResult;
    try {
      result = await fetchOnce(candidate, 'register', true).done;
    } catch (e) {
      throw fetchError(name, url, e);
    }
    const { repository, created } = await store.addRepository({ ...candidate, source: 'api' }, clock.now());
    if (!created) {
      if (repository.url === url) return { repository, created };
      throw new AppError('CONFLICT', `Repository "${name}" was registered with another URL meanwhile.`);
    }
    const rec = await store.recordRepositorySync(name, {
      state: 'ready',
      lastSyncAt: clock.now(),
      lastSyncDurationMs: Math.round(performance.now() - started),
      lastError: null,
      sizeBytes: result.sizeBytes,
      defaultBranch: result.defaultBranch ?? null,
    });
    log.info('repository registered', { repository: name, url });
    return { repository: rec ?? repository, created: true };
  }

  async function remove(name: string) {
    const r = await getOr404(name);
    if (r.source === 'file') {
      throw new AppError(
        'CONFLICT',
        `Repository "${name}" comes from the repositories file; remove it there (it is unregistered at the next sync pass).`,
      );
    }
    await unregister(name);
  }

  async function unregister(name: string) {
    await store.removeRepository(name);
    await fetcher.stop(name);
    await removeMirror(config.reposDir, name);
    log.info('repository removed', { repository: name });
  }

  async function resolveForSubmit(name: string, commit: string): Promise<string> {
    try {
      return await resolveCommit(config.reposDir, name, commit);
    } catch (e) {
      if (!isAppError(e) || (e.code !== 'UNKNOWN_REPOSITORY' && e.code !== 'UNKNOWN_REVISION')) throw e;
      if (/[\s\0]/.test(commit) || commit.startsWith('-')) throw e;
      const r = await store.getRepository(name);
      if (!r) throw e;
      const { joined } = await syncRecorded(r, 'submit', false);
      try {
        return await resolveCommit(config.reposDir, name, commit);
      } catch (again) {
        if (!isAppError(again) || !joined) throw missingAfterFetch(again, name, commit);
      }
      // The fetch joined may have begun before the commit was pushed: one more of our own.
      await syncRecorded(r, 'submit', false);
      try {
        return await resolveCommit(config.reposDir, name, commit);
      } catch (last) {
        throw missingAfterFetch(last, name, commit);
      }
    }
  }

  const loop = createRepoSyncLoop({ store, config, clock, logger, log, fetcher, syncRecorded, unregister });

  return {
    register,
    list: () => store.listRepositories(),
    get: getOr404,
    remove,
    async sync(name) {
      return (await syncRecorded(await getOr404(name), 'manual', true)).record;
    },
    resolveCommit: resolveForSubmit,
    loop,
    renderMetrics: () => fetcher.renderMetrics(),
    close() {
      fetcher.close();
    },
  };
}

export { mirrorPath };
