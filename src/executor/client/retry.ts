/**
 * Which HTTP outcomes are retried, and how long to wait: Sourcegraph's internal httpcli transport
 * (`internal/httpcli`), written as tables rather than scattered ifs.
 */
import type { HttpRetryConfig } from '../../config/executor.js';

export const DEFAULT_HTTP_RETRY: HttpRetryConfig = Object.freeze({
  maxAttempts: 20,
  delayBaseMs: 50,
  delayMaxMs: 1000,
  retryAfterMaxMs: 3000,
  timeoutMs: 0,
});

/** Statuses retried: 0 (no status), 429, and every 5xx except 501 Not Implemented. */
export function isRetryableStatus(status: number): boolean {
  return status === 0 || status === 429 || (status >= 500 && status !== 501);
}

/**
 * Transport errors NOT retried, by `code` (Node/undici) — the equivalents of Go's context cancel,
 * "unsupported protocol scheme" and x509 unknown authority. DNS NXDOMAIN stops after the 3rd
 * attempt (DNS_GIVE_UP_AFTER).
 */
export const NON_RETRYABLE_ERROR_CODES: ReadonlySet<string> = new Set([
  'ABORT_ERR',
  'ERR_INVALID_URL',
  'ERR_INVALID_PROTOCOL',
  'UND_ERR_NOT_SUPPORTED',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);
export const DNS_NOT_FOUND_CODES: ReadonlySet<string> = new Set(['ENOTFOUND']);
export const DNS_GIVE_UP_AFTER = 3;

/** The error code of a fetch failure (undici wraps the socket error in `cause`). */
export function transportErrorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur; i++) {
    const err = cur as { code?: unknown; name?: unknown; cause?: unknown };
    if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'ABORT_ERR';
    if (typeof err.code === 'string') return err.code;
    cur = err.cause;
  }
  return undefined;
}

/** attempt is 1-based (the attempt that just failed). */
export function shouldRetryError(e: unknown, attempt: number): boolean {
  const code = transportErrorCode(e);
  if (code && NON_RETRYABLE_ERROR_CODES.has(code)) return false;
  if (code && DNS_NOT_FOUND_CODES.has(code) && attempt >= DNS_GIVE_UP_AFTER) return false;
  return true;
}

/**
 * Full-jitter exponential backoff: rand(0, min(max, base·2^attempt)) clamped to [base, max].
 * `random` returns [0, 1).
 */
export function backoffDelayMs(
  attempt: number,
  cfg: HttpRetryConfig,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(cfg.delayMaxMs, cfg.delayBaseMs * 2 ** Math.min(attempt, 30));
  const d = random() * ceiling;
  return Math.max(cfg.delayBaseMs, Math.min(cfg.delayMaxMs, d));
}

/** Retry-After in ms (seconds or an HTTP date), or undefined when absent or unparsable. */
export function parseRetryAfterMs(value: string | null, nowMs: number = Date.now()): number | undefined {
  if (value == null || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - nowMs);
}

export type RetryDecision = { retry: false } | { retry: true; delayMs: number };

/** Decision for a response. attempt is 1-based. */
export function decideForStatus(
  status: number,
  retryAfter: string | null,
  attempt: number,
  cfg: HttpRetryConfig,
  random?: () => number,
): RetryDecision {
  if (attempt >= cfg.maxAttempts || !isRetryableStatus(status)) return { retry: false };
  const ra = parseRetryAfterMs(retryAfter);
  if (ra !== undefined) {
    if (ra > cfg.retryAfterMaxMs) return { retry: false };
    return { retry: true, delayMs: ra };
  }
  return { retry: true, delayMs: backoffDelayMs(attempt, cfg, random) };
}
