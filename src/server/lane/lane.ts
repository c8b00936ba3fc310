/**
 * The heartbeat lane (EXECUTOR_SERVER_HEARTBEAT_LANE): every connection the server accepts starts
 * here, and the heartbeats and dequeues it carries are answered without node:http. At 10,000
 * executors a server answers 2,000 heartbeats a second and about 330 long-polls that ended empty;
 * node:http's request and response objects, its parser's callbacks and its socket bookkeeping
 * were about 50 us of the 230 to 260 each heartbeat cost; with the route's quick case
 * (heartbeat.ts) the lane saves about a third (docs/benchmarks.md, "The heartbeat lane",
 * "Pretenuring off" and "Dequeues in the lane"). On by default; EXECUTOR_SERVER_HEARTBEAT_LANE=false
 * gives every connection to node:http. The lane reads the bytes itself (request.ts), gives the
 * same route handler the server's other path gives (the same authentication, decoding, answers,
 * long-poll and failures: `LaneAnswer`) a request whose body is already here, and writes the
 * answer as node:http would, headers included. A parked dequeue holds its connection: the
 * connection closing while it waits is the response's `close`, as node:http's is.
 *
 * The first request that is neither (a job's log or mark, anything malformed, a request not all
 * here within the headers timeout) ends the lane for that connection: the bytes not yet answered
 * are put back and the connection is node:http's from then on, as if it had been from the start.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { BodyTimeoutError, type BodyTimeouts } from '../http.js';
import {
  createLaneHeads,
  LANE_MAX_BODY_BYTES,
  LANE_MAX_HEAD_BYTES,
  type LaneHead,
  type LaneHeads,
  type LaneRead,
  LaneReader,
  type LaneRoute,
} from './request.js';

/** The request a lane gives the route handler: what the heartbeat and dequeue paths read of a request. */
export interface LaneRequest {
  method: 'POST';
  url: string;
  headers: Record<string, string>;
  socket: Socket;
  complete: true;
  destroyed: false;
  /** The whole body, read before the handler runs (http.ts's readBody takes it from here). */
  wholeBody: Buffer;
  /** Or why it never came: readBody fails with it. */
  bodyError?: BodyTimeoutError;
  /** The body is read already: nothing to resume (a refusal before reading calls it). */
  resume(): void;
}

/**
 * Answers one request read by the lane: calls `res.end` (or `res.destroy`) once, or nothing when
 * the connection closed first (a parked dequeue whose client went away).
 */
export type LaneAnswer = (head: LaneHead, req: LaneRequest, res: LaneResponse) => void;

export interface LaneOptions {
  answer: LaneAnswer;
  /** Gives a connection to node:http (the server's own connection listener). */
  handOff: (socket: Socket) => void;
  /** node:http's keepAliveTimeout and headersTimeout, which the lane keeps while it has a connection. */
  keepAliveMs: number;
  headersMs: number;
  /** How long a body may take, in all and between two bytes (EXECUTOR_SERVER_REQUEST_TIMEOUT, ...). */
  body: BodyTimeouts;
  /** Counts what the lane did: requests answered (by route), connections handed over. */
  counted?: (what: LaneEvent, route?: LaneRoute) => void;
}

export interface Lanes {
  accept(socket: Socket): void;
  /** Closes the idle ones; the others close after their answer. New ones are still handed over. */
  close(): void;
  /** Cuts every connection still in the lane. */
  destroyAll(): void;
}

let dateSecond = -1;
let dateText = '';
/** The Date header, made once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/** What a route handler writes to: the part of node:http's ServerResponse the handlers use. */
export class LaneResponse {
  statusCode = 200;
  headersSent = false;
  /** True once the answer is written (or the response destroyed), as node:http's after `finish`. */
  writableFinished = false;
  /** Headers set, by lower-cased name: the name as set and its value. Made at the first. */
  private headers: Map<string, [string, string]> | undefined;
  private finishers: Array<() => void> | undefined;
  private closers: Array<() => void> | undefined;

  constructor(
    private readonly write: (text: string, close: boolean) => void,
    private readonly cut: () => void,
    private readonly keepAliveSeconds: number,
  ) {}

