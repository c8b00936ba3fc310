/**
 * The executor's own pool for ping, heartbeats and dequeues (control-transport.ts), against a real
 * node:http server on loopback: what it sends and reads, which connections it keeps, and failures
 * shaped as fetch's. Its timeouts and aborts are in timeouts.test.ts, with the global fetch's.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ControlTransport,
  createControlTransport,
} from '../../../src/executor/client/control-transport.js';
import { transportErrorCode } from '../../../src/executor/client/retry.js';
import { waitFor } from '../../helpers/env.js';

let server: http.Server | undefined;
let control: ControlTransport | undefined;
afterEach(async () => {
  control?.close();
  control = undefined;
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  socket: Socket;
}

/** A server that records each request and answers it with `answer`; its connections are counted. */
async function recordingServer(
  answer: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
  keepAliveTimeoutMs = 65_000,
) {
  const seen: Seen[] = [];
  const sockets: Socket[] = [];
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body, socket: req.socket });
      answer(req, res, body);
    });
  });
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.on('connection', (s: Socket) => sockets.push(s));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, sockets };
}

describe('the control transport', () => {
  it('sends the method, headers and body, and reads the status, headers and body', async () => {
    const s = await recordingServer((_req, res, body) => {
      res.setHeader('x-executor-capabilities', 'long-poll');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.writeHead(body === '' ? 204 : 200, { 'content-type': 'application/json' });
      res.end(body === '' ? undefined : JSON.stringify({ echo: JSON.parse(body) }));
    });
    control = createControlTransport();
    const res = await control.fetch(`${s.url}/.executors/queue/q/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'token-executor secret' },
      body: JSON.stringify({ executorName: 'é1' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('X-Executor-Capabilities')).toBe('long-poll');
    expect(res.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(JSON.parse(Buffer.from(await res.arrayBuffer()).toString())).toEqual({
      echo: { executorName: 'é1' },
    });
    expect(s.seen[0]).toMatchObject({
      method: 'POST',
      url: '/.executors/queue/q/heartbeat',
      // Bytes, not characters: 21 characters, é is two bytes.
      headers: { authorization: 'token-executor secret', 'content-length': '22' },
    });

    const bytes = Buffer.from('{"n":1}');
    const second = await control.fetch(`${s.url}/b`, { method: 'POST', headers: {}, body: bytes });
    expect(JSON.parse(Buffer.from(await second.arrayBuffer()).toString())).toEqual({ echo: { n: 1 } });
    const empty = await control.fetch(`${s.url}/c`, { method: 'GET', headers: {} });
    expect(empty.status).toBe(204);
    expect((await empty.arrayBuffer()).byteLength).toBe(0);
  });

  it('keeps one connection for requests in turn, and opens another for one sent meanwhile', async () => {
    const held: http.ServerResponse[] = [];
    const s = await recordingServer((req, res) => {
      if (req.url === '/hold') held.push(res);
      else res.end('{}');
    });
    control = createControlTransport();
    const post = (p: string) => control!.fetch(`${s.url}${p}`, { method: 'POST', headers: {}, body: '{}' });
    for (let i = 0; i < 5; i++) await (await post('/beat')).arrayBuffer();
    expect(s.sockets).toHaveLength(1);
    const parked = post('/hold');
    await waitFor(() => held.length === 1, { what: 'the held request' });
    await (await post('/beat')).arrayBuffer();
    expect(s.sockets).toHaveLength(2);
    held[0]!.end('{}');
    await (await parked).arrayBuffer();
    for (let i = 0; i < 3; i++) await (await post('/beat')).arrayBuffer();
    expect(s.sockets).toHaveLength(2);
  });

  it("lets an idle connection go before the server's keep-alive timeout would close it", async () => {
    // Node's server announces `Keep-Alive: timeout=3` and closes an idle connection after 3 s; the
    // transport closes its side a second earlier, so a request is never sent on a closing socket.
    // The server's socket then sees the client's end of the stream, which it would not if it had
    // closed it first.
    const s = await recordingServer((_req, res) => res.end('{}'), 3_000);
    control = createControlTransport();
    const res = await control.fetch(`${s.url}/beat`, { method: 'POST', headers: {}, body: '{}' });
    expect(res.headers.get('keep-alive')).toBe('timeout=3');
    await res.arrayBuffer();
    const socket = s.sockets[0]!;
    const clientEnded = await new Promise<boolean>((resolve) => {
      socket.once('end', () => resolve(true));
      socket.once('close', () => resolve(false));
    });
    expect(clientEnded).toBe(true);
  });

  it('fails as fetch fails: a refused connection, a body cut short, an unknown scheme', async () => {
    const s = await recordingServer((req, res) => {
      if (req.url === '/cut') {
        res.writeHead(200, { 'content-length': '100' });
        res.write('{"partial":');
        setImmediate(() => req.socket.destroy());
      } else res.end('{}');
    });
    control = createControlTransport();
    const cut = await control.fetch(`${s.url}/cut`, { method: 'POST', headers: {}, body: '{}' });
    await expect(cut.arrayBuffer()).rejects.toThrow(TypeError);
    await expect(cut.arrayBuffer()).rejects.toThrow('terminated');

    const port = (server!.address() as AddressInfo).port;
    server!.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    const refused = await control
      .fetch(`http://127.0.0.1:${port}/beat`, { method: 'POST', headers: {} })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(TypeError);
    expect((refused as Error).message).toBe('fetch failed');
    expect(transportErrorCode(refused)).toBe('ECONNREFUSED');

    await expect(control.fetch('ftp://127.0.0.1/x', { method: 'GET', headers: {} })).rejects.toThrow(
      'fetch failed',
    );
  });
});
