/**
 * The heartbeat lane (server/lane): the heartbeats it reads are answered as node:http's path
 * answers them, byte for byte but for the request id and date; everything else on a connection,
 * from its first other request on, is node:http's, and nothing sent is lost or reordered on the way.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LONG_POLL_HEADER } from '../../src/protocol/capabilities.js';
import {
  createLaneHeads,
  LANE_CACHED_HEAD_CHARS,
  LANE_MAX_BODY_BYTES,
  LANE_MAX_HEAD_BYTES,
  LaneReader,
  readLaneRequest,
} from '../../src/server/lane/request.js';
import { waitFor } from '../helpers/env.js';
import { EXECUTOR_TOKEN, type Harness, startHarness } from './harness.js';

const AUTH = `token-executor ${EXECUTOR_TOKEN}`;
const BODY = JSON.stringify({ executorName: 'lane-1', jobIds: [], os: 'linux', executorVersion: '5.3.0' });
const DEQUEUE_BODY = JSON.stringify({ executorName: 'lane-1', version: '5.3.0' });

function request(path: string, body = BODY, extra: string[] = []): string {
  return [
    `POST ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: ${AUTH}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...extra,
    '',
    body,
  ].join('\r\n');
}

describe('the lane reader', () => {
  const read = (text: string) => readLaneRequest(Buffer.from(text, 'latin1'));

  it('reads a heartbeat or a dequeue on both routes, with its body, and where the next request starts', () => {
    const one = request('/.executors/queue/default/heartbeat');
    const r = read(`${one}GET / HTTP/1.1\r\n`);
    expect(r).toMatchObject({
      kind: 'whole',
      head: { route: 'heartbeat', queue: 'default', path: '/.executors/queue/default/heartbeat' },
    });
    if (r.kind !== 'whole') throw new Error('not read');
    expect(r.body.toString()).toBe(BODY);
    expect(r.used).toBe(Buffer.byteLength(one));
    expect(r.head.headers.authorization).toBe(AUTH);
    expect(read(request('/.executors/queue/heartbeat'))).toMatchObject({
      kind: 'whole',
      head: { queue: null },
    });
    expect(read(request('/.executors/queue/heartbeat/heartbeat'))).toMatchObject({
      head: { queue: 'heartbeat' },
    });
    expect(read(request('/.executors/queue/default/dequeue'))).toMatchObject({
      kind: 'whole',
      head: { route: 'dequeue', queue: 'default', path: '/.executors/queue/default/dequeue' },
    });
    expect(read(request('/.executors/queue/dequeue'))).toMatchObject({
      head: { route: 'dequeue', queue: null },
    });
    expect(read(request('/.executors/queue/dequeue/heartbeat'))).toMatchObject({
      head: { route: 'heartbeat', queue: 'dequeue' },
    });
  });

  it('waits for a head or body not all here', () => {
    const whole = request('/.executors/queue/default/heartbeat');
    const headEnd = whole.indexOf('\r\n\r\n') + 4;
    for (const cut of [1, 10, 30, headEnd - 1])
      expect(read(whole.slice(0, cut)).kind, `cut at ${cut}`).toBe('incomplete');
    for (const cut of [headEnd, whole.length - 1])
      expect(read(whole.slice(0, cut)), `cut at ${cut}`).toMatchObject({
        kind: 'partial',
        head: { queue: 'default' },
      });
  });

  it('leaves node:http everything it would read otherwise', () => {
    const hb = '/.executors/queue/default/heartbeat';
    const cases: Record<string, string> = {
      'another route': request('/.executors/queue/default/markComplete'),
      'another route that ends like one': request('/.executors/queue/default/x-dequeue'),
      'another method': request(hb).replace(/^POST/, 'PUT'),
      'a GET, known at its first bytes': 'GET /',
      'a query string': request(`${hb}?x=1`),
      'an escaped path': request('/.executors/queue/d%65fault/heartbeat'),
      'a dot segment': request('/.executors/queue/../heartbeat'),
      'HTTP/1.0': request(hb).replace('HTTP/1.1', 'HTTP/1.0'),
      chunked: request(hb, BODY, ['Transfer-Encoding: chunked']),
      Expect: request(hb, BODY, ['Expect: 100-continue']),
      Upgrade: request(hb, BODY, ['Upgrade: websocket']),
      'Connection: close': request(hb, BODY, ['Connection: close']),
      'a header twice': request(hb, BODY, ['Content-Length: 3']),
      'a folded header': request(hb, BODY, [' folded']),
      'a bare line feed': request(hb, BODY, ['X-A: 1\nX-B: 2']),
      'a control character': request(hb, BODY, ['X-A: \x01']),
      'a byte above ASCII': request(hb, BODY, ['X-A: \xe9']),
      'a space before the colon': request(hb, BODY, ['X-A : 1']),
      'no Host': request(hb).replace('Host: 127.0.0.1\r\n', ''),
      'no Content-Length': request(hb).replace(/Content-Length: \d+\r\n/, ''),
      'a signed Content-Length': request(hb).replace(/Content-Length: \d+/, 'Content-Length: +10'),
      'a body over the lane': request(hb, 'x'.repeat(LANE_MAX_BODY_BYTES + 1)),
      'a head over the lane': request(hb, BODY, [`X-Pad: ${'p'.repeat(LANE_MAX_HEAD_BYTES)}`]),
      'a long head without its end': `POST ${hb} HTTP/1.1\r\nX-Pad: ${'p'.repeat(LANE_MAX_HEAD_BYTES)}`,
    };
    for (const [what, text] of Object.entries(cases)) expect(read(text).kind, what).toBe('other');
    // Connection: keep-alive, in any case, is the lane's.
    expect(read(request(hb, BODY, ['connection: Keep-Alive'])).kind).toBe('whole');
  });

  it('gives a repeated head as read the first time, and reads any other afresh, body and all', () => {
    const reader = new LaneReader();
    const hb = '/.executors/queue/default/heartbeat';
    const bytes = (text: string) => Buffer.from(text, 'latin1');
    const first = reader.read(bytes(request(hb)));
    if (first.kind !== 'whole') throw new Error('not read');
    // Same head, another body of the same length, and the next request behind it.
    const other = BODY.replace('lane-1', 'lane-2');
    const again = reader.read(bytes(`${request(hb, other)}GET / HTTP/1.1\r\n`));
    if (again.kind !== 'whole') throw new Error('not read');
    expect(again.head).toBe(first.head);
    expect(again.body.toString()).toBe(other);
    expect(again.used).toBe(first.used);
    const whole = request(hb);
    expect(reader.read(bytes(whole.slice(0, -1)))).toEqual({ kind: 'partial', head: first.head });
    expect(reader.read(bytes(whole.slice(0, whole.indexOf('\r\n\r\n'))))).toEqual({ kind: 'incomplete' });
    // Anything else is read as readLaneRequest reads it, and a new heartbeat's head is kept.
    expect(reader.read(bytes(request(hb, BODY, ['Connection: close']))).kind).toBe('other');
    const multi = reader.read(bytes(request('/.executors/queue/heartbeat')));
    expect(multi).toMatchObject({ kind: 'whole', head: { queue: null } });
    const longer = `${BODY} `;
    const third = reader.read(bytes(request('/.executors/queue/heartbeat', longer)));
    expect(third).toMatchObject({ kind: 'whole', head: { queue: null } });
    if (third.kind !== 'whole' || multi.kind !== 'whole') throw new Error('not read');
    expect(third.head).not.toBe(multi.head);
    expect(third.body.toString()).toBe(longer);
  });

  it("shares the heads it read between a lane's connections, but for long ones and the ones not the lane's", () => {
    const heads = createLaneHeads();
    const [a, b] = [new LaneReader(heads), new LaneReader(heads)];
    const bytes = (text: string) => Buffer.from(text, 'latin1');
    const hb = '/.executors/queue/default/heartbeat';
    const dq = '/.executors/queue/default/dequeue';
    // Connection a carries a heartbeat, then a dequeue; b the same dequeue, then the heartbeat.
    const first = a.read(bytes(request(hb)));
    const firstDequeue = a.read(bytes(request(dq, DEQUEUE_BODY)));
    const second = b.read(bytes(request(dq, DEQUEUE_BODY)));
    const again = b.read(bytes(request(hb)));
    if (first.kind !== 'whole' || firstDequeue.kind !== 'whole') throw new Error('not read');
    expect(second).toMatchObject({ kind: 'whole', head: { route: 'dequeue' } });
    expect(again).toMatchObject({ kind: 'whole', head: { route: 'heartbeat' } });
    if (second.kind !== 'whole' || again.kind !== 'whole') throw new Error('not read');
    expect(second.head).toBe(firstDequeue.head);
    expect(again.head).toBe(first.head);
    // A head whose body is not all here is found too, with the length its Content-Length gives.
    const whole = request(hb, `${BODY} `);
    const fresh = new LaneReader(heads);
    const partial = fresh.read(bytes(whole.slice(0, -1)));
    expect(partial).toMatchObject({ kind: 'partial', head: { length: Buffer.byteLength(BODY) + 1 } });
    if (partial.kind !== 'partial') throw new Error('not read');
    expect(new LaneReader(heads).read(bytes(whole))).toMatchObject({ kind: 'whole', head: partial.head });
    // A head longer than the cache keeps is read afresh each time, and read the same.
    const pad = [`X-Pad: ${'p'.repeat(LANE_CACHED_HEAD_CHARS)}`];
    const long1 = new LaneReader(heads).read(bytes(request(hb, BODY, pad)));
    const long2 = new LaneReader(heads).read(bytes(request(hb, BODY, pad)));
    if (long1.kind !== 'whole' || long2.kind !== 'whole') throw new Error('not read');
    expect(long2.head).not.toBe(long1.head);
    expect(long2.head).toEqual(long1.head);
    // What is not the lane's is not kept: it stays "other" however often it comes.
    for (let i = 0; i < 2; i++)
      expect(new LaneReader(heads).read(bytes(request(hb, BODY, ['Connection: close']))).kind).toBe('other');
  });
});

/** A chunked body from `at`: its text and where it ends, or undefined while it is not all here. */
function chunked(buf: Buffer, at: number): { text: string; used: number } | undefined {
  const parts: Buffer[] = [];
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = Number.parseInt(buf.toString('latin1', at, eol), 16);
    if (buf.length < eol + 2 + size + 2) return undefined;
    if (size === 0) return { text: Buffer.concat(parts).toString('utf8'), used: eol + 4 };
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** One connection: writes bytes, reads answers framed by their Content-Length. */
function connect(url: string) {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let buf = Buffer.alloc(0);
  let closed = false;
  const waiters: Array<() => void> = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    wake();
  });
  socket.on('close', () => {
    closed = true;
    wake();
  });
  socket.on('error', () => {});
  const answer = async (): Promise<{ status: number; headers: Map<string, string>; body: string }> => {
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const lines = buf.toString('latin1', 0, end).split('\r\n');
        const headers = new Map<string, string>();
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          headers.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
        }
        if (headers.get('transfer-encoding') === 'chunked') {
          const body = chunked(buf, end + 4);
          if (body) {
            buf = buf.subarray(body.used);
            return { status: Number(lines[0]!.split(' ')[1]), headers, body: body.text };
          }
        }
        const length = Number(headers.get('content-length') ?? 0);
        if (!headers.has('transfer-encoding') && buf.length >= end + 4 + length) {
          const body = buf.toString('utf8', end + 4, end + 4 + length);
          buf = buf.subarray(end + 4 + length);
          return { status: Number(lines[0]!.split(' ')[1]), headers, body };
        }
      }
      if (closed) throw new Error(`connection closed; left: ${JSON.stringify(buf.toString())}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return {
    socket,
    write: (text: string) => socket.write(text),
    answer,
    closed: () => closed,
    end: () => socket.destroy(),
  };
}

/** Heartbeats and dequeues the lane answered, and connections it handed over. */
type LaneCounts = { answered: number; dequeues: number; request: number };

/**
 * The lane's counters, read over a connection of their own (node:http's from its first request:
 * it is counted once, before the first reading), as changes since that first reading.
 */
async function laneCounter(c: ReturnType<typeof connect>): Promise<() => Promise<LaneCounts>> {
  const read = async (): Promise<LaneCounts> => {
    c.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = (await c.answer()).body;
    const n = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
    return {
      answered: n(/^src_executor_server_lane_answers_total\{route="heartbeat"\} (\d+)$/m),
      dequeues: n(/^src_executor_server_lane_answers_total\{route="dequeue"\} (\d+)$/m),
      request: n(/^src_executor_server_lane_handovers_total (\d+)$/m),
    };
  };
  const base = await read();
  return async () => {
    const now = await read();
    return {
      answered: now.answered - base.answered,
      dequeues: now.dequeues - base.dequeues,
      request: now.request - base.request,
    };
  };
}

describe('the lane in a server', () => {
  const harnesses: Harness[] = [];
  const conns: Array<ReturnType<typeof connect>> = [];
  afterEach(async () => {
    for (const c of conns.splice(0)) c.end();
    for (const h of harnesses.splice(0)) await h.close();
  });
  const start = async (env: Record<string, string> = {}) => {
    const h = await startHarness({ env: { EXECUTOR_SERVER_HEARTBEAT_LANE: 'true', ...env } });
    harnesses.push(h);
    return h;
  };
  const open = (h: Harness) => {
    const c = connect(h.url);
    conns.push(c);
    return c;
  };

  it('answers a heartbeat exactly as node:http does, and counts it', async () => {
    const on = await start();
    const off = await start({ EXECUTOR_SERVER_HEARTBEAT_LANE: 'false' });
    const answers = [];
    const counts: LaneCounts[] = [];
    for (const h of [on, off]) {
      const id = await h.submit({});
      const job = await h.dequeue('default', 'lane-1');
      expect(job.id).toBe(id);
      await h.api('POST', `/jobs/${id}/cancel`);
      const counted = await laneCounter(open(h));
      const c = open(h);
      c.write(
        request(
          '/.executors/queue/default/heartbeat',
          JSON.stringify({ executorName: 'lane-1', jobIds: [id, 77] }),
        ),
      );
      c.write(request('/.executors/queue/default/heartbeat', '{"executorName":'));
      c.write(request('/.executors/queue/heartbeat', JSON.stringify({ executorName: 'lane-1', jobIds: [] })));
      // An idle executor's heartbeat twice: the route answers the first (its row is written), the
      // lane's quick path the second (nothing to write).
      const idle = request(
        '/.executors/queue/default/heartbeat',
        JSON.stringify({ executorName: 'lane-2', jobIds: [] }),
      );
      c.write(idle + idle);
      const got = [await c.answer(), await c.answer(), await c.answer(), await c.answer(), await c.answer()];
      answers.push(got.map((a) => ({ ...a, headers: [...a.headers.keys()], date: a.headers.get('date') })));
      counts.push(await counted());
    }
    const [lane, node] = answers;
    expect(lane!.map((a) => [a.status, a.body])).toEqual([
      [200, `{"knownIds":["1"],"cancelIds":["1"]}\n`],
      [400, expect.stringMatching(/^Failed to unmarshal payload: /)],
      [500, '{"error":"queueNames must be set for multi-queue heartbeats"}\n'],
      [200, '{"knownIds":[],"cancelIds":[]}\n'],
      [200, '{"knownIds":[],"cancelIds":[]}\n'],
    ]);
    expect(lane!.map((a) => [a.status, a.body])).toEqual(node!.map((a) => [a.status, a.body]));
    // The same headers, in the same order.
    expect(lane!.map((a) => a.headers)).toEqual(node!.map((a) => a.headers));
    expect(counts).toEqual([
      { answered: 5, dequeues: 0, request: 0 },
      { answered: 0, dequeues: 0, request: 0 },
    ]);
  });

  it('refuses a wrong token as node:http does, and counts it against the peer', async () => {
    const h = await start({ EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: '2' });
    const counted = await laneCounter(open(h));
    const c = open(h);
    const bad = request('/.executors/queue/default/heartbeat').replace(EXECUTOR_TOKEN, 'wrong');
    for (let i = 0; i < 3; i++) c.write(bad);
    const got = [await c.answer(), await c.answer(), await c.answer()];
    expect(got.map((a) => a.status)).toEqual([401, 401, 429]);
    expect(got[2]!.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await counted()).toEqual({ answered: 3, dequeues: 0, request: 0 });
  });

  it('hands a connection to node:http at its first other request, in order, and keeps it there', async () => {
    const h = await start();
    const counted = await laneCounter(open(h));
    const c = open(h);
    const hb = request('/.executors/queue/default/heartbeat');
    const auth = `GET /.executors/test/auth HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH}\r\n\r\n`;
    // All at once: two for the lane, then one it does not read, then one more heartbeat.
    c.write(hb + hb + auth + hb);
    const got = [await c.answer(), await c.answer(), await c.answer(), await c.answer()];
    expect(got.map((a) => [a.status, a.body])).toEqual([
      [200, '{"knownIds":[],"cancelIds":[]}\n'],
      [200, '{"knownIds":[],"cancelIds":[]}\n'],
      [200, 'ok'],
      [200, '{"knownIds":[],"cancelIds":[]}\n'],
    ]);
    // Request ids go up by one per request, whoever answered it.
    const ids = got.map((a) => Number.parseInt(a.headers.get('x-request-id')!.slice(8), 16));
    expect(ids.slice(1).map((id, i) => id - ids[i]!)).toEqual([1, 1, 1]);
    c.write(hb);
    expect((await c.answer()).status).toBe(200);
    expect(await counted()).toEqual({ answered: 2, dequeues: 0, request: 1 });
  });

  it('waits for a heartbeat sent in pieces, and answers 408 to a head not finished in time', async () => {
    const h = await start({ EXECUTOR_SERVER_REQUEST_TIMEOUT: '1s' });
    const counted = await laneCounter(open(h));
    const hb = request('/.executors/queue/default/heartbeat');
    const c = open(h);
    for (const piece of [hb.slice(0, 5), hb.slice(5, 60), hb.slice(60, -3), hb.slice(-3)]) {
      c.write(piece);
      await new Promise((r) => setImmediate(r));
    }
    expect((await c.answer()).status).toBe(200);
    expect(await counted()).toEqual({ answered: 1, dequeues: 0, request: 0 });
    // Half a head, then silence past the headers timeout: answered and closed as node:http does.
    const slow = open(h);
    const sent = Date.now();
    slow.write(hb.slice(0, 40));
    await waitFor(() => slow.closed(), { what: 'the slow head cut' });
    expect(Date.now() - sent).toBeGreaterThanOrEqual(990);
    const cut = await slow.answer();
    expect(cut).toMatchObject({ status: 408 });
    expect(cut.headers.get('connection')).toBe('close');
  });

  it("keeps an executor's heartbeats and its parked long-poll in the lane, each on its connection (fetch's pool)", async () => {
    const h = await start();
    const counted = await laneCounter(open(h));
    const body = { executorName: 'lane-1', version: '5.3.0' };
    const parked = h.exec('/.executors/queue/default/dequeue', body, { [LONG_POLL_HEADER]: '25000' });
    await waitFor(() => h.app.waiting() === 1, { what: 'the dequeue parked' });
    for (let i = 0; i < 3; i++) {
      const hb = await h.exec('/.executors/queue/default/heartbeat', { executorName: 'lane-1', jobIds: [] });
      expect(await hb.json()).toEqual({ knownIds: [], cancelIds: [] });
    }
    expect(await counted()).toEqual({ answered: 3, dequeues: 0, request: 0 });
    const id = await h.submit({});
    const got = await parked;
    expect(got.status).toBe(200);
    expect(((await got.json()) as { id: number }).id).toBe(id);
    // The one handover: the connection the submission (the user API) came on.
    expect(await counted()).toEqual({ answered: 3, dequeues: 1, request: 1 });
  });

  it('answers a dequeue exactly as node:http does: empty, refused, malformed, and with a job', async () => {
    const on = await start();
    const off = await start({ EXECUTOR_SERVER_HEARTBEAT_LANE: 'false' });
    const answers = [];
    const counts: LaneCounts[] = [];
    for (const h of [on, off]) {
      const counted = await laneCounter(open(h));
      const c = open(h);
      c.write(request('/.executors/queue/default/dequeue', DEQUEUE_BODY));
      c.write(request('/.executors/queue/default/dequeue', DEQUEUE_BODY).replace(EXECUTOR_TOKEN, 'wrong'));
      c.write(request('/.executors/queue/default/dequeue', '{"executorName":'));
      c.write(
        request('/.executors/queue/dequeue', JSON.stringify({ executorName: 'lane-1', version: '5.3.0' })),
      );
      const got = [await c.answer(), await c.answer(), await c.answer(), await c.answer()];
      const id = await h.submit({});
      c.write(request('/.executors/queue/default/dequeue', DEQUEUE_BODY));
      const job = await c.answer();
      expect(JSON.parse(job.body)).toMatchObject({ id, token: expect.any(String) });
      got.push({ ...job, body: `job ${JSON.parse(job.body).id}` });
      answers.push(got.map((a) => ({ status: a.status, body: a.body, headers: [...a.headers.keys()] })));
      counts.push(await counted());
    }
    const [lane, node] = answers;
    expect(lane!.map((a) => a.status)).toEqual([204, 401, 400, 204, 200]);
    expect(lane).toEqual(node);
    // The one handover: the connection the submission (the user API) came on.
    expect(counts).toEqual([
      { answered: 0, dequeues: 5, request: 1 },
      { answered: 0, dequeues: 0, request: 0 },
    ]);
  });

  it('refuses a dequeue over the memory limit as node:http does, and keeps the connection', async () => {
    const h = await start({ EXECUTOR_SERVER_MEMORY_LIMIT: '1Mi' });
    const counted = await laneCounter(open(h));
    const c = open(h);
    c.write(request('/.executors/queue/default/dequeue', DEQUEUE_BODY));
    const refused = await c.answer();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('2');
    expect(JSON.parse(refused.body).error).toContain('memory');
    // Heartbeats are not refused, on the same connection.
    c.write(request('/.executors/queue/default/heartbeat'));
    expect((await c.answer()).status).toBe(200);
    expect(await counted()).toEqual({ answered: 1, dequeues: 1, request: 0 });
  });

  it('releases a parked dequeue whose client went away, and gives the job to the next one', async () => {
    const h = await start();
    const c = open(h);
    c.write(request('/.executors/queue/default/dequeue', DEQUEUE_BODY, [`${LONG_POLL_HEADER}: 25000`]));
    await waitFor(() => h.app.waiting() === 1, { what: 'the dequeue parked' });
    c.end();
    // Released by its connection's close, not by its 25 s running out.
    await waitFor(() => h.app.waiting() === 0, { what: 'the gone waiter released', timeoutMs: 10_000 });
    const id = await h.submit({});
    // Not claimed for the client that went away: the next dequeue gets it.
    const job = await h.dequeue('default', 'lane-2');
    expect(job.id).toBe(id);
  });

  it('answers a parked dequeue 204 when the server closes, and closes its connection', async () => {
    const h = await startHarness({ env: { EXECUTOR_SERVER_HEARTBEAT_LANE: 'true' } });
    const c = open(h);
    c.write(request('/.executors/queue/default/dequeue', DEQUEUE_BODY, [`${LONG_POLL_HEADER}: 25000`]));
    await waitFor(() => h.app.waiting() === 1, { what: 'the dequeue parked' });
    const closed = h.close();
    expect((await c.answer()).status).toBe(204);
    await waitFor(() => c.closed(), { what: 'the connection closed after its answer' });
    await closed;
  });

  it('reads no further from a client that sends without reading its answers, and loses none', async () => {
    const h = await start();
    const counted = await laneCounter(open(h));
    const c = open(h);
    c.socket.pause();
    // About 20 MB of heartbeats and as much of answers: more than the kernel holds on loopback.
    const N = 60_000;
    c.write(request('/.executors/queue/default/heartbeat').repeat(N));
    // The server stops when its answers have nowhere to go: the count stands still below N.
    let last = -1;
    let still = 0;
    const stalled = await waitFor(
      async () => {
        const { answered } = await counted();
        still = answered === last ? still + 1 : 0;
        last = answered;
        return still >= 3 ? answered : undefined;
      },
      { intervalMs: 100, what: 'the server to stop answering' },
    );
    expect(stalled).toBeGreaterThan(0);
    expect(stalled).toBeLessThan(N);
    c.socket.resume();
    for (let i = 0; i < N; i++) expect((await c.answer()).status).toBe(200);
    expect((await counted()).answered).toBe(N);
  }, 120_000);

  it('closes its idle connections when the server closes, and ends after an answer', async () => {
    const h = await startHarness({ env: { EXECUTOR_SERVER_HEARTBEAT_LANE: 'true' } });
    const c = open(h);
    c.write(request('/.executors/queue/default/heartbeat'));
    expect((await c.answer()).status).toBe(200);
    await h.close();
    await waitFor(() => c.closed(), { what: 'the idle lane connection closed' });
  });
});