  setHeader(name: string, value: string | number): this {
    this.headers ??= new Map();
    this.headers.set(name.toLowerCase(), [name, String(value)]);
    return this;
  }

  writeHead(status: number, headers: Record<string, string> = {}): this {
    this.statusCode = status;
    for (const [name, value] of Object.entries(headers)) this.setHeader(name, value);
    return this;
  }

  /** `finish` (the answer written) and `close` (after it, or when the connection closed first). */
  on(event: string, fn: () => void): this {
    if (event === 'finish') this.finishers = [...(this.finishers ?? []), fn];
    else if (event === 'close') this.closers = [...(this.closers ?? []), fn];
    return this;
  }

  /** Each event comes at most once, so `once` is `on`. */
  once(event: string, fn: () => void): this {
    return this.on(event, fn);
  }

  /** The connection closed before the answer was written: `close` without `finish`. */
  gone(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.finishers = undefined;
    this.emitClose();
  }

  private emitClose(): void {
    const closers = this.closers;
    this.closers = undefined;
    if (closers) for (const fn of closers) fn();
  }

  end(body: string | Buffer = ''): void {
    if (this.headersSent) return;
    const text = typeof body === 'string' ? body : body.toString('utf8');
    const headers = this.headers ?? new Map<string, [string, string]>();
    if (!headers.has('content-length'))
      headers.set('content-length', ['content-length', String(Buffer.byteLength(text))]);
    const close = headers.get('connection')?.[1].toLowerCase() === 'close';
    let lines = '';
    for (const [key, [name, value]] of headers) {
      // Handlers set only values of their own making; one that could split the head is a bug.
      if (/[\r\n]/.test(value)) throw new Error(`header ${key} holds a line break`);
      if (key !== 'connection') lines += `${name}: ${value}\r\n`;
    }
    this.send(lines, text, close);
  }

  /**
   * The answer `end` would write for `status`, header lines of the caller's making (each with its
   * CRLF, in the order `setHeader` would have had them, none set before) and `text`, kept alive.
   */
  endWith(status: number, lines: string, text: string): void {
    if (this.headersSent) return;
    this.statusCode = status;
    this.send(lines, text, false);
  }

  private send(lines: string, text: string, close: boolean): void {
    this.headersSent = true;
    const status = `HTTP/1.1 ${this.statusCode} ${STATUS_CODES[this.statusCode] ?? 'unknown'}\r\n`;
    const connection = close
      ? 'Connection: close\r\n'
      : `Connection: keep-alive\r\nKeep-Alive: timeout=${this.keepAliveSeconds}\r\n`;
    this.write(`${status}${lines}Date: ${httpDate()}\r\n${connection}\r\n${text}`, close);
    this.writableFinished = true;
    const finishers = this.finishers;
    this.finishers = undefined;
    if (finishers) for (const fn of finishers) fn();
    this.emitClose();
  }

  destroy(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.finishers = undefined;
    this.cut();
    this.emitClose();
  }
}

/** What node:http answers to a head not all sent within its headersTimeout, before it cuts. */
const HEAD_TIMEOUT_ANSWER = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';

/** What a lane's connections share. */
interface LaneShared {
  options: LaneOptions;
  keepAliveSeconds: number;
  open: Set<Connection>;
  closing: boolean;
  /** Heads read on any of its connections. */
  heads: LaneHeads;
}

const NOTHING = Buffer.alloc(0);

/** Bytes a connection may hold while an answer is pending: one whole request. */
const LANE_HOLD_BYTES = LANE_MAX_HEAD_BYTES + LANE_MAX_BODY_BYTES;

