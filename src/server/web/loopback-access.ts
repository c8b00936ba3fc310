/**
 * The dashboard's loopback rule: a user-API request without a token is let in only when ALL hold:
 *
 * 1. the setting `dashboardLoopbackOpen` is on (EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN: off by
 *    default for `executor server`, on for `executor up`, the local trial);
 * 2. the server listens on a loopback address (127.0.0.0/8, ::1, or "localhost");
 * 3. the peer's socket address is loopback;
 * 4. the `Host` header names a loopback host (127.x.y.z, [::1] or localhost, any port), which
 *    defeats DNS rebinding: a foreign page that rebinds its name to 127.0.0.1 still sends its name;
 * 5. the request carries `X-Executor-Dashboard: 1`. A cross-origin page cannot send a custom header
 *    without a CORS preflight, which this server never approves, so other sites cannot drive the API
 *    (cancel, retry, submit) through the operator's browser;
 * 6. an `Origin` header, when present, is the same origin as the `Host`;
 * 7. the request carries no proxy header (PROXY_HEADERS). A reverse proxy on the same host meets
 *    every condition above for a request from anywhere (peer 127.0.0.1, `Host` rewritten to the
 *    upstream's loopback address, the client's own headers passed through), so a request that came
 *    through one is remote and needs a token. Proxies that add none of these headers must not sit
 *    in front of a server with the setting on (docs/security.md).
 *
 * Any local process can meet these conditions: on a shared machine, turn the setting off.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export const DASHBOARD_HEADER = 'x-executor-dashboard';

/** Headers a forwarding proxy adds (RFC 7239, the X-Forwarded-* family, nginx's X-Real-IP, RFC 9110 Via). */
export const PROXY_HEADERS = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
  'via',
] as const;

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (a === 'localhost' || a === '::1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

function hostOnly(hostHeader: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d{1,5})?$/.exec(hostHeader.trim());
  return m ? m[1]! : '';
}

export function loopbackOpen(
  req: IncomingMessage,
  config: { listenHost: string; dashboardLoopbackOpen: boolean },
): boolean {
  if (!config.dashboardLoopbackOpen) return false;
  if (!isLoopbackAddress(config.listenHost)) return false;
  if (!isLoopbackAddress(req.socket.remoteAddress)) return false;
  const host = req.headers.host ?? '';
  if (!isLoopbackAddress(hostOnly(host))) return false;
  if (req.headers[DASHBOARD_HEADER] !== '1') return false;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`) return false;
  if (PROXY_HEADERS.some((h) => req.headers[h] !== undefined)) return false;
  return true;
}
