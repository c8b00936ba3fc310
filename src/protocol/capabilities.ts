/**
 * Extensions beyond the Sourcegraph protocol. Our server advertises them in a response header on the
 * heartbeat (and the ping); our executor uses one only when advertised, so against a Sourcegraph
 * instance it behaves exactly like a stock executor.
 */
export const CAPABILITIES_HEADER = 'x-executor-capabilities';

export const CAPABILITY = {
  /** The server may hold an empty dequeue open; the executor asks with LONG_POLL_HEADER. */
  longPoll: 'long-poll',
  /** POST /.executors/queue/{queue}/appendExecutionLogEntry (deltas with byte offsets). */
  logAppend: 'log-append',
  /**
   * appendExecutionLogEntry also takes the output as the raw body (`application/octet-stream`,
   * the other fields in the query string): no JSON to build or parse for up to 1 MiB per append.
   */
  logAppendBytes: 'log-append-bytes',
} as const;
export type Capability = (typeof CAPABILITY)[keyof typeof CAPABILITY];

/** Response header of our server on every /.executors response: its version (`<semver>+executor`). */
export const SERVER_VERSION_HEADER = 'x-executor-server-version';

/** Request header on dequeue: hold the request up to this many milliseconds when no job is ready. */
export const LONG_POLL_HEADER = 'x-executor-long-poll-ms';
/** The longest wait a server grants, whatever is asked (keeps proxies' idle timeouts out of play). */
export const MAX_LONG_POLL_MS = 30_000;

export function parseCapabilities(header: string | null | undefined): Set<string> {
  return new Set(
    (header ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}
