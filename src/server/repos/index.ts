/**
 * Mirrored repositories: registration (user API, CLI, repositories file), the fetches that keep
 * each bare mirror current (on registration, every EXECUTOR_SERVER_REPO_SYNC_INTERVAL, on demand,
 * and at submit when the job's commit is missing), and the metrics of those fetches.
 *
 * Concurrency: at most one fetch per repository runs in this process; a caller that wants one while
 * one runs waits for it and shares its outcome (`inflight`). A submit whose commit is still missing
 * after a fetch it joined (which may have started before the commit was pushed) starts one more.
 */
import { performance } from 'node:perf_hooks';
import type { ServerConfig } from '../../config/server.js';
import type { Clock } from '../../lib/clock.js';
import { AppError, type ErrorCode, type ErrorDetail, isAppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { createMetricsRegistry } from '../../lib/prometheus.js';
import type { RepositoryRecord, Store } from '../../store/types.js';
import { type BackgroundLoop, createLoop } from '../background/loop.js';
import { findRepository, resolveCommit } from '../user-api/resolve-commit.js';
import { CredentialError, checkCredential, resolveCredential } from './credentials.js';
import { MirrorError } from './git-remote.js';
import { cleanTemporary, type FetchResult, fetchMirror, mirrorPath, removeMirror } from './mirror.js';
import { checkRepositoryName } from './names.js';
import { readRepositoryFile } from './repository-file.js';
import { checkRepositoryUrl, protocolConfig } from './url-policy.js';

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

type Reason = 'register' | 'interval' | 'manual' | 'submit';

const MIRROR_ERROR_CODES: Record<MirrorError['kind'], ErrorCode> = {
  unreachable: 'REPOSITORY_UNREACHABLE',
  auth: 'REPOSITORY_AUTH_FAILED',
  credential: 'REPOSITORY_AUTH_FAILED',
  'not-found': 'REPOSITORY_FETCH_FAILED',
  timeout: 'REPOSITORY_FETCH_FAILED',
  'too-large': 'REPOSITORY_TOO_LARGE',
  git: 'REPOSITORY_FETCH_FAILED',
};

/** Spreads periodic syncs: each repository's interval is scaled by a fixed factor in [0.9, 1.1). */
export function jitterFactor(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return 0.9 + (h % 1000) / 5000;
}

/** How many repositories one sync pass fetches at once. */
const PASS_CONCURRENCY = 4;

export function createRepositories(deps: RepositoriesDeps): Repositories {
  const { store, config, clock, logger } = deps;
  const env = deps.env ?? process.env;
  const log = logger.child({ component: 'repositories' });
  const inflight = new Map<string, { done: Promise<FetchResult>; abort: AbortController }>();
  const closing = new AbortController();
  const registry = createMetricsRegistry();
  const syncs = registry.counter(
    'src_executor_server_repository_syncs_total',
    'Fetches of mirrored repositories, by repository, reason and outcome (success or failure).',
  );
  const durations = registry.histogram(
    'src_executor_server_repository_sync_duration_seconds',
    'Duration of fetches of mirrored repositories, by repository.',
    [0.1, 0.5, 1, 5, 15, 60, 300, 900],
  );

  const toAppError = (name: string, url: string, e: unknown): AppError => {
    if (e instanceof MirrorError) {
      return new AppError(MIRROR_ERROR_CODES[e.kind], `Cannot fetch "${name}" from ${url}: ${e.message}.`, {
        details: [{ path: 'url', message: e.message }],
      });
    }
    if (e instanceof CredentialError) {
      return new AppError('REPOSITORY_AUTH_FAILED', `Cannot fetch "${name}": ${e.message}.`, {
        details: [{ path: 'credential', message: e.message }],
      });
    }
    return isAppError(e) ? e : new AppError('INTERNAL', undefined, { cause: e });
  };

  /** One fetch per name at a time: joins the running one, or starts it. */
  function fetchOnce(
    r: Pick<RepositoryRecord, 'name' | 'url' | 'credential'>,
    reason: Reason,
    updateHead: boolean,
  ) {
    const running = inflight.get(r.name);
    if (running) return { done: running.done, joined: true };
    const abort = new AbortController();
    const started = performance.now();
    const done = (async () => {
      const cred = await resolveCredential(r.credential, env);
      return fetchMirror({
        reposDir: config.reposDir,
        name: r.name,
        url: r.url,
        config: [...protocolConfig(config.allowLocalRepositories), ...cred.config],
        secrets: cred.secrets,
        timeoutMs: config.repoFetchTimeoutMs,
        maxSizeBytes: config.repoMaxSizeBytes,
        updateHead,
        signal: AbortSignal.any([abort.signal, closing.signal]),
      });
    })();
    const entry = { done, abort };
    inflight.set(r.name, entry);
    void done.then(
      () => {
        syncs.inc({ repository: r.name, reason, outcome: 'success' });
        durations.observe({ repository: r.name }, (performance.now() - started) / 1000);
      },
      (e) => {
        syncs.inc({ repository: r.name, reason, outcome: 'failure' });
        durations.observe({ repository: r.name }, (performance.now() - started) / 1000);
        log.warn('repository fetch failed', { repository: r.name, reason, error: (e as Error).message });
      },
    );
    void done
      .finally(() => {
        if (inflight.get(r.name) === entry) inflight.delete(r.name);
      })
      .catch(() => {});
    return { done, joined: false };
  }

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
      const err = toAppError(r.name, r.url, e);
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
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw new AppError('VALIDATION', 'Send {"name", "url", "credential"?}.');
    }
    const o = input as Record<string, unknown>;
    const problems: ErrorDetail[] = [];
    for (const k of Object.keys(o))
      if (!['name', 'url', 'credential'].includes(k))
        problems.push({ path: k, message: 'unknown field; use name, url, credential' });
    const nameProblem = checkRepositoryName(o.name);
    if (nameProblem) problems.push({ path: 'name', message: nameProblem });
    if (typeof o.url !== 'string') problems.push({ path: 'url', message: 'must be a string' });
    else {
      const u = checkRepositoryUrl(o.url, config.allowLocalRepositories);
      if (!u.ok) problems.push({ path: 'url', message: u.message });
    }
    const cred = checkCredential(o.credential, { allowFiles: false, path: 'credential' });
    if (!cred.ok) problems.push(...cred.problems);
    if (problems.length > 0 || !cred.ok) {
      throw new AppError('VALIDATION', 'The repository has invalid fields.', { details: problems });
    }
    const name = o.name as string;
    const url = o.url as string;
    const existing = await store.getRepository(name);
    if (existing) {
      if (existing.url === url) return { repository: existing, created: false };
      throw new AppError(
        'CONFLICT',
        `Repository "${name}" is already registered with another URL (${existing.url}).`,
      );
    }
    if (findRepository(config.reposDir, name) && !inflight.has(name)) {
      throw new AppError(
        'CONFLICT',
        `A repository "${name}" was placed in the repositories directory by hand; remove it there or choose another name.`,
      );
    }
    const candidate = { name, url, credential: cred.credential };
    const started = performance.now();
    let result: FetchResult;
    try {
      result = await fetchOnce(candidate, 'register', true).done;
    } catch (e) {
      throw toAppError(name, url, e);
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
    const running = inflight.get(name);
    if (running) {
      running.abort.abort();
      await running.done.catch(() => {});
    }
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

  function missingAfterFetch(e: unknown, name: string, commit: string): unknown {
    if (!isAppError(e) || e.code !== 'UNKNOWN_REVISION') return e;
    return new AppError(
      'UNKNOWN_REVISION',
      `"${commit}" is not a commit, branch or tag of "${name}", even after fetching it from its URL just now.`,
      { details: e.details },
    );
  }

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
        const running = inflight.get(e.name);
        running?.abort.abort();
        await running?.done.catch(() => {});
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
  const loop = createLoop<number>({
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
          !inflight.has(r.name) &&
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
    renderMetrics: () => registry.render(),
    close() {
      closing.abort();
    },
  };
}

export { mirrorPath };