/** One connection while the lane has it. */
class Connection {
  private pending: Buffer = Buffer.alloc(0);
  private readonly reader: LaneReader;
  private busy = false;
  /** The answer being made, until it is written. */
  private current: LaneResponse | undefined;
  private ended = false;
  /** When the request being read began (its first byte), its head ended, and its last byte came. */
  private began = 0;
  private headDone = 0;
  private lastByte = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.lastByte = Date.now();
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (!this.busy) this.next();
    // Requests sent ahead of their answers wait in the kernel, not here, beyond one request's worth.
    else if (this.pending.length > LANE_HOLD_BYTES) this.socket.pause();
  };
  private readonly onEnd = () => {
    this.ended = true;
    if (!this.busy) {
      this.next();
      return;
    }
    // As node:http: the client's end aborts the request in flight (a parked dequeue stops
    // waiting, and claims nothing for it), and the connection is ended; the answer has nowhere
    // to go.
    this.forget();
    this.socket.end();
    this.abandon();
  };
  // A connection silent for the keep-alive timeout (the socket's timeout restarts at every read
  // and write) is closed when it is idle, as node:http closes it.
  private readonly onTimeout = () => {
    if (this.busy || this.pending.length > 0) return;
    this.socket.destroy();
  };
  private readonly onClose = () => {
    this.forget();
    this.abandon();
  };
  private readonly onError = () => this.socket.destroy();

  constructor(
    readonly socket: Socket,
    private readonly lane: LaneShared,
  ) {
    this.reader = new LaneReader(lane.heads);
    lane.open.add(this);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('timeout', this.onTimeout);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.setTimeout(this.lane.options.keepAliveMs);
  }

  idle(): boolean {
    return !this.busy && this.pending.length === 0;
  }

  private forget(): void {
    this.lane.open.delete(this);
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('timeout', this.onTimeout);
    s.off('close', this.onClose);
    s.off('error', this.onError);
    s.setTimeout(0);
    this.unarm();
  }

  /** The answer being made will not be written: its response closes without finishing. */
  private abandon(): void {
    const res = this.current;
    this.current = undefined;
    res?.gone();
  }

  private unarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Reads again after `ms` (a timeout of the request being read may have come). */
  private arm(ms: number): void {
    this.unarm();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.busy && this.lane.open.has(this)) this.next();
    }, ms);
  }

  /** node:http takes the connection, with the bytes not answered yet. */
  private giveUp(): void {
    this.forget();
    this.lane.options.counted?.('request');
    const s = this.socket;
    s.pause();
    if (this.pending.length > 0) s.unshift(this.pending);
    this.pending = Buffer.alloc(0);
    this.lane.options.handOff(s);
    s.resume();
  }

  /** After an answer is out: reads on, and answers what is already here. */
  private goOn(): void {
    this.busy = false;
    if (!this.lane.open.has(this)) return;
    if (this.socket.isPaused()) this.socket.resume();
    queueMicrotask(() => {
      if (!this.busy && this.lane.open.has(this)) this.next();
    });
  }

  /** Answers the requests that are all here, one at a time, in order. */
  private next(): void {
    if (this.pending.length === 0) {
      this.began = 0;
      this.unarm();
      if (this.ended || this.lane.closing) this.socket.end();
      return;
    }
    const now = Date.now();
    if (this.began === 0) this.began = now;
    const read: LaneRead = this.reader.read(this.pending);
    if (read.kind === 'other') {
      this.giveUp();
      return;
    }
    if (read.kind === 'incomplete') {
      // A head not all here within the headers timeout is answered as node:http answers it.
      const left = this.began + this.lane.options.headersMs - now;
      if (this.ended) this.socket.destroy();
      else if (left > 0) this.arm(left);
      else {
        this.forget();
        this.socket.end(HEAD_TIMEOUT_ANSWER);
      }
      return;
    }
    if (read.kind === 'partial') {
      // The body as node:http's path times it (http.ts's readBody): silent for too long, or
      // not all here in time, and the route answers (408, or a refusal it makes first).
      if (this.headDone === 0) this.headDone = now;
      const idleLeft = Math.max(this.lastByte, this.headDone) + this.lane.options.body.idleMs - now;
      const deadlineLeft = this.headDone + this.lane.options.body.deadlineMs - now;
      if (this.ended) this.socket.destroy();
      else if (idleLeft > 0 && deadlineLeft > 0) this.arm(Math.min(idleLeft, deadlineLeft));
      else {
        const late =
          deadlineLeft <= 0
            ? new BodyTimeoutError('deadline', this.lane.options.body.deadlineMs)
            : new BodyTimeoutError('idle', this.lane.options.body.idleMs);
        this.serve(read.head, Buffer.alloc(0), this.pending.length, late);
      }
      return;
    }
    this.serve(read.head, read.body, read.used);
  }

  /**
   * Gives the route one request. One whose body did not come (`late`) ends the connection
   * after its answer: the rest of that body may still be on its way.
   */
  private serve(head: LaneHead, whole: Buffer, used: number, late?: BodyTimeoutError): void {
    // A view of what is left, or nothing: an empty view would keep the whole read alive.
    this.pending = used === this.pending.length ? NOTHING : this.pending.subarray(used);
    this.began = 0;
    this.headDone = 0;
    this.unarm();
    this.busy = true;
    const req: LaneRequest = {
      method: 'POST',
      url: head.path,
      headers: head.headers,
      socket: this.socket,
      complete: true,
      destroyed: false,
      wholeBody: whole,
      bodyError: late,
      resume: () => {},
    };
    const res = new LaneResponse(
      (text, close) => {
        this.current = undefined;
        this.lane.options.counted?.('answered', head.route);
        if (close || late) {
          this.busy = false;
          this.forget();
          this.socket.end(text);
          return;
        }
        // A client that sends without reading its answers is read no further until they are out.
        if (this.socket.write(text)) this.goOn();
        else this.socket.once('drain', () => this.goOn());
      },
      () => {
        this.current = undefined;
        this.forget();
        this.socket.destroy();
      },
      this.lane.keepAliveSeconds,
    );
    this.current = res;
    this.lane.options.answer(head, req, res);
  }
}

