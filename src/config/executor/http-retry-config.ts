/** The executor's HTTP client retries (SRC_HTTP_CLI_INTERNAL_*, names and defaults as Sourcegraph's). */
import type { Catalogue, Values } from '../declare.js';
import { durationMs, int } from '../parsers.js';

export interface HttpRetryConfig {
  /** Total attempts per request (the first one included). */
  maxAttempts: number;
  delayBaseMs: number;
  delayMaxMs: number;
  /** A Retry-After longer than this is not waited for: the response is returned as it is. */
  retryAfterMaxMs: number;
  /** Per-attempt timeout; 0 = none (Sourcegraph's default). */
  timeoutMs: number;
}

export const HTTP_RETRY_ENV = {
  SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: {
    default: '20',
    description: 'Attempts per HTTP request on transport errors, 429 and 5xx other than 501.',
    parse: int({ min: 1, max: 1000 }),
  },
  SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE: {
    default: '50ms',
    description: 'Base of the full-jitter exponential backoff between HTTP attempts.',
    parse: durationMs(),
  },
  SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX: {
    default: '1s',
    description: 'Upper bound of the backoff.',
    parse: durationMs(),
  },
  SRC_HTTP_CLI_INTERNAL_RETRY_AFTER_MAX_DURATION: {
    default: '3s',
    description: 'A response with a longer Retry-After is not retried.',
    parse: durationMs(),
  },
  SRC_HTTP_CLI_INTERNAL_TIMEOUT: {
    default: '0',
    description: 'Timeout of one HTTP attempt. `0` = none.',
    parse: durationMs(),
  },
} as const satisfies Catalogue;

/** Problems between the retry settings, reported with the field problems. */
export function httpRetryProblems(v: Partial<Values<typeof HTTP_RETRY_ENV>>): string[] {
  const { SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE: base, SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX: max } = v;
  return base !== undefined && max !== undefined && max < base
    ? [
        'SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX: must not be shorter than SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE',
      ]
    : [];
}

export function httpRetryConfig(v: Values<typeof HTTP_RETRY_ENV>): HttpRetryConfig {
  return {
    maxAttempts: v.SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS,
    delayBaseMs: v.SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_BASE,
    delayMaxMs: v.SRC_HTTP_CLI_INTERNAL_RETRY_DELAY_MAX,
    retryAfterMaxMs: v.SRC_HTTP_CLI_INTERNAL_RETRY_AFTER_MAX_DURATION,
    timeoutMs: v.SRC_HTTP_CLI_INTERNAL_TIMEOUT,
  };
}
