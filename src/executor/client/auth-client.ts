/**
 * `GET /.executors/test/auth` for `executor validate` (Sourcegraph `run/validate.go`), and the
 * instance's recommended src-cli version (`GET /.api/src-cli/version`, used as the server version).
 */
import type { HttpRetryConfig } from '../../config/executor.js';
import { createBaseClient, UnexpectedStatusError } from './base-client.js';

export const AUTHORIZATION_FAILED =
  'failed to authorize with frontend, is executors.accessToken set correctly in the site-config?';

export interface AuthClientOptions {
  frontendUrl: string;
  password: string;
  executorName: string;
  retry?: HttpRetryConfig;
  fetch?: typeof fetch;
}

export function createAuthClient(opts: AuthClientOptions) {
  const common = {
    baseUrl: opts.frontendUrl,
    password: opts.password,
    executorName: opts.executorName,
    retry: opts.retry,
    fetch: opts.fetch,
  };
  const test = createBaseClient({ ...common, pathPrefix: '/.executors/test' });
  const root = createBaseClient({ ...common, pathPrefix: '' });
  return {
    /** Resolves when the shared secret is accepted; rejects with Sourcegraph's messages otherwise. */
    async testAuth(signal?: AbortSignal): Promise<void> {
      try {
        await test.request({ method: 'GET', endpoint: 'auth', signal });
      } catch (e) {
        if (e instanceof UnexpectedStatusError && e.status === 401) throw new Error(AUTHORIZATION_FAILED);
        if (e instanceof UnexpectedStatusError) {
          throw new Error(`failed to validate authorization token: ${e.message}`);
        }
        throw new Error(`failed to validate authorization token: ${(e as Error).message}`);
      }
    },
    /** `{"version":"x.y.z"}` from `/.api/src-cli/version`; undefined when the server has no such route. */
    async serverSrcCliVersion(signal?: AbortSignal): Promise<string | undefined> {
      const res = await root.request({
        method: 'GET',
        endpoint: '.api/src-cli/version',
        signal,
        passStatuses: [404],
      });
      if (res.status !== 200) return undefined;
      const v = (JSON.parse(res.body.toString('utf8')) as { version?: unknown }).version;
      return typeof v === 'string' ? v : undefined;
    },
  };
}
export type AuthClient = ReturnType<typeof createAuthClient>;
