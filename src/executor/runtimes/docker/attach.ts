/**
 * Attaches to a container's output before it starts, and passes the attach stream on in chunks.
 *
 * With the daemon on a local socket (the default, or DOCKER_HOST=unix://...) the attach request goes
 * over a connection of our own that is read into one reused 64 KiB buffer (net's `onread`). Through
 * dockerode, every read of the socket is a new 64 KiB buffer, garbage as soon as the log has copied
 * it: on the 100 MiB job of `npm run bench -- logs` those piled up to 30 to 45 MiB between two
 * collections and were most of what was left of the executor's peak RSS above its idle RSS once the
 * job logger worked on bytes. Other hosts (tcp, ssh) attach through dockerode.
 *
 * Chunks passed on are views of that buffer: valid only during the call (the job logger copies
 * what it keeps before `write` returns).
 */
import net from 'node:net';
import type Dockerode from 'dockerode';

export interface Attached {
  /** Settles when the stream ends, closes or fails. */
  ended: Promise<void>;
}

const READ_BUFFER_BYTES = 64 * 1024;
/** An answer head longer than this is not Docker's. */
const MAX_HEAD_BYTES = 16 * 1024;

interface ModemInternals {
  socketPath?: unknown;
  version?: string;
  getSocketPath?: () => Promise<string | undefined>;
}

/** Resolves once the daemon has answered, so the container can start without output being lost. */
export async function attachOutput(
  docker: Dockerode,
  containerId: string,
  onChunk: (chunk: Buffer) => void,
): Promise<Attached> {
  const modem = docker.modem as unknown as ModemInternals;
  const socketPath = modem.socketPath && modem.getSocketPath ? await modem.getSocketPath() : undefined;
  if (!socketPath) {
    const stream = (await docker.getContainer(containerId).attach({
      stream: true,
      stdout: true,
      stderr: true,
    })) as NodeJS.ReadableStream;
    const ended = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
    stream.on('data', onChunk);
    return { ended };
  }
  return attachOverSocket(socketPath, modem.version, containerId, onChunk);
}

function attachOverSocket(
  socketPath: string,
  version: string | undefined,
  containerId: string,
  onChunk: (chunk: Buffer) => void,
): Promise<Attached> {
  return new Promise((resolve, reject) => {
    const path = `${version ? `/${version}` : ''}/containers/${encodeURIComponent(containerId)}/attach?stream=1&stdout=1&stderr=1`;
    let head = ''; // the answer's status line and headers, until they are complete
    let attached = false;
    let settle!: () => void;
    const ended = new Promise<void>((r) => (settle = r));
    const socket = net.connect({
      path: socketPath,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
        callback: (nread: number, buf: Uint8Array) => {
          const bytes = buf as Buffer;
          if (attached) {
            onChunk(bytes.subarray(0, nread));
            return true;
          }
          const before = head.length;
          head += bytes.toString('latin1', 0, nread);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) {
            if (head.length > MAX_HEAD_BYTES) fail('no answer head from the daemon');
            return true;
          }
          const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
          const rest = end + 4 - before; // where the stream (or an error's body) starts in this read
          if (status !== 101 && status !== 200) {
            // Docker's errors are small JSON bodies that come with the head.
            let message = bytes.toString('utf8', rest, nread).trim();
            try {
              message = (JSON.parse(message) as { message?: string }).message ?? message;
            } catch {}
            fail(`HTTP ${status}${message ? `: ${message}` : ''}`);
            return false;
          }
          attached = true;
          resolve({ ended });
          if (rest < nread) onChunk(bytes.subarray(rest, nread));
          return true;
        },
      },
    } as net.NetConnectOpts);
    function fail(why: string) {
      socket.destroy();
      reject(new Error(`docker attach: ${why}`));
    }
    socket.on('error', (err) => fail(err.message));
    socket.once('close', () => {
      settle();
      if (!attached) fail('the daemon closed the connection');
    });
    socket.on('connect', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
      );
    });
  });
}
