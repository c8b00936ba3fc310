/**
 * Client of `/.executors/files` (Sourcegraph `apiclient/files/client.go`): job auth on every call;
 * the path is `<bucket>/<key>` unescaped (keys may contain `/`).
 */
import type { HttpRetryConfig } from '../../config/executor.js';
import type { Logger } from '../../lib/logger.js';
import type { RedMetrics } from '../metrics.js';
import { createBaseClient, type JobAuth } from './base-client.js';

export interface FilesClientOptions {
  frontendUrl: string;
  password: string;
  executorName: string;
  retry?: HttpRetryConfig;
  fetch?: typeof fetch;
  logger?: Logger;
  metrics?: RedMetrics;
}

/** The files of one job (the FilesFetcher the workspace code takes). */
export interface JobFilesFetcher {
  get(bucket: string, key: string): Promise<Buffer>;
  exists(bucket: string, key: string): Promise<boolean>;
}

export interface FilesClient {
  get(job: JobAuth, bucket: string, key: string): Promise<Buffer>;
  /** HEAD; 404 is `false`, not an error. */
  exists(job: JobAuth, bucket: string, key: string): Promise<boolean>;
  forJob(job: JobAuth): JobFilesFetcher;
}

export function createFilesClient(opts: FilesClientOptions): FilesClient {
  const base = createBaseClient({
    baseUrl: opts.frontendUrl,
    pathPrefix: '/.executors/files',
    password: opts.password,
    executorName: opts.executorName,
    retry: opts.retry,
    fetch: opts.fetch,
    logger: opts.logger,
  });
  const observe = <T>(op: string, fn: () => Promise<T>) =>
    opts.metrics ? opts.metrics.observe(op, fn) : fn();
  const client: FilesClient = {
    get: (job, bucket, key) =>
      observe(
        'Get',
        async () => (await base.request({ method: 'GET', endpoint: `${bucket}/${key}`, job })).body,
      ),
    exists: (job, bucket, key) =>
      observe('Exists', async () => {
        const res = await base.request({
          method: 'HEAD',
          endpoint: `${bucket}/${key}`,
          job,
          passStatuses: [404],
        });
        return res.status !== 404;
      }),
    forJob: (job) => ({
      get: (bucket, key) => client.get(job, bucket, key),
      exists: (bucket, key) => client.exists(job, bucket, key),
    }),
  };
  return client;
}
