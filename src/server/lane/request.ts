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
import { createDecodeCache, type DecodeCache } from '../executor-api/decode-cache.js';

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
  /** The body's length (its Content-Length). */
  length: number;
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

/**
 * Heads the lane read before, by their text, shared by a lane's connections: the heads of a fleet's
 * heartbeats and dequeues differ only in their route, queue and body length, so a few serve every
 * executor. A head is parsed the same way every time, so one read before is given again (handlers
 * do not change it). Heads over LANE_CACHED_HEAD_CHARS are read afresh each time, which bounds the
 * cache at a few MiB whatever a client sends.
 */
export type LaneHeads = DecodeCache<LaneHead>;

/** The longest head text a lane keeps (an executor's heads are about 250 characters). */
export const LANE_CACHED_HEAD_CHARS = 1024;

export function createLaneHeads(): LaneHeads {
  return createDecodeCache<LaneHead>(1024, LANE_CACHED_HEAD_CHARS);
}

/** The head of `text` (a request's head without its blank line), or undefined when it is not the lane's. */
function parseHead(text: string): LaneHead | undefined {
  const lines = text.split('\r\n');
  const line = REQUEST_LINE.exec(lines[0]!);
  if (!line) return undefined;
  const headers: Record<string, string> = Object.create(null);
  for (let i = 1; i < lines.length; i++) {
    const text = lines[i]!;
    const colon = text.indexOf(':');
    if (colon <= 0) return undefined;
    const name = text.slice(0, colon);
    if (!TOKEN.test(name)) return undefined;
    const value = text.slice(colon + 1).replace(EDGE_SPACE, '');
    if (!VALUE.test(value)) return undefined;
    const key = name.toLowerCase();
    if (key in headers || NOT_OURS.has(key)) return undefined;
    headers[key] = value;
  }
  const connection = headers.connection;
  if (connection !== undefined && connection.toLowerCase() !== 'keep-alive') return undefined;
  if (headers.host === undefined) return undefined;
  const declared = headers['content-length'];
  if (declared === undefined || !DIGITS.test(declared)) return undefined;
  const length = Number(declared);
  if (length > LANE_MAX_BODY_BYTES) return undefined;
  return { route: line[3] as LaneRoute, queue: line[2] ?? null, path: line[1]!, headers, length };
}

/** The request at the start of `buf`, as the lane sees it; `heads` keeps the heads it parsed. */
export function readLaneRequest(buf: Buffer, heads?: LaneHeads): LaneRead {
  // Most requests that are not the lane's are known by their first bytes.
  const start = Math.min(buf.length, PREFIX.length);
  if (buf.compare(PREFIX, 0, start, 0, start) !== 0) return OTHER;
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return buf.length >= LANE_MAX_HEAD_BYTES ? OTHER : INCOMPLETE;
  if (headEnd + 4 > LANE_MAX_HEAD_BYTES) return OTHER;
  const text = buf.toString('latin1', 0, headEnd);
  let head = heads?.get(text);
  if (head === undefined) {
    head = parseHead(text);
    if (head === undefined) return OTHER;
    heads?.set(text, head);
  }
  const from = headEnd + 4;
  if (buf.length < from + head.length) return { kind: 'partial', head };
  return { kind: 'whole', head, body: buf.subarray(from, from + head.length), used: from + head.length };
}

/**
 * A connection's reader: `readLaneRequest`, but a request whose head repeats the last one read
 * byte for byte (an executor sends the same heartbeat head every 5 s, the same dequeue head every
 * long-poll) is not parsed again: the same bytes read the same, so the head read last time is given
 * again (handlers do not change it). Any other head is looked up in the lane's `heads`.
 */
export class LaneReader {
  private head: LaneHead | undefined;
  private headBytes: Buffer = Buffer.alloc(0);

  constructor(private readonly heads?: LaneHeads) {}

  read(buf: Buffer): LaneRead {
    const known = this.headBytes;
    const from = known.length;
    if (this.head !== undefined && buf.length >= from && buf.compare(known, 0, from, 0, from) === 0) {
      const end = from + this.head.length;
      if (buf.length < end) return { kind: 'partial', head: this.head };
      return { kind: 'whole', head: this.head, body: buf.subarray(from, end), used: end };
    }
    const read = readLaneRequest(buf, this.heads);
    if (read.kind === 'whole') {
      this.head = read.head;
      // A copy: a view would keep the whole read alive.
      this.headBytes = Buffer.from(buf.subarray(0, read.used - read.body.length));
    }
    return read;
  }
}
