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
