/**
 * A raw HTTP/1.1 client over one TCP socket, for tests that need what fetch cannot do: declare a
 * Content-Length and send only part of the body, trickle it, or watch the connection close.
 */
import net from 'node:net';

export interface RawConnection {
  socket: net.Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves with the status code once the status line has arrived. */
  status: Promise<number>;
  /** Resolves when the server closes (or cuts) the connection. */
  closed: Promise<void>;
  /** Writes `bytes` of zeros in chunks, waiting for the socket to drain; stops when it closes. */
  send(bytes: number): Promise<void>;
}

const ZEROS = Buffer.alloc(64 * 1024);

export function openRaw(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      const head = [`${method} ${path} HTTP/1.1`, `host: ${hostname}:${port}`]
        .concat(Object.entries(headers).map(([k, v]) => `${k}: ${v}`))
        .join('\r\n');
      socket.write(`${head}\r\n\r\n`);
      resolve(conn);
    });
    socket.once('error', reject);
    let text = '';
    let gotStatus: (n: number) => void = () => {};
    const status = new Promise<number>((r) => {
      gotStatus = r;
    });
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) gotStatus(Number(m[1]));
    });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    // A cut connection (EPIPE, ECONNRESET) is what some tests wait for, not a failure.
    socket.on('error', () => {});
    const conn: RawConnection = {
      socket,
      received: () => text,
      status,
      closed,
      async send(bytes) {
        let left = bytes;
        while (left > 0 && !socket.destroyed) {
          const n = Math.min(left, ZEROS.length);
          left -= n;
          if (!socket.write(ZEROS.subarray(0, n))) {
            await new Promise<void>((r) => {
              socket.once('drain', r);
              socket.once('close', r);
            });
          }
        }
      },
    };
  });
}

/** One heartbeat of `pipelineHeartbeats`: its executor, and its Authorization header (none for null). */
export interface RawHeartbeat {
  executorName: string;
  authorization: string | null;
}

/**
 * Heartbeats sent pipelined on one connection in a single write, each with its length declared, so
 * the server has each head and body at once; the last asks the server to close. Resolves with all
 * that came back once the connection closed.
 */
export async function pipelineHeartbeats(url: string, beats: RawHeartbeat[]): Promise<string> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  const request = (b: RawHeartbeat, last: boolean) => {
    const body = JSON.stringify({ executorName: b.executorName, executorVersion: '5.3.0', jobIds: [] });
    return [
      'POST /.executors/queue/default/heartbeat HTTP/1.1',
      `host: ${hostname}`,
      ...(b.authorization === null ? [] : [`authorization: ${b.authorization}`]),
      'content-type: application/json',
      `content-length: ${Buffer.byteLength(body)}`,
      ...(last ? ['connection: close'] : []),
      '',
      body,
    ].join('\r\n');
  };
  socket.write(beats.map((b, i) => request(b, i === beats.length - 1)).join(''));
  let text = '';
  socket.on('data', (d: Buffer) => {
    text += d.toString('utf8');
  });
  await new Promise((r) => socket.once('close', r));
  return text;
}
