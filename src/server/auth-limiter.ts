/**
 * Rate limiting of authentication failures, shared by the user API and the executor API.
 *
 * Each failed authentication counts against its peer (the socket's remote address; this server has
 * no trusted-proxy setting, so X-Forwarded-For and its kin are never read) and, where the request
 * presents one, against the token's name. Once a key has `limit` failures within `windowMs` of its
 * first, every further request under that key is refused with 429 and Retry-After, BEFORE its token
 * is checked, until the window has passed: a guesser gets at most `limit` tries per window and peer.
 * Successful requests are never counted and never reset a key.
 *
 * Memory is bounded: at most `maxEntries` keys are kept (the oldest window is evicted first, which
 * is the one closest to expiry), and a key whose window has passed is forgotten when next seen or
 * when it reaches the front of the table.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { Clock } from '../lib/clock.js';

/** Which API refused, as the `api` label of the refusal counter. */
export type AuthApi = 'user' | 'executor' | 'metrics';

/** Why a request was refused: a bad or missing token, or the limiter. */
export type AuthRefusalReason = 'unauthenticated' | 'rate_limited';

/** Who presents the credentials: the socket peer, and the token's name when the request names one. */
export interface AuthAttempt {
  peer: string;
  tokenName?: string;
}

export interface AuthLimiterOptions {
  /** Failures within the window after which a key is refused. */
  limit: number;
  windowMs: number;
  /** Keys kept at most; the oldest is evicted when a new one would exceed it. */
  maxEntries?: number;
  clock: Clock;
}

export interface AuthLimiter {
  /**
   * Null when the attempt may go on to the token check; else the seconds until it may (the
   * Retry-After value, at least 1).
   */
  blocked(attempt: AuthAttempt): number | null;
  /** Records a failed authentication of this attempt. */
  failed(attempt: AuthAttempt): void;
  /** Keys held (tests and diagnostics). */
  size(): number;
}

export const DEFAULT_MAX_ENTRIES = 10_000;

interface Window {
  startedAt: number;
  failures: number;
}

/**
 * The limiter's peer of a request: the socket's remote address, an IPv4-mapped IPv6 address as its
 * IPv4 form, and an IPv6 address as its /64 prefix (one host usually holds a whole /64, so single
 * addresses would let it rotate past the limit).
 */
export function peerOf(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIP(address) !== 6) return address;
  return `${expandIpv6(address).slice(0, 4).join(':')}::/64`;
}

/** The eight groups of an IPv6 address (zone id dropped), without leading zeros. */
function expandIpv6(address: string): string[] {
  const [head = '', tail] = address.split('%')[0]!.toLowerCase().split('::') as [string, string?];
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  const left = part(head);
  const right = tail === undefined ? [] : part(tail);
  const groups = [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return groups.map((g) => g.replace(/^0+(?=.)/, ''));
}

function keysOf(a: AuthAttempt): string[] {
  // Prefixes keep a token named like an address from sharing its peer's window.
  const keys = [`peer:${a.peer}`];
  if (a.tokenName !== undefined && a.tokenName !== '') keys.push(`name:${a.tokenName}`);
  return keys;
}

export function createAuthLimiter(opts: AuthLimiterOptions): AuthLimiter {
  const { limit, windowMs, clock } = opts;
  const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  // Insertion order is window start order: a key is (re)inserted whenever its window starts.
  const windows = new Map<string, Window>();

  const live = (key: string, now: number): Window | undefined => {
    const w = windows.get(key);
    if (w && now - w.startedAt >= windowMs) {
      windows.delete(key);
      return undefined;
    }
    return w;
  };

  /** Drops expired windows from the front, then the oldest while over the cap. */
  const trim = (now: number) => {
    for (const [key, w] of windows) {
      if (now - w.startedAt < windowMs && windows.size <= maxEntries) break;
      windows.delete(key);
    }
  };

  return {
    blocked(attempt) {
      const now = clock.now();
      let waitMs = 0;
      for (const key of keysOf(attempt)) {
        const w = live(key, now);
        if (w && w.failures >= limit) waitMs = Math.max(waitMs, w.startedAt + windowMs - now);
      }
      return waitMs > 0 ? Math.max(1, Math.ceil(waitMs / 1000)) : null;
    },
    failed(attempt) {
      const now = clock.now();
      for (const key of keysOf(attempt)) {
        const w = live(key, now);
        if (w) w.failures += 1;
        else windows.set(key, { startedAt: now, failures: 1 });
      }
      trim(now);
    },
    size: () => windows.size,
  };
}

/** Refusals by API and reason, for /metrics. */
export interface AuthRefusalMetrics {
  count(api: AuthApi, reason: AuthRefusalReason): void;
  render(): string;
}

export const AUTH_REFUSALS_METRIC = 'src_executor_server_auth_refusals_total';

export function createAuthRefusalMetrics(): AuthRefusalMetrics {
  const counts = new Map<string, number>();
  for (const api of ['user', 'executor', 'metrics'] as const)
    for (const reason of ['unauthenticated', 'rate_limited'] as const) counts.set(`${api}:${reason}`, 0);
  return {
    count(api, reason) {
      const k = `${api}:${reason}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    },
    render() {
      const lines = [
        `# HELP ${AUTH_REFUSALS_METRIC} Requests refused by authentication, by API and reason (unauthenticated: a missing or wrong token; rate_limited: too many failures from the peer or token name).`,
        `# TYPE ${AUTH_REFUSALS_METRIC} counter`,
      ];
      for (const [k, v] of counts) {
        const [api, reason] = k.split(':');
        lines.push(`${AUTH_REFUSALS_METRIC}{api="${api}",reason="${reason}"} ${v}`);
      }
      return `${lines.join('\n')}\n`;
    },
  };
}
