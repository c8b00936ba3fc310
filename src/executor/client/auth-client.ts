/**
 * `GET /.executors/test/auth` for `executor validate` (Sourcegraph `run/validate.go`), which also
 * reads our server's version from its response header.
 */
import type { HttpRetryConfig } from '../../config/executor.js';
import { SERVER_VERSION_HEADER } from '../../protocol/capabilities.js';
import { createBaseClient, UnexpectedStatusError } from './base-client.js';

export const AUTHORIZATION_FAILED =
  'failed to authorize with frontend, is executors.accessToken set correctly in the site-config?';

/**
 * The shared secret was refused (401). Its message is Sourcegraph's; `serverVersion` is set when the
 * server is one of ours (it sends its version header on every /.executors answer, 401 included).
 */
export class AuthorizationFailedError extends Error {
  constructor(readonly serverVersion: string | undefined) {
    super(AUTHORIZATION_FAILED);
    this.name = 'AuthorizationFailedError';
  }
}

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
  return {
    /**
     * Resolves when the shared secret is accepted, with the server's version when it is one of ours
     * (header SERVER_VERSION_HEADER; a Sourcegraph instance sends none); rejects with Sourcegraph's
     * messages otherwise.
     */
    async testAuth(signal?: AbortSignal): Promise<{ serverVersion?: string }> {
      try {
        const res = await test.request({ method: 'GET', endpoint: 'auth', signal });
        return { serverVersion: res.headers.get(SERVER_VERSION_HEADER) ?? undefined };
      } catch (e) {
        if (e instanceof UnexpectedStatusError && e.status === 401) {
          throw new AuthorizationFailedError(e.headers?.get(SERVER_VERSION_HEADER) ?? undefined);
        }
        if (e instanceof UnexpectedStatusError) {
          throw new Error(`failed to validate authorization token: ${e.message}`);
        }
        throw new Error(`failed to validate authorization token: ${(e as Error).message}`);
      }
    },
  };
}
export type AuthClient = ReturnType<typeof createAuthClient>;
