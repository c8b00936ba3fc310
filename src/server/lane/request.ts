/**
 * The heartbeat lane's reader (lane.ts): the requests it answers, read from the bytes a
 * connection sent. It recognises only a plain HTTP/1.1 heartbeat or dequeue, exactly formed: `POST`
 * to `/.executors/queue/heartbeat`, `/.executors/queue/<queue>/heartbeat` or the same paths ending
 * in `dequeue` (no query, no escapes),
 * headers of printable ASCII each named once, a Host, a Content-Length and nothing that changes
 * how the message is framed or answered (Transfer-Encoding, Expect, Upgrade, a Connection other
 * than keep-alive). Anything else is "other", and the connection, with every byte it sent, goes
 * to node:http, which answers it as it would have without the lane: a reader that only ever says
 * "mine" to what node:http would read the same way cannot frame a message differently from it.
 */

/** The lane reads a head of at most this many bytes (node:http's limit is 16 KiB). */
export const LANE_MAX_HEAD_BYTES = 8 * 1024;

/** And a body of at most this many; a heartbeat carrying more metrics goes to node:http. */
export const LANE_MAX_BODY_BYTES = 64 * 1024;

/** The routes the lane reads: each on both paths (multi-queue, and one queue). */
export type LaneRoute = 'heartbeat' | 'dequeue';

/** A request's head, read. */
export interface LaneHead {
  route: LaneRoute;
  /** The queue of the path; null on the multi-queue route. */
  queue: string | null;
  /** The path as sent. */
  path: string;
  /** Lower-cased names, each once. */
  headers: Record<string, string>;
}

export type LaneRead =
  /** Could still become one of the lane's requests: wait for more bytes. */
  | { kind: 'incomplete' }
  /** A head, whose body is not all here. */
  | { kind: 'partial'; head: LaneHead }
  /** Not the lane's: hand the connection to node:http. */
  | { kind: 'other' }
  | {
      kind: 'whole';
      head: LaneHead;
      body: Buffer;
      /** Bytes of `buf` this request took. */
      used: number;
    };

const PREFIX = Buffer.from('POST /.executors/queue/', 'latin1');
const REQUEST_LINE =
  /^POST (\/\.executors\/queue\/(?:([A-Za-z0-9_][A-Za-z0-9._-]{0,127})\/)?(heartbeat|dequeue)) HTTP\/1\.1$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VALUE = /^[\t\x20-\x7e]*$/;
const EDGE_SPACE = /^[ \t]+|[ \t]+$/g;
const DIGITS = /^\d{1,9}$/;
/** Headers that change how a message is framed or answered: node:http's business. */
const NOT_OURS = new Set(['transfer-encoding', 'expect', 'upgrade', 'te', 'trailer']);

const INCOMPLETE: LaneRead = { kind: 'incomplete' };
const OTHER: LaneRead = { kind: 'other' };

/** The request at the start of `buf`, as the lane sees it. */
export function readLaneRequest(buf: Buffer): LaneRead {
  // Most requests that are not the lane's are known by their first bytes.
  const start = Math.min(buf.length, PREFIX.length);
  if (buf.compare(PREFIX, 0, start, 0, start) !== 0) return OTHER;
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return buf.length >= LANE_MAX_HEAD_BYTES ? OTHER : INCOMPLETE;
  if (headEnd + 4 > LANE_MAX_HEAD_BYTES) return OTHER;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const line = REQUEST_LINE.exec(lines[0]!);
  if (!line) return OTHER;
  const headers: Record<string, string> = Object.create(null);
  for (let i = 1; i < lines.length; i++) {
    const text = lines[i]!;
    const colon = text.indexOf(':');
    if (colon <= 0) return OTHER;
    const name = text.slice(0, colon);
    if (!TOKEN.test(name)) return OTHER;
    const value = text.slice(colon + 1).replace(EDGE_SPACE, '');
    if (!VALUE.test(value)) return OTHER;
    const key = name.toLowerCase();
    if (key in headers || NOT_OURS.has(key)) return OTHER;
    headers[key] = value;
  }
  const connection = headers.connection;
  if (connection !== undefined && connection.toLowerCase() !== 'keep-alive') return OTHER;
  if (headers.host === undefined) return OTHER;
  const declared = headers['content-length'];
  if (declared === undefined || !DIGITS.test(declared)) return OTHER;
  const length = Number(declared);
  if (length > LANE_MAX_BODY_BYTES) return OTHER;
  const from = headEnd + 4;
  const head: LaneHead = { route: line[3] as LaneRoute, queue: line[2] ?? null, path: line[1]!, headers };
  if (buf.length < from + length) return { kind: 'partial', head };
  return { kind: 'whole', head, body: buf.subarray(from, from + length), used: from + length };
}

/**
 * A connection's reader: `readLaneRequest`, but a request whose head repeats the last one read
 * byte for byte (an executor sends the same heartbeat head every 5 s, the same dequeue head every
 * long-poll) is not parsed again: the same bytes read the same, so the head read last time is given
 * again (handlers do not change it).
 */
export class LaneReader {
  private head: LaneHead | undefined;
  private headBytes: Buffer = Buffer.alloc(0);
  private bodyLength = 0;

  read(buf: Buffer): LaneRead {
    const known = this.headBytes;
    const from = known.length;
    if (this.head !== undefined && buf.length >= from && buf.compare(known, 0, from, 0, from) === 0) {
      const end = from + this.bodyLength;
      if (buf.length < end) return { kind: 'partial', head: this.head };
      return { kind: 'whole', head: this.head, body: buf.subarray(from, end), used: end };
    }
    const read = readLaneRequest(buf);
    if (read.kind === 'whole') {
      this.head = read.head;
      this.bodyLength = read.body.length;
      // A copy: a view would keep the whole read alive.
      this.headBytes = Buffer.from(buf.subarray(0, read.used - read.body.length));
    }
    return read;
  }
}
