/**
 * The fetches of mirrors: at most one per repository at a time in this process (a caller that wants
 * one while one runs joins it and shares its outcome), the credential read for each, and their
 * metrics (count by reason and outcome, duration).
 */
import { performance } from 'node:perf_hooks';
import type { ServerConfig } from '../../config/server.js';
import { AppError, type ErrorCode, isAppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { createMetricsRegistry } from '../../lib/prometheus.js';
import type { RepositoryRecord } from '../../store/types.js';
import { CredentialError, resolveCredential } from './credentials.js';
import { MirrorError } from './git-remote.js';
import { type FetchResult, fetchMirror } from './mirror.js';
import { protocolConfig } from './url-policy.js';

export type Reason = 'register' | 'interval' | 'manual' | 'submit';

export interface Fetcher {
  /** Joins the fetch of `r.name` in flight, or starts one. */
  fetchOnce(
    r: Pick<RepositoryRecord, 'name' | 'url' | 'credential'>,
    reason: Reason,
    updateHead: boolean,
  ): { done: Promise<FetchResult>; joined: boolean };
  running(name: string): boolean;
  /** Stops the fetch of `name` in flight, if any, and waits for it to end. */
  stop(name: string): Promise<void>;
  renderMetrics(): string;
  close(): void;
}

const MIRROR_ERROR_CODES: Record<MirrorError['kind'], ErrorCode> = {
  unreachable: 'REPOSITORY_UNREACHABLE',
  auth: 'REPOSITORY_AUTH_FAILED',
  credential: 'REPOSITORY_AUTH_FAILED',
  'not-found': 'REPOSITORY_FETCH_FAILED',
  timeout: 'REPOSITORY_FETCH_FAILED',
  'too-large': 'REPOSITORY_TOO_LARGE',
  git: 'REPOSITORY_FETCH_FAILED',
};

/** A fetch failure as the catalogue's error; the message names the repository and says why. */
export function fetchError(name: string, url: string, e: unknown): AppError {
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
}

export function createFetcher(deps: {
  config: ServerConfig;
  logger: Logger;
  env: Record<string, string | undefined>;
}): Fetcher {
  const { config, env } = deps;
  const log = deps.logger;
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

  return {
    fetchOnce,
    running: (name) => inflight.has(name),
    async stop(name) {
      const running = inflight.get(name);
      if (!running) return;
      running.abort.abort();
      await running.done.catch(() => {});
    },
    renderMetrics: () => registry.render(),
    close() {
      closing.abort();
    },
  };
}