export function createLanes(options: LaneOptions): Lanes {
  const lane: LaneShared = {
    options,
    keepAliveSeconds: Math.floor(options.keepAliveMs / 1000),
    open: new Set(),
    closing: false,
    heads: createLaneHeads(),
  };
  return {
    accept(socket) {
      if (lane.closing) options.handOff(socket);
      else new Connection(socket, lane);
    },
    close() {
      lane.closing = true;
      for (const c of lane.open) if (c.idle()) c.socket.end();
    },
    destroyAll() {
      for (const c of [...lane.open]) c.socket.destroy();
    },
  };
}

export type LaneEvent = 'answered' | 'request';

export interface LaneCounters {
  count(what: LaneEvent, route?: LaneRoute): void;
  render(): string;
}

/** `/metrics`: requests the lane answered, by route, and connections it gave to node:http. */
export function createLaneCounters(): LaneCounters {
  const answered: Record<LaneRoute, number> = { heartbeat: 0, dequeue: 0 };
  let handed = 0;
  return {
    count(what, route = 'heartbeat') {
      if (what === 'answered') answered[route]++;
      else handed++;
    },
    render: () =>
      [
        '# HELP src_executor_server_lane_answers_total Requests the heartbeat lane answered without node:http, by route (heartbeat, dequeue).',
        '# TYPE src_executor_server_lane_answers_total counter',
        `src_executor_server_lane_answers_total{route="heartbeat"} ${answered.heartbeat}`,
        `src_executor_server_lane_answers_total{route="dequeue"} ${answered.dequeue}`,
        '# HELP src_executor_server_lane_handovers_total Connections the heartbeat lane gave to node:http, at their first request that is neither a heartbeat nor a dequeue it reads.',
        '# TYPE src_executor_server_lane_handovers_total counter',
        `src_executor_server_lane_handovers_total ${handed}`,
        '',
      ].join('\n'),
  };
}

/**
 * Puts the lane in front of `server`'s own listener for `event` ('connection' for HTTP,
 * 'secureConnection' for HTTPS, where the lane reads what TLS decrypted): each new connection
 * goes to the lane, and the listener gets it when the lane hands it over.
 */
export function laneInFront(
  server: NodeJS.EventEmitter,
  event: 'connection' | 'secureConnection',
  options: Omit<LaneOptions, 'handOff'>,
): Lanes {
  const own = server.listeners(event) as Array<(socket: Socket) => void>;
  server.removeAllListeners(event);
  const lanes = createLanes({
    ...options,
    handOff: (socket) => {
      for (const fn of own) fn.call(server, socket);
    },
  });
  server.on(event, (socket: Socket) => lanes.accept(socket));
  return lanes;
}
