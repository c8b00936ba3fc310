/**
 * A `fetch` for the simulated fleet (bench/fleet-sim.ts, FLEET_TRANSPORT=raw) over node:net with a
 * hand-written HTTP/1.1 exchange, one per simulator process: its kept-alive connections are pooled
 * as node:http's agent pools them (a request takes an idle one or opens one), so that the fleet
 * holds as many connections as it has requests in flight, about one per executor (each executor
 * of its own would hold two, its parked long-poll's and its heartbeats', which at 10,000 is more
 * descriptors than this machine's limit lets the server have). The queue client above it is the
 * executor's own; only the transport is lighter than node:http's client (the executor's
 * control-transport.ts),
 * whose request objects, agent and socket bookkeeping were most of the simulator's CPU: a
 * simulator that shares the machine's two cores with the server delays the server and its own
 * clients, and both show in the latencies it reports.
 *
 * It does what the queue client uses: method, headers, a string or Buffer body, an abort signal;
 * the answer's status, headers and body (Content-Length or chunked). An answer with
 * `connection: close`, or a connection that fails, is not kept.
 */
import net from 'node:net';

/** The part of a Response the queue client reads. */
interface LightResponse {
  status: number;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
}

interface Parsed {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
  keep: boolean;
}

/**
 * A whole answer at the start of `buf`: the answer and how many bytes it took, or undefined while
 * it is not all here. Throws on what it cannot read.
 */
function parseAnswer(buf: Buffer): { answer: Parsed; used: number } | undefined {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  if (!Number.isInteger(status)) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  const keep = (headers.get('connection') ?? '').toLowerCase() !== 'close';
  const from = headEnd + 4;
  if ((headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) {
    const chunks: Buffer[] = [];
    let at = from;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = Number.parseInt(buf.toString('latin1', at, lineEnd), 16);
      if (!Number.isInteger(size)) throw new Error('a bad chunk size');
      if (buf.length < lineEnd + 2 + size + 2) return undefined;
      if (size === 0)
        return { answer: { status, headers, body: Buffer.concat(chunks), keep }, used: lineEnd + 4 };
      chunks.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  // No body without a length (204, 304, and every answer of this server has one).
  const length = Number(headers.get('content-length') ?? 0);
  if (buf.length < from + length) return undefined;
  return { answer: { status, headers, body: buf.subarray(from, from + length), keep }, used: from + length };
}

/** One exchange on `socket`: the request written, the answer read whole. */
function exchange(socket: net.Socket, request: Buffer, signal: AbortSignal | undefined): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    let pending: Buffer | null = null;
    const done = (err: Error | null, answer?: Parsed) => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(answer!);
    };
    const onData = (chunk: Buffer) => {
      pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
      try {
        const got = parseAnswer(pending);
        if (got) done(null, got.answer);
      } catch (e) {
        done(e as Error);
      }
    };
    const onError = (e: Error) => done(e);
    const onClose = () => done(new Error('other side closed'));
    const onAbort = () => done(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.write(request);
  });
}

export function createRawFetch(): typeof fetch {
  const idle = new Set<net.Socket>();
  const connect = (host: string, port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port, noDelay: true });
      s.once('connect', () => {
        s.off('error', reject);
        // Between exchanges: an error or a close takes the connection out of the pool.
        s.on('error', () => {});
        s.on('close', () => idle.delete(s));
        resolve(s);
      });
      s.once('error', reject);
    });
  const take = (): net.Socket | undefined => {
    for (const s of idle) {
      idle.delete(s);
      if (!s.destroyed) return s;
    }
    return undefined;
  };

  const rawFetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<LightResponse> => {
    const target = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (target.protocol !== 'http:')
      throw new TypeError(`the fleet's transport speaks http only, not ${target.protocol}`);
    const signal = init.signal ?? undefined;
    if (signal?.aborted) throw signal.reason;
    const body = init.body as string | Buffer | undefined | null;
    const payload = body == null ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body) : body;
    let head = `${init.method ?? 'GET'} ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${target.host}\r\n`;
    for (const [k, v] of Object.entries((init.headers as Record<string, string> | undefined) ?? {}))
      head += `${k}: ${v}\r\n`;
    if (body != null) head += `content-length: ${payload.length}\r\n`;
    const request = Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), payload]);
    // No retry here: a failed exchange fails the call, and the queue client retries as it would
    // over any transport.
    const socket = take() ?? (await connect(target.hostname, Number(target.port || 80)));
    const answer = await exchange(socket, request, signal);
    if (answer.keep) idle.add(socket);
    else socket.destroy();
    const { status, headers, body: buf } = answer;
    return {
      status,
      headers: { get: (name) => headers.get(name.toLowerCase()) ?? null },
      arrayBuffer: async () =>
        buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer,
    };
  };
  return rawFetch as unknown as typeof fetch;
}
